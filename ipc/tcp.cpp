// TCP over IPv4 and IPv6, resolved with getaddrinfo.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

constexpr int kBacklog = 1024;

struct AddrInfo {
    addrinfo* head = nullptr;
    AddrInfo() = default;
    AddrInfo(const AddrInfo&) = delete;  // one owner frees the list
    AddrInfo& operator=(const AddrInfo&) = delete;
    ~AddrInfo() {
        if (head) ::freeaddrinfo(head);
    }
};

void resolve(AddrInfo& out, const std::string& host, const std::string& port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &out.head);
    if (rc != 0)
        throw std::runtime_error("cannot resolve " + (host.empty() ? std::string("*") : host) +
                                 " port " + port + ": " +
                                 (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
}

Fd bind_listen(const sockaddr* sa, socklen_t len, bool dual_stack) {
    Fd fd = new_socket(sa->sa_family, SOCK_STREAM);
    int one = 1, zero = 0;
    check(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
          "setsockopt(SO_REUSEADDR)");
    if (sa->sa_family == AF_INET6)
        check(::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one,
                           sizeof one),
              "setsockopt(IPV6_V6ONLY)");
    if (::bind(fd.get(), sa, len) != 0) throw_errno("bind " + sockaddr_to_string(sa, len));
    check(::listen(fd.get(), kBacklog), "listen");
    return fd;
}

std::string bound_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    return sockaddr_to_string(reinterpret_cast<sockaddr*>(&ss), len);
}

}  // namespace

std::unique_ptr<Listener> listen_tcp(const Endpoint& ep, const Limits&) {
    if (ep.port.empty()) throw std::invalid_argument("tcp needs a PORT");
    Fd fd;
    if (ep.host.empty()) {
        // One dual-stack IPv6 socket serves IPv4 and IPv6 on every interface;
        // fall back to IPv4 where IPv6 is disabled.
        try {
            AddrInfo ai;
            resolve(ai, "::", ep.port, true);
            fd = bind_listen(ai.head->ai_addr, ai.head->ai_addrlen, true);
        } catch (const SystemError& e) {
            if (e.code().value() == EADDRINUSE || e.code().value() == EACCES) throw;
            AddrInfo ai;
            resolve(ai, "0.0.0.0", ep.port, true);
            fd = bind_listen(ai.head->ai_addr, ai.head->ai_addrlen, false);
        }
    } else {
        AddrInfo ai;
        resolve(ai, ep.host, ep.port, true);
        std::exception_ptr last;
        for (addrinfo* a = ai.head; a && !fd; a = a->ai_next) {
            try {
                fd = bind_listen(a->ai_addr, a->ai_addrlen, false);
            } catch (const SystemError&) {
                last = std::current_exception();
            }
        }
        if (!fd) std::rethrow_exception(last);
    }
    std::string desc = "tcp " + bound_address(fd.get());
    return std::make_unique<SocketListener>(std::move(fd), desc, std::nullopt, OwnedPath{});
}

Fd connect_tcp_socket(const Endpoint& ep, int timeout_ms) {
    if (ep.host.empty() || ep.port.empty()) throw std::invalid_argument("tcp needs HOST and PORT");
    AddrInfo ai;
    resolve(ai, ep.host, ep.port, false);
    std::string failures;
    for (addrinfo* a = ai.head; a; a = a->ai_next) {
        Fd fd = new_socket(a->ai_family, SOCK_STREAM);
        int err = connect_within(fd.get(), a->ai_addr, a->ai_addrlen, timeout_ms);
        if (err == 0) {
            int one = 1;
            check(::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one),
                  "setsockopt(TCP_NODELAY)");
            return fd;
        }
        if (!failures.empty()) failures += "; ";
        failures += sockaddr_to_string(a->ai_addr, a->ai_addrlen) + ": " +
                    (err == ETIMEDOUT ? std::string("timed out") : std::strerror(err));
    }
    throw std::runtime_error("cannot connect to " + ep.host + " port " + ep.port + " (" +
                             failures + ")");
}

std::unique_ptr<Channel> connect_tcp(const Endpoint& ep, const Limits& limits) {
    StreamFds fds{connect_tcp_socket(ep, limits.timeout_ms), Fd{}, true};
    return make_framed_channel(std::move(fds), limits, true, ep.reply);
}

}  // namespace ipclab
