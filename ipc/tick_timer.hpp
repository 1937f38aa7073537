// A periodic signal that makes blocking system calls return EINTR.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <time.h>

namespace ipclab {

// A POSIX timer that sends SIGALRM to the creating thread every period_ms,
// so msgsnd/msgrcv and pipe reads (which cannot time out) return EINTR
// periodically. The no-op SIGALRM handler is installed without SA_RESTART
// and stays installed (a signal already queued when the timer is deleted
// must not kill us). Timers are not inherited by fork(); a child never
// deletes its parent's. With a handler, it sends signo instead and installs
// that handler (the server's periodic orphan sweep wakes its loop that way).
class TickTimer {
public:
    explicit TickTimer(int period_ms, int signo = SIGALRM, void (*handler)(int) = nullptr);
    TickTimer(const TickTimer&) = delete;
    TickTimer& operator=(const TickTimer&) = delete;
    ~TickTimer();

private:
    timer_t id_{};
    pid_t owner_;
};

}  // namespace ipclab
