#include "ipc/socket_util.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ipc/decimal.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/raw_syscall.hpp"
#include "ipc/session_path.hpp"
#include "ipc/stream_channel.hpp"

namespace ipclab {

Fd new_socket(int domain, int type) {
    Fd fd(::socket(domain, type | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket");
    return fd;
}

AddrInfo::~AddrInfo() {
    if (head) ::freeaddrinfo(head);
}

void resolve(AddrInfo& out, const std::string& host, const std::string& port, int socktype, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &out.head);
    if (rc != 0)
        throw std::runtime_error("cannot resolve " + (host.empty() ? std::string("*") : host) + " port " + port +
                                 ": " + (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
}

namespace {

Fd bind_to(const sockaddr* sa, socklen_t len, int socktype, bool dual_stack) {
    Fd fd = new_socket(sa->sa_family, socktype);
    int one = 1, zero = 0;
    if (socktype == SOCK_STREAM)
        check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), "setsockopt(SO_REUSEADDR)");
    if (sa->sa_family == AF_INET6)
        check(::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof one),
              "setsockopt(IPV6_V6ONLY)");
    if (::bind(fd.get(), sa, len) != 0) throw_errno("bind " + sockaddr_to_string(sa, len));
    return fd;
}

}  // namespace

Fd bind_host_port(const std::string& host, const std::string& port, int socktype) {
    if (host.empty()) {
        try {
            AddrInfo ai;
            resolve(ai, "::", port, socktype, true);
            return bind_to(ai.head->ai_addr, ai.head->ai_addrlen, socktype, true);
        } catch (const SystemError& e) {
            if (e.code().value() == EADDRINUSE || e.code().value() == EACCES) throw;
            AddrInfo ai;
            resolve(ai, "0.0.0.0", port, socktype, true);
            return bind_to(ai.head->ai_addr, ai.head->ai_addrlen, socktype, false);
        }
    }
    AddrInfo ai;
    resolve(ai, host, port, socktype, true);
    std::exception_ptr last;
    for (addrinfo* a = ai.head; a; a = a->ai_next) {
        try {
            return bind_to(a->ai_addr, a->ai_addrlen, socktype, false);
        } catch (const SystemError&) {
            last = std::current_exception();
        }
    }
    std::rethrow_exception(last);
}

std::string socket_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    if (ss.ss_family == AF_INET) return std::to_string(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port));
    if (ss.ss_family == AF_INET6) return std::to_string(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port));
    return "";  // a UNIX socket has a path, not a port
}

std::string bound_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    return sockaddr_to_string(reinterpret_cast<sockaddr*>(&ss), len);
}

namespace {

// "a.b.c.d:port" digit by digit, not by inet_ntop's sprintf: a logging fork
// server's session child formats its peer's name (SocketPending::peer), and
// the printf machinery was windows of libc's code and a deep stack frame
// that only it needed (bin/server's rate fell 8% with them in the child;
// std::to_chars left an out-of-line template and a table in .rodata).
IPCLAB_SESSION_PATH std::string ipv4_with_port(const unsigned char* a, std::uint16_t port) {
    char text[sizeof "255.255.255.255:65535"];
    char* at = text;
    for (int i = 0; i < 4; ++i) {
        at = put_decimal(at, a[i]);
        *at++ = i < 3 ? '.' : ':';
    }
    at = put_decimal(at, port);
    return std::string(text, at);
}

}  // namespace

IPCLAB_SESSION_PATH std::string sockaddr_to_string(const struct sockaddr* sa, socklen_t len) {
    char host[INET6_ADDRSTRLEN] = "?";
    switch (sa->sa_family) {
        case AF_INET: {
            auto* in = reinterpret_cast<const sockaddr_in*>(sa);
            return ipv4_with_port(reinterpret_cast<const unsigned char*>(&in->sin_addr), ntohs(in->sin_port));
        }
        case AF_INET6: {
            auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
            if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))  // an IPv4 peer on the dual-stack socket
                return ipv4_with_port(&in6->sin6_addr.s6_addr[12], ntohs(in6->sin6_port));
            ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
        }
        case AF_UNIX: {
            auto* un = reinterpret_cast<const sockaddr_un*>(sa);
            std::size_t n = len > offsetof(sockaddr_un, sun_path)
                                ? strnlen(un->sun_path, len - offsetof(sockaddr_un, sun_path))
                                : 0;
            return n ? std::string(un->sun_path, n) : std::string("unix peer");
        }
        default:
            return "family " + std::to_string(sa->sa_family);
    }
}

int connect_within(int fd, const struct sockaddr* sa, socklen_t len, int timeout_ms) {
    set_nonblocking(fd, true);
    int rc = ::connect(fd, sa, len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS || err == EINTR) {
        if (!wait_fd(fd, POLLOUT, timeout_ms > 0 ? timeout_ms : -1, "connect")) return ETIMEDOUT;
        socklen_t elen = sizeof err;
        check(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen), "getsockopt(SO_ERROR)");
    }
    if (err == 0) set_nonblocking(fd, false);
    return err;
}

int connect_bounded(int fd, const struct sockaddr* sa, socklen_t len, int timeout_ms) {
    if (::connect(fd, sa, len) == 0) return 0;
    int err = errno;
    // SO_SNDTIMEO expired: EINPROGRESS for TCP, EAGAIN for a UNIX socket.
    if (err == EINPROGRESS || err == EAGAIN) return ETIMEDOUT;
    if (err != EINTR) return err;
    // Interrupted: the connection goes on in the background; wait for it.
    if (!wait_fd(fd, POLLOUT, timeout_ms > 0 ? timeout_ms : -1, "connect")) return ETIMEDOUT;
    socklen_t elen = sizeof err;
    check(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen), "getsockopt(SO_ERROR)");
    return err;
}

namespace {

class SocketPending final : public PendingSession {
public:
    // inherited_timeout_ms: the timeout the socket came with from its
    // listener (set_inherited_tcp_options), if any.
    SocketPending(Fd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}
    // A session accepted here keeps the peer's address and formats it only
    // when asked (the log line): inet_ntop's sprintf, run per accept in a fork
    // server's parent, wrote a stack page below its loop that the parent
    // shares with its newest child, a copy-on-write fault per session (perf
    // record -e page-faults, call chains: __vfprintf_internal <- accept_ready).
    SocketPending(Fd fd, const sockaddr_storage& address, socklen_t address_len,
                  std::optional<int> inherited_timeout_ms)
        : fd_(std::move(fd)),
          address_len_(std::min<socklen_t>(address_len, sizeof address_)),
          inherited_timeout_ms_(inherited_timeout_ms) {
        std::memcpy(&address_, &address, address_len_);
    }
    IPCLAB_SESSION_PATH std::string peer() const override {
        if (address_len_ == 0) return peer_;
        return sockaddr_to_string(reinterpret_cast<const sockaddr*>(&address_), address_len_);
    }
    IPCLAB_SESSION_PATH std::unique_ptr<Channel> open(const Limits& limits) override {
        return open_stream_session(std::move(fd_), limits, limits.timeout_ms == inherited_timeout_ms_);
    }
    Fd release_descriptor() override { return std::move(fd_); }

private:
    Fd fd_;
    std::string peer_;  // a name given, or
    sockaddr_storage address_;  // the address accept gave (address_len_ > 0)
    socklen_t address_len_ = 0;
    std::optional<int> inherited_timeout_ms_;
};

}  // namespace

std::unique_ptr<PendingSession> adopt_socket_session(Fd fd, std::string peer) {
    return std::make_unique<SocketPending>(std::move(fd), std::move(peer));
}

std::string SocketListener::bound_port() const { return socket_port(fd_.get()); }

SocketListener::SocketListener(Fd fd, std::string description, std::optional<InstanceLock> lock,
                               OwnedPath path)
    : fd_(std::move(fd)),
      description_(std::move(description)),
      lock_(std::move(lock)),
      path_(std::move(path)) {
    // Non-blocking so a connection that vanishes between poll and accept
    // cannot block the server.
    set_nonblocking(fd_.get(), true);
}

bool wait_listener(int fd, int wake_fd, const char* what) {
    struct pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    // A fork server's parent waits here while its session child runs, and
    // the child's end (SIGCHLD) interrupts the wait. glibc's poll would store
    // EINTR in errno, a write to the page of thread-local storage that the
    // parent shares with that child: a page fault per session. ppoll without
    // a timeout or mask is poll; raw_syscall leaves errno alone. Not under
    // ThreadSanitizer, which runs a signal's handler only at a call it
    // intercepts: behind a raw system call the stop signal's handler never
    // ran, and the server waited on (tcp_e2e_test's stops timed out).
#if defined(__SANITIZE_THREAD__)
    const long n = ::poll(p, wake_fd >= 0 ? 2 : 1, -1) < 0 ? -errno : 0;
#else
    const long n = raw_syscall(SYS_ppoll, reinterpret_cast<long>(p), wake_fd >= 0 ? 2 : 1);
#endif
    if (n < 0) {
        if (n == -EINTR) return false;
        throw_errno(std::string("poll ") + what, static_cast<int>(-n));
    }
    return (p[0].revents & POLLIN) != 0;
}

std::unique_ptr<PendingSession> SocketListener::accept(int wake_fd) {
    if (!wait_listener(fd_.get(), wake_fd, "listener")) return nullptr;
    return accept_ready();
}

std::unique_ptr<PendingSession> SocketListener::accept_ready() {
    struct sockaddr_storage ss {};
    socklen_t len = sizeof ss;
    Fd conn(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC));
    if (!conn) {
        // The peer may have reset before we got to it; that is not our failure.
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
            errno == EPROTO)
            return nullptr;
        throw_errno("accept");
    }
    if ((ss.ss_family == AF_INET || ss.ss_family == AF_INET6) && !inherited_timeout_ms_) {
        int one = 1;
        check(::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
              "setsockopt(TCP_NODELAY)");
    }
    return std::make_unique<SocketPending>(std::move(conn), ss, len, inherited_timeout_ms_);
}

void SocketListener::set_inherited_tcp_options(int timeout_ms) {
    int one = 1;
    check(::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "setsockopt(TCP_NODELAY)");
    // Accepted sockets inherit it. Their reads are bounded by the session's
    // reader (io.hpp: set_send_timeout).
    set_send_timeout(fd_.get(), timeout_ms);
    inherited_timeout_ms_ = timeout_ms;
}

IPCLAB_SESSION_PATH void SocketListener::close_in_child() noexcept {
    fd_.close_in_exiting_child();
    if (lock_) lock_->close_in_child();
}

}  // namespace ipclab
