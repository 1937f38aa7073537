#include "ipc/io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <optional>
#include <string>

#include "ipc/error.hpp"
#include "ipc/raw_syscall.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

namespace detail {
std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "set from signal handlers");
}  // namespace detail
using detail::g_stop;

namespace {

// The running WaitCap of this thread (see io.hpp).
struct Cap {
    bool on = false;
    std::chrono::steady_clock::time_point start, at;
    unsigned reads = 0, writes = 0;  // socket calls made under the cap
};
thread_local Cap g_cap;

// Under a cap, a socket call waits here for readiness with the time left,
// so its own SO_RCVTIMEO/SO_SNDTIMEO (the cap's length) never runs past the
// cap. The first read and the first write skip the poll while the cap is
// fresh: their socket timeout then ends within a few ms of the cap, and a
// round trip of small messages costs no extra system call.
void wait_within_cap(int fd, short events, const char* what) {
    if (!g_cap.on) return;
    constexpr auto kFresh = std::chrono::milliseconds(5);
    unsigned& calls = events == POLLIN ? g_cap.reads : g_cap.writes;
    if (calls++ == 0 && std::chrono::steady_clock::now() - g_cap.start < kFresh) return;
    if (!wait_fd(fd, events, -1, what))  // -1 is clipped to the cap
        throw TimeoutError(std::string("timed out ") + (events == POLLIN ? "reading " : "writing ") +
                           what);
}
}  // namespace

WaitCap::WaitCap(int timeout_ms) {
    if (timeout_ms <= 0) return;
    g_cap.on = true;
    g_cap.start = std::chrono::steady_clock::now();
    g_cap.at = g_cap.start + std::chrono::milliseconds(timeout_ms);
    g_cap.reads = g_cap.writes = 0;
}

WaitCap::~WaitCap() { g_cap.on = false; }

bool WaitCap::expired() const { return g_cap.on && std::chrono::steady_clock::now() >= g_cap.at; }

bool WaitCap::active() { return g_cap.on; }

void request_stop() noexcept { g_stop.store(1); }
// Read first: in a freshly forked child the store would cost a copy-on-write fault.
void clear_stop() noexcept {
    if (g_stop.load() != 0) g_stop.store(0);
}

void on_eintr() {
    if (stop_requested()) throw Interrupted();
}

void ignore_sigpipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    check(::sigaction(SIGPIPE, &sa, nullptr), "sigaction(SIGPIPE)");
}

sigset_t signal_set(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals) sigaddset(&set, s);
    return set;
}

void unblock_signals(std::initializer_list<int> signals) {
    sigset_t set = signal_set(signals);
    int rc = ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    if (rc != 0) throw_errno("pthread_sigmask(SIG_UNBLOCK)", rc);
}

SignalsBlocked::SignalsBlocked(std::initializer_list<int> signals) {
    sigset_t set = signal_set(signals);
    int rc = ::pthread_sigmask(SIG_BLOCK, &set, &old_);
    if (rc != 0) throw_errno("pthread_sigmask(SIG_BLOCK)", rc);
}

SignalsBlocked::~SignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

Deadline::Deadline(int timeout_ms)
    : infinite_(timeout_ms < 0),
      at_(std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0))) {
    if (g_cap.on && (infinite_ || at_ > g_cap.at)) {
        infinite_ = false;
        at_ = g_cap.at;
    }
}

int Deadline::remaining_ms() const {
    if (infinite_) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        at_ - std::chrono::steady_clock::now());
    // Round a sub-millisecond remainder up so a nearly-due deadline still polls once.
    return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count() + 1, 1 << 30));
}

bool wait_fd(int fd, short events, int timeout_ms, const char* what) {
    struct pollfd p {fd, events, 0};
    return wait_fds(&p, 1, timeout_ms, what) > 0;
}

int wait_fds(struct pollfd* fds, nfds_t n, int timeout_ms, const char* what) {
    Deadline deadline(timeout_ms);
    for (;;) {
        if (stop_requested()) throw Interrupted();
        int ready = ::poll(fds, n, deadline.remaining_ms());
        if (ready >= 0) return ready;
        if (errno != EINTR) throw_errno(std::string("poll ") + what);
        on_eintr();
    }
}

namespace {

// The socket's SO_RCVTIMEO in ms; -1 when none (or not a socket).
int receive_timeout_ms(int fd) {
    struct timeval tv {};
    socklen_t len = sizeof tv;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) != 0) return -1;
    long ms = tv.tv_sec * 1000L + tv.tv_usec / 1000L;
    return ms > 0 ? static_cast<int>(ms) : -1;
}

}  // namespace

std::size_t read_some(int fd, void* buf, std::size_t len, const char* what) {
    wait_within_cap(fd, POLLIN, what);
    // SO_RCVTIMEO starts again from zero after every signal, so a periodic
    // one (the iterative server's grace tick) would keep a silent peer
    // forever: from the first interruption on, the time is counted here.
    std::optional<Deadline> since_interrupted;
    for (;;) {
        // A signal that landed between system calls left no EINTR to see.
        if (stop_requested()) throw Interrupted();
        ssize_t n = ::read(fd, buf, len);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) {
            on_eintr();
            if (!since_interrupted) {
                since_interrupted.emplace(receive_timeout_ms(fd));
            } else if (since_interrupted->expired()) {
                throw TimeoutError(std::string("timed out reading ") + what);
            }
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            throw TimeoutError(std::string("timed out reading ") + what);
        if (errno == ECONNRESET) throw PeerGone(std::string("connection reset reading ") + what);
        throw_errno(std::string("read ") + what);
    }
}

namespace {

// After a write failed with err: returns when it may be tried again (EINTR;
// room came in a full pipe), throws otherwise.
void before_write_again(int fd, int err, bool is_socket, LazyDeadline& deadline, const char* what) {
    if (err == EINTR) {
        on_eintr();
        return;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
        if (is_socket)  // SO_SNDTIMEO expired
            throw TimeoutError(std::string("timed out writing ") + what);
        if (!wait_fd(fd, POLLOUT, deadline.get().remaining_ms(), what))
            throw TimeoutError(std::string("timed out writing ") + what);
        return;
    }
    if (err == EPIPE || err == ECONNRESET) throw PeerGone(std::string("peer closed while writing ") + what);
    throw_errno(std::string("write ") + what, err);
}

void write_rest(int fd, struct iovec* iov, int iovcnt, bool is_socket, LazyDeadline& deadline,
                const char* what, int send_flags) {
    while (iovcnt > 0) {
        if (stop_requested()) throw Interrupted();
        ssize_t n;
        // One buffer goes by write/send: cheaper in the kernel than an iovec walk.
        if (iovcnt == 1) {
            if (is_socket) wait_within_cap(fd, POLLOUT, what);
            n = is_socket ? ::send(fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL | send_flags)
                          : ::write(fd, iov->iov_base, iov->iov_len);
        } else if (is_socket) {
            wait_within_cap(fd, POLLOUT, what);
            struct msghdr mh {};
            mh.msg_iov = iov;
            mh.msg_iovlen = static_cast<std::size_t>(iovcnt);
            n = ::sendmsg(fd, &mh, MSG_NOSIGNAL | send_flags);
        } else {
            n = ::writev(fd, iov, iovcnt);
        }
        if (n < 0) {
            before_write_again(fd, errno, is_socket, deadline, what);
            continue;
        }
        // Advance past what was written; a short write leaves a partial iovec.
        auto left = static_cast<std::size_t>(n);
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            ++iov;
            --iovcnt;
        }
        if (iovcnt > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
}

}  // namespace

namespace {

// send(2) with MSG_NOSIGNAL by its system call: glibc's send() sits in a
// 64 KiB window of libc's code that nothing else a fork server's session
// child runs touches, so each child faulted it in for its one reply (perf
// record -e page-faults: __send, ~1.1 us on this VM). The C server's child
// writes with write(2), beside its read and close, but write(2) costs more
// than send(2) on every socket message (b55fb33). Under the sanitizers,
// glibc's, which they intercept: ThreadSanitizer sees a socket's hand-over
// between threads there, AddressSanitizer checks the buffer.
[[gnu::always_inline]] inline ssize_t send_nosignal(int fd, const void* buf, std::size_t len) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    return ::send(fd, buf, len, MSG_NOSIGNAL);
#else
    const long n = raw_syscall(SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(len), MSG_NOSIGNAL);
    if (n < 0) {
        errno = static_cast<int>(-n);
        return -1;
    }
    return n;
#endif
}

}  // namespace

void write_all(int fd, struct iovec* iov, int iovcnt, bool is_socket, int timeout_ms,
               const char* what, int send_flags) {
    // Started at the first EAGAIN (the writes before it did not wait): most
    // calls never need it (see LazyDeadline).
    LazyDeadline deadline(timeout_ms);
    write_rest(fd, iov, iovcnt, is_socket, deadline, what, send_flags);
}

IPCLAB_SESSION_PATH void write_all(int fd, std::span<const std::byte> bytes, bool is_socket, int timeout_ms,
                                   const char* what) {
    // The usual case tried first, in a few instructions: one call takes it
    // all (a small message's instructions outside the kernel are most of
    // what it costs beyond the raw floor). A socket under a WaitCap polls
    // first: the general path.
    LazyDeadline deadline(timeout_ms);
    if (!(is_socket && g_cap.on)) {
        if (stop_requested()) throw Interrupted();
        ssize_t n = is_socket ? send_nosignal(fd, bytes.data(), bytes.size()) : ::write(fd, bytes.data(), bytes.size());
        if (n == static_cast<ssize_t>(bytes.size())) [[likely]] return;
        if (n < 0)
            before_write_again(fd, errno, is_socket, deadline, what);
        else
            bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    struct iovec iov {const_cast<std::byte*>(bytes.data()), bytes.size()};
    write_rest(fd, &iov, 1, is_socket, deadline, what, 0);
}

void send_whole(int fd, std::span<const std::byte> bytes, const char* what) {
    for (;;) {
        if (stop_requested()) throw Interrupted();
        wait_within_cap(fd, POLLOUT, what);
        if (::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) >= 0) return;
        if (errno == EINTR) {
            on_eintr();
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) throw TimeoutError(std::string("timed out writing ") + what);
        if (errno == EPIPE || errno == ECONNRESET) throw PeerGone(std::string("peer closed while writing ") + what);
        throw_errno(std::string("send ") + what);
    }
}

void set_nonblocking(int fd, bool on) {
    int flags = check(::fcntl(fd, F_GETFL), "fcntl(F_GETFL)");
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    check(::fcntl(fd, F_SETFL, flags), "fcntl(F_SETFL)");
}

namespace {
struct timeval timeval_of(int timeout_ms) {
    struct timeval tv {};
    if (timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    return tv;
}
}  // namespace

void set_socket_timeouts(int fd, int timeout_ms) {
    struct timeval tv = timeval_of(timeout_ms);
    check(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), "setsockopt(SO_RCVTIMEO)");
    set_send_timeout(fd, timeout_ms);
}

void set_send_timeout(int fd, int timeout_ms) {
    struct timeval tv = timeval_of(timeout_ms);
    check(::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), "setsockopt(SO_SNDTIMEO)");
}

}  // namespace ipclab
