#include "server/session_threads.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/io.hpp"

namespace ipclab {

namespace {

// Real-time, so it never meets the transports' SIGALRM ticks or the
// server's sweep (SIGRTMIN+1) and grace (SIGRTMIN+2) signals.
int wake_signal() { return SIGRTMIN + 3; }

void on_wake(int) {}  // only there to make the thread's system call return EINTR

}  // namespace

SessionThreads::SessionThreads(std::function<void(int)> ended) : ended_(std::move(ended)) {
    struct sigaction sa {};
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the wait must return EINTR
    check(::sigaction(wake_signal(), &sa, nullptr), "sigaction(wake)");
}

SessionThreads::~SessionThreads() {
    // Normally empty: the server joined every thread as it reported its end.
    // Otherwise (an exception unwinding the server) end them as a shutdown
    // does: a stop request, then wakes until each has unwound. A wake can
    // land just before a thread blocks, so it is repeated.
    if (size() == 0) return;
    request_stop();
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
        std::vector<std::thread> ended;
        {
            std::lock_guard<std::mutex> lock(mu_);
            for (auto it = live_.begin(); it != live_.end();) {
                if (it->second.done->load()) {
                    ended.push_back(std::move(it->second.thread));
                    it = live_.erase(it);
                } else {
                    ++it;
                }
            }
            wake_unlocked();
        }
        for (auto& t : ended) t.join();
        if (size() == 0) return;
        if (std::chrono::steady_clock::now() > give_up) {
            std::fprintf(stderr, "server: %zu session thread(s) did not end; exiting\n", size());
            ::_exit(1);  // std::thread's destructor would abort instead
        }
        ::usleep(20000);
    }
}

int SessionThreads::start(const char* name, std::function<void()> body) {
    std::lock_guard<std::mutex> lock(mu_);
    int id = next_id_++;
    auto done = std::make_shared<std::atomic<bool>>(false);
    // The signals the main thread handles, blocked while a thread is made so
    // it starts (and stays) with them blocked.
    SignalsBlocked blocked({SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGQUIT});
    try {
        std::thread t([this, id, done, name, body = std::move(body)] {
            ::pthread_setname_np(::pthread_self(), name);  // a name only: failing is harmless
            body();
            done->store(true);
            ended_(id);
        });
        live_.emplace(id, Live{std::move(t), done});
    } catch (const std::system_error& e) {
        throw SystemError(e.code(), "cannot start a session thread");
    }
    return id;
}

void SessionThreads::join(int id) {
    std::thread t;
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = live_.find(id);
        if (it == live_.end()) return;
        t = std::move(it->second.thread);
        live_.erase(it);
    }
    t.join();  // it reported its end: returns at once
}

void SessionThreads::wake_all() {
    std::lock_guard<std::mutex> lock(mu_);
    wake_unlocked();
}

void SessionThreads::wake_unlocked() {
    // pthread_kill on a thread that ended but is not joined yet is valid
    // (its handle lives until the join) and does nothing.
    for (auto& [id, live] : live_) ::pthread_kill(live.thread.native_handle(), wake_signal());
}

std::size_t SessionThreads::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.size();
}

}  // namespace ipclab
