"""The server designs side by side (`scripts/compare --models`): UNP vol. 1
ch. 30's comparison (its Figure 30.1 tabulates server CPU per client for each
design), measured here on every transport each design applies to.

ipc-bench's Sessions/<transport>/<model>/<clients> benchmarks drive each
design with 1 and 16 concurrent clients (each client: sessions of a few
64-byte exchanges, one after another). Every figure is the median of the
repetitions, run in random order with the others, with its 95% interval
(stats.py): sessions per second, p99 of opening a session, and the server's
CPU per session over all its processes and threads.
"""

import csv
import os
import shutil
import subprocess
import sys

import benchjson
import stats

MODELS = ["fork", "iterative", "prefork", "thread", "prethread", "epoll"]
CLIENTS = [1, 16]
DEFAULT_REPETITIONS = 5
DEFAULT_MIN_TIME = 0.1
# (metric, unit, the benchmark's counter -> figure, higher is better)
METRICS = [
    ("sessions_per_s", "sessions/s", lambda b: b.get("items_per_second", 0.0), True),
    ("open_p99", "us", lambda b: b.get("p99_ns", 0.0) / 1e3, False),
    ("server_cpu_per_session", "us", lambda b: b.get("server_cpu_ns_per_session", 0.0) / 1e3, False),
]
WHY = {
    "fork": "a child forked per session: the fork (page tables, copy-on-write faults) is most of the server's CPU",
    "iterative": "the server serves each session itself, one at a time: cheapest per session, but a slow "
                 "client holds up all the others",
    "prefork": "--workers 4 children made once, each serving sessions in turn; no fork per session",
    "thread": "a thread made per session in one process: cheaper than a fork, dearer than a pool "
              "(thread creation, its stack, a cross-CPU wake-up of the new thread)",
    "prethread": "4 threads made once, taking turns to accept under a mutex",
    "epoll": "one process, one thread, an epoll loop over every session's non-blocking socket: no process or "
             "thread per session and no hand-over between them, so no wake-up of another task per message",
}


def bench_filter(transports):
    return "^Sessions/(" + "|".join(transports) + ")/"


def figures(reps, transports):
    """[(transport, model, clients, metric, unit, figure)] for every Sessions benchmark in reps."""
    rows = []
    for t in transports:
        for m in MODELS:
            for c in CLIENTS:
                runs = reps.get(f"Sessions/{t}/{m}/{c}")
                if not runs:
                    continue
                flags = benchjson.disturbed_flags(runs)
                for metric, unit, get, _ in METRICS:
                    f = stats.summarise([get(b) for b in runs], flags)
                    if f:
                        rows.append((t, m, c, metric, unit, f))
    return rows


def find(rows, t, m, c, metric):
    return next((r[5] for r in rows if r[:4] == (t, m, c, metric)), None)


def write_csv(rows, out_dir):
    with open(os.path.join(out_dir, "designs.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["transport", "model", "clients", "metric", "value", "unit", "ci_low", "ci_high", "stable"])
        for t, m, c, metric, unit, fig in rows:
            w.writerow([t, m, c, metric, f"{fig['value']:.6g}", unit, f"{fig['low']:.6g}", f"{fig['high']:.6g}",
                        "true" if fig["stable"] else "false"])


def _num(v):
    if v is None:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def cell(f, interval=True):
    if not f:
        return "-"
    s = _num(f["value"])
    if interval:
        s += f" [{_num(f['low'])}, {_num(f['high'])}]"
    return s + ("" if f["stable"] else " ~")


def table_lines(rows, transports, clients, markdown):
    """One table per client count: a row per transport and design."""
    head = ["transport", "model", "sessions/s [95% CI]", "open p99 (us)", "server CPU/session (us)"]
    out = []
    if markdown:
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        out.append(f"{head[0]:<10} {head[1]:<10} {head[2]:<28} {head[3]:<16} {head[4]}")
    for t in transports:
        for m in MODELS:
            rate = find(rows, t, m, clients, "sessions_per_s")
            if not rate:
                continue
            cells = [t, m, cell(rate), cell(find(rows, t, m, clients, "open_p99"), False),
                     cell(find(rows, t, m, clients, "server_cpu_per_session"))]
            if markdown:
                out.append("| " + " | ".join(cells) + " |")
            else:
                out.append(f"{cells[0]:<10} {cells[1]:<10} {cells[2]:<28} {cells[3]:<16} {cells[4]}")
    return out


def plot(rows, transports, out_dir, facts):
    """designs.png: sessions/s per design, a panel per client count, bars per
    transport, error bars from the 95% intervals."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("compare: gnuplot not found; no designs.png", file=sys.stderr)
        return False
    blocks, panels = [], []
    for c in CLIENTS:
        lines = []
        for i, t in enumerate(transports):
            for j, m in enumerate(MODELS):
                f = find(rows, t, m, c, "sessions_per_s")
                if f:
                    x = i * (len(MODELS) + 1) + j
                    lines.append(f'{x} "{t}/{m}" {f["value"]} {f["low"]} {f["high"]} {j}')
        if not lines:
            continue
        blocks.append(f"$c{c} << EOD\n" + "\n".join(lines) + "\nEOD")
        panels.append(f"set title 'sessions per second, {c} concurrent client(s)'\n"
                      f"plot $c{c} using 1:3:(0.8):6 with boxes lc variable fill solid 0.6, "
                      f"$c{c} using 1:3:4:5 with yerrorbars lc rgb '#000000' pt 0, "
                      f"$c{c} using 1:(0):xtic(2) with points pt -1")
    if not panels:
        return False
    cpu = f"{facts.get('cpu', '?')}, {facts.get('cores', '?')} cores".replace("'", "")
    script = "\n".join(blocks) + f"""
set terminal pngcairo size 1400,{450 * len(panels)} noenhanced font ',10'
set output 'designs.png'
set multiplot layout {len(panels)},1 title "Server designs (UNP ch. 30) on {cpu}; error bars: 95% interval of the median"
set ylabel 'sessions/s'
set yrange [0:*]
set boxwidth 0.8
set xtics rotate by -60 font ',8'
set grid ytics
unset key
""" + "\n".join(panels) + "\nunset multiplot\n"
    gp = os.path.join(out_dir, "designs.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run([gnuplot, "designs.gp"], cwd=out_dir, text=True, capture_output=True, timeout=60)
    if r.returncode != 0:
        print(f"compare: gnuplot failed for designs.png: {r.stderr.strip()}", file=sys.stderr)
    return r.returncode == 0


def report_lines(rows, transports, facts, repetitions, min_time, seconds, plotted, placement):
    out = ["# ipclab: server designs side by side", "",
           f"Host: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores, load average at start "
           f"{facts.get('load average at start', '?')}; {placement}.", "",
           "## Method", "",
           "`Sessions/<transport>/<model>/<clients>` (ipc-bench): 1 or 16 client threads, each opening 4 sessions "
           "in a row, each session 4 exchanges of 64 bytes with an ack server, then closing. Per benchmark "
           f"{repetitions} repetitions of at least {min_time} s, all benchmarks' repetitions in random order. Each "
           "figure is the median of the repetitions with its 95% order-statistics interval; `~` marks an unstable "
           "figure (interval wider than ±5% of the median, or more than a third of its repetitions disturbed by "
           "waiting for a CPU): rerun on a quieter machine or with more `--repetitions` before trusting it. "
           "Server CPU per session is the CPU time of the server's process tree (every process and thread, ended "
           "ones included) over the run, divided by the sessions; open p99 is the 99th percentile of the time "
           "from the client's connect to a usable session.", "",
           f"Measured in {seconds:.0f} s.", ""]
    for c in CLIENTS:
        out += [f"## {c} concurrent client{'s' if c > 1 else ''}", ""] + \
               table_lines(rows, transports, c, True) + [""]
    if plotted:
        out += ["![sessions per second by design](designs.png)", ""]
    out += ["## The designs", ""] + [f"- `{m}`: {WHY[m]}." for m in MODELS] + [
        "", "prefork does not apply to fifo and shm (their hello FIFO is read in batches), epoll only to tcp and "
        "unix (a session must be one pollable socket); the others apply everywhere (README: server designs).", ""]
    return out


def run(bench, transports, repetitions, min_time, pin, out_dir, facts, run_bench, benchmark_names, elapsed):
    """Measures the designs, writes bench.json, designs.csv, designs.png and
    REPORT.md into out_dir and prints the tables. Returns the rows."""
    select = [f"--transports={','.join(transports)}"] + ([f"--pin={pin}"] if pin else [])
    filt = f"--benchmark_filter={bench_filter(transports)}"
    names = benchmark_names(bench, select + [filt])
    bench_json = os.path.join(out_dir, "bench.json")
    print(f"ipclab compare --models: {len(names)} benchmarks (designs x transports x 1 and 16 clients), "
          f"{repetitions} repetitions of {min_time} s each in random order, on {facts['cpu']} "
          f"({facts['cores']} cores, load {facts['load average at start']})", flush=True)
    seconds = run_bench(bench, select + [filt, f"--benchmark_min_time={min_time}",
                                         f"--benchmark_repetitions={repetitions}",
                                         "--benchmark_enable_random_interleaving=true",
                                         "--benchmark_display_aggregates_only=true",
                                         "--benchmark_out_format=json", f"--benchmark_out={bench_json}"],
                        names, os.path.join(out_dir, "bench.log"), len(names) * repetitions * (min_time * 2 + 0.1))
    _, reps, errors = benchjson.repetitions(bench_json)
    if errors:
        print("compare: some benchmarks failed:\n  " + "\n  ".join(errors), file=sys.stderr)
    rows = figures(reps, transports)
    if not rows:
        sys.exit("compare: no Sessions results in bench.json")
    write_csv(rows, out_dir)
    plotted = plot(rows, transports, out_dir, facts)
    placement = f"pinned {pin} (client, servers)" if pin else "nothing pinned"
    with open(os.path.join(out_dir, "REPORT.md"), "w") as f:
        f.write("\n".join(report_lines(rows, transports, facts, repetitions, min_time, seconds, plotted,
                                       placement)) + "\n")
    for c in CLIENTS:
        print(f"\n{c} concurrent client(s): sessions/s [95% interval], open p99, server CPU per session "
              "(~: unstable)")
        print("\n".join(table_lines(rows, transports, c, False)))
    print(f"\nwritten: {out_dir} (bench.json, designs.csv, {'designs.png, ' if plotted else ''}REPORT.md) "
          f"in {elapsed():.0f} s")
    return rows
