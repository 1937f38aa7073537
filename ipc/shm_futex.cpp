#include "ipc/shm_futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>



namespace ipclab {

namespace {

// No FUTEX_PRIVATE_FLAG: the word lives in a MAP_SHARED mapping and the
// sleeper and the waker are different processes.
long sys_futex(const std::atomic<std::uint32_t>& word, int op, std::uint32_t val,
               const struct timespec* timeout) {
    auto* addr = const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
    return ::syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}

}  // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, int timeout_ms) {
    struct timespec ts {};
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
    }
    if (sys_futex(word, FUTEX_WAIT, expected, timeout_ms >= 0 ? &ts : nullptr) == 0) return true;
    switch (errno) {
        case EAGAIN:  // the word changed before we slept: the caller re-checks
            return true;
        case ETIMEDOUT:
            return false;
        case EINTR:
            on_eintr();
            return true;
        default:
            throw_errno("futex(FUTEX_WAIT)");
    }
}

void futex_wake(const std::atomic<std::uint32_t>& word, int count) {
    if (sys_futex(word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr) < 0)
        throw_errno("futex(FUTEX_WAKE)");
}


}  // namespace ipclab
