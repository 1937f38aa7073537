"""Reading bin/ipc-bench's Google Benchmark JSON: one place for what
scripts/compare and scripts/ratios both need (names, the entry reported per
benchmark, wall time per iteration)."""
import json

_TIME_UNIT_NS = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def base_name(name):
    """'RoundTrip/tcp/64/real_time' -> 'RoundTrip/tcp/64'."""
    return name.strip().removesuffix("/real_time")


def entry_name(b):
    return base_name(b.get("run_name", b["name"]))


def ns(b):
    """Wall time of one iteration, in nanoseconds."""
    return b["real_time"] * _TIME_UNIT_NS[b.get("time_unit", "ns")]


def load(path):
    """(report, chosen, errors). chosen maps each benchmark name to the entry
    to report: its median aggregate when repetitions ran, else the plain run
    with the median wall time (a real entry, so its counters agree with each
    other). errors lists 'name: message' for the benchmarks that failed."""
    with open(path) as f:
        report = json.load(f)
    medians, plain, errors = {}, {}, []
    for b in report.get("benchmarks", []):
        name = entry_name(b)
        if b.get("error_occurred"):
            errors.append(f"{name}: {b.get('error_message')}")
        elif b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            plain.setdefault(name, []).append(b)
    chosen = dict(medians)
    for name, runs in plain.items():
        if name not in chosen:
            runs = sorted(runs, key=ns)
            chosen[name] = runs[(len(runs) - 1) // 2]
    return report, chosen, errors
