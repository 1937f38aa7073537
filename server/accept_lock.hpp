// How a prefork pool's workers share one listener (UNP vol. 1 ch. 30.6-30.8):
// with no lock every idle worker waits on the listener and all of them wake
// for each new session (the thundering herd: one wins, the others go back
// to sleep); with a lock only its holder waits on the listener, the others
// sleep on the lock, and each session wakes one worker.
//
// The lock is made by the supervisor before it forks any worker and lives
// as long as the pool. A worker SIGKILLed while holding it must not stop the
// pool: the kernel drops a dead holder's flock, and the mutex is robust (the
// next locker is told the owner died and takes it over).
#pragma once

#include <memory>
#include <string>

namespace ipclab {

// pass_fd is no lock: the supervisor accepts and hands each connection's
// descriptor to an idle worker (server/fd_passing.hpp); make_accept_lock
// returns nullptr for it.
enum class AcceptLockKind { none, flock, mutex, pass_fd };
inline constexpr AcceptLockKind kAcceptLockKinds[] = {AcceptLockKind::none, AcceptLockKind::flock,
                                                      AcceptLockKind::mutex, AcceptLockKind::pass_fd};

// The names `server --accept-lock` takes.
const char* accept_lock_name(AcceptLockKind kind);

class AcceptLock {
public:
    virtual ~AcceptLock() = default;
    // In a freshly forked worker, before its first acquire (flock: a
    // descriptor of the worker's own, since flock belongs to an open file).
    virtual void enter_worker() {}
    // Waits for the lock. Returns false, not holding it, when wake_fd became
    // readable or a signal interrupted the wait (the worker then looks at why).
    virtual bool acquire(int wake_fd) = 0;
    virtual void release() noexcept = 0;
};

// none: nullptr. Throws SystemError when the lock cannot be made.
std::unique_ptr<AcceptLock> make_accept_lock(AcceptLockKind kind);

}  // namespace ipclab
