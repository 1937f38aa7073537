"""The one reader of bin/ipc-bench's Google Benchmark JSON for every script
(compare, ratios, and the run-to-run diff): benchmark names, every
repetition of each benchmark, and the figures the reports print, each the
median of its repetitions with a 95% interval (scripts/stats.py).

Which benchmark gives which figure:
  Paired/<t>/<bytes>     rtt_p50, rtt_p99, client/server_cpu_per_msg (ipclab's side),
                         baseline_rtt_p50 (the raw side) and rtt_ratio (median of the
                         per-pair ratios ipclab / raw, slices interleaved in one process)
  PairedDuplex/<t>/<bytes>  rtt_ratio_duplex (shm, shm-spin): the same ratio against the raw
                         ping-pong whose reply has a buffer of its own (Paired's replies in place)
  RoundTrip/<t>/<bytes>  the same figures when no Paired run is in the file
  Baseline/<t>/<bytes>   baseline_rtt_p50 likewise
  Stream/, BaselineStream/<t>/<bytes>   stream_throughput, baseline_stream_throughput
  Connect/<t>, Baseline/connect-fork-session   connect_rate, baseline_connect_rate (the raw
                         fork server whose child answers until the client closes, as ipclab's
                         does; files from before it have only the one-shot server, read instead);
                         it listens on TCP: its row goes to the caller's `connect_baseline`,
                         registry.host_stream()
  Baseline/connect-fork  baseline_connect_oneshot_rate (its child reads once, replies, exits)
  PairedConnect/<t>      connect_ratio: whole sessions (connect, a message, its ack, close) to
                         ipclab's fork server and to the raw one above, alternating in one
                         process; the median of the per-pair ratios of session times, ipclab / raw
"""
import json
import re

import stats

_TIME_UNIT_NS = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}

# (metric, unit, [benchmark prefixes, first found wins], how to read one repetition, is a ratio)
SIZE_METRICS = [
    ("rtt_p50", "us", ["Paired", "RoundTrip"], lambda b: b.get("p50_ns", 0) / 1e3, False),
    ("rtt_p99", "us", ["Paired", "RoundTrip"], lambda b: b.get("p99_ns", 0) / 1e3, False),
    ("client_cpu_per_msg", "us", ["Paired", "RoundTrip"], lambda b: b.get("client_cpu_ns_per_msg", 0) / 1e3, False),
    # None where the server's CPU was not measured (ipc-bench --remote): no figure then.
    ("server_cpu_per_msg", "us", ["Paired", "RoundTrip"],
     lambda b: b["server_cpu_ns_per_msg"] / 1e3 if "server_cpu_ns_per_msg" in b else None, False),
    ("baseline_rtt_p50", "us", ["Paired:raw", "Baseline"], None, False),
    ("rtt_ratio", "ratio", ["Paired"], lambda b: b.get("ratio"), True),
    ("rtt_ratio_duplex", "ratio", ["PairedDuplex"], lambda b: b.get("ratio"), True),
    ("stream_throughput", "MB/s", ["Stream"], lambda b: b.get("bytes_per_second", 0) / 1e6, False),
    ("baseline_stream_throughput", "MB/s", ["BaselineStream"], lambda b: b.get("bytes_per_second", 0) / 1e6, False),
]
# Figures that belong to no transport: the memory bandwidth shared memory is held to.
MEMCPY = ("memcpy_throughput", "MB/s")
UNITS = {m[0]: m[1] for m in SIZE_METRICS}
# The figures without a size, each with its unit.
CONNECT_UNITS = {"connect_rate": "sessions/s", "baseline_connect_rate": "sessions/s",
                 "baseline_connect_oneshot_rate": "sessions/s", "connect_ratio": "ratio"}
CONNECT_METRICS = tuple(CONNECT_UNITS)
UNITS.update(CONNECT_UNITS)


# Google Benchmark appends this to every UseRealTime() benchmark's name; the
# names users see, filter and compare on are the plain ones. Handled here only.
_REAL_TIME = "/real_time"


def base_name(name):
    """'RoundTrip/<t>/64/real_time' -> 'RoundTrip/<t>/64'."""
    return name.strip().removesuffix(_REAL_TIME)


def name_filter(names):
    """A Google Benchmark filter (POSIX regex) matching exactly these plain names."""
    return "^(" + "|".join(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", n) for n in names) + ")(" + _REAL_TIME + ")?$"


def run_transports(report):
    """The transports a run measured, in its order, as ipc-bench recorded them
    (context "transports", what --transports selected): a finished file is
    read with its own list, not with today's registry's."""
    return [t for t in report.get("context", {}).get("transports", "").split(",") if t]


def entry_name(b):
    return base_name(b.get("run_name", b["name"]))


def ns(b):
    """Wall time of one iteration, in nanoseconds."""
    return b["real_time"] * _TIME_UNIT_NS[b.get("time_unit", "ns")]


def repetitions(path, placement_reference_ns=None):
    """(report, reps, errors): reps maps each benchmark name to its
    repetitions (plain runs, not aggregates) in the order they ran; errors
    lists 'name: message' once per failed benchmark. Placement probes are
    judged against placement_reference_ns when given (a re-run of a few
    benchmarks, against the run it belongs to), else against this file's
    own median probe."""
    with open(path) as f:
        report = json.load(f)
    reps, errors = {}, []
    for b in report.get("benchmarks", []):
        name = entry_name(b)
        if b.get("error_occurred"):
            msg = f"{name}: {b.get('error_message')}"
            if msg not in errors:
                errors.append(msg)
        elif b.get("run_type", "iteration") == "iteration":
            reps.setdefault(name, []).append(b)
    mark_placement_reference(reps, placement_reference_ns)
    return report, reps, errors


# A repetition is disturbed when the share of its time that client and
# server spent waiting for a CPU (ipc-bench's runq_share: no allowance)
# exceeds that of its benchmark's median repetition by more than this.
# Relative, because how much a benchmark queues by itself depends on the
# placement: with client and server on one CPU every wake-up waits for the
# waker to block (a 64 B round trip's share is 0.35-0.48 on a quiet
# machine), on two CPUs hardly at all. Against the median, the typical
# repetition, as for placement: a stream's share moves by itself from one
# repetition to the next (tcp 1 MiB 0.18-0.58 on a quiet machine), so
# against the quietest one 23% of the repetitions outside a 25 s busy loop
# on the server's CPU were flagged, against the median 7%, while 92% of
# those it hit were (95% against the quietest). Files without runq_share
# (before it existed) are judged by `interference` against the quietest
# repetition, as they were then.
DISTURBED_EXCESS = 0.05


# A repetition is also disturbed when, just before it, one cache line's round
# trip between the client's CPU and its server's (ipc-bench's xcpu_rtt_ns,
# bench/placement.hpp; measured only where the two are pinned to different
# CPUs: a spinning transport's run) was more than this factor away from the
# run's median probe, either way: the hypervisor had the vCPUs placed
# otherwise than for most of the run, and a spinning transport's figures
# follow the placement. Why 1.5 and the median: 300 probes over 6 s on the
# 2-vCPU EPYC hosts fell into three levels, 54-70, 92-131 and 349-441 ns
# (2x and 3.5x apart, each lasting from a tenth of a second to at least 15 s);
# within a level the probe stays within 1.25x of its middle. The run's
# median is its typical placement, the one the figures' medians describe; a
# best-of-run reference would flag every repetition of the common level
# after one brief visit to the fastest.
PLACEMENT_SLACK = 1.5


# Fewer typical repetitions than this and a figure keeps all of them (its
# interval then shows the spread): 6 is the fewest whose median has a 95%
# interval (x(1), x(6), coverage 96.9%; stats.median_ci).
MIN_TYPICAL_REPETITIONS = 6


def placement_reference(reps):
    """The run's median placement probe (ns), or None when nothing was probed."""
    probes = [b["xcpu_rtt_ns"] for runs in reps.values() for b in runs if b.get("xcpu_rtt_ns")]
    return stats.median(probes) if probes else None


def mark_placement_reference(reps, reference=None):
    """Stores the run's median placement probe (or the reference given) in
    every repetition that has a probe (as 'placement_reference_ns'), so
    placement_flags judge a benchmark's repetitions against the whole run,
    not only against each other."""
    if reference is None:
        reference = placement_reference(reps)
    if reference is None:
        return
    for runs in reps.values():
        for b in runs:
            if b.get("xcpu_rtt_ns"):
                b["placement_reference_ns"] = reference


def placement_flags(runs):
    """One flag per repetition: measured in another placement than the run's
    typical one (see PLACEMENT_SLACK)."""
    def other(b):
        x, ref = b.get("xcpu_rtt_ns"), b.get("placement_reference_ns")
        return bool(x and ref and (x > PLACEMENT_SLACK * ref or x * PLACEMENT_SLACK < ref))
    return [other(b) for b in runs]


def cut_short(name, runs, min_iterations):
    """Whether a Paired(Duplex), Stream or BaselineStream benchmark's first repetition
    settled on fewer than min_iterations iterations: a descheduled first try
    stops Google Benchmark's search, and every repetition of that process
    runs too few."""
    return bool(runs) and name.split("/")[0] in ("Paired", "PairedDuplex", "Stream", "BaselineStream") and \
        runs[0].get("iterations", min_iterations) < min_iterations


def pool_rerun(first, fresh, names, min_iterations):
    """{name: repetitions} of benchmarks run again: the re-run's repetitions
    join the first pass's undisturbed ones (judged within the first pass), so
    a figure spans both stretches of the run. A re-run packs all its
    repetitions into a few seconds at the run's end: kept alone, its interval
    showed only those seconds, and a figure that moved by 13% between two
    runs (acc15: Stream/tcp/4096, re-run in both) was stable in both. Only
    the re-run's when the first pass was cut short (cut_short). first and
    fresh as repetitions() returns them; names: the benchmarks that were run
    again."""
    pooled = {}
    for n in sorted(set(names) & set(fresh)):
        runs = first.get(n, [])
        keep = [] if cut_short(n, runs, min_iterations) else \
            [b for b, d in zip(runs, disturbed_flags(runs)) if not d]
        pooled[n] = keep + fresh[n]
    return pooled


def waiting_share(b):
    """The share of a repetition's time its client and server spent runnable
    but waiting for a CPU: runq_share, or in older files `interference`
    (the same beyond a per-message allowance); None when neither is there."""
    return b.get("runq_share", b.get("interference"))


def delay_flags(runs):
    """One flag per repetition from run delay alone (see DISTURBED_EXCESS);
    ipc-bench's own `disturbed` counter when the file has neither
    `runq_share` nor `interference`."""
    if not runs:
        return []
    shares = [b.get("runq_share") for b in runs]
    if all(v is not None for v in shares):
        typical = stats.median(shares)
        return [v - typical > DISTURBED_EXCESS for v in shares]
    shares = [b.get("interference") for b in runs]
    if any(v is None for v in shares):
        return [bool(b.get("disturbed")) for b in runs]
    floor = min(shares)
    return [v - floor > DISTURBED_EXCESS for v in shares]


def disturbed_flags(runs):
    """One flag per repetition: run delay (delay_flags) or placement (placement_flags)."""
    return [d or p for d, p in zip(delay_flags(runs), placement_flags(runs))]


def _raw_p50(b):
    return (b["raw_p50_ns"] if "raw_p50_ns" in b else b.get("p50_ns", 0)) / 1e3


def metric_values(reps, metric, transport, size):
    """(values per repetition, disturbed flags, benchmark name) of one figure,
    or None when the file has no benchmark for it."""
    if metric == "connect_ratio":
        name = f"PairedConnect/{transport}"
        runs = reps.get(name)
        if not runs or any(b.get("ratio") is None for b in runs):
            return None
        return [b["ratio"] for b in runs], disturbed_flags(runs), name
    if metric in CONNECT_METRICS:
        name = {"connect_rate": f"Connect/{transport}", "baseline_connect_rate": "Baseline/connect-fork-session",
                "baseline_connect_oneshot_rate": "Baseline/connect-fork"}[metric]
        if metric == "baseline_connect_rate" and name not in reps:
            name = "Baseline/connect-fork"
        runs = reps.get(name)
        if not runs:
            return None
        return [1e9 / ns(b) for b in runs], disturbed_flags(runs), name
    spec = next(m for m in SIZE_METRICS if m[0] == metric)
    for prefix in spec[2]:
        raw = prefix.endswith(":raw")
        name = f"{prefix.removesuffix(':raw')}/{transport}/{size}"
        runs = reps.get(name)
        if runs:
            get = _raw_p50 if raw else spec[3]
            values = [get(b) for b in runs]
            if any(v is None for v in values):
                return None
            return values, disturbed_flags(runs), name
    return None


def figure(reps, metric, transport, size=""):
    """The figure (stats.summarise's dict plus 'bench' and 'values'), or None."""
    got = metric_values(reps, metric, transport, size)
    if not got:
        return None
    values, disturbed, name = got
    # From the repetitions of the run's typical placement when enough of them
    # are left (see PLACEMENT_SLACK): the others measured another machine.
    # They still count as disturbed, so a figure with many of them is
    # unstable whatever its interval.
    other = placement_flags(reps[name])
    if any(other) and len(values) - sum(other) >= MIN_TYPICAL_REPETITIONS:
        values = [v for v, o in zip(values, other) if not o]
    f = stats.summarise(values, disturbed, ratio=UNITS[metric] == "ratio")
    if f:
        f.update(bench=name, values=values)
    return f


# From this message size up a message's copies are a large part of its time,
# so its absolute figures follow the host's copy speed (stats.with_host_term).
# Below, system calls and wake-ups dominate; the memcpy probe there times a
# few nanoseconds and would only add its own timer noise.
HOST_TERM_FROM = 65536


def host_probe(memcpy_figure):
    """The host-speed probe a memcpy row carries: its copy speed per CPU
    second, or (files without cpu_time) its wall-clock throughput."""
    return memcpy_figure.get("cpu_probe") or memcpy_figure


def host_terms(rows):
    """Applies stats.with_host_term to every absolute figure (not a ratio) of
    HOST_TERM_FROM bytes and up that has a memcpy probe at its size. Returns
    how many it marked unstable."""
    probes = {s: host_probe(f) for t, s, m, _, f in rows if t == "memcpy"}
    marked = 0
    for t, s, metric, unit, f in rows:
        if t == "memcpy" or unit == "ratio" or s == "" or s < HOST_TERM_FROM or s not in probes:
            continue
        stats.with_host_term(f, probes[s])
        marked += bool(f.get("host_unstable"))
    return marked


def host_marked(rows):
    """How many figures host_terms marked unstable (the probe, not their own interval)."""
    return sum(1 for *_, f in rows if f.get("host_unstable"))


def figures(reps, transports, sizes, connect_baseline=None):
    """Every figure of a run: a list of (transport, size or '', metric, unit,
    figure); the memcpy reference comes as transport 'memcpy', the raw fork
    server's connect rate as a row of transport `connect_baseline` (the one
    it is the baseline of; None: no such row)."""
    rows = []
    for s in sizes:
        runs = reps.get(f"Baseline/memcpy/{s}")
        if runs:
            f = stats.summarise([b.get("bytes_per_second", 0) / 1e6 for b in runs])
            if f:
                f.update(bench=f"Baseline/memcpy/{s}", values=[b.get("bytes_per_second", 0) / 1e6 for b in runs])
                # The host term's probe: the copy speed per CPU second, which a
                # process sharing the probe's CPU does not change (wall-clock
                # throughput halves beside a busy loop; the copy does not slow).
                per_cpu = [s / (b["cpu_time"] * _TIME_UNIT_NS[b.get("time_unit", "ns")]) * 1e3  # MB/s
                           for b in runs if b.get("cpu_time")]
                f["cpu_probe"] = stats.summarise(per_cpu) if len(per_cpu) == len(runs) else None
                rows.append(("memcpy", s, MEMCPY[0], MEMCPY[1], f))
    for t in transports:
        for s in sizes:
            for metric, unit, *_ in SIZE_METRICS:
                f = figure(reps, metric, t, s)
                if f:
                    rows.append((t, s, metric, unit, f))
        for metric in CONNECT_METRICS:
            if metric not in ("connect_rate", "connect_ratio") and t != connect_baseline:
                continue
            if metric == "baseline_connect_oneshot_rate" and "Baseline/connect-fork-session" not in reps:
                continue  # an older file: its one-shot figure is already the baseline_connect_rate
            f = figure(reps, metric, t)
            if f:
                rows.append((t, "", metric, UNITS[metric], f))
    host_terms(rows)
    return rows
