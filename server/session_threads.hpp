// The threads of the thread and prethread servers (UNP vol. 1 ch. 30's
// thread-per-client and prethreaded designs), kept by the server's main
// thread. A thread reports its end through a callback (the main loop's
// self-pipe), and the main thread joins it there, so a live count is exact
// and no thread is ever left unjoined.
//
// Signals: the process-directed ones (SIGINT, SIGTERM, SIGCHLD, the orphan
// sweep's tick) stay blocked in these threads, so the kernel delivers them
// to the main thread, whose handlers feed the self-pipe. A thread's blocking
// wait is ended by wake(): a no-op signal sent to that thread alone, which
// makes its system call return EINTR; after request_stop() that EINTR
// unwinds the session (Interrupted), as a SIGTERM does in a forked child.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace ipclab {

// The threads' names, as `top -H` and the tests see them.
inline constexpr const char* kSessionThreadName = "ipclab-session";  // thread: one per session
inline constexpr const char* kPoolThreadName = "ipclab-pool";        // prethread: the pool

class SessionThreads {
public:
    // ended(id) is called by each thread as its last act (async: from that
    // thread); the owner then calls join(id) from its own thread.
    explicit SessionThreads(std::function<void(int id)> ended);
    SessionThreads(const SessionThreads&) = delete;
    SessionThreads& operator=(const SessionThreads&) = delete;
    // Joins what is left after waking it with a stop requested: a thread is
    // never abandoned (std::thread would terminate the process).
    ~SessionThreads();

    // Starts body on a new thread named `name` (at most 15 characters: what
    // `top -H` and /proc/PID/task/*/comm show) with the process's signals
    // blocked. Returns its id. Throws SystemError when no thread can be made.
    int start(const char* name, std::function<void()> body);
    // Joins thread id, which has reported its end. Unknown ids are ignored.
    void join(int id);
    // Sends the wake signal to every live thread (see above).
    void wake_all();
    std::size_t size() const;

private:
    struct Live {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;  // set by the thread as it ends
    };
    void wake_unlocked();

    std::function<void(int)> ended_;
    mutable std::mutex mu_;
    std::map<int, Live> live_;
    int next_id_ = 1;
};

}  // namespace ipclab
