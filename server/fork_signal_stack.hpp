// An alternate signal stack that a forked child does not get.
#pragma once

#include <signal.h>
#include <sys/syscall.h>

#include <cstddef>

#include "ipc/raw_syscall.hpp"

namespace ipclab {

// A fork server's parent takes a SIGCHLD per session, while it waits for
// the next client. On its own stack the signal frame (the CPU's extended
// state, about 3 KiB with AVX-512) went to a stack page below the loop's,
// which the parent shares with its newest child: a copy-on-write fault per
// session (perf record -e page-faults with call chains:
// copy_fpstate_to_sigframe, ~1.8 us each on this VM). On this stack, memory
// marked MADV_DONTFORK, the frame lands in pages no child shares. A handler
// uses it when installed with SA_ONSTACK.
//
// A forked child has no such memory but inherits the setting: it calls
// disable_in_child() first thing, or a signal for such a handler would kill
// it (SIGSEGV) instead of running the handler on its own stack.
class ForkFreeSignalStack {
public:
    ForkFreeSignalStack();
    ~ForkFreeSignalStack();
    ForkFreeSignalStack(const ForkFreeSignalStack&) = delete;
    ForkFreeSignalStack& operator=(const ForkFreeSignalStack&) = delete;

    // Inline and by its system call: glibc's sigaltstack sits in a 64 KiB
    // window of libc's code that a session child runs nothing else of.
    static void disable_in_child() noexcept {
        stack_t ss{};
        ss.ss_flags = SS_DISABLE;
        raw_syscall(SYS_sigaltstack, reinterpret_cast<long>(&ss));
    }

private:
    void* base_ = nullptr;
    std::size_t size_ = 0;
    stack_t previous_{};  // put back on destruction (a sanitizer's, or none)
};

}  // namespace ipclab
