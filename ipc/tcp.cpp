// TCP over IPv4 and IPv6, resolved with getaddrinfo.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {
constexpr int kBacklog = 1024;
}  // namespace

std::unique_ptr<Listener> listen_tcp(const Endpoint& ep, const Limits& limits) {
    if (ep.port.empty()) throw std::invalid_argument("tcp needs a PORT");
    Fd fd = bind_host_port(ep.host, ep.port, SOCK_STREAM);
    check(::listen(fd.get(), kBacklog), "listen");
    std::string desc = "tcp " + bound_address(fd.get());
    auto listener = std::make_unique<SocketListener>(std::move(fd), desc, std::nullopt, OwnedPath{});
    listener->set_inherited_tcp_options(limits.timeout_ms);
    return listener;
}

Fd connect_tcp_socket(const Endpoint& ep, int timeout_ms) {
    if (ep.host.empty() || ep.port.empty()) throw std::invalid_argument("tcp needs HOST and PORT");
    AddrInfo ai;
    resolve(ai, ep.host, ep.port, SOCK_STREAM, false);
    std::string failures;
    for (addrinfo* a = ai.head; a; a = a->ai_next) {
        Fd fd = new_socket(a->ai_family, SOCK_STREAM);
        // The session's send timeout first: it bounds the connect too. Reads
        // are bounded by the session's reader or a poll (io.hpp).
        set_send_timeout(fd.get(), timeout_ms);
        int one = 1;
        check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "setsockopt(TCP_NODELAY)");
        int err = connect_bounded(fd.get(), a->ai_addr, a->ai_addrlen, timeout_ms);
        if (err == 0) return fd;
        if (!failures.empty()) failures += "; ";
        failures += sockaddr_to_string(a->ai_addr, a->ai_addrlen) + ": " +
                    (err == ETIMEDOUT ? std::string("timed out") : std::strerror(err));
    }
    throw std::runtime_error("cannot connect to " + ep.host + " port " + ep.port + " (" +
                             failures + ")");
}

std::unique_ptr<Channel> connect_tcp(const Endpoint& ep, const Limits& limits) {
    StreamFds fds{connect_tcp_socket(ep, limits.timeout_ms), Fd{}, true};
    return make_framed_channel(std::move(fds), limits, true, ep.reply, true);
}

}  // namespace ipclab
