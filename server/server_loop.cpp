#include "server/server_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/io.hpp"
#include "ipc/local_heap.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/raw_syscall.hpp"
#include "ipc/session_path.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/tick_timer.hpp"
#include "server/event_loop.hpp"
#include "server/fd_passing.hpp"
#include "server/fork_signal_stack.hpp"
#include "server/live_children.hpp"
#include "server/session.hpp"
#include "server/session_threads.hpp"

namespace ipclab {

namespace {

// Records written by the signal handlers into the self-pipe: a reaped child
// (pid > 0, its wait status), a stop signal (pid = 0, status = signo), the
// orphan sweep's tick (pid = -1) or a session thread's end (pid = -2,
// status = its id; written by that thread).
struct Record {
    pid_t pid;
    int status;
};
constexpr pid_t kSweepRecord = -1;
constexpr pid_t kThreadRecord = -2;
static_assert(sizeof(Record) <= PIPE_BUF, "records must be written atomically");

int g_wake_write = -1;

// The pid of the process whose loop installed these handlers. A fork
// design's session child keeps them rather than installing its own (three
// sigaction calls that faulted in a page of libc's code and one of stack in
// every session) and they tell the two apart: getpid is async-signal-safe.
pid_t g_loop_pid = 0;

bool in_session_child() { return ::getpid() != g_loop_pid; }

// Runs once per session in a fork server, on its ForkFreeSignalStack. Its
// calls leave errno alone (ipc/raw_syscall.hpp), so it has none to restore:
// glibc's waitpid stores ECHILD when it finds no child left, and the store
// and the restore were writes to the page of thread-local storage that the
// parent shares with its newest child, a page fault per session.
void on_child(int) {
    if (in_session_child()) return;  // it has no children of its own
    int status;
    long pid;
    while ((pid = raw_syscall(SYS_wait4, -1, reinterpret_cast<long>(&status), WNOHANG)) > 0) {
        Record r{static_cast<pid_t>(pid), status};
        raw_syscall(SYS_write, g_wake_write, reinterpret_cast<long>(&r), sizeof r);
    }
}

// The iterative server serves sessions in its own process, so a stop must
// reach the session in progress: the first SIGINT/SIGTERM sets the end of
// the grace period, the grace tick (or a second signal) requests the stop
// that the session's next wait turns into Interrupted.
std::atomic<std::int64_t> g_stop_at_ns{0};  // 0: no stop signal yet
std::int64_t g_grace_ns = 0;
bool g_serving_here = false;
static_assert(std::atomic<std::int64_t>::is_always_lock_free, "used from signal handlers");

void on_stop(int signo) {
    // Ctrl-C reaches the whole process group; the parent decides when its
    // children end, so a child ignores SIGINT and unwinds on SIGTERM.
    if (in_session_child()) {
        if (signo == SIGTERM) request_stop();
        return;
    }
    int saved = errno;
    Record r{0, signo};
    [[maybe_unused]] ssize_t n = ::write(g_wake_write, &r, sizeof r);
    if (g_serving_here) {
        if (g_stop_at_ns.load() != 0 || g_grace_ns == 0)
            request_stop();
        else
            g_stop_at_ns.store(monotonic_ns() + g_grace_ns);
    }
    errno = saved;
}

void on_grace_tick(int) {
    std::int64_t at = g_stop_at_ns.load();
    if (at != 0 && monotonic_ns() >= at) request_stop();
}

// One sweep record at a time: while an iterative server is inside a long
// session nobody drains the pipe, and ticks must not fill it and crowd out
// a stop record.
std::atomic<bool> g_sweep_pending{false};

void on_sweep_tick(int) {
    if (g_sweep_pending.exchange(true)) return;
    int saved = errno;
    Record r{kSweepRecord, 0};
    [[maybe_unused]] ssize_t n = ::write(g_wake_write, &r, sizeof r);
    errno = saved;
}

// How often the listener's orphan sweep runs (see Listener::orphan_sweep):
// a leftover of a client killed while it connected lives at most about this
// long while the server serves. A sweep lists this endpoint's objects in the
// private directory (and /dev/shm): well under a millisecond per second.
constexpr int kSweepMs = 1000;
// The tick's signal: real-time, so it never meets the transports' SIGALRM.
// Timers are not inherited by fork, so children never receive it.
const int kSweepSignal = SIGRTMIN + 1;
// The iterative server's grace tick, while it serves a session: how late
// after the grace period the session in progress is ended, at most.
constexpr int kGraceTickMs = 100;
// How often session threads are woken while the server waits for them to
// leave accept (prethread) or unwind after the grace period.
constexpr int kThreadWakeMs = 100;
const int kGraceSignal = SIGRTMIN + 2;

void set_handler(int signo, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    // No SA_RESTART: waits must wake. SIGCHLD's handler runs on the
    // ForkFreeSignalStack if this thread has one.
    sa.sa_flags = signo == SIGCHLD ? SA_NOCLDSTOP | SA_ONSTACK : 0;
    check(::sigaction(signo, &sa, nullptr), "sigaction");
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

// A prefork worker's view of the supervisor's listener: it takes sessions
// from it (holding the pool's accept lock, if it has one, while it waits)
// but owns nothing (no names removed, no orphan sweep of its own).
class BorrowedListener final : public Listener {
public:
    BorrowedListener(Listener& l, AcceptLock* lock) : l_(l), lock_(lock) {}
    std::string describe() const override { return l_.describe(); }
    std::string bound_port() const override { return l_.bound_port(); }
    std::unique_ptr<PendingSession> accept(int wake_fd) override {
        if (!lock_) return l_.accept(wake_fd);
        if (!lock_->acquire(wake_fd)) return nullptr;  // a stop (or a signal): the loop looks why
        struct Held {
            AcceptLock* lock;
            ~Held() { lock->release(); }
        } held{lock_};
        return l_.accept(wake_fd);
    }
    void close_in_child() noexcept override { l_.close_in_child(); }

private:
    Listener& l_;
    AcceptLock* lock_;
};

class Parent {
public:
    Parent(std::unique_ptr<Listener> listener, const ServerOptions& options)
        : listener_(std::move(listener)), options_(options) {
        live_.reserve(std::min<std::size_t>(std::max<std::size_t>(options_.max_clients, options_.workers) + 1, 4096));
        int fds[2];
        check(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
        wake_read_.reset(fds[0]);
        wake_write_.reset(fds[1]);
        g_wake_write = wake_write_.get();
        g_loop_pid = ::getpid();
        for (int s : {SIGCHLD, SIGINT, SIGTERM, kSweepSignal}) {
            struct sigaction old {};
            ::sigaction(s, nullptr, &old);
            saved_.emplace(s, old);
        }
        if (options_.no_reap) {
            set_handler(SIGCHLD, SIG_DFL);  // default, not SIG_IGN, which would reap for us
        } else {
            if (options_.model == ServerModel::fork) signal_stack_.emplace();
            set_handler(SIGCHLD, on_child);
        }
        g_serving_here = options_.model == ServerModel::iterative;  // a prefork worker is iterative
        g_grace_ns = static_cast<std::int64_t>(options_.grace_seconds * 1e9);
        g_stop_at_ns.store(0);
        // Ctrl-C reaches the whole process group: a prefork worker leaves it
        // to the supervisor, whose SIGTERM starts the worker's grace period.
        set_handler(SIGINT, options_.pool_worker ? SIG_IGN : on_stop);
        set_handler(SIGTERM, on_stop);
        unblock_signals({SIGCHLD, SIGINT, SIGTERM, kSweepSignal});
        if (threaded()) {
            threads_ = std::make_unique<SessionThreads>([fd = wake_write_.get()](int id) {
                Record r{kThreadRecord, id};
                [[maybe_unused]] ssize_t n = ::write(fd, &r, sizeof r);
            });
        }
        sweep_ = listener_->orphan_sweep();
        // The tick wakes any wait (accept's poll, msgrcv, wait_wake) through
        // the self-pipe, so sweeps happen while idle and while at --max-clients.
        if (sweep_) tick_ = std::make_unique<TickTimer>(kSweepMs, kSweepSignal, on_sweep_tick);
    }

    ~Parent() {
        tick_.reset();
        // Unblocked while on_stop still handles them: one that came after the
        // last read must not meet the restored (default) disposition.
        stops_blocked_.reset();
        for (auto& [s, old] : saved_) ::sigaction(s, &old, nullptr);
        g_wake_write = -1;
        g_loop_pid = 0;
        g_serving_here = false;
    }

    int run() {
        if (options_.model == ServerModel::prefork) read_stops_from_a_signalfd();
        if (options_.log_sessions && !options_.pool_worker)
            log_line("server: listening on " + listener_->describe() + " (pid " +
                     std::to_string(::getpid()) + ")\n");
        if (options_.model == ServerModel::prefork) return supervise();
        if (options_.model == ServerModel::prethread) return supervise_threads();
        if (options_.model == ServerModel::epoll) return serve_events();
        // Each session child takes its copy of this buffer (never touched
        // here) rather than growing the heap it shares with us; each pending
        // session is made and destroyed in this object, not on the heap.
        if (options_.model == ServerModel::fork) {
            park_read_buffer(kReadBuffer);
            TickTimer::install_default_handler();
            pending_heap_.emplace(pending_storage_.bytes, LocalHeap::Use::pending_sessions);
        }
        if (options_.no_reap)
            log_line("server: --no-reap (teaching mode): ended sessions stay zombies until the "
                     "server exits; --max-clients is not enforced\n");
        while (!stopping_) {
            if (options_.once && started_ > 0) {
                if (live() == 0) break;
                wait_wake(-1);
                continue;
            }
            if (live() >= options_.max_clients) {
                wait_wake(-1);  // a child's end (or a stop) wakes us
                continue;
            }
            if (sweep_due_) {
                sweep_due_ = false;
                sweep_();
            }
            std::unique_ptr<PendingSession> pending = accept_one();
            if (pending) {
                if (options_.model == ServerModel::iterative)
                    serve_here(*pending);
                else if (options_.model == ServerModel::thread)
                    spawn_thread(std::move(pending));
                else
                    spawn(*pending);
            }
        }
        shut_down();
        return 0;
    }

private:
    // The prefork design: keep `workers` children, each an iterative server
    // on the shared listener; replace one that dies. On a stop, every worker
    // is told at once (it stops taking sessions and gives its session in
    // progress the grace period), then shut_down waits as for fork.
    int supervise() {
        if (options_.log_sessions)
            log_line("server: prefork, " + std::to_string(options_.workers) + " workers, accept lock " +
                     accept_lock_name(options_.accept_lock) + "\n");
        accept_lock_ = make_accept_lock(options_.accept_lock);
        while (!stopping_) {
            while (!stopping_ && live_.size() < options_.workers) start_worker();
            if (sweep_due_) {
                sweep_due_ = false;
                sweep_();
            }
            if (passing())
                pass_one();
            else
                wait_wake(-1);  // a worker's end, a sweep tick or a stop
        }
        signal_children(SIGTERM);
        shut_down();
        return 0;
    }

    // The epoll design: this thread serves every session (EventLoop) and
    // takes new ones while under --max-clients. A stop refuses new sessions
    // at once and gives those in progress the grace period, as fork does.
    int serve_events() {
        if (options_.log_sessions) log_line("server: event loop (epoll), one process, one thread\n");
        loop_ = std::make_unique<EventLoop>(options_);
        EventLoop& loop = *loop_;
        loop.watch(wake_read_.get());
        const int listen_fd = listener_->pollable_fd();
        if (listen_fd < 0) throw std::logic_error("--model epoll needs a pollable listener");
        bool listening = false;
        auto listen = [&](bool on) {
            if (on == listening) return;
            on ? loop.watch(listen_fd) : loop.unwatch(listen_fd);
            listening = on;
        };
        Deadline paused(0);  // after a failed accept (e.g. EMFILE): not listening until it expires
        while (!stopping_) {
            bool done_once = options_.once && started_ > 0;
            if (done_once && loop.sessions() == 0) break;
            listen(!done_once && paused.expired() && loop.sessions() < options_.max_clients);
            if (sweep_due_) {
                sweep_due_ = false;
                sweep_();
            }
            for (int fd : loop.run_once(listening || paused.expired() ? -1 : paused.remaining_ms())) {
                if (fd == wake_read_.get()) {
                    drain();
                    continue;
                }
                // Every pending session up to --max-clients, so a burst costs one wake-up.
                while (!stopping_ && loop.sessions() < options_.max_clients && !(options_.once && started_ > 0)) {
                    std::unique_ptr<PendingSession> pending;
                    try {
                        pending = listener_->accept_ready();
                    } catch (const std::exception& e) {
                        log_line(std::string("server: waiting for sessions: ") + e.what() + "\n");
                        listen(false);
                        paused = Deadline(100);
                    }
                    if (!pending) break;
                    std::string peer = pending->peer();
                    loop.add_session(pending->release_descriptor(), std::move(peer));
                    ++started_;
                }
            }
        }
        listen(false);
        shut_down();  // its waits run the loop, so the sessions go on being served in their grace
        return 0;
    }

    bool passing() const { return options_.accept_lock == AcceptLockKind::pass_fd; }

    // One wait on the listener from this process's loop (fork, iterative,
    // a prefork worker, the pass-fd supervisor), then what the signal
    // handlers reported. A rejected hello is logged; a failure to wait is
    // logged and backed off from (e.g. EMFILE), unless a stop came meanwhile:
    // a prefork worker's listener can vanish under it as the pool stops (the
    // supervisor removes a System V queue while its workers wait in msgrcv:
    // EIDRM). nullptr when nothing is pending or the server is stopping.
    std::unique_ptr<PendingSession> accept_one() {
        std::unique_ptr<PendingSession> pending;
        try {
            pending = listener_->accept(wake_fd());
        } catch (const ProtocolError& e) {
            log_line(std::string("server: rejected a session: ") + e.what() + "\n");
        } catch (const std::exception& e) {
            drain();
            if (!stopping_) {
                log_line(std::string("server: waiting for sessions: ") + e.what() + "\n");
                wait_wake(100);
            }
        }
        drain();
        if (stopping_) pending.reset();
        return pending;
    }

    void start_worker() {
        std::pair<Fd, Fd> pair;
        if (passing()) pair = worker_socket_pair();
        const pid_t supervisor = ::getpid();
        // The new worker starts with its stop signals blocked, and its own
        // loop (Parent's constructor) unblocks them once its handlers and
        // self-pipe are set. One landing before that (the supervisor's stop,
        // or PDEATHSIG when the supervisor is killed) ran the inherited
        // handler, which wrote to the supervisor's closed pipe: the stop was
        // lost and the worker waited in accept forever (seen in a test run: a
        // posix-mq worker left in poll after its supervisor was SIGKILLed).
        SignalsBlocked until_the_worker_handles_them({SIGTERM, SIGINT});
        pid_t pid = ::fork();
        if (pid < 0) {
            log_line(std::string("server: fork of a worker failed: ") + std::strerror(errno) + "\n");
            wait_wake(1000);  // back off; the loop tries again
            return;
        }
        if (pid == 0) worker(std::move(pair.second), supervisor);
        live_.add(pid);
        if (passing()) pairs_[pid] = std::move(pair.first);
        ++started_;
    }

    // passed: with pass-fd, this worker's end of its pair (it never touches
    // the listening socket); else the worker waits on the shared listener.
    [[noreturn]] void worker(Fd passed, pid_t supervisor) {
        // A supervisor that is SIGKILLed cannot end its pool: without this
        // its workers would go on accepting on the listening socket forever
        // (seen: two orphaned workers after a killed test server).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != supervisor) ::_exit(0);  // it died before the prctl
        wake_read_.reset();
        wake_write_.reset();
        wake_set_.reset();
        stop_signals_.reset();
        // stops_blocked_ stays: they stay blocked until the worker's own loop
        // has its handlers (Parent's constructor unblocks them).
        pairs_.clear();  // the other workers' pairs are the supervisor's
        ServerOptions o = options_;
        o.model = ServerModel::iterative;
        o.pool_worker = true;
        int rc = 1;
        const bool passing_to_me = static_cast<bool>(passed);  // else the worker accepts on listener_
        try {
            if (accept_lock_) accept_lock_->enter_worker();
            std::unique_ptr<Listener> source;
            if (passing_to_me) {
                listener_->close_in_child();
                source = std::make_unique<PassedListener>(std::move(passed), listener_->describe());
            } else {
                source = std::make_unique<BorrowedListener>(*listener_, accept_lock_.get());
            }
            Parent w(std::move(source), o);
            rc = w.run();
        } catch (const std::exception& e) {
            log_line(std::string("server: worker ") + std::to_string(::getpid()) + ": " + e.what() + "\n");
        }
        if (!passing_to_me) listener_->close_in_child();  // once (Listener::close_in_child)
        ::_exit(rc);
    }

    bool threaded() const {
        return options_.model == ServerModel::thread || options_.model == ServerModel::prethread;
    }

    // The thread design: a thread per session, which owns the pending session.
    void spawn_thread(std::unique_ptr<PendingSession> pending) {
        std::shared_ptr<PendingSession> owned(std::move(pending));
        try {
            threads_->start(kSessionThreadName, [this, owned] { serve_in_thread(*owned); });
            ++started_;
        } catch (const std::exception& e) {
            log_line(std::string("server: ") + e.what() + "; dropped the session from " + owned->peer() + "\n");
        }
    }

    void serve_in_thread(PendingSession& pending) {
        SessionReport report = run_session(pending, options_);
        if (options_.log_sessions) log_report(report, ::getpid());
    }

    // The prethread design: `workers` threads, each accepting (one at a time,
    // under accept_mu_) and serving what it accepted; the main thread only
    // keeps the pool full, sweeps, and stops it.
    int supervise_threads() {
        if (options_.log_sessions)
            log_line("server: prethread, " + std::to_string(options_.workers) + " threads\n");
        int fds[2];
        check(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
        stop_read_.reset(fds[0]);
        stop_write_.reset(fds[1]);
        while (!stopping_) {
            while (!stopping_ && threads_->size() < options_.workers) {
                try {
                    threads_->start(kPoolThreadName, [this] { pool_thread(); });
                    ++started_;
                } catch (const std::exception& e) {
                    log_line(std::string("server: ") + e.what() + "\n");
                    wait_wake(1000);  // back off; the loop tries again
                }
            }
            if (sweep_due_) {
                sweep_due_ = false;
                sweep_();
            }
            wait_wake(-1);  // a thread's end, a sweep tick or a stop
        }
        stop_pool();
        shut_down();
        return 0;
    }

    void pool_thread() {
        while (!pool_stop_.load()) {
            std::unique_ptr<PendingSession> pending;
            bool back_off = false;
            {
                std::lock_guard<std::mutex> lock(accept_mu_);
                if (pool_stop_.load()) break;
                try {
                    pending = listener_->accept(stop_read_.get());
                } catch (const ProtocolError& e) {
                    log_line(std::string("server: rejected a session: ") + e.what() + "\n");
                } catch (const Interrupted&) {
                    break;
                } catch (const std::exception& e) {
                    log_line(std::string("server: waiting for sessions: ") + e.what() + "\n");
                    back_off = true;  // e.g. EMFILE: not while holding the lock
                }
            }
            if (back_off) ::usleep(100000);
            if (pending) serve_in_thread(*pending);
        }
    }

    // Stops the pool taking sessions, then drops the listener (refusing new
    // sessions, removing its names) once no thread is inside accept: the
    // accepting thread wakes from the stop pipe (poll-based listeners) or
    // from a wake signal (the queue and FIFO waits), repeated until it is out.
    void stop_pool() {
        pool_stop_.store(true);
        char b = 1;
        [[maybe_unused]] ssize_t n = ::write(stop_write_.get(), &b, 1);
        Deadline give_up(10000);
        while (!accept_mu_.try_lock()) {
            if (give_up.expired()) {  // every accept returns on EINTR; this would be a bug
                log_line("server: a pool thread did not leave accept; exiting\n");
                ::_exit(1);
            }
            threads_->wake_all();
            wait_wake(kThreadWakeMs);
        }
        tick_.reset();
        listener_.reset();
        accept_mu_.unlock();
    }

    // pass-fd: with an idle worker, accept one session; hand the session's
    // descriptor to the oldest idle worker. A worker that died after saying
    // it was idle is skipped (its pair fails) and the session waits, held
    // here, for the next worker to say it is idle (a replacement will).
    void pass_one() {
        take_idle_announcements();
        if (!held_ && !idle_.empty()) {
            std::unique_ptr<PendingSession> pending = accept_one();
            if (!pending) return;
            held_peer_ = pending->peer();
            held_ = pending->release_descriptor();
        }
        while (held_ && !idle_.empty()) {
            pid_t pid = idle_.front();
            idle_.erase(idle_.begin());
            auto it = pairs_.find(pid);
            if (it == pairs_.end()) continue;
            try {
                send_descriptor(it->second.get(), held_.get(), held_peer_);
                held_.reset();  // our copy closes; the worker has its own
            } catch (const std::exception& e) {
                log_line(std::string("server: handing a session to worker ") + std::to_string(pid) + ": " +
                         e.what() + "\n");
            }
        }
        if (idle_.empty()) {  // wait for a worker to say it is idle (or a stop, a reaped worker)
            std::vector<struct pollfd> p{{wake_fd(), POLLIN, 0}};
            for (auto& [pid, fd] : pairs_) p.push_back({fd.get(), POLLIN, 0});
            ::poll(p.data(), p.size(), -1);  // EINTR is fine: the loop looks again
            drain();
        }
    }

    // Reads the workers' "idle" bytes without blocking.
    void take_idle_announcements() {
        for (auto& [pid, fd] : pairs_) {
            char b[16];
            for (;;) {
                ssize_t n = ::recv(fd.get(), b, sizeof b, MSG_DONTWAIT);
                if (n <= 0) break;  // EAGAIN: nothing more; 0/error: a dead worker, reaped via SIGCHLD
                if (std::find(idle_.begin(), idle_.end(), pid) == idle_.end()) idle_.push_back(pid);
            }
        }
    }

    // The iterative design: the session runs to its end in this process;
    // other clients wait in the listener's backlog (or hello FIFO, or queue).
    void serve_here(PendingSession& pending) {
        ++started_;
        SessionReport report;
        {
            TickTimer grace(kGraceTickMs, kGraceSignal, on_grace_tick);
            report = run_session(pending, options_);
        }
        // A stop that ended the session is in the self-pipe too (drain sees
        // it); cleared here, it no longer interrupts the log line below.
        clear_stop();
        if (options_.log_sessions) log_report(report, ::getpid());
    }

    // Out of line with child(): what a session child runs of this loop is
    // the return from fork and child(), not Parent::run's 10 KiB around them.
    IPCLAB_SESSION_PATH [[gnu::noinline]] void spawn(PendingSession& pending) {
        pid_t pid = ::fork();
        if (pid < 0) {
            log_line(std::string("server: fork failed: ") + std::strerror(errno) +
                     "; dropped the session from " + pending.peer() + "\n");
            return;
        }
        if (pid == 0) child(pending);
        if (!options_.no_reap) live_.add(pid);  // unreaped children are never seen to end
        ++started_;
    }

    IPCLAB_SESSION_PATH [[noreturn, gnu::noinline]] void child(PendingSession& pending) {
        if (signal_stack_) ForkFreeSignalStack::disable_in_child();  // not mapped here
        listener_->close_in_child();
        wake_read_.reset();
        wake_write_.reset();
        // The loop's signal handlers stay: in a session child they ignore
        // SIGCHLD and SIGINT and turn SIGTERM into a stop (on_stop).
        // Only an iterative loop requests stops in its own process; a write
        // here would copy the flag's page for nothing.
        if (stop_requested()) clear_stop();
        // The session's channel, reader and message buffer (ipc/local_heap.hpp).
        LocalHeapStorage<1024> storage;  // a stream session takes about 250 bytes
        LocalHeap session_heap(storage.bytes, LocalHeap::Use::session);
        SessionReport report = run_session(pending, options_);
        if (options_.log_sessions) log_report(report, ::getpid());
        ::_exit(report.clean ? 0 : 1);
    }

    // Handles what the signal handlers reported (and the supervisor's
    // signalfd holds).
    void drain() {
        if (stop_signals_) take_stop_signals();
        std::array<Record, 64> recs;
        for (;;) {
            // Leaves errno alone: a fork server's parent drains after each
            // accept, often an empty pipe (EAGAIN), and glibc's errno store
            // was a page fault per session (see on_child).
            const long n = raw_syscall(SYS_read, wake_read_.get(), reinterpret_cast<long>(recs.data()), sizeof recs);
            if (n <= 0) {
                if (n == -EINTR) continue;
                if (n == 0 || n == -EAGAIN) return;  // empty (0: no writer, which cannot happen while we hold one)
                throw_errno("read(self-pipe)", static_cast<int>(-n));
            }
            for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof(Record); ++i) {
                const Record& r = recs[i];
                if (r.pid == kSweepRecord) {
                    g_sweep_pending.store(false);
                    sweep_due_ = true;
                    continue;
                }
                if (r.pid == kThreadRecord) {
                    if (threads_) threads_->join(r.status);
                    continue;
                }
                if (r.pid == 0) {
                    note_stop_signal();
                    continue;
                }
                live_.remove(r.pid);
                pairs_.erase(r.pid);  // pass-fd: a dead worker's pair, and its word that it was idle
                idle_.erase(std::remove(idle_.begin(), idle_.end(), r.pid), idle_.end());
                bool normal = WIFEXITED(r.status) && WEXITSTATUS(r.status) <= 1;
                if (!normal && options_.log_sessions)
                    log_line("server: child " + std::to_string(r.pid) + " ended abnormally (" +
                             describe_status(r.status) + ")\n");
            }
            // A pipe's read returns what it holds, up to the size asked: a short
            // read emptied it, and another would only say EAGAIN (a system
            // call per session saved).
            if (static_cast<std::size_t>(n) < sizeof recs) return;
        }
    }

    void note_stop_signal() {
        if (stopping_) hurry_ = true;  // a second signal: no more grace
        stopping_ = true;
    }

    // The prefork supervisor takes SIGINT and SIGTERM from a signalfd, not
    // through on_stop: blocked, they wait in the kernel until read, whatever
    // the process is doing, and no handler runs. Under TSan (which defers a
    // handled signal that lands outside a blocking call to its next
    // intercepted call) the prefork stop test hung 1 run in 20-75 under
    // load: the supervisor in poll for good, its on_stop never run (no stop
    // record in 15 s, instrumented), while one worker ran an on_stop of its
    // own. With the signalfd: none in 150 runs. A worker starts with both
    // blocked and unblocks them in its own loop, as before.
    void read_stops_from_a_signalfd() {
        const std::initializer_list<int> stops{SIGINT, SIGTERM};
        stops_blocked_.emplace(stops);
        const sigset_t set = signal_set(stops);
        stop_signals_.reset(check(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), "signalfd"));
        // One descriptor to wait on (the waits take one): readable while the
        // self-pipe or the signalfd is.
        wake_set_.reset(check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
        for (int fd : {wake_read_.get(), stop_signals_.get()})
            epoll_watch_readable(wake_set_.get(), fd, "epoll_ctl(wake set)");
    }

    void take_stop_signals() {
        struct signalfd_siginfo info;
        for (;;) {
            const ssize_t n = ::read(stop_signals_.get(), &info, sizeof info);
            if (n == static_cast<ssize_t>(sizeof info)) {
                note_stop_signal();
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return;  // none left
            if (n < 0) throw_errno("read(signalfd of SIGINT, SIGTERM)");
            throw std::runtime_error("read(signalfd of SIGINT, SIGTERM): " + std::to_string(n) + " bytes, not one record");
        }
    }

    // What the waits poll: the self-pipe, or the supervisor's wake set.
    int wake_fd() const { return wake_set_ ? wake_set_.get() : wake_read_.get(); }

    // Waits for a signal handler's record (or the timeout). In the epoll
    // design the wait is the event loop's, which serves sessions meanwhile.
    void wait_wake(int timeout_ms) {
        if (loop_) {
            loop_->run_once(timeout_ms);  // the self-pipe is among its watched descriptors
        } else {
            struct pollfd p {wake_fd(), POLLIN, 0};
            ::poll(&p, 1, timeout_ms);  // EINTR is fine: drain() sees why
        }
        drain();
    }

    void wait_children(int timeout_ms) {
        Deadline deadline(timeout_ms);
        while (live() > 0 && !hurry_) {
            int left = deadline.remaining_ms();
            if (left == 0) return;
            if (threads_ && stop_requested()) {
                // A wake can land just before a thread blocks: repeat it.
                threads_->wake_all();
                left = left < 0 ? kThreadWakeMs : std::min(left, kThreadWakeMs);
            }
            wait_wake(left);
        }
    }

    // Children, session threads and event-loop sessions still running.
    std::size_t live() const {
        return live_.size() + (threads_ ? threads_->size() : 0) + (loop_ ? loop_->sessions() : 0);
    }

    void signal_children(int signo) {
        live_.for_each([signo](pid_t pid) { ::kill(pid, signo); });
    }

    void shut_down() {
        if (options_.no_reap) {
            if (options_.log_sessions) log_line("server: reaping the zombies left by --no-reap\n");
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
        }
        tick_.reset();
        listener_.reset();  // new sessions are refused from here on; names removed
        if (live() > 0) {
            wait_children(static_cast<int>(options_.grace_seconds * 1000));
            if (live() > 0) {
                if (options_.log_sessions)
                    log_line("server: ending " + std::to_string(live()) +
                             " session(s) still running after the grace period\n");
                hurry_ = false;
                signal_children(SIGTERM);
                if (threads_) request_stop();  // a thread's next EINTR unwinds its session
                if (loop_) loop_->end_all("ended by server shutdown");
                wait_children(2000);
                if (live() > 0) {
                    signal_children(SIGKILL);
                    hurry_ = false;
                    // Threads cannot be killed; woken with the stop requested they end
                    // within a wake or two. ~SessionThreads bounds the rest.
                    wait_children(threads_ ? 30000 : -1);
                }
            }
        }
        // Every child has ended: what clients killed while connecting left
        // behind is nobody's now. Objects of live clients stay theirs.
        if (sweep_) sweep_();
        if (options_.log_sessions && !options_.pool_worker) log_line("server: stopped\n");
    }

    std::unique_ptr<Listener> listener_;
    LocalHeapStorage<256> pending_storage_;    // fork: where accept puts each session
    std::optional<LocalHeap> pending_heap_;
    ServerOptions options_;
    Fd wake_read_, wake_write_;
    std::optional<SignalsBlocked> stops_blocked_;  // prefork supervisor: SIGINT, SIGTERM go to stop_signals_
    Fd stop_signals_;                               // prefork supervisor: signalfd for them
    Fd wake_set_;                                   // prefork supervisor: epoll over wake_read_, stop_signals_
    std::map<int, struct sigaction> saved_;
    std::optional<ForkFreeSignalStack> signal_stack_;  // fork: where SIGCHLD's handler runs
    LiveChildren live_;
    std::function<void()> sweep_;
    std::unique_ptr<TickTimer> tick_;
    std::unique_ptr<SessionThreads> threads_;  // thread, prethread
    std::unique_ptr<EventLoop> loop_;          // epoll
    std::unique_ptr<AcceptLock> accept_lock_;  // prefork with --accept-lock
    std::map<pid_t, Fd> pairs_;                // pass-fd: each worker's socket pair (our end)
    std::vector<pid_t> idle_;                  // pass-fd: workers that said they are idle, oldest first
    Fd held_;                                  // pass-fd: an accepted session no worker has taken yet
    std::string held_peer_;
    std::mutex accept_mu_;                     // prethread: one thread accepts at a time
    std::atomic<bool> pool_stop_{false};       // prethread: take no more sessions
    Fd stop_read_, stop_write_;                // prethread: readable once stopping (wakes polls)
    bool sweep_due_ = false;
    unsigned long started_ = 0;
    bool stopping_ = false;
    bool hurry_ = false;
};

}  // namespace

int run_server(std::unique_ptr<Listener> listener, const ServerOptions& options) {
    Parent parent(std::move(listener), options);
    return parent.run();
}

}  // namespace ipclab
