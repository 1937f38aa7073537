"""compare --remote HOST:PORT: TCP to a plain `bin/server PORT` on another
host, measured by the same ipc-bench run as the same-host transports
(`ipc-bench --remote`, bench/remote_bench.hpp) and reported as one more
transport, `remote`, labelled `tcp → HOST` in the tables and plots. Its
floor is the raw TCP ping-pong to the same server (the paired benchmark's
raw side, `baseline_rtt_p50` and `rtt_ratio` in summary.csv).

The remote host's CPU is not measured (no server CPU figures), and the remote
row takes no part in the verdict of which same-host mechanism to use."""
import json
import re

TRANSPORT = "remote"


def parse(text):
    """(host, port) of HOST:PORT or [IPV6]:PORT; ValueError otherwise."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", text) or re.fullmatch(r"([^:\[\]]+):(\d+)", text)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (an IPv6 address in brackets: [::1]:PORT)")
    return m.group(1), m.group(2)


def local(transports):
    """The transports ipc-bench measures on this host (what --transports takes)."""
    return [t for t in transports if t != TRANSPORT]


def bench_args(remote):
    return [f"--remote={remote}"] if remote else []


def info(remote):
    """The remote row's entry beside the registry's (scripts/registry.py)."""
    host, _ = parse(remote)
    return {TRANSPORT: {"name": TRANSPORT, "transport": "tcp", "wait": "block", "addressing": "host-port",
                        "byte_stream": True, "label": f"tcp → {host}",
                        "waits": "sleeps in kernel (server remote)"}}


def context(bench_json):
    """What ipc-bench recorded of the remote server: {'remote', 'remote_address'}."""
    try:
        with open(bench_json) as f:
            ctx = json.load(f).get("context", {})
    except (OSError, ValueError):
        return {}
    return {k: ctx[k] for k in ("remote", "remote_address") if k in ctx}


def report_lines(remote, bench_json, rows, sizes, fmt, human_size):
    """REPORT.md's section on the remote row: both hosts, and its floor."""
    if not remote:
        return []
    ctx = context(bench_json)
    host, port = parse(remote)
    lines = ["## TCP to another host", "",
             f"The row `tcp → {host}` ran against a plain `bin/server {port}` at **{remote}** (it answered from "
             f"{ctx.get('remote_address', '?')}), the measurement peer, each session asking it for the replies it "
             "needs (echo, sink, ack) in its opening; its host told nothing else about itself (hostname, kernel, "
             "CPU and load over there are not known to this report). The client side is this host (above). "
             "The floor is the same round trip written with raw system calls to the same server (ipclab's framed "
             "bytes, one writev and reads until the echo is whole), paired with ipclab's in 1 ms slices. The "
             "remote host's CPU is not measured.", "",
             "| size | ipclab RTT p50 (µs) | raw TCP floor p50 (µs) | ipclab / raw | stream (MB/s) |",
             "|---|---|---|---|---|"]

    def cell(metric, s, ratio=False):
        f = next((r[4] for r in rows if r[0] == TRANSPORT and r[1] == s and r[2] == metric), None)
        if not f:
            return "-"
        if ratio:
            return f"{f['value']:.2f} [{f['low']:.2f}, {f['high']:.2f}]" + (" ?" if not f["stable"] else "")
        return f"{fmt(f['value'])} [{fmt(f['low'])}, {fmt(f['high'])}]" + (" ?" if not f["stable"] else "")

    for s in sizes:
        lines.append(f"| {human_size(s)} | {cell('rtt_p50', s)} | {cell('baseline_rtt_p50', s)} | "
                     f"{cell('rtt_ratio', s, True)} | {cell('stream_throughput', s)} |")
    return lines + [""]
