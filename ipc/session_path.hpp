// Marks the code a fork-per-session child runs, so that it lies together.
#pragma once

// A forked child shares its parent's code pages but not their page-table
// entries: fork copies those only for memory that has been written to, so
// the child's first instruction in each 64 KiB of code (the kernel maps that
// much around a read fault: fault_around_bytes) is a page fault. Spread over
// the binary by file and link order, the few functions a session child runs
// after fork (the spawn, the listener's close, the session, the stream
// channel, framing, the tick timer, the write) were three such windows, and
// the logging server's log line more (perf record -e page-faults with call
// chains: the child took 14 faults against the C fork server's 10).
//
// GCC puts functions marked hot in .text.hot (when it optimises), and
// ipc/session_path.ld gathers every object's .text.hot into a section that
// starts a 64 KiB window, in programs loaded at 64 KiB boundaries: one
// fault maps the whole path. The mark also lets GCC optimise them for speed
// harder, which these per-message functions want anyway. A function the
// child runs that is not marked is no error, only a window more:
// tests/session_path_test.py checks that the child's functions are there.
#define IPCLAB_SESSION_PATH [[gnu::hot]]
