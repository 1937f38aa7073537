#include "ipc/queue_util.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/private_dir.hpp"

namespace ipclab {

long read_proc_long(const char* path, long fallback) {
    std::ifstream in(path);
    long v = 0;
    if (in >> v && v > 0) return v;
    return fallback;
}

pid_t server_pid_from_lock(const std::string& transport, const std::string& name) {
    std::ifstream in(existing_private_dir() + "/" + name + "." + transport + ".lock");
    long pid = 0;
    if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
    return 0;
}

void create_marker(const std::string& path) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw_errno("create marker " + path);
}

struct timespec realtime_after(int ms) {
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += static_cast<long>(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

namespace {

void on_tick(int) {}  // only there to make blocked calls return EINTR

void install_tick_handler(int signo, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: msgsnd/msgrcv must return EINTR
    check(::sigaction(signo, &sa, nullptr), "sigaction(tick)");
}

}  // namespace

TickTimer::TickTimer(int period_ms, int signo, void (*handler)(int)) : owner_(::getpid()) {
    install_tick_handler(signo, handler != nullptr ? handler : on_tick);
    struct sigevent sev {};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    check(::timer_create(CLOCK_MONOTONIC, &sev, &id_), "timer_create");
    struct itimerspec it {};
    it.it_interval.tv_sec = period_ms / 1000;
    it.it_interval.tv_nsec = static_cast<long>(period_ms % 1000) * 1000000L;
    it.it_value = it.it_interval;
    if (::timer_settime(id_, 0, &it, nullptr) != 0) {
        int err = errno;
        ::timer_delete(id_);
        throw_errno("timer_settime", err);
    }
}

TickTimer::~TickTimer() {
    if (::getpid() == owner_) ::timer_delete(id_);
}

}  // namespace ipclab
