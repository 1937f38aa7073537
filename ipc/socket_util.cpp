#include "ipc/socket_util.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>

#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/stream_channel.hpp"

namespace ipclab {

Fd new_socket(int domain, int type) {
    Fd fd(::socket(domain, type | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket");
    return fd;
}

std::string sockaddr_to_string(const struct sockaddr* sa, socklen_t len) {
    char host[INET6_ADDRSTRLEN] = "?";
    switch (sa->sa_family) {
        case AF_INET: {
            auto* in = reinterpret_cast<const sockaddr_in*>(sa);
            ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
        }
        case AF_INET6: {
            auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
            if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {  // an IPv4 peer on the dual-stack socket
                ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
                return std::string(host) + ":" + std::to_string(ntohs(in6->sin6_port));
            }
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

namespace {

class SocketPending final : public PendingSession {
public:
    SocketPending(Fd fd, std::string peer) : fd_(std::move(fd)), peer_(std::move(peer)) {}
    std::string peer() const override { return peer_; }
    std::unique_ptr<Channel> open(const Limits& limits) override {
        return open_stream_session(std::move(fd_), limits);
    }
    Fd release_descriptor() override { return std::move(fd_); }

private:
    Fd fd_;
    std::string peer_;
};

}  // namespace

std::unique_ptr<PendingSession> adopt_socket_session(Fd fd, std::string peer) {
    return std::make_unique<SocketPending>(std::move(fd), std::move(peer));
}

std::string SocketListener::bound_port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    check(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    if (ss.ss_family == AF_INET) return std::to_string(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port));
    if (ss.ss_family == AF_INET6) return std::to_string(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port));
    return "";  // a UNIX socket has a path, not a port
}

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

std::unique_ptr<PendingSession> SocketListener::accept(int wake_fd) {
    struct pollfd p[2] = {{fd_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(p, wake_fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
        if (errno == EINTR) return nullptr;
        throw_errno("poll listener");
    }
    if (!(p[0].revents & POLLIN)) return nullptr;
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
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        int one = 1;
        check(::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
              "setsockopt(TCP_NODELAY)");
    }
    std::string peer = sockaddr_to_string(reinterpret_cast<sockaddr*>(&ss), len);
    return std::make_unique<SocketPending>(std::move(conn), std::move(peer));
}

void SocketListener::close_in_child() noexcept {
    fd_.reset();
    if (lock_) lock_->close_in_child();
}

}  // namespace ipclab
