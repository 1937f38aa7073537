"""Standard tools beside ipclab (scripts/compare --peers): sockperf
ping-pong and iperf3 on 127.0.0.1, started and stopped by pid, their figures
put beside ipclab's from the same run."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchjson import figure
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

    def sockperf_tcp(self, size):
        port = self.free_port()
        server = self.start(["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)], "sockperf-server")

        def accepting():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False
        try:
            self.wait_until(server, accepting, "sockperf server")
            r = subprocess.run(["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port),
                                "-m", str(size), "-t", str(self.seconds), "--full-rtt"],
                               capture_output=True, text=True, timeout=self.seconds + 30)
        finally:
            self.stop(server)
        text = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
        with open(os.path.join(self.dir, "sockperf-ping-pong.log"), "w") as f:
            f.write(text)
        p50 = re.search(r"percentile 50\.000 =\s*([\d.]+)", text)
        p99 = re.search(r"percentile 99\.000 =\s*([\d.]+)", text)
        avg = re.search(r"avg-rtt=([\d.]+)", text)
        if r.returncode != 0 or not (p50 and p99):
            raise RuntimeError(f"sockperf ping-pong failed (exit {r.returncode}): {text.strip()[-300:]}")
        return {"p50": float(p50.group(1)), "p99": float(p99.group(1)),
                "avg": float(avg.group(1)) if avg else None}

    def iperf3_tcp(self, length):
        port = self.free_port()
        server = self.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "--forceflush"], "iperf3-server")
        try:
            self.wait_until(server, lambda: self.log_has("iperf3-server", "Server listening"), "iperf3 server")
            r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(self.seconds),
                                "-l", str(length), "-J"],
                               capture_output=True, text=True, timeout=self.seconds + 30)
        finally:
            self.stop(server)
        with open(os.path.join(self.dir, "iperf3-client.json"), "w") as f:
            f.write(r.stdout)
        try:
            bps = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError):
            raise RuntimeError(f"iperf3 failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()[-300:]}")
        return bps / 8 / 1e6


def run_peers(reps, transports, sizes, seconds, out_dir):
    """Rows (what, tool, ipclab, theirs, unit, ratio, better) and notes."""
    rows, notes = [], []
    missing = [t for t in ("sockperf", "iperf3") if not shutil.which(t)]
    if missing:
        subprocess.run([os.path.join(ROOT, "scripts", "install-deps"), *missing], check=False)
    work = tempfile.mkdtemp(prefix="ipclab-peers-")
    os.chmod(work, 0o700)
    peers = Peers(seconds, work)
    try:
        rt_size = 64 if 64 in sizes else next((s for s in sizes if 14 <= s <= 65000), None)
        ours = figure(reps, "rtt_p50", "tcp", rt_size) if "tcp" in transports and rt_size else None
        ours99 = figure(reps, "rtt_p99", "tcp", rt_size) if ours else None
        if not ours:
            notes.append("sockperf skipped: needs tcp and a size from 14 B to 65000 B in the run")
        elif not shutil.which("sockperf"):
            notes.append("sockperf skipped: not installed (scripts/install-deps sockperf)")
        else:
            print(f"[peers] sockperf ping-pong, TCP 127.0.0.1, {rt_size} B, {seconds} s ...", flush=True)
            sp = peers.sockperf_tcp(rt_size)
            what = f"TCP round trip {human_size(rt_size)}"
            rows.append((what + ", p50", "sockperf ping-pong", ours["value"], sp["p50"], "µs", "lower"))
            rows.append((what + ", p99", "sockperf ping-pong", ours99["value"], sp["p99"], "µs", "lower"))
        unix = figure(reps, "baseline_rtt_p50", "unix", rt_size) if rt_size else None
        unix_ours = figure(reps, "rtt_p50", "unix", rt_size) if rt_size else None
        unix_ratio = figure(reps, "rtt_ratio", "unix", rt_size) if rt_size else None
        note = ("UNIX sockets: sockperf 3.7 (Debian 12) has no UNIX-domain mode (it came in sockperf 3.8) "
                "and Debian 12 ships no other UNIX-socket ping-pong tool")
        if unix and unix_ours:
            ratio = unix_ratio["value"] if unix_ratio else unix_ours["value"] / unix["value"]
            note += (f"; ipclab's own raw-syscall baseline stands in: unix {human_size(rt_size)} p50 "
                     f"{unix_ours['value']:.1f} µs against raw {unix['value']:.1f} µs "
                     f"(ratio {ratio:.2f})")
        notes.append(note)
        big = max(sizes)
        stream = figure(reps, "stream_throughput", "tcp", big) if "tcp" in transports else None
        length = min(big, 1 << 20)
        if not stream or big < 1024:
            notes.append("iperf3 skipped: needs tcp and a size of at least 1 KiB in the run")
        elif not shutil.which("iperf3"):
            notes.append("iperf3 skipped: not installed (scripts/install-deps iperf3)")
        else:
            print(f"[peers] iperf3, TCP 127.0.0.1, {human_size(length)} writes, {seconds} s ...", flush=True)
            mbs = peers.iperf3_tcp(length)
            rows.append((f"TCP one-way throughput, {human_size(big)} messages", f"iperf3 -l {human_size(length)}",
                         stream["value"], mbs, "MB/s", "higher"))
    except RuntimeError as e:
        notes.append(f"peers stopped early: {e}")
        print(f"compare: {e}", file=sys.stderr)
    finally:
        peers.stop_all()
        for f in os.listdir(work):
            shutil.move(os.path.join(work, f), os.path.join(out_dir, "peers-" + f if not f.startswith("peers") else f))
        os.rmdir(work)
    return rows, notes


def peers_table(rows, markdown):
    head = ["measure", "tool", "ipclab", "tool's figure", "ipclab / tool"]
    body = []
    for what, tool, ours, theirs, unit, better in rows:
        ratio = ours / theirs if theirs else float("nan")
        verdict = (("ipclab faster" if ratio < 1 else "ipclab slower") if better == "lower"
                   else ("ipclab faster" if ratio > 1 else "ipclab slower"))
        body.append([what, tool, f"{fmt(ours)} {unit}", f"{fmt(theirs)} {unit}", f"{ratio:.2f} ({verdict})"])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + body)


