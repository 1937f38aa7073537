"""What scripts/compare prints and writes from a run's figures: the terminal
table, REPORT.md's tables, the plots with their error bars, the interference
summary and the run-to-run diff. Figures come from benchjson.figures: each is
the median of its repetitions with a 95% interval and a stable flag; what is
said about each transport (how it waits, whether it spins) comes from its row
of the registry's table (scripts/registry.py), `info` below: {name: row}."""
import os
import shutil
import subprocess
import sys

import benchjson
import stats

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

METHOD = """\
How the figures are obtained. Every benchmark runs as {reps} repetitions of at
least {min_time} s each, and the repetitions of all benchmarks are run in a
random interleaved order (Google Benchmark's random interleaving), so each
figure samples the whole run instead of one moment of it. The repetitions are
split over {processes} ipc-bench processes run one after another: a figure's
level can differ from one process to the next and hold still inside each
(buffer placement, the servers' start), and repetitions of one process alone
would give a tight interval that the next run does not reproduce. A figure is the
median of its repetitions (round-trip percentiles within one repetition come
from every per-message sample). Its interval is a 95% distribution-free
confidence interval for that median from order statistics: with {reps}
repetitions it runs from value number {k} to value number {k_high} in
sorted order
(coverage {coverage:.1%}); it assumes nothing about the shape of the noise.

Where the processes run: {placement}. On this kind of VM a wake-up across
CPUs costs several times one on the same CPU, the scheduler places each new
process by lottery, and other work moves an unpinned client between the two
paths; with every process in a fixed place, a repetition's figure no longer
depends on where its processes happened to land.

ipclab against raw system calls: `Paired/<transport>/<bytes>` runs ipclab's
round trip and the plainest raw ping-pong of the same mechanism in one
process, alternating slices of about 1 ms (A B B A ...), and takes the
median of the per-pair ratios; whatever the machine does to one member of a
pair it does to the other, so the ratio holds still where absolute times
drift. The ratio's interval is over repetitions, as above. Both servers of
a pair run on the same CPU, so neither member gets a cheaper wake-up path;
a spinning raw server is parked between its slices so it cannot take the
CPU from ipclab's.

Interference. For every repetition ipc-bench records how long the client and
the server were runnable but waiting for a CPU (`/proc/PID/schedstat`, run
delay), their involuntary context switches and the host's steal time. A
repetition is *disturbed* when the share of its wall time that this waiting
took exceeds that of its benchmark's median repetition by more than 5
percentage points. Relative, because how much a benchmark queues by itself
depends on the placement (with client and server on one CPU, every wake-up
waits for the waker to block), and against the typical repetition because
some benchmarks' own queueing moves from one repetition to the next. Why 5%: a
round trip is serial, so such waiting adds straight to the measured time.
Benchmarks with more than a third of their repetitions disturbed are run
again once; the re-run's repetitions join the first pass's undisturbed ones
(a re-run alone spans only a few seconds at the run's end), and a figure
still disturbed is flagged.

ipc-bench's log says `Library was built as DEBUG`: Debian builds Google
Benchmark without NDEBUG. The timed loop is inlined into ipclab's optimised
code and the per-message samples are ipclab's own clock reads, so the
figures here are not affected (README: "Benchmarks").

Stable means: the interval's half-width is within 5% of the figure (within
±0.05 for a ratio) and no more than a third of its repetitions were
disturbed. From 64 KiB messages up, where copying is a large part of a
message's time, an absolute figure (not a ratio) is stable only if the
host's own speed held still too: the memcpy probe at its size
(`Baseline/memcpy`, repeated through the run like every benchmark), timed
per CPU second, must have an interval within the same 5%. Why: a figure's
interval sees only its own repetitions, and a host that wanders moves such
figures between runs while each run's repetitions agree (seen on this kind
of VM: a unix 1 MiB stream 11% apart between two runs, with narrow
intervals in both, while memcpy of 1 MiB wandered ±6.8% per CPU second in
the second). Per CPU second because a process sharing the probe's CPU
halves its wall-clock throughput without slowing the copy, and run delay is
judged on its own (above).
Unstable figures carry `?` in the tables and `stable=false` in
summary.csv. To make them stable: quiet the machine (stop other work), run
more repetitions (`--repetitions 15`) or longer ones (`--min-time 0.1`), or
pin (`--pin 0,1`; on this kind of VM pinning slows blocking transports, so
compare pinned runs only with pinned runs). `*` marks the best of a column
only when its interval does not overlap the runner-up's; `=` marks figures
tied for best."""


def human_size(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def fmt(v):
    if v is None:
        return "-"
    if abs(v) < 10:
        return f"{v:.2f}"
    if abs(v) < 100:
        return f"{v:.1f}"
    return f"{v:.0f}"


def find(rows, t, s, metric):
    for r in rows:
        if r[0] == t and r[1] == s and r[2] == metric:
            return r[4]
    return None


def value(rows, t, s, metric):
    f = find(rows, t, s, metric)
    return f["value"] if f else None


def half_width(f):
    return (f["high"] - f["low"]) / 2


def best_marks(figs, higher_better):
    """{index: '*' or '='} for the best figure(s) among figs (None allowed):
    '*' when the best's interval clears the runner-up's, '=' for each figure
    whose interval overlaps the best's."""
    present = [(i, f) for i, f in enumerate(figs) if f]
    if len(present) < 2:
        return {}
    present.sort(key=lambda p: p[1]["value"], reverse=higher_better)
    best = present[0][1]
    tied = [i for i, f in present[1:] if stats.overlaps(best, f)]
    if not tied:
        return {present[0][0]: "*"}
    return {i: "=" for i in [present[0][0]] + tied}


def cell(f, mark="", interval=True):
    if not f:
        return "-"
    text = fmt(f["value"])
    if interval:
        text += f" ±{fmt(half_width(f))}"
    return text + mark + ("?" if not f["stable"] else "")


def waits(info, t):
    return info.get(t, {}).get("waits", "?")


def label(info, t):
    """The row's name in tables and plots (the transport's, or e.g. `tcp → HOST` for compare --remote)."""
    return (info or {}).get(t, {}).get("label", t)


def table(rows, transports, sizes, info):
    """The terminal table."""
    small = sizes[0]
    header = ["transport", "waits"] + [human_size(s) for s in sizes] * 2 + [human_size(small), "per s"]
    marks = {}
    for s in sizes:
        for metric, higher in (("rtt_p50", False), ("stream_throughput", True)):
            m = best_marks([find(rows, t, s, metric) for t in transports], higher)
            for i, t in enumerate(transports):
                marks[(t, s, metric)] = m.get(i, "")
    conn = best_marks([find(rows, t, "", "connect_rate") for t in transports], True)
    body = []
    for i, t in enumerate(transports):
        cells = [label(info, t), waits(info, t)]
        for s in sizes:
            p50, p99 = find(rows, t, s, "rtt_p50"), find(rows, t, s, "rtt_p99")
            cells.append("-" if not p50 else
                         f"{cell(p50, marks[(t, s, 'rtt_p50')])} / {cell(p99, interval=False)}")
        for s in sizes:
            cells.append(cell(find(rows, t, s, "stream_throughput"), marks[(t, s, "stream_throughput")]))
        c, sv = value(rows, t, small, "client_cpu_per_msg"), value(rows, t, small, "server_cpu_per_msg")
        # "+ ?": the server's CPU was not measured (on another host).
        cells.append("-" if c is None else fmt(c + sv) if sv is not None else f"{fmt(c)} + ?")
        cells.append(cell(find(rows, t, "", "connect_rate"), conn.get(i, "")))
        body.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    n = len(sizes)
    groups = [("", 2), ("round trip p50 ±95% CI / p99 (µs)", n), ("stream (MB/s)", n), ("CPU µs", 1),
              ("connect", 1)]
    top, i = [], 0
    for title, span in groups:
        w = sum(widths[i:i + span]) + 2 * (span - 1)
        if len(title) > w:  # widen the group's last column so its title fits
            widths[i + span - 1] += len(title) - w
            w = len(title)
        top.append(title.center(w) if i >= 2 else title.ljust(w))
        i += span
    align = lambda cs: "  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cs, widths)))
    out = ["  ".join(top).rstrip(), align(header).rstrip(), "-" * len(align(header))]
    out += [align(c).rstrip() for c in body]
    return "\n".join(out)


def md_cell(f, mark=""):
    if not f:
        return "-"
    return f"{fmt(f['value'])}{mark} [{fmt(f['low'])}, {fmt(f['high'])}]" + (" ?" if not f["stable"] else "")


def markdown_table(rows, transports, sizes, info):
    head = ["transport", "waits"] + [f"RTT p50 {human_size(s)} (µs)" for s in sizes] + \
           [f"RTT p99 {human_size(s)} (µs)" for s in sizes] + \
           [f"stream {human_size(s)} (MB/s)" for s in sizes] + \
           [f"CPU per msg {human_size(sizes[0])} client + server (µs)", "connect/s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    marks = {}
    for s in sizes:
        for metric, higher in (("rtt_p50", False), ("rtt_p99", False), ("stream_throughput", True)):
            m = best_marks([find(rows, t, s, metric) for t in transports], higher)
            for i, t in enumerate(transports):
                marks[(t, s, metric)] = m.get(i, "")
    conn = best_marks([find(rows, t, "", "connect_rate") for t in transports], True)
    for i, t in enumerate(transports):
        cells = [f"`{label(info, t)}`", waits(info, t)]
        for metric in ("rtt_p50", "rtt_p99", "stream_throughput"):
            for s in sizes:
                cells.append(md_cell(find(rows, t, s, metric), marks[(t, s, metric)]))
        c, sv = value(rows, t, sizes[0], "client_cpu_per_msg"), value(rows, t, sizes[0], "server_cpu_per_msg")
        cells.append("-" if c is None else f"{fmt(c)} + {fmt(sv)}")
        cells.append(md_cell(find(rows, t, "", "connect_rate"), conn.get(i, "")))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def ratio_table(rows, transports, sizes, markdown=True, info=None):
    """ipclab against the same exchange in raw system calls: the paired ratio."""
    head = ["transport"] + [f"{human_size(s)}: ipclab / raw" for s in sizes]
    body = []
    for t in transports:
        # The second row: against the raw ping-pong whose reply has a buffer
        # of its own (rtt_ratio_duplex; shm and shm-spin).
        for metric, note in (("rtt_ratio", None), ("rtt_ratio_duplex", "own reply buffer")):
            if note and not any(find(rows, t, s, metric) for s in sizes):
                continue
            name = label(info, t)
            if markdown:
                cells = [f"`{name}`" + (f" *{note}*" if note else "")]
            else:
                cells = [name + (f", {note}" if note else "")]
            for s in sizes:
                r = find(rows, t, s, metric)
                if not r:
                    cells.append("-")
                    continue
                cells.append(f"{r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" + (" ?" if not r["stable"] else ""))
            body.append(cells)
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(c) + " |" for c in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths)))
                     for r in [head] + body)


def connect_ratio_lines(rows, transports, markdown=True, info=None):
    """ipclab's fork-per-session server against the raw one, whole sessions
    paired in one process (PairedConnect/<t>): a line per transport that has it."""
    out = []
    for t in transports:
        r = find(rows, t, "", "connect_ratio")
        if not r:
            continue
        name = f"`{label(info, t)}`" if markdown else label(info, t)
        out.append(f"{name} session, ipclab / raw: {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
                   + (" ?" if not r["stable"] else "")
                   + f" (ipclab's session rate {1 / r['value']:.2f}x the raw server's)")
    return out


def interference_summary(reps):
    """(lines for REPORT.md, disturbed repetitions, all repetitions)."""
    total = disturbed = 0
    worst = []
    levels = []
    for name, runs in sorted(reps.items()):
        shares = [benchjson.waiting_share(b) for b in runs]
        if any(v is None for v in shares):
            continue
        flags = benchjson.disturbed_flags(runs)
        share = stats.median(shares)
        levels.append(share)
        total += len(flags)
        disturbed += sum(flags)
        if sum(flags):
            runq = stats.median([b.get("client_runq_ns_per_msg", 0) + b.get("server_runq_ns_per_msg", 0)
                                 for b in runs])
            worst.append((sum(flags), len(flags), name, share, runq))
    worst.sort(reverse=True)
    lines = [f"{disturbed} of {total} repetitions were disturbed: their run delay (time spent runnable but "
             "waiting for a CPU, from /proc schedstat) exceeded their benchmark's median repetition by more "
             "than 5% of their time, or they ran in a costlier placement of the CPUs (below)." if total else
             "No interference counters in this file."]
    if levels:
        lines += ["", f"Across benchmarks, the median share of time client and server spent waiting for a CPU "
                      f"was {stats.median(levels):.1%} (highest "
                      f"{max(levels):.1%}). A load that lasts the whole run raises every repetition alike: it "
                      "shows here and in the figures, not as disturbed repetitions. With client and server on "
                      "one CPU, a share of 30-50% is their own queueing (each wake-up waits for the waker to "
                      "block); compare a loaded run with a quiet one with `--diff`."]
    if worst:
        lines += ["", "| benchmark | disturbed repetitions | median share of time waiting for a CPU | "
                      "median run delay per message, client + server (µs) |", "|---|---|---|---|"]
        lines += [f"| `{n}` | {d} of {a} | {s:.1%} | {r / 1e3:.2f} |" for d, a, n, s, r in worst[:25]]
        if len(worst) > 25:
            lines.append(f"| ({len(worst) - 25} more) | | | |")
    return lines + placement_summary(reps), disturbed, total


def placement_probes(reps):
    return sorted(b["xcpu_rtt_ns"] for runs in reps.values() for b in runs if b.get("xcpu_rtt_ns"))


def placement_summary(reps):
    """Lines for REPORT.md on the placement probe (bench/placement.hpp), or none."""
    rtt = placement_probes(reps)
    if not rtt:
        return []
    flagged = sum(sum(benchjson.placement_flags(runs)) for runs in reps.values())
    return ["", f"Placement: before each repetition whose client and server run on different CPUs (here the "
                f"spinning transports'), ipc-bench timed one cache line's round trip between those CPUs: median "
                f"{stats.median(rtt):.0f} ns, from {rtt[0]:.0f} to {rtt[-1]:.0f} ({len(rtt)} probes). "
                f"{flagged} repetition(s) probed more than {benchjson.PLACEMENT_SLACK}x away from the median "
                "were flagged disturbed and left out of their figure when at least "
                f"{benchjson.MIN_TYPICAL_REPETITIONS} others remained: on a virtual machine the hypervisor moves the vCPUs between physical "
                "cores, and a spinning transport's figures follow what a line costs between them (on the "
                "2-vCPU EPYC hosts the probe moved between about 55, 110 and 390 ns, within seconds). Compare "
                "two runs' placement lines before comparing their spinning figures."]


def placement_difference(old_reps, new_reps):
    """A warning when two runs' median placement probes differ by more than
    PLACEMENT_SLACK (their spinning figures then measured different
    machines), else ''."""
    a, b = placement_probes(old_reps), placement_probes(new_reps)
    if not a or not b:
        return ""
    a, b = stats.median(a), stats.median(b)
    if max(a, b) <= benchjson.PLACEMENT_SLACK * min(a, b):
        return ""
    return (f"Placement differed: one cache line's round trip between the client's and the spinning server's "
            f"CPU took {a:.0f} ns (median) in the first run and {b:.0f} ns in the second. The hypervisor had "
            "the vCPUs placed otherwise; the spinning transports' figures of the two runs are not comparable.")


# How far two runs' host copy speeds may differ before --diff says so. The
# probe is ipc-bench's largest memcpy: on a VM whose vCPUs move between
# physical cores the memory speed changes, and large-message figures follow
# it (seven acceptance pairs, Intel Xeon VM: 25-26 GB/s went with a unix 1 MiB
# stream of 7.2-7.4 GB/s, 31-32 GB/s with 9.7-10.2; in one pair the probe fell
# 5% between the runs and that stream 11%, stable in both).
HOST_SPEED_SLACK = 0.05


def host_speed_difference(old_rows, new_rows):
    """A note when two runs' host copy speed (the memcpy throughput at the
    largest size both measured) differs by more than HOST_SPEED_SLACK, else
    ''. Each run's intervals see only its own time, so a shift between the
    runs moves absolute figures without marking them."""
    def probe(rows):
        return {s: f["value"] for t, s, m, _, f in rows if t == "memcpy" and m == "memcpy_throughput"}
    a, b = probe(old_rows), probe(new_rows)
    sizes = sorted(set(a) & set(b))
    if not sizes or not a[sizes[-1]]:
        return ""
    size = sizes[-1]
    change = b[size] / a[size] - 1
    if abs(change) <= HOST_SPEED_SLACK:
        return ""
    return (f"Host speed differed: memcpy of {human_size(size)} ran {fmt(a[size])} MB/s in the first run and "
            f"{fmt(b[size])} MB/s in the second ({change:+.0%}). Absolute figures, large messages most, move "
            "with the host between runs, unmarked by either run's intervals; the ipclab/raw ratios, paired "
            "within each run, do not.")


def host_speed_summary(rows):
    """Lines for REPORT.md on the host-speed probe within this run (see
    benchjson.host_terms), or none."""
    probes = [(s, benchjson.host_probe(f)) for t, s, m, _, f in rows if t == "memcpy" and s >= benchjson.HOST_TERM_FROM]
    if not probes:
        return []
    marked = benchjson.host_marked(rows)
    spread = "; ".join(f"{human_size(s)} {fmt(f['value'])} MB/s [{fmt(f['low'])}, {fmt(f['high'])}] "
                       f"(±{stats.relative_half_width(f):.1%})" for s, f in probes)
    return ["", f"Host speed during the run (memcpy probe, bytes per CPU second: median and 95% interval): {spread}. "
                f"{marked} absolute figure(s) of {human_size(benchjson.HOST_TERM_FROM)} and up were marked "
                "unstable because the probe at their size passed the 5% bound (How to read these figures). "
                "Ratios are paired within the run and do not depend on it."]


def spins(info, t):
    return info.get(t, {}).get("wait") == "spin"


def spinning_here(transports, info):
    """' (here `a`, `b`)': the spinning variants of this run, for the prose."""
    spinning = ", ".join(f"`{t}`" for t in transports if spins(info, t))
    return f" (here {spinning})" if spinning else ""


def waits_section(transports, info):
    """REPORT.md's "How each side waits", from the table's waits column."""
    groups = {}
    for t in transports:
        groups.setdefault(waits(info, t), []).append(f"`{t}`")
    return ["How each transport of this run waits for the next message (the `waits` column of "
            "`ipc-bench --describe-transports`):", ""] + \
        [f"- {w}: {', '.join(ts)}" for w, ts in groups.items()] + \
        ["", "A side that sleeps until woken burns no CPU while it waits. A spinning variant"
         + spinning_here(transports, info) + " busy-polls a bounded number of times before it "
         "sleeps, so it burns CPU while waiting and only pays off when client and server each have a core of "
         "their own (try `--pin 0,1`). The CPU column is the CPU time both processes spent per round trip."]


CHUNK_HEADER = 12  # ipc/chunking.hpp kChunkHeaderSize


def _int_fact(facts, key):
    try:
        return int(str(facts.get(key, "")).split()[0])
    except (ValueError, IndexError):
        return None


def limits_section(transports, sizes, facts):
    """REPORT.md's "Kernel limits that shape these figures": the message
    queues' per-message limit, when a measured size is above it."""
    lines = []
    queues = [("posix-mq", "fs.mqueue.msgsize_max", "POSIX queue",
               "sysctl -w fs.mqueue.msgsize_max=N",
               "Each queue's depth times its message size also counts against the user's RLIMIT_MSGQUEUE "
               "(`ulimit -q`, 819200 bytes by default), so raise that too for more than a few sessions."),
              ("sysv-mq", "kernel.msgmax", "System V queue",
               "sysctl -w kernel.msgmax=N kernel.msgmnb=M",
               "A queue holds at most `kernel.msgmnb` bytes; keep it at least twice `kernel.msgmax`.")]
    for t, key, what, command, extra in queues:
        limit = _int_fact(facts, key)
        if t not in transports or limit is None:
            continue
        piece = limit - CHUNK_HEADER  # each queue message carries a chunk header (ipc/chunking.hpp)
        over = [s for s in sizes if s > piece]
        if not over:
            continue
        pieces = ", ".join(f"{human_size(s)} as {-(-s // piece)} messages" for s in over)
        lines += [f"- `{t}`: a {what} message is at most `{key}` = {limit} bytes on this host, so a larger "
                  f"message (with ipclab's {CHUNK_HEADER}-byte chunk header) goes as several queue messages per direction ({pieces}), each a system call and "
                  f"possibly a wake-up. Above {limit} bytes this limit, not the mechanism, bounds `{t}`'s "
                  f"figures. To raise it, as root: `{command}` (per IPC namespace; queues created "
                  f"afterwards use it, and ipclab reads it when it opens a session). {extra} With the "
                  f"limit at least {CHUNK_HEADER} bytes above a message's size, that message goes as one queue message."]
    if not lines:
        return []
    return ["### Kernel limits that shape these figures", ""] + lines + [""]


def cpu_figure(rows, t, s):
    """Client + server CPU per round trip; the interval adds the two
    intervals' ends (conservative: both at their extremes at once)."""
    c, sv = find(rows, t, s, "client_cpu_per_msg"), find(rows, t, s, "server_cpu_per_msg")
    if not c or not sv:
        return None
    return {"value": c["value"] + sv["value"], "low": c["low"] + sv["low"], "high": c["high"] + sv["high"],
            "stable": c["stable"] and sv["stable"]}


def plot(rows, transports, sizes, out_dir, facts, info):
    """Log-log plots with gnuplot, one line per transport, error bars from
    each figure's 95% interval, raw baselines and the memcpy ceiling drawn
    where they bound a line; connections/s as bars. Returns the files made."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("compare: gnuplot not found; no plots (scripts/install-deps installs gnuplot-nox)", file=sys.stderr)
        return []
    cpu = f"{facts['cpu']}, {facts['cores']} cores, Linux {facts['kernel']}".replace("'", "").replace('"', "")
    xtics = ", ".join(f"'{human_size(s)}' {s}" for s in sizes)
    made = []
    for fname, metric, bound, ylabel, title in (
            ("latency.png", "rtt_p50", "baseline_rtt_p50", "round-trip time, median (µs)",
             "Round-trip latency (p50) against message size; thin dashed: the raw baseline of each"),
            ("latency-p99.png", "rtt_p99", None, "round-trip time, 99th percentile (µs)",
             "Round-trip latency (p99) against message size"),
            ("cpu.png", "cpu_per_msg", None, "CPU time per round trip, client + server (µs)",
             "CPU per round trip against message size (closed loop)"),
            ("throughput.png", "stream_throughput", "baseline_stream_throughput",
             "one-way throughput (MB/s, 10^6 bytes/s)",
             "One-way stream throughput; thin dashed: raw baselines; black: the memcpy ceiling")):
        blocks, plots = [], []

        def series(i, t, key, label, style):
            pts = [(s, cpu_figure(rows, t, s) if key == "cpu_per_msg" else find(rows, t, s, key)) for s in sizes]
            pts = [(s, f) for s, f in pts if f and f["value"] > 0 and f["low"] > 0]
            if not pts:
                return
            blocks.append(f"$d{len(blocks)} << EOD\n" +
                          "\n".join(f"{s} {f['value']} {f['low']} {f['high']}" for s, f in pts) + "\nEOD")
            plots.append(f"$d{len(blocks) - 1} using 1:2:3:4 with yerrorlines {style} "
                         f"lc rgb '{COLOURS[i % len(COLOURS)] if t != 'memcpy' else '#000000'}' title '{label}'")

        for i, t in enumerate(transports):
            dash = "dt 2" if spins(info, t) else "dt 1"
            series(i, t, metric, label(info, t), f"lw 2 {dash} pt {i + 4} ps 1.3")
            if bound:
                series(i, t, bound, f"{label(info, t)} raw", "lw 1 dt 3 pt 0")
        if metric == "stream_throughput":
            series(0, "memcpy", "memcpy_throughput", "memcpy", "lw 1 dt 4 pt 0")
        if not plots:
            continue
        lo, hi = min(sizes), max(sizes)
        script = "\n".join(blocks) + f"""
set terminal pngcairo size 1100,700 noenhanced font ',11'
set output '{fname}'
set title "{title}\\n{cpu}\\nerror bars: 95% confidence interval of the median over repetitions"
set xlabel 'message size (bytes, log scale)'
set ylabel '{ylabel}, log scale'
set logscale xy
set format y '%g'
set xrange [{lo / 1.6}:{hi * 1.6}]
set xtics ({xtics})
set grid xtics ytics mytics
set key outside right top box
set bars 2
plot {", ".join(plots)}
"""
        if _gnuplot(gnuplot, out_dir, fname, script):
            made.append(fname)
    conn = [(label(info, t), find(rows, t, "", "connect_rate")) for t in transports]
    conn = [(t, f) for t, f in conn if f]
    raw = next((r[4] for r in rows if r[2] == "baseline_connect_rate"), None)
    if raw:
        conn.append(("C fork server (raw, child serves until close)", raw))
    one_shot = next((r[4] for r in rows if r[2] == "baseline_connect_oneshot_rate"), None)
    if one_shot:
        conn.append(("C fork server (raw, one-shot child)", one_shot))
    if conn and _gnuplot(gnuplot, out_dir, "connect.png", "\n".join(
            ["$c << EOD"] + [f'{i} "{t}" {f["value"]} {f["low"]} {f["high"]}' for i, (t, f) in enumerate(conn)] +
            ["EOD", "set terminal pngcairo size 1100,600 noenhanced font ',11'", "set output 'connect.png'",
             f'set title "Sessions per second (open, fork, one exchange, close)\\n{cpu}\\n'
             'error bars: 95% confidence interval of the median over repetitions"',
             "set ylabel 'sessions/s'", "set yrange [0:*]", "set style fill solid 0.5", "set boxwidth 0.6",
             "set xtics rotate by -20", "set grid ytics", "unset key",
             "plot $c using 1:3:xtic(2) with boxes lc rgb '#1f77b4', $c using 1:3:4:5 with yerrorbars "
             "lc rgb '#000000' pt 0"])):
        made.append("connect.png")
    return made


def _gnuplot(gnuplot, out_dir, fname, script):
    """Writes the script beside its plot (so a user can restyle and redraw
    it) and runs it there; True when the plot was drawn."""
    gp = os.path.join(out_dir, fname.replace(".png", ".gp"))
    with open(gp, "w") as f:
        f.write(script + "\n")
    r = subprocess.run([gnuplot, os.path.basename(gp)], cwd=out_dir, text=True, capture_output=True, timeout=60)
    if r.returncode != 0:
        print(f"compare: gnuplot failed for {fname}: {r.stderr.strip()}", file=sys.stderr)
    return r.returncode == 0


def diff(old_rows, new_rows, markdown=False):
    """Which figures changed significantly between two runs: the
    Mann-Whitney U test over their repetitions at alpha 0.05. Returns text."""
    old = {(r[0], r[1], r[2]): r for r in old_rows}
    changed, same, untestable = [], 0, 0
    for t, s, metric, unit, f in new_rows:
        o = old.get((t, s, metric))
        if not o:
            continue
        a, b = o[4]["values"], f["values"]
        if min(len(a), len(b)) < stats.MIN_U_SAMPLES:
            untestable += 1
            continue
        _, p = stats.mann_whitney(a, b)
        if p < stats.ALPHA:
            change = f["value"] / o[4]["value"] - 1 if o[4]["value"] else float("inf")
            changed.append((t, s, metric, unit, o[4]["value"], f["value"], change, p))
        else:
            same += 1
    head = ["transport", "size", "metric", "before", "after", "change", "p"]
    body = [[t, human_size(s) if s != "" else "", m, f"{fmt(a)} {u}", f"{fmt(b)} {u}", f"{c:+.1%}", f"{p:.3f}"]
            for t, s, m, u, a, b, c, p in changed]
    out = []
    if body:
        if markdown:
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(r) + " |" for r in body]
        else:
            widths = [max(len(x) for x in col) for col in zip(head, *body)]
            out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + body]
    out.append(f"{len(changed)} figure(s) changed significantly (Mann-Whitney U over repetitions, p < "
               f"{stats.ALPHA}); no significant change in the other {same}"
               + (f"; {untestable} had too few repetitions to test" if untestable else "") + ".")
    return "\n".join(out)


def agreement(old_rows, new_rows):
    """Whether two runs agree within the bounds stats.agreement states, and
    whether every figure that moved more was flagged unstable. Returns text."""
    def table(rows):
        return {(t, s, m): (f["value"], f["stable"]) for t, s, m, _, f in rows}
    a = stats.agreement(table(old_rows), table(new_rows))
    out = []
    for kind, what in (("figures", f"round-trip p50 and stream figures within ±{stats.AGREE_REL:.0%}"),
                       ("ratios", f"ipclab/raw ratios within ±{stats.AGREE_ABS_RATIO:.2f}")):
        if a[kind]:
            out.append(f"Run-to-run agreement: {a[kind + '_agree']} of {a[kind]} {what} "
                       f"({a[kind + '_agree'] / a[kind]:.0%}).")
    unflagged = [m for m in a["movers"] if not m[3]]
    for (t, s, metric), x, y, flagged in a["movers"]:
        size = human_size(s) if s != "" else ""
        change = f"{y - x:+.3g}" if metric in stats.AGREE_RATIOS else f"{y / x - 1:+.0%}"
        out.append(f"- moved: {t} {size} {metric} {fmt(x)} -> {fmt(y)} ({change}), "
                   + ("flagged unstable" if flagged else "NOT flagged unstable in either run"))
    if a["movers"]:
        out.append(f"{len(unflagged)} of {len(a['movers'])} moving figure(s) were not flagged unstable in either run.")
    return "\n".join(out)


def _rank(rows, transports, s, metric, higher_better):
    """(best transport, its figure, tied transports) for one column, or None."""
    figs = [(t, find(rows, t, s, metric)) for t in transports]
    figs = [(t, f) for t, f in figs if f]
    if not figs:
        return None
    figs.sort(key=lambda p: p[1]["value"], reverse=higher_better)
    best_t, best = figs[0]
    tied = [t for t, f in figs[1:] if stats.overlaps(best, f)]
    return best_t, best, tied


def _say(rows, transports, s, metric, higher_better, unit, what):
    r = _rank(rows, transports, s, metric, higher_better)
    if not r:
        return f"- **{what}**: not measured in this run."
    t, f, tied = r
    figure = f"{fmt(f['value'])} {unit} [{fmt(f['low'])}, {fmt(f['high'])}]"
    caveat = "" if f["stable"] else " (this figure is not stable: treat the ranking as provisional)"
    if tied:
        others = ", ".join(f"`{x}` ({fmt(find(rows, x, s, metric)['value'])})" for x in tied)
        return (f"- **{what}**: the data cannot decide between `{t}` ({figure}) and {others}: "
                f"their 95% intervals overlap{caveat}.")
    return f"- **{what}**: `{t}`, {figure}, clear of the runner-up's interval{caveat}."


def verdict(rows, transports, sizes, info):
    """REPORT.md's opening: which mechanism for which use, from this run."""
    small, big = sizes[0], sizes[-1]
    lines = [_say(rows, transports, small, "rtt_p50", False, "µs",
                  f"Small messages ({human_size(small)} round trip, median)"),
             _say(rows, transports, small, "rtt_p99", False, "µs",
                  f"Small messages, tail ({human_size(small)} round trip, p99)"),
             _say(rows, transports, big, "stream_throughput", True, "MB/s",
                  f"Bulk transfer ({human_size(big)} messages, one way)"),
             _say(rows, transports, "", "connect_rate", True, "sessions/s",
                  "Many short sessions (open, fork, one exchange, close)")]
    cpu = []
    for t in transports:
        c, sv = find(rows, t, small, "client_cpu_per_msg"), find(rows, t, small, "server_cpu_per_msg")
        if c and sv:
            cpu.append((c["value"] + sv["value"], t))
    if cpu:
        cpu.sort()
        text = ", ".join(f"`{t}` {fmt(v)} µs" for v, t in cpu[:3])
        lines.append(f"- **CPU budget** (client + server CPU per {human_size(small)} round trip, closed loop): "
                     f"{text}. A closed loop at full speed never shows what a spinning transport burns while it "
                     "waits: a spinning variant" + spinning_here(transports, info) +
                     " polls for up to 8192 pauses before it sleeps, so at a modest message rate it costs up to "
                     "a core per side between messages, where the others sleep.")
    return lines


def consistency(rows, transports, sizes):
    """Figures that contradict their neighbours, said rather than hidden."""
    notes = []
    for t in transports:
        for a, b in zip(sizes, sizes[1:]):
            fa, fb = find(rows, t, a, "rtt_p50"), find(rows, t, b, "rtt_p50")
            if fa and fb and fb["high"] < fa["low"]:
                notes.append(f"`{t}`: a {human_size(b)} round trip ({fmt(fb['value'])} µs) was faster than a "
                             f"{human_size(a)} one ({fmt(fa['value'])} µs), beyond both intervals. A larger "
                             "message cannot cost less work; the two sizes met the machine in different states "
                             "(CPU placement, cache, frequency), so rank neither on this run.")
            sa, sb = find(rows, t, a, "stream_throughput"), find(rows, t, b, "stream_throughput")
            if sa and sb and sb["high"] < sa["low"] / 2:
                notes.append(f"`{t}`: one-way throughput falls from {fmt(sa['value'])} MB/s at {human_size(a)} "
                             f"to {fmt(sb['value'])} MB/s at {human_size(b)}, a cliff of more than half. Larger "
                             "messages usually stream at least as fast; look for a buffer or ring that a message "
                             "of this size no longer fits (pipe and socket buffers, the shared-memory ring, the queue's "
                             "message size limit) before trusting either figure.")
        for s in sizes:
            r = find(rows, t, s, "rtt_ratio")
            if r and r["high"] < 1:
                notes.append(f"`{t}` {human_size(s)}: ipclab's round trip was faster than the raw baseline "
                             f"(ratio {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]). ipclab does not beat "
                             "the mechanism; its path differs from the plain one (e.g. a larger pipe buffer or "
                             "fewer system calls per message than the baseline's read/write loop).")
    return notes
