// EINTR, short reads/writes and timeouts, handled once for every caller.
//
// Timeouts are in milliseconds; a negative timeout waits forever. A stop
// request (request_stop(), called from a SIGINT/SIGTERM handler) turns the
// next EINTR into an Interrupted exception so blocked callers unwind and
// their RAII owners remove what they created.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>

namespace ipclab {

namespace detail {
// Atomic, not just volatile sig_atomic_t: the thread servers request a
// stop from the main thread while session threads read it. Lock-free, so
// still async-signal-safe.
extern std::atomic<int> g_stop;
}  // namespace detail

// Async-signal-safe: only stores to a lock-free atomic.
void request_stop() noexcept;
// Inline: every message asks, on each side (a call was a tenth of the
// instructions a small framed message spent outside the kernel).
inline bool stop_requested() noexcept { return detail::g_stop.load() != 0; }
void clear_stop() noexcept;

// Called after a system call failed with EINTR: throws Interrupted when a
// stop was requested, otherwise returns so the caller retries.
void on_eintr();

// Ignores SIGPIPE process-wide: a vanished peer must surface as EPIPE, not kill us.
void ignore_sigpipe();

// The set of these signals (for sigprocmask, signalfd).
sigset_t signal_set(std::initializer_list<int> signals);

// Unblocks the signals a program handles. A blocked signal mask survives
// exec: a harness or shell that started us with SIGINT or SIGTERM blocked
// would otherwise leave Ctrl-C and kill pending forever.
void unblock_signals(std::initializer_list<int> signals);

// Blocks signals in this thread while it lives, then restores the mask it
// found. A thread or process started meanwhile begins with them blocked.
class SignalsBlocked {
public:
    explicit SignalsBlocked(std::initializer_list<int> signals);
    ~SignalsBlocked();
    SignalsBlocked(const SignalsBlocked&) = delete;
    SignalsBlocked& operator=(const SignalsBlocked&) = delete;

private:
    sigset_t old_{};
};

// Poll one descriptor for `events`; returns false on timeout. Retries EINTR.
bool wait_fd(int fd, short events, int timeout_ms, const char* what);
// The same over several descriptors: how many are ready (0: the timeout).
int wait_fds(struct pollfd* fds, nfds_t n, int timeout_ms, const char* what);

// A point in time after which an operation has failed. Negative ms: never.
class Deadline {
public:
    explicit Deadline(int timeout_ms);
    static Deadline never() { return Deadline(-1); }
    // Milliseconds left for poll(2): -1 for never, 0 once expired.
    int remaining_ms() const;
    bool expired() const { return remaining_ms() == 0; }

private:
    bool infinite_;
    std::chrono::steady_clock::time_point at_;
};

// A deadline made when it is first asked for, not before: a call that never
// has to wait reads no clock (in a freshly forked session child the first
// clock read costs page faults). Waits that a periodic tick interrupts
// (stream and POSIX queue sessions) ask at the first interruption, so their
// timeout may end one tick late. timeout_ms <= 0: never.
class LazyDeadline {
public:
    explicit LazyDeadline(int timeout_ms) : timeout_ms_(timeout_ms) {}
    const Deadline& get() {
        if (!deadline_) deadline_.emplace(timeout_ms_ > 0 ? timeout_ms_ : -1);
        return *deadline_;
    }
    bool started() const { return deadline_.has_value(); }
    // Milliseconds left, as Deadline::remaining_ms, without starting it:
    // the whole timeout until then.
    int remaining_ms() const {
        if (deadline_) return deadline_->remaining_ms();
        return timeout_ms_ > 0 ? timeout_ms_ : -1;
    }

private:
    int timeout_ms_;
    std::optional<Deadline> deadline_;
};

// While one lives, every wait of this thread ends by its deadline: the
// client's bound on a whole connect or round trip, which a peer trickling
// bytes must not extend (each read, slice or SO_RCVTIMEO would otherwise
// re-arm a timeout of its own). Deadlines made meanwhile are clipped to it,
// and a socket read or write polls for the time left first - except the
// first of each while the cap is a few ms old, whose socket timeout (the
// cap's length) ends as the cap does. Not nestable; timeout_ms <= 0: no cap.
class WaitCap {
public:
    explicit WaitCap(int timeout_ms);
    WaitCap(const WaitCap&) = delete;
    WaitCap& operator=(const WaitCap&) = delete;
    ~WaitCap();
    bool expired() const;
    // Whether one lives in this thread: a lazy deadline (LazyDeadline) must
    // then start at once, or its first slice could outlast the cap.
    static bool active();
};

// One read(2): returns bytes read (0 at EOF). EINTR retried; EAGAIN throws
// TimeoutError (sockets with SO_RCVTIMEO report timeouts that way).
std::size_t read_some(int fd, void* buf, std::size_t len, const char* what);

// Writes every byte of the iovec array, continuing after short writes.
// Sockets use send/sendmsg(MSG_NOSIGNAL); other descriptors write/writev. When
// a non-blocking descriptor is full, waits for room up to timeout_ms (<= 0:
// as long as it takes). send_flags are added to a socket's MSG_NOSIGNAL
// (MSG_MORE: more of the same frame follows at once).
void write_all(int fd, struct iovec* iov, int iovcnt, bool is_socket, int timeout_ms,
               const char* what, int send_flags = 0);
void write_all(int fd, std::span<const std::byte> bytes, bool is_socket, int timeout_ms,
               const char* what);

// One send(2) on a connected datagram socket: a datagram goes whole or not
// at all, so there is no short write to continue. EINTR retried, SO_SNDTIMEO's
// EAGAIN a TimeoutError. (send(2), not sendmsg(2): no msghdr and iovec for
// the kernel to import, which showed in the udp round trip.)
void send_whole(int fd, std::span<const std::byte> bytes, const char* what);

void set_nonblocking(int fd, bool on);
// SO_RCVTIMEO and SO_SNDTIMEO (timeout_ms <= 0: none).
void set_socket_timeouts(int fd, int timeout_ms);
// SO_SNDTIMEO alone: stream sessions bound their reads with a tick instead
// (StreamReader), because a receive timeout arms a kernel timer on every
// read that sleeps: 3-5% of a small round trip here (unix 64 B 1.08 ->
// 1.03 of the raw floor without it, 3 interleaved pairs, pinned 1,1).
void set_send_timeout(int fd, int timeout_ms);

}  // namespace ipclab
