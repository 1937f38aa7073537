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

    // Installs the default tick's SIGALRM handler now, once per process: a
    // fork server does it before forking, so its session children's ticks
    // install nothing (a sigaction call and a page of libc's code faulted in
    // per session).
    static void install_default_handler();

    // In a process forked after the timer was made (a prefork worker waiting
    // on its supervisor's listener), arms a timer of its own with the same
    // period and signal: the parent's does not tick here. One getpid; a no-op
    // in the process that made it.
    void arm_here();

private:
    void arm();  // creates and starts the timer for this thread, owned by this process

    int period_ms_;
    int signo_;
    int id_ = -1;  // the kernel's timer id
    pid_t owner_ = 0;
};

}  // namespace ipclab
