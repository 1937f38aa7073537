"""Behaviour under load (`scripts/compare --load`): how each transport scales
with concurrent clients and what latency a request sees when requests come on
their own schedule.

ipc-bench's Concurrent/<transport>/<clients> runs 1 to 64 closed-loop
sessions at once against the forking echo server; OpenLoop/<transport>/<pct>
sends one session's 64-byte requests on a fixed schedule at pct% of the
transport's one-session closed-loop rate and counts each latency from the
request's scheduled time (bench/load_bench.hpp). Every figure is the median of
the repetitions, run in random order with the others, with its 95% interval
(stats.py). Writes load.csv-style rows into summary.csv, load.png (p99
against offered load), scaling.png (throughput against clients),
cpu-at-rate.png (CPU per message against offered load) and REPORT.md.
"""

import csv
import os
import shutil
import subprocess
import sys

import benchjson
import stats
from designs import _num, cell

CLIENTS = [1, 2, 4, 8, 16, 64]
PERCENTS = [10, 25, 50, 75, 90, 100, 110, 125]
MESSAGE_BYTES = 64
DEFAULT_REPETITIONS = 5
DEFAULT_SECONDS = 0.2
QUICK_SECONDS = 0.03
# The latency bound of "sustainable": p99 at most this, and the schedule kept.
P99_BOUND_US = 1000
KEPT_SHARE = 0.95  # achieved at least this share of the offered rate

# (metric, unit, counter -> figure) of each kind; the summary.csv metric is
# "<kind>_<x>_<metric>", e.g. clients_16_msgs_per_s, offered_50pct_rtt_p99.
CONCURRENT = [
    ("msgs_per_s", "msg/s", lambda b: b.get("msgs_per_s")),
    ("rtt_p50", "us", lambda b: b.get("p50_ns", 0) / 1e3),
    ("rtt_p99", "us", lambda b: b.get("p99_ns", 0) / 1e3),
    ("fairness", "jain", lambda b: b.get("fairness")),
    ("client_cpu_per_msg", "us", lambda b: b.get("client_cpu_ns_per_msg", 0) / 1e3),
    ("server_cpu_per_msg", "us", lambda b: b.get("server_cpu_ns_per_msg", 0) / 1e3),
    ("client_sleeps_per_msg", "count", lambda b: b.get("client_sleeps_per_msg")),
    ("server_sleeps_per_msg", "count", lambda b: b.get("server_sleeps_per_msg")),
]
OPEN_LOOP = [
    ("offered_per_s", "msg/s", lambda b: b.get("offered_per_s")),
    ("msgs_per_s", "msg/s", lambda b: b.get("msgs_per_s")),
    ("rtt_p50", "us", lambda b: b.get("p50_ns", 0) / 1e3),
    ("rtt_p99", "us", lambda b: b.get("p99_ns", 0) / 1e3),
    ("behind_share", "share", lambda b: b.get("behind_share")),
    ("client_wake_late_p50", "us", lambda b: b.get("wake_late_p50_ns", 0) / 1e3),
    ("client_pacing_per_msg", "us", lambda b: b.get("client_pacing_ns_per_msg", 0) / 1e3),
    ("client_cpu_per_msg", "us", lambda b: b.get("client_cpu_ns_per_msg", 0) / 1e3),
    ("server_cpu_per_msg", "us", lambda b: b.get("server_cpu_ns_per_msg", 0) / 1e3),
]


def bench_filter(transports):
    return "^(Concurrent|OpenLoop)/(" + "|".join(transports) + ")/"


def figures(reps, transports):
    """{(transport, kind, x, metric): figure}, kind 'clients' or 'offered'."""
    out = {}
    for t in transports:
        for kind, prefix, xs, metrics in (("clients", "Concurrent", CLIENTS, CONCURRENT),
                                          ("offered", "OpenLoop", PERCENTS, OPEN_LOOP)):
            for x in xs:
                runs = reps.get(f"{prefix}/{t}/{x}")
                if not runs:
                    continue
                for metric, unit, get in metrics:
                    f = stats.summarise([get(b) for b in runs])
                    if f:
                        f["unit"] = unit
                        out[(t, kind, x, metric)] = f
    return out


def sustainable(figs, t):
    """(rate, first_failing_rate, figure) for the open loop of t: the highest
    offered rate below the first point whose p99 passes P99_BOUND_US or whose
    achieved rate falls below KEPT_SHARE of the offered one. rate is None
    when the lowest point already fails; first_failing_rate None when none
    does (the bound lies beyond the sweep)."""
    last_ok = None
    for pct in PERCENTS:
        p99 = figs.get((t, "offered", pct, "rtt_p99"))
        offered = figs.get((t, "offered", pct, "offered_per_s"))
        achieved = figs.get((t, "offered", pct, "msgs_per_s"))
        if not (p99 and offered and achieved):
            continue
        ok = p99["value"] <= P99_BOUND_US and achieved["value"] >= KEPT_SHARE * offered["value"]
        if not ok:
            return (last_ok["value"] if last_ok else None), offered["value"], last_ok
        last_ok = offered
    return (last_ok["value"] if last_ok else None), None, last_ok


def csv_rows(figs, transports):
    """summary.csv rows (transport, size_bytes, metric, unit, figure)."""
    rows = []
    for (t, kind, x, metric), f in figs.items():
        name = f"clients_{x}_{metric}" if kind == "clients" else f"offered_{x}pct_{metric}"
        rows.append((t, MESSAGE_BYTES, name, f["unit"], f))
    for t in transports:
        rate, _, f = sustainable(figs, t)
        if rate is not None:
            rows.append((t, MESSAGE_BYTES, "sustainable_rate_p99_1ms", "msg/s", f))
    return rows


def write_csv(rows, out_dir):
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["transport", "size_bytes", "metric", "value", "unit", "ci_low", "ci_high", "stable"])
        for t, s, metric, unit, fig in rows:
            w.writerow([t, s, metric, f"{fig['value']:.6g}", unit, f"{fig['low']:.6g}", f"{fig['high']:.6g}",
                        "true" if fig["stable"] else "false"])


def cores_busy(figs, t, kind, x):
    """CPUs kept busy by both sides: CPU per message times messages per second."""
    rate = figs.get((t, kind, x, "msgs_per_s"))
    c = figs.get((t, kind, x, "client_cpu_per_msg"))
    s = figs.get((t, kind, x, "server_cpu_per_msg"))
    if not (rate and c and s):
        return None
    return (c["value"] + s["value"]) * rate["value"] / 1e6


def _table(head, rows, markdown):
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
               ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    return [fmt(head)] + [fmt(r) for r in rows]


def scaling_lines(figs, transports, markdown):
    """msg/s [95% interval] per transport (rows) and client count (columns)."""
    head = ["transport"] + [f"{c} client{'s' if c > 1 else ''}" for c in CLIENTS]
    rows = [[t] + [cell(figs.get((t, "clients", c, "msgs_per_s"))) for c in CLIENTS] for t in transports]
    return _table(head, rows, markdown)


def _rows_or_failures(figs, transports, kind, xs, prefix, errors, width, row):
    """Table rows of each transport's points: row(g, t, x) where the point has
    figures, else its benchmark's failure (if it failed) padded to width."""
    rows = []
    for t in transports:
        for x in xs:
            g = lambda m: figs.get((t, kind, x, m))
            if g("msgs_per_s"):
                rows.append(row(g, t, x))
            elif f"{prefix}/{t}/{x}" in errors:
                rows.append([t, str(x), "failed: " + errors[f"{prefix}/{t}/{x}"]] + [""] * (width - 3))
    return rows


def _busy(figs, t, kind, x):
    busy = cores_busy(figs, t, kind, x)
    return f"{busy:.2f}" if busy is not None else "-"


def scaling_detail_lines(figs, transports, errors, markdown):
    """Per transport and client count: p50, p99, fairness, CPU per message, CPUs busy, and failures."""
    head = ["transport", "clients", "msg/s", "p50 (us)", "p99 (us)", "fairness", "client CPU/msg (us)",
            "server CPU/msg (us)", "CPUs busy", "sleeps/msg (client, server)"]

    def row(g, t, c):
        return [t, str(c), cell(g("msgs_per_s"), False), cell(g("rtt_p50"), False), cell(g("rtt_p99"), False),
                cell(g("fairness"), False), cell(g("client_cpu_per_msg"), False),
                cell(g("server_cpu_per_msg"), False), _busy(figs, t, "clients", c), sleeps(g)]
    return _table(head, _rows_or_failures(figs, transports, "clients", CLIENTS, "Concurrent", errors, len(head), row),
                  markdown)


def sleeps(g):
    c, s = g("client_sleeps_per_msg"), g("server_sleeps_per_msg")
    return f"{c['value']:.2f}, {s['value']:.2f}" if c and s else "-"


def open_loop_lines(figs, transports, errors, markdown):
    head = ["transport", "% of closed loop", "offered/s", "achieved/s", "p50 (us)", "p99 (us) [95% CI]",
            "sent late", "client woke late p50 (us)", "client CPU/msg (us)", "server CPU/msg (us)", "CPUs busy"]

    def row(g, t, pct):
        late = g("behind_share")
        return [t, str(pct), cell(g("offered_per_s"), False), cell(g("msgs_per_s"), False),
                cell(g("rtt_p50"), False), cell(g("rtt_p99")), f"{late['value']:.0%}" if late else "-",
                cell(g("client_wake_late_p50"), False), cell(g("client_cpu_per_msg"), False),
                cell(g("server_cpu_per_msg"), False), _busy(figs, t, "offered", pct)]
    return _table(head, _rows_or_failures(figs, transports, "offered", PERCENTS, "OpenLoop", errors, len(head), row),
                  markdown)


def sustainable_lines(figs, transports, markdown):
    head = ["transport", f"sustainable rate (p99 <= {P99_BOUND_US} us)", "first rate that failed",
            "closed-loop rate (100%)"]
    rows = []
    for t in transports:
        rate, failed, _ = sustainable(figs, t)
        full = figs.get((t, "offered", 100, "offered_per_s"))
        low = figs.get((t, "offered", PERCENTS[0], "offered_per_s"))
        if rate is None and failed is None:
            continue
        said = (f"{_num(rate)}/s" if rate is not None else
                f"below {_num(low['value']) if low else '?'}/s (the lowest point failed)")
        rows.append([t, said, f"{_num(failed)}/s" if failed else f"none up to {PERCENTS[-1]}% of closed loop",
                     f"{_num(full['value'])}/s" if full else "-"])
    return _table(head, rows, markdown)


def _gnuplot(out_dir, name, script):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print(f"compare: gnuplot not found; no {name}", file=sys.stderr)
        return False
    gp = os.path.join(out_dir, name.replace(".png", ".gp"))
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run([gnuplot, os.path.basename(gp)], cwd=out_dir, text=True, capture_output=True, timeout=60)
    if r.returncode != 0:
        print(f"compare: gnuplot failed for {name}: {r.stderr.strip()}", file=sys.stderr)
    return r.returncode == 0


def _series(figs, transports, kind, xs, x_metric, y_metric, scale=1.0):
    """gnuplot data blocks, one per transport with points: x y low high."""
    blocks, names = [], []
    for i, t in enumerate(transports):
        lines = []
        for x in xs:
            y = figs.get((t, kind, x, y_metric))
            xv = x if x_metric is None else (figs.get((t, kind, x, x_metric)) or {}).get("value")
            if y and xv:
                lines.append(f"{xv} {y['value'] * scale} {y['low'] * scale} {y['high'] * scale}")
        if lines:
            blocks.append(f"$d{i} << EOD\n" + "\n".join(lines) + "\nEOD")
            names.append((i, t))
    return blocks, names


def _plot_lines(names, style="yerrorlines"):
    return ", ".join(f"$d{i} using 1:2:3:4 with {style} title '{t}'" for i, t in names)


def plot(figs, transports, out_dir, facts):
    """load.png, scaling.png, cpu-at-rate.png; returns the names written."""
    cpu = f"{facts.get('cpu', '?')}, {facts.get('cores', '?')} cores".replace("'", "")
    head = f"set terminal pngcairo size 1000,650 noenhanced font ',10'\nset grid\nset key outside right\n"
    written = []
    blocks, names = _series(figs, transports, "offered", PERCENTS, "offered_per_s", "rtt_p99")
    if names and _gnuplot(out_dir, "load.png", "\n".join(blocks) + "\n" + head + f"""set output 'load.png'
set title "p99 round trip against offered load (open loop, 64 B, one session) on {cpu}; error bars: 95% interval"
set xlabel 'offered requests per second (log)'
set ylabel 'p99 latency from the scheduled send time, us (log)'
set logscale xy
set arrow from graph 0, first {P99_BOUND_US} to graph 1, first {P99_BOUND_US} nohead dt 2
plot {_plot_lines(names)}
"""):
        written.append("load.png")
    blocks, names = _series(figs, transports, "clients", CLIENTS, None, "msgs_per_s")
    if names and _gnuplot(out_dir, "scaling.png", "\n".join(blocks) + "\n" + head + f"""set output 'scaling.png'
set title "Round trips per second against concurrent clients (closed loop, 64 B, fork per session) on {cpu}"
set xlabel 'concurrent clients (log)'
set ylabel 'round trips per second, all clients'
set logscale x 2
set yrange [0:*]
plot {_plot_lines(names)}
"""):
        written.append("scaling.png")
    panels = []
    all_blocks = []
    for side, metric in (("client", "client_cpu_per_msg"), ("server", "server_cpu_per_msg")):
        blocks, names = _series(figs, transports, "offered", PERCENTS, "offered_per_s", metric)
        blocks = [b.replace("$d", f"${side}") for b in blocks]
        if names:
            all_blocks += blocks
            panels.append(f"set title '{side} CPU per message'\nplot " +
                          ", ".join(f"${side}{i} using 1:2:3:4 with yerrorlines title '{t}'" for i, t in names))
    if panels and _gnuplot(out_dir, "cpu-at-rate.png", "\n".join(all_blocks) + "\n" +
                           head.replace("1000,650", "1000,900") + f"""set output 'cpu-at-rate.png'
set multiplot layout 2,1 title "CPU per message against offered load (open loop, 64 B) on {cpu}"
set xlabel 'offered requests per second (log)'
set ylabel 'CPU us per message (log)'
set logscale xy
""" + "\n".join(panels) + "\nunset multiplot\n"):
        written.append("cpu-at-rate.png")
    return written


METHOD = (
    "`Concurrent/<transport>/<clients>` (ipc-bench): 1 to 64 sessions at once against the forking echo server "
    "(a child per session), each a closed loop of 64-byte round trips (send, wait for the echo, send again) for "
    "{seconds} s; throughput is every session's round trips over the time from the moment all sessions are open "
    "to the moment all had their last reply, so the forks of opening and closing are not in it. "
    "`OpenLoop/<transport>/<pct>`: one session whose requests are due on a fixed schedule at pct% of the "
    "transport's one-session closed-loop rate (measured once per run, the 100% row); a request due while the "
    "previous reply is still awaited goes out as soon as it arrives and counts as sent late, and every latency "
    "is measured from the request's scheduled time, so a stall counts for every request due during it "
    "(no coordinated omission). The client sleeps to a slot more than 20 us away and spins to a nearer one (a "
    "sleep wakes several us late on a VM); how late it woke is shown (it is in every latency), and its spinning "
    "is left out of its CPU per message (bench.json: client_pacing_ns_per_msg). Percentiles come from a log-linear histogram (within 0.4%). CPU per message is "
    "the CPU time of this process (all client threads) and of the server's whole process tree over the same "
    "window, divided by the round trips; CPUs busy is both together times the rate. "
    "Each figure is the median of {reps} repetitions run in random order with the other benchmarks, with its "
    "95% order-statistics interval; `~` marks an unstable figure (interval wider than ±5% of the median). "
    "Under load a process waiting for a CPU is the load itself, so run delay is not counted as interference "
    "here; steal time is recorded per message in bench.json. {placement}.")


def report_lines(figs, transports, errors, facts, repetitions, seconds, elapsed, plotted, placement, quick):
    out = ["# ipclab under load", ""]
    if quick:
        out += ["> **Smoke test, not a measurement** (`--quick`): runs of a few milliseconds.", ""]
    out += [f"Host: {facts.get('host', '?')}: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores, "
            f"Linux {facts.get('kernel', '?')}; load average at start {facts.get('load average at start', '?')}; "
            f"measured in {elapsed:.0f} s.", "",
            "## Method", "", METHOD.format(seconds=seconds, reps=repetitions, placement=placement), "",
            f"## Sustainable rate at p99 <= {P99_BOUND_US} us", "",
            f"The highest offered rate of the open-loop sweep whose p99 stayed within {P99_BOUND_US} us and whose "
            f"achieved rate kept within {KEPT_SHARE:.0%} of the offered one, every lower rate passing too; the "
            "true limit lies between it and the first rate that failed.", ""]
    out += sustainable_lines(figs, transports, True) + [""]
    out += ["## Scaling with concurrent clients (round trips per second [95% interval])", ""]
    out += scaling_lines(figs, transports, True) + [""]
    out += ["### Latency, fairness and CPU per client count", "",
            "CPUs busy near the machine's core count means the run was CPU-bound; a transport that fails at "
            "some client count says why (e.g. the per-user RLIMIT_MSGQUEUE bounds how many POSIX queues - two "
            "per session - one user may hold).", ""]
    out += scaling_detail_lines(figs, transports, errors, True) + [""]
    out += ["## Latency against offered load (open loop)", ""]
    out += open_loop_lines(figs, transports, errors, True) + [""]
    other = [f"`{n}`: {e}" for n, e in errors.items()]
    if other:
        out += ["## Failed benchmarks", ""] + [f"- {x}" for x in other] + [""]
    if plotted:
        out += ["## Plots", "", "Error bars: the 95% interval of each median.", ""]
        out += [f"![{p}]({p})" for p in plotted] + [""]
    return out


def run(bench, transports, repetitions, seconds, pin, out_dir, facts, run_bench, benchmark_names, elapsed,
        quick=False):
    """Measures, writes bench.json, summary.csv, the plots and REPORT.md into
    out_dir, and prints the tables. Returns the figures."""
    select = [f"--transports={','.join(transports)}", f"--load-seconds={seconds}"] + \
        ([f"--pin={pin}"] if pin else [])
    filt = f"--benchmark_filter={bench_filter(transports)}"
    names = benchmark_names(bench, select + [filt])
    bench_json = os.path.join(out_dir, "bench.json")
    print(f"ipclab compare --load: {len(names)} benchmarks (transports x {len(CLIENTS)} client counts and "
          f"{len(PERCENTS)} offered rates), {repetitions} repetitions of {seconds} s each in random order, on "
          f"{facts['cpu']} ({facts['cores']} cores, load {facts['load average at start']})", flush=True)
    run_bench(bench, select + [filt, f"--benchmark_repetitions={repetitions}",
                               "--benchmark_enable_random_interleaving=true",
                               "--benchmark_display_aggregates_only=true",
                               "--benchmark_out_format=json", f"--benchmark_out={bench_json}"],
              names, os.path.join(out_dir, "bench.log"), len(names) * repetitions * (seconds * 1.5 + 0.05))
    _, reps, error_lines = benchjson.repetitions(bench_json)
    errors = {}
    for line in error_lines:
        name, _, why = line.partition(": ")
        errors.setdefault(name, why)
    figs = figures(reps, transports)
    if not figs:
        sys.exit("compare: no Concurrent or OpenLoop results in bench.json:\n  " + "\n  ".join(error_lines))
    write_csv(csv_rows(figs, transports), out_dir)
    plotted = plot(figs, transports, out_dir, facts)
    placement = (f"Pinned {pin} (client, servers)" if pin else
                 "Nothing pinned: under load the sessions need both CPUs, and the scheduler spreads them")
    with open(os.path.join(out_dir, "REPORT.md"), "w") as f:
        f.write("\n".join(report_lines(figs, transports, errors, facts, repetitions, seconds, elapsed(), plotted,
                                       placement, quick)) + "\n")
    print("\nround trips per second by concurrent clients [95% interval] (~: unstable):")
    print("\n".join(scaling_lines(figs, transports, False)))
    print(f"\nsustainable rate at p99 <= {P99_BOUND_US} us (open loop, one session):")
    print("\n".join(sustainable_lines(figs, transports, False)))
    if errors:
        print("\nfailed: " + "; ".join(f"{n}: {e}" for n, e in errors.items()))
    print(f"\nwritten: {out_dir} (bench.json, summary.csv, {', '.join(plotted + ['REPORT.md'])}) in {elapsed():.0f} s")
    return figs
