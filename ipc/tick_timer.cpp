#include "ipc/tick_timer.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include "ipc/error.hpp"

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
// process and for every child forked after it.
bool g_default_installed = false;

}  // namespace

void TickTimer::install_default_handler() {
    if (g_default_installed) return;
    install_tick_handler(SIGALRM, on_tick);
    g_default_installed = true;
}

TickTimer::TickTimer(int period_ms, int signo, void (*handler)(int)) : period_ms_(period_ms), signo_(signo) {
    if (handler == nullptr && signo == SIGALRM) {
        install_default_handler();
    } else {
        install_tick_handler(signo, handler != nullptr ? handler : on_tick);
        if (signo == SIGALRM) g_default_installed = false;  // another handler holds it now
    }
    arm();
}

void TickTimer::arm() {
    struct sigevent sev {};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo_;
    sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    timer_t id{};
    check(::timer_create(CLOCK_MONOTONIC, &sev, &id), "timer_create");
    struct itimerspec it {};
    it.it_interval.tv_sec = period_ms_ / 1000;
    it.it_interval.tv_nsec = static_cast<long>(period_ms_ % 1000) * 1000000L;
    it.it_value = it.it_interval;
    if (::timer_settime(id, 0, &it, nullptr) != 0) {
        int err = errno;
        ::timer_delete(id);
        throw_errno("timer_settime", err);
    }
    id_ = id;
    owner_ = ::getpid();
}

// The handler's disposition came with fork; only the timer did not.
void TickTimer::arm_here() {
    if (::getpid() != owner_) arm();
}

TickTimer::~TickTimer() {
    if (::getpid() == owner_) ::timer_delete(id_);
}

}  // namespace ipclab
