// Helpers shared by the two message-queue transports (posix-mq, sysv-mq):
// run-time kernel limits, who owns an endpoint, marker files that track
// queues by name, absolute timeouts and the periodic wake-up timer.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <time.h>

#include <string>

namespace ipclab {

// How often a blocked queue call wakes to check the deadline and whether the
// peer still lives: a dead peer is noticed within one slice.
inline constexpr int kQueueSliceMs = 100;

// A number from a /proc/sys file, or fallback when it cannot be read.
long read_proc_long(const char* path, long fallback);

// The pid written in NAME.TRANSPORT.lock by the live (or dead) server; 0 if none.
pid_t server_pid_from_lock(const std::string& transport, const std::string& name);

// Creates an empty 0600 marker file (truncating a stale one).
void create_marker(const std::string& path);

// CLOCK_REALTIME now + ms (for mq_timedsend/mq_timedreceive).
struct timespec realtime_after(int ms);

// A POSIX timer that sends SIGALRM to the creating thread every period_ms,
// so msgsnd/msgrcv (which cannot time out) return EINTR periodically. The
// no-op SIGALRM handler is installed without SA_RESTART and stays installed
// (a signal already queued when the timer is deleted must not kill us).
// Timers are not inherited by fork(); a child never deletes its parent's.
// With a handler, it sends signo instead and installs that handler (the
// server's periodic orphan sweep wakes its loop that way).
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
