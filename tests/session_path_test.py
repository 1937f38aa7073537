#!/usr/bin/env python3
"""The session path's layout in the programs that fork session children.

ipc/session_path.hpp marks the functions a fork server's session child runs;
ipc/session_path.ld gathers them into .text.session_path, which must start
a 64 KiB window, fit in one, hold the functions the child runs, and sit in
a program loaded at 64 KiB boundaries. Usage: session_path_test.py BINARY...
"""
import re
import subprocess
import sys

WINDOW = 0x10000
# Functions every stream session child runs (a callgrind of one, listed by
# name); each must be in the section.
EXPECTED = [
    r"Parent::spawn\(",
    r"Parent::child\(",
    r"SocketListener::close_in_child\(",
    r"ipclab::open_stream_session\(",
    r"StreamReader::refill\(",
    r"FramedChannel::receive\(",
    r"FramedChannel::send\(ipclab::FrameType",
    r"ipclab::write_all\(int, std::span",
    r"ipclab::run_session\(",
    r"ipclab::serve_channel\(",
    r"ipclab::parse_opening\(",
    r"ipclab::resize_bytes\(",
]


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def check(binary):
    problems = []
    sections = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16))
                for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)",
                                     run("readelf", "-SW", binary))}
    if ".text.session_path" not in sections:
        return [f"{binary}: no .text.session_path section (ipc/session_path.ld not linked in?)"]
    start, size = sections[".text.session_path"]
    if start % WINDOW:
        problems.append(f"{binary}: .text.session_path at {start:#x}, not at a 64 KiB boundary")
    if size == 0 or size > WINDOW:
        problems.append(f"{binary}: .text.session_path is {size} bytes (want 1..{WINDOW})")
    aligns = [int(m.group(1), 16) for m in re.finditer(r"^\s+LOAD\s.*\s(0x[0-9a-f]+)$",
                                                        run("readelf", "-lW", binary), re.M)]
    if not aligns or min(aligns) < WINDOW:
        problems.append(f"{binary}: LOAD segments aligned {[hex(a) for a in aligns]}, want 0x10000")
    symbols = run("nm", "-C", binary).splitlines()
    for pattern in EXPECTED:
        found = [int(line.split()[0], 16) for line in symbols
                 if re.search(pattern, line) and line.split()[1] in "tTW" and "[clone" not in line]
        if not found:
            problems.append(f"{binary}: no symbol matching {pattern}")
        elif not any(start <= a < start + size for a in found):
            problems.append(f"{binary}: {pattern} at {found[0]:#x}, outside .text.session_path "
                            f"[{start:#x}, {start + size:#x})")
    return problems


def main():
    problems = [p for binary in sys.argv[1:] for p in check(binary)]
    for p in problems:
        print("FAIL:", p)
    if not sys.argv[1:]:
        print("usage: session_path_test.py BINARY...")
        return 2
    if not problems:
        print(f"ok: the session path starts a 64 KiB window and fits in it in {len(sys.argv) - 1} programs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
