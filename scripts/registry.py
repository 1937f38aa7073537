"""The transports the scripts measure, as ipclab's one registry (ipc/registry.cpp)
describes them: `ipc-bench --describe-transports`, read once per binary.
No script keeps a list of transport names or special-cases one by name; they
ask this module.

Each variant is a dict of the table's columns: name (what --transports
takes), transport (what --transport takes), wait (block or spin), addressing
(host-port or name), byte_stream (a bool) and waits (how a peer waits, as the
reports say it)."""
import functools
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bin", "ipc-bench")
COLUMNS = ("name", "transport", "wait", "addressing", "byte_stream", "waits")


class Unavailable(RuntimeError):
    """ipc-bench is missing, or could not describe its transports."""


@functools.lru_cache(maxsize=None)
def _describe(bench):
    argv = [bench, "--describe-transports"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise Unavailable(f"cannot run {bench} ({e.strerror}); run `make` first") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`{' '.join(argv)}` did not answer within 30 s") from None
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    header = tuple(lines[0].split("\t")) if lines else ()
    if r.returncode != 0 or not set(COLUMNS) <= set(header) or len(lines) < 2:
        raise Unavailable(f"`{' '.join(argv)}` failed (exit {r.returncode}): "
                          f"{(r.stderr.strip() or r.stdout.strip() or 'no table')[-300:]}")
    rows = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        row["byte_stream"] = row.get("byte_stream") == "yes"
        rows.append(row)
    return tuple(rows)


def variants(bench=BENCH):
    """Every variant, in the registry's display order (fresh dicts)."""
    return [dict(v) for v in _describe(os.path.realpath(bench))]


def names(bench=BENCH):
    return [v["name"] for v in _describe(os.path.realpath(bench))]


def by_name(bench=BENCH):
    return {v["name"]: v for v in variants(bench)}


def _first(bench, addressing):
    return next((v["name"] for v in _describe(os.path.realpath(bench))
                 if v["addressing"] == addressing and v["byte_stream"] and v["wait"] == "block"), None)


def host_stream(bench=BENCH):
    """The byte stream addressed by host and port (what TCP tools such as
    sockperf and iperf3, and the raw fork server, compare with), or None."""
    return _first(bench, "host-port")


def named_stream(bench=BENCH):
    """The first byte stream addressed by name (a same-host socket), or None."""
    return _first(bench, "name")
