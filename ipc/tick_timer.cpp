#include "ipc/tick_timer.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "ipc/error.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

namespace {

void on_tick(int) {}  // only there to make blocked calls return EINTR

void install_tick_handler(int signo, void (*handler)(int)) {
    struct sigaction sa {};  // value-initialised: an empty sa_mask
    sa.sa_handler = handler;
    sa.sa_flags = 0;  // no SA_RESTART: msgsnd/msgrcv must return EINTR
    check(::sigaction(signo, &sa, nullptr), "sigaction(tick)");
}

// Only ticks set SIGALRM's disposition here, so once is enough for the
// process and for every child forked after it. Atomic: the thread server
// designs open sessions on several threads at once (TSan saw two of them
// test and set it together; installing the same handler twice is harmless,
// the unsynchronised flag was not).
std::atomic<bool> g_default_installed{false};

// The timer goes through syscall(2), which arm() calls anyway for the
// thread id, not glibc's timer_create/timer_settime/timer_delete: those sit
// in a 64 KiB window of libc's code that nothing else a session child runs
// touches, so every fresh fork-server child faulted it in (perf
// page-faults: timer_create, 1 of a session's 17). For a signal timer
// glibc's wrappers add nothing but turning the kernel's int timer id into
// a timer_t.
long timer_call(long number, long a, long b, long c, long d) { return ::syscall(number, a, b, c, d); }

}  // namespace

void TickTimer::install_default_handler() {
    if (g_default_installed.load(std::memory_order_acquire)) return;
    install_tick_handler(SIGALRM, on_tick);
    g_default_installed.store(true, std::memory_order_release);
}

IPCLAB_SESSION_PATH TickTimer::TickTimer(int period_ms, int signo, void (*handler)(int)) : period_ms_(period_ms), signo_(signo) {
    if (handler == nullptr && signo == SIGALRM) {
        install_default_handler();
    } else {
        install_tick_handler(signo, handler != nullptr ? handler : on_tick);
        if (signo == SIGALRM) g_default_installed.store(false, std::memory_order_release);  // another handler holds it now
    }
    arm();
}

IPCLAB_SESSION_PATH void TickTimer::arm() {
    struct sigevent sev {};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo_;
    sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    int id = -1;  // the kernel's timer id (__kernel_timer_t)
    check(static_cast<int>(timer_call(SYS_timer_create, CLOCK_MONOTONIC, reinterpret_cast<long>(&sev),
                                      reinterpret_cast<long>(&id), 0)),
          "timer_create");
    struct itimerspec it {};
    it.it_interval.tv_sec = period_ms_ / 1000;
    it.it_interval.tv_nsec = static_cast<long>(period_ms_ % 1000) * 1000000L;
    it.it_value = it.it_interval;
    if (timer_call(SYS_timer_settime, id, 0, reinterpret_cast<long>(&it), 0) != 0) {
        int err = errno;
        timer_call(SYS_timer_delete, id, 0, 0, 0);
        throw_errno("timer_settime", err);
    }
    id_ = id;
    owner_ = ::getpid();
}

// The handler's disposition came with fork; only the timer did not.
void TickTimer::arm_here() {
    if (::getpid() != owner_) arm();
}

IPCLAB_SESSION_PATH TickTimer::~TickTimer() {
    if (::getpid() == owner_) timer_call(SYS_timer_delete, id_, 0, 0, 0);
}

}  // namespace ipclab
