// Socket helpers shared by the TCP, UDP and UNIX-domain transports: checked
// creation, name resolution and binding, bounded connect, and the stream
// listener that TCP and UNIX use.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"
#include "ipc/objects.hpp"

namespace ipclab {

// socket(2) with SOCK_CLOEXEC; throws naming the call.
Fd new_socket(int domain, int type);

// getaddrinfo's list, freed by its one owner.
struct AddrInfo {
    addrinfo* head = nullptr;
    AddrInfo() = default;
    AddrInfo(const AddrInfo&) = delete;
    AddrInfo& operator=(const AddrInfo&) = delete;
    ~AddrInfo();
};

// Resolves host ("" = any) and port for sockets of `socktype` (SOCK_STREAM,
// SOCK_DGRAM), IPv4 and IPv6; passive: addresses to bind. Throws naming both.
void resolve(AddrInfo& out, const std::string& host, const std::string& port, int socktype, bool passive);

// A socket of `socktype` bound to host and port: host "" is every
// interface, through one dual-stack IPv6 socket (IPv4 where IPv6 is
// disabled); otherwise the first of host's addresses that binds. Stream
// sockets get SO_REUSEADDR (a restarted server binds at once); datagram
// sockets do not (two UDP servers would share the port silently).
Fd bind_host_port(const std::string& host, const std::string& port, int socktype);

// The port a TCP or UDP socket is bound to, "" for other families.
std::string socket_port(int fd);
// The address a socket is bound to, as sockaddr_to_string writes it.
std::string bound_address(int fd);

std::string sockaddr_to_string(const struct sockaddr* sa, socklen_t len);

// Connects fd within timeout_ms (<= 0: the kernel's own limit). Returns 0 or
// the errno of the failure (ETIMEDOUT on timeout) so callers can try the next address.
int connect_within(int fd, const struct sockaddr* sa, socklen_t len, int timeout_ms);
// The same for a socket whose SO_SNDTIMEO is already timeout_ms: a blocking
// connect, which Linux bounds by SO_SNDTIMEO, so a connection costs no
// fcntl pair, poll and getsockopt (six system calls per session on top of
// socket, connect and the exchange, measured with strace).
int connect_bounded(int fd, const struct sockaddr* sa, socklen_t len, int timeout_ms);

// A listener's wait: true when fd is readable; false when wake_fd is
// (-1: none) or a signal interrupted the wait.
bool wait_listener(int fd, int wake_fd, const char* what);

// A pending session over an accepted stream socket that came from another
// process (server --accept-lock pass-fd), described as peer.
std::unique_ptr<PendingSession> adopt_socket_session(Fd fd, std::string peer);

// A listening stream socket (TCP or UNIX) plus whatever names it owns.
class SocketListener final : public Listener {
public:
    SocketListener(Fd fd, std::string description, std::optional<InstanceLock> lock,
                   OwnedPath path);
    std::string describe() const override { return description_; }
    std::string bound_port() const override;
    std::unique_ptr<PendingSession> accept(int wake_fd) override;
    int pollable_fd() const override { return fd_.get(); }
    std::unique_ptr<PendingSession> accept_ready() override;
    void close_in_child() noexcept override;
    // TCP: sets TCP_NODELAY and the session timeouts on the listening
    // socket, which Linux copies into every socket accept returns, so no
    // session pays three setsockopt calls for them (the child opens its
    // session with them in place when its limits ask for the same timeout).
    void set_inherited_tcp_options(int timeout_ms);

private:
    std::optional<int> inherited_timeout_ms_;
    Fd fd_;
    std::string description_;
    std::optional<InstanceLock> lock_;
    OwnedPath path_;
};

}  // namespace ipclab
