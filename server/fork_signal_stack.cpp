#include "server/fork_signal_stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "ipc/error.hpp"

namespace ipclab {

namespace {

// Plenty for the frame and on_child's few calls; only the pages a signal
// reaches are ever backed by memory.
constexpr std::size_t kMinStack = 64 * 1024;

std::size_t stack_size() {
    const long page = ::sysconf(_SC_PAGESIZE);
    const long wanted = std::max<long>(::sysconf(_SC_SIGSTKSZ), static_cast<long>(kMinStack));
    return static_cast<std::size_t>((wanted + page - 1) / page * page);
}

}  // namespace

ForkFreeSignalStack::ForkFreeSignalStack() : size_(stack_size()) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap(signal stack)");
    auto give_up = [&](const char* what) {
        const int err = errno;
        ::munmap(p, size_);
        throw_errno(what, err);
    };
    if (::madvise(p, size_, MADV_DONTFORK) != 0) give_up("madvise(signal stack, MADV_DONTFORK)");
    stack_t ss{};
    ss.ss_sp = p;
    ss.ss_size = size_;
    if (::sigaltstack(&ss, &previous_) != 0) give_up("sigaltstack");
    base_ = p;
}

ForkFreeSignalStack::~ForkFreeSignalStack() {
    ::sigaltstack(&previous_, nullptr);
    ::munmap(base_, size_);
}

}  // namespace ipclab
