"""Standard tools beside ipclab (scripts/compare --peers): sockperf
ping-pong and iperf3 on 127.0.0.1, started and stopped by pid, each measured
in interleaved pairs with ipclab's same benchmark (ipclab, tool, tool,
ipclab, ...), every figure the median of its samples with a 95% interval,
and a difference called only when the ratio's interval excludes 1."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import registry
import stats
from benchjson import figure, name_filter
from report import fmt, human_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- standard tools beside ours (--peers) -----------------------------------

class Peers:
    """Starts sockperf/iperf3 servers on loopback and stops them by pid."""

    def __init__(self, seconds, workdir):
        self.seconds = seconds
        self.dir = workdir
        self.procs = []

    def start(self, argv, name):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        # Own session: a Ctrl-C at the terminal reaches us, and we stop them.
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=3)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)

    @staticmethod
    def free_port():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def wait_until(self, p, ready, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited with {p.returncode} before it was ready")
            if ready():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{what} not ready after {timeout:.0f} s")

    def log_has(self, name, text):
        try:
            with open(os.path.join(self.dir, name + ".log")) as f:
                return text in f.read()
        except OSError:
            return False

    def paired_with(self, start_server, pairs, ours, theirs):
        """Starts a tool's server, alternates ours(k) with theirs(port, k)
        (see paired), and stops the server whatever happens."""
        server, port = start_server()
        try:
            return paired(pairs, ours, lambda k: theirs(port, k))
        finally:
            self.stop(server)

    def sockperf_server(self):
        port = self.free_port()
        server = self.start(["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)], "sockperf-server")

        def accepting():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False
        self.wait_until(server, accepting, "sockperf server")
        return server, port

    def sockperf_sample(self, port, size, k):
        """One sockperf ping-pong of self.seconds: {'p50', 'p99'} in µs."""
        r = subprocess.run(["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port),
                            "-m", str(size), "-t", str(self.seconds), "--full-rtt"],
                           capture_output=True, text=True, timeout=self.seconds + 30)
        text = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
        with open(os.path.join(self.dir, f"sockperf-ping-pong-{k}.log"), "w") as f:
            f.write(text)
        p50 = re.search(r"percentile 50\.000 =\s*([\d.]+)", text)
        p99 = re.search(r"percentile 99\.000 =\s*([\d.]+)", text)
        if r.returncode != 0 or not (p50 and p99):
            raise RuntimeError(f"sockperf ping-pong failed (exit {r.returncode}): {text.strip()[-300:]}")
        return {"p50": float(p50.group(1)), "p99": float(p99.group(1))}

    def iperf3_server(self):
        port = self.free_port()
        server = self.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "--forceflush"], "iperf3-server")
        self.wait_until(server, lambda: self.log_has("iperf3-server", "Server listening"), "iperf3 server")
        return server, port

    def iperf3_sample(self, port, length, k):
        """One iperf3 run of self.seconds: MB/s received."""
        r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(self.seconds),
                            "-l", str(length), "-J"],
                           capture_output=True, text=True, timeout=self.seconds + 30)
        with open(os.path.join(self.dir, f"iperf3-client-{k}.json"), "w") as f:
            f.write(r.stdout)
        try:
            return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
        except (ValueError, KeyError):
            raise RuntimeError(f"iperf3 failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()[-300:]}")


def ipclab_sample(bench, pin, name, seconds, workdir, k):
    """One ipc-bench run of one benchmark (Kind/transport/bytes) for `seconds`: its JSON entry."""
    out = os.path.join(workdir, f"ipclab-{k}.json")
    _, transport, size = name.split("/")
    argv = [bench, f"--transports={transport}", f"--sizes={size}",
            f"--benchmark_filter={name_filter([name])}", f"--benchmark_min_time={seconds}",
            f"--benchmark_out={out}", "--benchmark_out_format=json"] + ([f"--pin={pin}"] if pin else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 10 + 60)
    try:
        with open(out) as f:
            entries = [b for b in json.load(f)["benchmarks"] if not b.get("error_occurred")]
    except (OSError, ValueError, KeyError):
        entries = []
    if r.returncode != 0 or not entries:
        raise RuntimeError(f"ipc-bench {name} failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    return entries[0]


def paired(pairs, ours, theirs):
    """Interleaved samples, A B B A ...: (our samples, their samples)."""
    a, b = [], []
    for k in range(pairs):
        if k % 2 == 0:
            a.append(ours(k))
            b.append(theirs(k))
        else:
            b.append(theirs(k))
            a.append(ours(k))
    return a, b


def run_peers(reps, transports, sizes, seconds, out_dir, bench, pin, pairs):
    """Rows (what, tool, ipclab figure, tool figure, ratio figure, unit, better) and notes.
    Each tool and ipclab's same benchmark alternate, `pairs` times, `seconds`
    each; every figure is a median with its interval (stats.summarise).
    The tools speak TCP: ipclab's side is the byte stream addressed by host
    and port; the one addressed by name stands in for UNIX sockets."""
    rows, notes = [], []
    host, local = registry.host_stream(bench), registry.named_stream(bench)
    missing = [t for t in ("sockperf", "iperf3") if not shutil.which(t)]
    if missing:
        subprocess.run([os.path.join(ROOT, "scripts", "install-deps"), *missing], check=False)
    work = tempfile.mkdtemp(prefix="ipclab-peers-")
    os.chmod(work, 0o700)
    peers = Peers(seconds, work)
    try:
        rt_size = 64 if 64 in sizes else next((s for s in sizes if 14 <= s <= 65000), None)
        if host not in transports or not rt_size:
            notes.append(f"sockperf skipped: needs {host} and a size from 14 B to 65000 B in the run")
        elif not shutil.which("sockperf"):
            notes.append("sockperf skipped: not installed (scripts/install-deps sockperf)")
        else:
            print(f"[peers] sockperf ping-pong and ipclab's RoundTrip/{host}/{rt_size}, TCP 127.0.0.1, "
                  f"{pairs} interleaved pairs of {seconds} s ...", flush=True)
            ours, theirs = peers.paired_with(
                peers.sockperf_server, pairs,
                lambda k: ipclab_sample(bench, pin, f"RoundTrip/{host}/{rt_size}", seconds, work, k),
                lambda port, k: peers.sockperf_sample(port, rt_size, k))
            what = f"TCP round trip {human_size(rt_size)}"
            for q, key in (("p50", "p50_ns"), ("p99", "p99_ns")):
                o = stats.summarise([b[key] / 1e3 for b in ours])
                t = stats.summarise([x[q] for x in theirs])
                r = stats.summarise([b[key] / 1e3 / x[q] for b, x in zip(ours, theirs)], ratio=True)
                rows.append((f"{what}, {q}", "sockperf ping-pong", o, t, r, "µs", "lower"))
        standin = figure(reps, "rtt_ratio", local, rt_size) if rt_size and local else None
        note = ("UNIX sockets: sockperf 3.7 (Debian 12) has no UNIX-domain mode (it came in sockperf 3.8) "
                "and Debian 12 ships no other UNIX-socket ping-pong tool")
        if standin:
            note += (f"; ipclab's own raw-syscall baseline stands in: {local} {human_size(rt_size)} ipclab / raw "
                     f"{standin['value']:.2f} [{standin['low']:.2f}, {standin['high']:.2f}] (paired)")
        notes.append(note)
        big = max(sizes)
        length = min(big, 1 << 20)
        if host not in transports or big < 1024:
            notes.append(f"iperf3 skipped: needs {host} and a size of at least 1 KiB in the run")
        elif not shutil.which("iperf3"):
            notes.append("iperf3 skipped: not installed (scripts/install-deps iperf3)")
        else:
            print(f"[peers] iperf3 and ipclab's Stream/{host}/{big}, TCP 127.0.0.1, {human_size(length)} writes, "
                  f"{pairs} interleaved pairs of {seconds} s ...", flush=True)
            ours, theirs = peers.paired_with(
                peers.iperf3_server, pairs,
                lambda k: ipclab_sample(bench, pin, f"Stream/{host}/{big}", seconds, work, k),
                lambda port, k: peers.iperf3_sample(port, length, k))
            o = stats.summarise([b["bytes_per_second"] / 1e6 for b in ours])
            t = stats.summarise(theirs)
            r = stats.summarise([b["bytes_per_second"] / 1e6 / x for b, x in zip(ours, theirs)], ratio=True)
            rows.append((f"TCP one-way throughput, {human_size(big)} messages", f"iperf3 -l {human_size(length)}",
                         o, t, r, "MB/s", "higher"))
    except RuntimeError as e:
        notes.append(f"peers stopped early: {e}")
        print(f"compare: {e}", file=sys.stderr)
    finally:
        peers.stop_all()
        for f in os.listdir(work):
            shutil.move(os.path.join(work, f), os.path.join(out_dir, "peers-" + f if not f.startswith("peers") else f))
        os.rmdir(work)
    return rows, notes


def peers_verdict(ratio, better):
    """'ipclab faster' or 'slower' only when the ratio's interval excludes 1."""
    if ratio["high"] < 1:
        return "ipclab faster" if better == "lower" else "ipclab slower"
    if ratio["low"] > 1:
        return "ipclab slower" if better == "lower" else "ipclab faster"
    return "no difference outside the noise"


def peers_table(rows, markdown):
    head = ["measure", "tool", "ipclab", "tool's figure", "ipclab / tool [95% interval]"]
    body = []
    for what, tool, ours, theirs, ratio, unit, better in rows:
        body.append([what, tool, f"{fmt(ours['value'])} {unit}", f"{fmt(theirs['value'])} {unit}",
                     f"{ratio['value']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}] ({peers_verdict(ratio, better)})"])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + body)
