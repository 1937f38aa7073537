// System calls that leave errno alone: they return the result or -errno.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace ipclab {

// For the few calls of a fork server where glibc's wrapper costs a page
// fault per session. In the parent, glibc stores errno when a call fails
// (waitpid's last call in the SIGCHLD handler, with no child left: ECHILD;
// the self-pipe's drain: EAGAIN; the accept wait cut short by SIGCHLD:
// EINTR), a write to the page of thread-local storage that the parent shares
// with its newest child (perf record -e page-faults: ~1.8 us each on this
// VM). In the child, a wrapper that nothing else it runs is near is a 64 KiB
// window of libc's code to fault in (sigaltstack, send: ~1.1 us each).
// Arguments the call does not take are passed as 0 (the kernel ignores them).
inline long raw_syscall(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                        long f = 0) noexcept {
#if defined(__x86_64__)
    long ret;
    register long r10 asm("r10") = d;
    register long r8 asm("r8") = e;
    register long r9 asm("r9") = f;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                 : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 asm("x8") = number;
    register long x0 asm("x0") = a;
    register long x1 asm("x1") = b;
    register long x2 asm("x2") = c;
    register long x3 asm("x3") = d;
    register long x4 asm("x4") = e;
    register long x5 asm("x5") = f;
    asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#else
    const int saved = errno;
    long ret = ::syscall(number, a, b, c, d, e, f);
    if (ret == -1) {
        ret = -errno;
        errno = saved;
    }
    return ret;
#endif
}

}  // namespace ipclab
