#include "server/accept_lock.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/shm_mapping.hpp"

namespace ipclab {

namespace {

bool readable(int fd) {
    if (fd < 0) return false;
    struct pollfd p {fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
}

// UNP's lock_fcntl, with flock: an unnamed file in the private directory
// (nothing to leave behind), which each worker opens again through
// /proc/self/fd so that it holds a lock of its own.
class FlockLock final : public AcceptLock {
public:
    FlockLock() {
        std::string dir = private_dir();
        file_.reset(check(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600), "open(O_TMPFILE) accept lock"));
    }
    void enter_worker() override {
        std::string self = "/proc/self/fd/" + std::to_string(file_.get());
        mine_.reset(check(::open(self.c_str(), O_RDWR | O_CLOEXEC), "open accept lock"));
    }
    bool acquire(int wake_fd) override {
        if (readable(wake_fd)) return false;
        // Blocking: a stop signal interrupts it (EINTR), as it does accept.
        if (::flock(mine_.get(), LOCK_EX) == 0) return true;
        if (errno == EINTR) return false;
        throw_errno("flock accept lock");
    }
    void release() noexcept override { ::flock(mine_.get(), LOCK_UN); }

private:
    Fd file_;  // the supervisor's
    Fd mine_;  // this worker's open file description
};

// UNP's lock_pthread: a process-shared mutex in anonymous shared memory,
// robust so that a holder's death hands it on instead of blocking the pool.
// pthread_mutex_lock cannot be interrupted, so it waits in slices and looks
// at wake_fd between them.
class MutexLock final : public AcceptLock {
public:
    MutexLock() : map_(map_anonymous_shared(sizeof(pthread_mutex_t))) {
        pthread_mutexattr_t attr;
        ::pthread_mutexattr_init(&attr);
        ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        mu_ = new (map_.get()) pthread_mutex_t;
        int rc = ::pthread_mutex_init(mu_, &attr);
        ::pthread_mutexattr_destroy(&attr);
        if (rc != 0) throw_errno("pthread_mutex_init accept lock", rc);
    }
    bool acquire(int wake_fd) override {
        constexpr long kSliceNs = 100 * 1000000L;
        for (;;) {
            if (readable(wake_fd)) return false;
            timespec at{};
            ::clock_gettime(CLOCK_MONOTONIC, &at);
            at.tv_nsec += kSliceNs;
            if (at.tv_nsec >= 1000000000L) {
                at.tv_sec += 1;
                at.tv_nsec -= 1000000000L;
            }
            int rc = ::pthread_mutex_clocklock(mu_, CLOCK_MONOTONIC, &at);
            if (rc == 0) return true;
            if (rc == EOWNERDEAD) {  // its holder died (SIGKILLed in accept): ours now
                ::pthread_mutex_consistent(mu_);
                return true;
            }
            if (rc != ETIMEDOUT && rc != EINTR) throw_errno("pthread_mutex_clocklock accept lock", rc);
        }
    }
    void release() noexcept override { ::pthread_mutex_unlock(mu_); }

private:
    Mapping map_;
    pthread_mutex_t* mu_ = nullptr;
};

}  // namespace

const char* accept_lock_name(AcceptLockKind kind) {
    switch (kind) {
        case AcceptLockKind::flock: return "flock";
        case AcceptLockKind::mutex: return "mutex";
        case AcceptLockKind::pass_fd: return "pass-fd";
        case AcceptLockKind::none: break;
    }
    return "none";
}

std::unique_ptr<AcceptLock> make_accept_lock(AcceptLockKind kind) {
    switch (kind) {
        case AcceptLockKind::flock: return std::make_unique<FlockLock>();
        case AcceptLockKind::mutex: return std::make_unique<MutexLock>();
        case AcceptLockKind::pass_fd:
        case AcceptLockKind::none: break;
    }
    return nullptr;
}

}  // namespace ipclab
