"""What scripts/compare prints and writes from a run's figures: the terminal
table, REPORT.md's tables, the plots with their error bars, the interference
summary and the run-to-run diff. Figures come from benchjson.figures: each is
the median of its repetitions with a 95% interval and a stable flag."""
import os
import shutil
import subprocess
import sys

import stats

# How each transport's two sides wait for each other: a comparison must say it.
WAITS = {
    "tcp": "sleeps in kernel",
    "unix": "sleeps in kernel",
    "fifo": "sleeps in kernel",
    "posix-mq": "sleeps in kernel",
    "sysv-mq": "sleeps in kernel",
    "shm": "sleeps on futex",
    "shm-spin": "spins, then futex",
}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

METHOD = """\
How the figures are obtained. Every benchmark runs as {reps} repetitions of at
least {min_time} s each, and the repetitions of all benchmarks are run in a
random interleaved order (Google Benchmark's random interleaving), so each
figure samples the whole run instead of one moment of it. A figure is the
median of its repetitions (round-trip percentiles within one repetition come
from every per-message sample). Its interval is a 95% distribution-free
confidence interval for that median from order statistics: with {reps}
repetitions it runs from value number {k} to value number {k_high} in
sorted order
(coverage {coverage:.1%}); it assumes nothing about the shape of the noise.

Where the processes run: {placement}. On this kind of VM a wake-up across
CPUs costs several times one on the same CPU, and the scheduler places each
new process by lottery; with every server in one place, a repetition's
figure no longer depends on where its server happened to land.

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
repetition is *disturbed* when that waiting, beyond {allowance} µs per message
(what a wake-up costs on a quiet machine), exceeds 5% of its wall time: a
round trip is serial, so such waiting adds straight to the measured time.
Benchmarks with more than a third of their repetitions disturbed are run
again once; if they are still disturbed, their figures are flagged.

Stable means: the interval's half-width is within 5% of the figure (within
±0.05 for a ratio) and no more than a third of its repetitions were
disturbed. Unstable figures carry `?` in the tables and `stable=false` in
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


def table(rows, transports, sizes):
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
        cells = [t, WAITS.get(t, "?")]
        for s in sizes:
            p50, p99 = find(rows, t, s, "rtt_p50"), find(rows, t, s, "rtt_p99")
            cells.append("-" if not p50 else
                         f"{cell(p50, marks[(t, s, 'rtt_p50')])} / {cell(p99, interval=False)}")
        for s in sizes:
            cells.append(cell(find(rows, t, s, "stream_throughput"), marks[(t, s, "stream_throughput")]))
        c, sv = value(rows, t, small, "client_cpu_per_msg"), value(rows, t, small, "server_cpu_per_msg")
        cells.append("-" if c is None else fmt(c + (sv or 0)))
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


def markdown_table(rows, transports, sizes):
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
        cells = [f"`{t}`", WAITS.get(t, "?")]
        for metric in ("rtt_p50", "rtt_p99", "stream_throughput"):
            for s in sizes:
                cells.append(md_cell(find(rows, t, s, metric), marks[(t, s, metric)]))
        c, sv = value(rows, t, sizes[0], "client_cpu_per_msg"), value(rows, t, sizes[0], "server_cpu_per_msg")
        cells.append("-" if c is None else f"{fmt(c)} + {fmt(sv)}")
        cells.append(md_cell(find(rows, t, "", "connect_rate"), conn.get(i, "")))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def ratio_table(rows, transports, sizes, markdown=True):
    """ipclab against the same exchange in raw system calls: the paired ratio."""
    head = ["transport"] + [f"{human_size(s)}: ipclab / raw" for s in sizes]
    body = []
    for t in transports:
        cells = [t if not markdown else f"`{t}`"]
        for s in sizes:
            r = find(rows, t, s, "rtt_ratio")
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


def interference_summary(reps):
    """(lines for REPORT.md, disturbed repetitions, all repetitions)."""
    total = disturbed = 0
    worst = []
    for name, runs in sorted(reps.items()):
        flags = [bool(b.get("disturbed")) for b in runs if "disturbed" in b]
        if not flags:
            continue
        total += len(flags)
        disturbed += sum(flags)
        if sum(flags):
            share = stats.median([b.get("interference", 0) for b in runs])
            runq = stats.median([b.get("client_runq_ns_per_msg", 0) + b.get("server_runq_ns_per_msg", 0)
                                 for b in runs])
            worst.append((sum(flags), len(flags), name, share, runq))
    worst.sort(reverse=True)
    lines = [f"{disturbed} of {total} repetitions were disturbed." if total else
             "No interference counters in this file."]
    if worst:
        lines += ["", "| benchmark | disturbed repetitions | median share of time waiting for a CPU | "
                      "median run delay per message, client + server (µs) |", "|---|---|---|---|"]
        lines += [f"| `{n}` | {d} of {a} | {s:.1%} | {r / 1e3:.2f} |" for d, a, n, s, r in worst[:25]]
        if len(worst) > 25:
            lines.append(f"| ({len(worst) - 25} more) | | | |")
    return lines, disturbed, total


def plot(rows, transports, sizes, out_dir, facts):
    """latency.png and throughput.png with gnuplot: log-log, one line per
    transport, error bars from each figure's 95% interval."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("compare: gnuplot not found; no plots (scripts/install-deps installs gnuplot-nox)", file=sys.stderr)
        return []
    cpu = f"{facts['cpu']}, {facts['cores']} cores, Linux {facts['kernel']}".replace("'", "").replace('"', "")
    xtics = ", ".join(f"'{human_size(s)}' {s}" for s in sizes)
    made = []
    for fname, metric, ylabel, title in (
            ("latency.png", "rtt_p50", "round-trip time, median (µs)", "Round-trip latency (p50) against message size"),
            ("throughput.png", "stream_throughput", "one-way throughput (MB/s, 10^6 bytes/s)",
             "One-way stream throughput against message size")):
        blocks, plots = [], []
        for i, t in enumerate(transports):
            pts = [(s, find(rows, t, s, metric)) for s in sizes]
            pts = [(s, f) for s, f in pts if f and f["value"] > 0 and f["low"] > 0]
            if not pts:
                continue
            blocks.append(f"$d{i} << EOD\n" +
                          "\n".join(f"{s} {f['value']} {f['low']} {f['high']}" for s, f in pts) + "\nEOD")
            dash = "dt 2" if "spin" in t else "dt 1"
            plots.append(f"$d{i} using 1:2:3:4 with yerrorlines lw 2 {dash} pt {i + 4} ps 1.3 "
                         f"lc rgb '{COLOURS[i % len(COLOURS)]}' title '{t}'")
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
        # The script stays beside its plot, so a user can restyle and redraw it.
        gp = os.path.join(out_dir, fname.replace(".png", ".gp"))
        with open(gp, "w") as f:
            f.write(script)
        r = subprocess.run([gnuplot, os.path.basename(gp)], cwd=out_dir, text=True, capture_output=True, timeout=60)
        if r.returncode != 0:
            print(f"compare: gnuplot failed for {fname}: {r.stderr.strip()}", file=sys.stderr)
            continue
        made.append(fname)
    return made


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
