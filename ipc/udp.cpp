// UDP datagrams, fork per session as UNP vol. 1's concurrent UDP server
// (22.7): the listener's well-known socket only ever takes a new client's
// hello; the server child answers from a new socket of its own, bound to an
// ephemeral port on the address the hello was sent to (IP_PKTINFO) and
// connect()ed to the client, so the session's datagrams reach the child
// directly and the kernel drops any from a third address. The client sends
// its hello unconnected, takes the first welcome of its session from the
// server's host, and connect()s to the address it came from.
//
// Wire format, loss policy and flow control: ipc/datagram.hpp.
//
// End of session: an end datagram, sent without waiting by whichever side
// closes first (best effort: UDP has no FIN). A peer that vanishes without
// one is noticed by the ICMP port-unreachable that a probe sent to it after
// a silent slice draws (ECONNREFUSED on the connected socket: PeerGone; see
// wait_datagram) or, failing that, by the timeout, so a session never hangs.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "ipc/datagram.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/random.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

// A receive waits this long before it probes the peer (see wait_datagram), then up to the last.
constexpr int kFirstSliceMs = 100;
constexpr int kLastSliceMs = 1600;

// What the receive buffer is asked for; the kernel grants at most net.core.rmem_max.
constexpr int kWantReceiveBuffer = 4 << 20;

const char* kind_name(DatagramKind k) {
    switch (k) {
        case DatagramKind::hello: return "hello";
        case DatagramKind::welcome: return "welcome";
        case DatagramKind::data: return "data";
        case DatagramKind::credit: return "credit";
        case DatagramKind::end: break;
    }
    return "end";
}

// Sizes the socket's receive buffer and returns the window to advertise:
// half of what getsockopt reports (the kernel charges each datagram more
// than its bytes; the other half is the margin for that).
std::uint32_t size_receive_buffer(int fd) {
    int want = kWantReceiveBuffer;
    check(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want), "setsockopt(SO_RCVBUF)");
    int got = 0;
    socklen_t len = sizeof got;
    check(::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len), "getsockopt(SO_RCVBUF)");
    auto window = static_cast<std::uint32_t>(got / 2);
    if (window < kMinWindow)
        throw std::runtime_error("udp receive buffer of " + std::to_string(got) + " bytes leaves less than " +
                                 std::to_string(kMinWindow) + " bytes of window (raise net.core.rmem_max)");
    return std::min(window, kMaxWindow);
}

// A send or receive that drew ECONNREFUSED: the ICMP port-unreachable of a peer whose socket is closed.
[[noreturn]] void rethrow_refused(const SystemError& e, const char* what) {
    if (e.code().value() == ECONNREFUSED)
        throw PeerGone(std::string("the peer's port is closed (ICMP port unreachable) ") + what);
    throw;
}

// Pieces up to this size are copied behind the header and sent with send(2)
// rather than gathered by sendmsg(2), whose msghdr and iovec import cost more
// than the copy.
constexpr std::size_t kCopyPiece = 1024;

// One datagram on a connected socket: header and piece in one system call.
void send_datagram(int fd, const DatagramHeader& h, std::span<const std::byte> piece, int timeout_ms) {
    DatagramHeaderBytes header = encode_datagram_header(h);
    try {
        if (piece.size() <= kCopyPiece) {
            std::array<std::byte, kDatagramHeaderSize + kCopyPiece> out;
            std::memcpy(out.data(), header.data(), kDatagramHeaderSize);
            if (!piece.empty()) std::memcpy(out.data() + kDatagramHeaderSize, piece.data(), piece.size());
            send_whole(fd, {out.data(), kDatagramHeaderSize + piece.size()}, "udp datagram");
            return;
        }
        struct iovec iov[2] = {{header.data(), kDatagramHeaderSize},
                               {const_cast<std::byte*>(piece.data()), piece.size()}};
        write_all(fd, iov, 2, true, timeout_ms, "udp datagram");
    } catch (const SystemError& e) {
        rethrow_refused(e, "sending a datagram");
    }
}

// A datagram already queued on fd, without waiting; 0 when there is none.
std::size_t queued_datagram(int fd, PageBuffer& buf) {
    for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return 0;
    }
}

// One datagram from a connected socket into buf; its length. Times out by
// SO_RCVTIMEO. A port-unreachable is reported ahead of the datagrams queued
// before it: what the peer sent before it closed (a refusal) comes first.
std::size_t receive_datagram(int fd, PageBuffer& buf) {
    try {
        return read_some(fd, buf.data(), buf.size(), "udp datagram");
    } catch (const SystemError& e) {
        if (e.code().value() == ECONNREFUSED)
            if (std::size_t n = queued_datagram(fd, buf)) return n;
        rethrow_refused(e, "waiting for a datagram");
    }
}

class UdpChannel final : public Channel {
public:
    UdpChannel(Fd fd, std::uint32_t session, std::uint32_t own_window, std::uint32_t peer_window,
               const Limits& limits)
        : fd_(std::move(fd)),
          session_(session),
          own_window_(own_window),
          peer_piece_(piece_size(peer_window)),
          limits_(limits),
          window_(peer_window),
          assembler_(limits.max_message, own_window),
          buf_(kMaxDatagram + 1) {
        set_socket_timeouts(fd_.get(), limits.timeout_ms);
        // Receives wait a slice at a time (see wait_datagram).
        struct timeval tv {0, first_slice_ms() * 1000};
        check(::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), "setsockopt(SO_RCVTIMEO)");
    }

    ~UdpChannel() override {
        if (peer_ended_ || owner_ != ::getpid()) return;
        // Tell the peer without waiting: if it cannot take this, it is gone anyway.
        DatagramHeader h{DatagramKind::end, FrameType::data, session_, window_.sent_count() + 1, assembler_.received()};
        DatagramHeaderBytes bytes = encode_datagram_header(h);
        (void)::send(fd_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    void send_welcome() {
        DatagramHeader h{DatagramKind::welcome, FrameType::data, session_};
        h.total = own_window_;
        send_datagram(fd_.get(), h, {}, limits_.timeout_ms);
    }

    void send(FrameType type, std::span<const std::byte> payload) override {
        if (peer_ended_) throw PeerGone("the peer ended the session");
        if (send_aborted_) throw PeerGone("the peer answered before the last message was sent");
        if (payload.size() > kMaxWireLength)
            throw ProtocolError("message of " + std::to_string(payload.size()) +
                                " bytes does not fit a datagram header (4 GiB - 1 at most)");
        DatagramHeader h{DatagramKind::data, type, session_};
        h.message = ++messages_sent_;
        h.count = chunk_count(payload.size(), peer_piece_);
        h.total = static_cast<std::uint32_t>(payload.size());
        for (h.index = 0; h.index < h.count; ++h.index) {
            std::size_t at = std::size_t{h.index} * peer_piece_;
            auto piece = payload.subspan(at, std::min(peer_piece_, payload.size() - at));
            std::size_t len = kDatagramHeaderSize + piece.size();
            while (!window_.fits(len)) {
                if (!await_credit()) {
                    send_aborted_ = true;  // the peer spoke first; receive() has it
                    return;
                }
            }
            h.dgram = window_.sent_count() + 1;
            h.ack = assembler_.received();
            try {
                send_datagram(fd_.get(), h, piece, limits_.timeout_ms);
            } catch (const PeerGone&) {
                // The peer closed; if it answered first (a refusal), receive() has that.
                if (!answered_early()) throw;
                send_aborted_ = true;
                return;
            }
            window_.sent(h.dgram, len);
            owed_ = 0;  // the ack went with it
        }
    }

    bool receive(Message& msg) override {
        if (peer_ended_) return false;
        for (;;) {
            std::size_t n = held_ ? std::exchange(held_, 0) : wait_datagram();
            std::span<const std::byte> d(buf_.data(), n);
            DatagramHeader h = take(d);
            if (h.kind == DatagramKind::credit) continue;
            auto result = assembler_.feed(h, d.subspan(kDatagramHeaderSize), msg);
            owe(n);
            if (result == DatagramAssembler::Result::message) return true;
            if (result == DatagramAssembler::Result::end) {
                peer_ended_ = true;
                return false;
            }
        }
    }

private:
    // Decodes a datagram of this session and applies the credit it returns.
    DatagramHeader take(std::span<const std::byte> d) {
        if (d.size() > kMaxDatagram)
            throw ProtocolError("datagram of more than " + std::to_string(kMaxDatagram) + " bytes");
        DatagramHeader h = decode_datagram_header(d);
        if (h.session != session_)
            throw ProtocolError("datagram of session " + std::to_string(h.session) + " in session " +
                                std::to_string(session_));
        if (h.kind != DatagramKind::data && h.kind != DatagramKind::credit && h.kind != DatagramKind::end)
            throw ProtocolError(std::string("unexpected ") + kind_name(h.kind) + " datagram mid-session");
        window_.acked(h.ack);
        return h;
    }

    // Waits for the peer to return credit. False: a data or end datagram
    // came instead (the peer answered early, e.g. refusing the message),
    // held for receive().
    bool await_credit() {
        std::size_t n = wait_datagram();
        if (take({buf_.data(), n}).kind == DatagramKind::credit) return true;
        held_ = n;
        return false;
    }

    // After a send found the peer's port closed: whether it left a data or
    // end datagram queued for us (kept for receive()).
    bool answered_early() {
        while (std::size_t n = queued_datagram(fd_.get(), buf_)) {
            if (take({buf_.data(), n}).kind == DatagramKind::credit) continue;
            held_ = n;
            return true;
        }
        return false;
    }

    // The next datagram, within the timeout. UDP has no FIN: a peer killed
    // while we wait says nothing. So after a silent slice we send it a
    // credit (harmless to a live peer) as a probe: a closed port answers
    // with ICMP port unreachable, and the next receive throws PeerGone. The
    // first slice is the socket's SO_RCVTIMEO (no extra call per message);
    // later ones double, so a long wait sends few probes.
    std::size_t wait_datagram() {
        try {
            return receive_datagram(fd_.get(), buf_);
        } catch (const TimeoutError&) {
        }
        Deadline deadline(limits_.timeout_ms > 0 ? limits_.timeout_ms - first_slice_ms() : -1);
        for (int slice = first_slice_ms();; slice = std::min(2 * slice, kLastSliceMs)) {
            if (deadline.expired())
                throw TimeoutError("timed out after " + std::to_string(limits_.timeout_ms) +
                                   " ms waiting for the peer");
            send_credit();
            int left = deadline.remaining_ms();
            if (wait_fd(fd_.get(), POLLIN, left < 0 ? slice : std::min(slice, left), "udp datagram"))
                return receive_datagram(fd_.get(), buf_);
        }
    }

    // The socket's SO_RCVTIMEO: no longer than the whole timeout.
    int first_slice_ms() const {
        return limits_.timeout_ms > 0 ? std::min(kFirstSliceMs, limits_.timeout_ms) : kFirstSliceMs;
    }

    void send_credit() {
        DatagramHeader h{DatagramKind::credit, FrameType::data, session_};
        h.ack = assembler_.received();
        send_datagram(fd_.get(), h, {}, limits_.timeout_ms);
        owed_ = 0;
    }

    // Counts a datagram taken in; past a quarter of the window, returns
    // credit now rather than with our next message (a one-way stream has none).
    void owe(std::size_t len) {
        owed_ += datagram_cost(len);
        if (owed_ >= own_window_ / 4) send_credit();
    }

    Fd fd_;
    std::uint32_t session_;
    std::uint32_t own_window_;
    std::size_t peer_piece_;  // the piece size the peer's window asks for
    Limits limits_;
    SendWindow window_;
    DatagramAssembler assembler_;
    PageBuffer buf_;           // one datagram (one byte more: an oversized one shows)
    std::size_t held_ = 0;     // length of a datagram in buf_ that await_credit kept
    std::size_t owed_ = 0;     // cost of datagrams taken in since our last ack
    std::uint32_t messages_sent_ = 0;
    pid_t owner_ = ::getpid();
    bool peer_ended_ = false;
    bool send_aborted_ = false;
};

socklen_t address_length(const sockaddr_storage& ss) {
    return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// Fixes a datagram socket's peer (no handshake: it returns at once).
void connect_to_peer(int fd, const sockaddr_storage& peer, socklen_t len, const char* what) {
    const auto* sa = reinterpret_cast<const sockaddr*>(&peer);
    while (::connect(fd, sa, len) != 0) {
        if (errno != EINTR) throw_errno(std::string(what) + " " + sockaddr_to_string(sa, len));
        on_eintr();
    }
}

class UdpPending final : public PendingSession {
public:
    UdpPending(sockaddr_storage local, sockaddr_storage peer, std::uint32_t session, std::uint32_t peer_window)
        : local_(local), peer_(peer), session_(session), peer_window_(peer_window) {}

    std::string peer() const override {
        return sockaddr_to_string(reinterpret_cast<const sockaddr*>(&peer_), address_length(peer_));
    }

    // In the server child: a socket of its own on an ephemeral port of the
    // address the client reached, connected to the client; then the welcome.
    std::unique_ptr<Channel> open(const Limits& limits) override {
        Fd fd = new_socket(local_.ss_family, SOCK_DGRAM);
        std::uint32_t own_window = size_receive_buffer(fd.get());
        sockaddr_storage local = local_;
        if (local.ss_family == AF_INET6)
            reinterpret_cast<sockaddr_in6*>(&local)->sin6_port = 0;
        else
            reinterpret_cast<sockaddr_in*>(&local)->sin_port = 0;
        auto* sa = reinterpret_cast<const sockaddr*>(&local);
        if (::bind(fd.get(), sa, address_length(local)) != 0)
            throw_errno("bind " + sockaddr_to_string(sa, address_length(local)));
        connect_to_peer(fd.get(), peer_, address_length(peer_), "connect udp session to");
        auto ch = std::make_unique<UdpChannel>(std::move(fd), session_, own_window, peer_window_, limits);
        ch->send_welcome();
        return ch;
    }

private:
    sockaddr_storage local_, peer_;
    std::uint32_t session_, peer_window_;
};

// The destination address of a received datagram, from its IP_PKTINFO or
// IPV6_PKTINFO (IPv4 on a dual-stack socket: as a v4-mapped address).
bool packet_destination(msghdr& mh, int family, sockaddr_storage& out) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            out = {};
            if (family == AF_INET) {
                auto* in = reinterpret_cast<sockaddr_in*>(&out);
                in->sin_family = AF_INET;
                in->sin_addr = info.ipi_addr;
            } else {
                auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
                in6->sin6_family = AF_INET6;
                in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
                std::memcpy(&in6->sin6_addr.s6_addr[12], &info.ipi_addr, 4);
            }
            return true;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            out = {};
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
            in6->sin6_family = AF_INET6;
            in6->sin6_addr = info.ipi6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr)) in6->sin6_scope_id = static_cast<std::uint32_t>(info.ipi6_ifindex);
            return true;
        }
    }
    return false;
}

class UdpListener final : public Listener {
public:
    explicit UdpListener(Fd fd) : fd_(std::move(fd)), description_("udp " + bound_address(fd_.get())) {
        socklen_t len = sizeof bound_;
        check(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&bound_), &len), "getsockname");
        int one = 1;
        // Which address each hello was sent to, so the child answers from it.
        if (bound_.ss_family == AF_INET6)
            check(::setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one),
                  "setsockopt(IPV6_RECVPKTINFO)");
        // Also on a dual-stack socket, whose IPv4 datagrams carry IP_PKTINFO.
        int rc = ::setsockopt(fd_.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
        if (rc != 0 && bound_.ss_family == AF_INET) throw_errno("setsockopt(IP_PKTINFO)");
        // Non-blocking: in a prefork pool every worker wakes, one gets the hello.
        set_nonblocking(fd_.get(), true);
    }

    std::string describe() const override { return description_; }
    std::string bound_port() const override { return socket_port(fd_.get()); }

    std::unique_ptr<PendingSession> accept(int wake_fd) override {
        if (!wait_listener(fd_.get(), wake_fd, "udp listener")) return nullptr;
        return accept_ready();
    }
    int pollable_fd() const override { return fd_.get(); }

    std::unique_ptr<PendingSession> accept_ready() override {
        std::byte buf[kDatagramHeaderSize + 1];  // one byte more: an overlong hello shows
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
        sockaddr_storage from{};
        struct iovec iov {buf, sizeof buf};
        msghdr mh{};
        mh.msg_name = &from;
        mh.msg_namelen = sizeof from;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(fd_.get(), &mh, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return nullptr;
            throw_errno("recvmsg udp listener");
        }
        auto size = static_cast<std::size_t>(n);
        std::string who = sockaddr_to_string(reinterpret_cast<sockaddr*>(&from), mh.msg_namelen);
        try {
            if ((mh.msg_flags & MSG_TRUNC) != 0 || size > kDatagramHeaderSize)
                throw ProtocolError("a datagram longer than a hello");
            DatagramHeader h = decode_datagram_header({buf, size});
            if (h.kind != DatagramKind::hello)
                throw ProtocolError(std::string("a ") + kind_name(h.kind) + " datagram, not a hello");
            if (h.total < kMinWindow || h.total > kMaxWindow)
                throw ProtocolError("a receive window of " + std::to_string(h.total) + " bytes");
            sockaddr_storage local = bound_;
            packet_destination(mh, bound_.ss_family, local);
            return std::make_unique<UdpPending>(local, from, h.session, h.total);
        } catch (const ProtocolError& e) {
            throw ProtocolError("udp hello from " + who + " refused: " + e.what());
        }
    }

    void close_in_child() noexcept override { fd_.reset(); }

private:
    Fd fd_;
    std::string description_;
    sockaddr_storage bound_{};
};

bool same_host(const sockaddr_storage& a, const sockaddr* b) {
    if (a.ss_family != b->sa_family) return false;
    if (a.ss_family == AF_INET)
        return reinterpret_cast<const sockaddr_in*>(&a)->sin_addr.s_addr ==
               reinterpret_cast<const sockaddr_in*>(b)->sin_addr.s_addr;
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(b)->sin6_addr, sizeof(in6_addr)) == 0;
}

// The client's side of the rendezvous with one of the server's addresses.
// Returns nullptr when nothing listens there (ICMP port unreachable).
std::unique_ptr<Channel> open_session(const addrinfo* a, const Limits& limits) {
    Fd fd = new_socket(a->ai_family, SOCK_DGRAM);
    // An unconnected socket learns of "port unreachable" only when asked to.
    int one = 1;
    if (a->ai_family == AF_INET6)
        check(::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one), "setsockopt(IPV6_RECVERR)");
    else
        check(::setsockopt(fd.get(), IPPROTO_IP, IP_RECVERR, &one, sizeof one), "setsockopt(IP_RECVERR)");
    std::uint32_t own_window = size_receive_buffer(fd.get());
    std::uint32_t session = 0;
    while (session == 0) session = static_cast<std::uint32_t>(random_u64());
    DatagramHeader hello{DatagramKind::hello, FrameType::data, session};
    hello.total = own_window;
    DatagramHeaderBytes bytes = encode_datagram_header(hello);
    while (::sendto(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL, a->ai_addr, a->ai_addrlen) < 0) {
        if (errno == ECONNREFUSED) return nullptr;
        if (errno != EINTR) throw_errno("sendto " + sockaddr_to_string(a->ai_addr, a->ai_addrlen));
        on_eintr();
    }
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    std::byte buf[kDatagramHeaderSize + 1];
    for (;;) {
        if (!wait_fd(fd.get(), POLLIN, deadline.remaining_ms(), "udp welcome"))
            throw TimeoutError("no udp server answered at " + sockaddr_to_string(a->ai_addr, a->ai_addrlen) +
                               " within " + std::to_string(limits.timeout_ms) + " ms");
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        ssize_t n = ::recvfrom(fd.get(), buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0) {
            if (errno == ECONNREFUSED) return nullptr;
            if (errno == EINTR) on_eintr();
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            throw_errno("recvfrom udp welcome");
        }
        // Only the server's host may answer, and only with our session's
        // welcome; anything else is a third party's and is dropped.
        if (!same_host(from, a->ai_addr)) continue;
        DatagramHeader h;
        try {
            h = decode_datagram_header({buf, static_cast<std::size_t>(n)});
        } catch (const ProtocolError&) {
            continue;
        }
        if (h.kind != DatagramKind::welcome || h.session != session) continue;
        connect_to_peer(fd.get(), from, from_len, "connect udp session to");
        return std::make_unique<UdpChannel>(std::move(fd), session, own_window, h.total, limits);
    }
}

}  // namespace

std::unique_ptr<Listener> listen_udp(const Endpoint& ep, const Limits&) {
    if (ep.port.empty()) throw std::invalid_argument("udp needs a PORT");
    return std::make_unique<UdpListener>(bind_host_port(ep.host, ep.port, SOCK_DGRAM));
}

std::unique_ptr<Channel> connect_udp(const Endpoint& ep, const Limits& limits) {
    if (ep.host.empty() || ep.port.empty()) throw std::invalid_argument("udp needs HOST and PORT");
    AddrInfo ai;
    resolve(ai, ep.host, ep.port, SOCK_DGRAM, false);
    for (addrinfo* a = ai.head; a; a = a->ai_next)
        if (auto ch = open_session(a, limits)) return ch;
    throw std::runtime_error("cannot reach a udp server at " + ep.host + " port " + ep.port +
                             " (connection refused: ICMP port unreachable)");
}

}  // namespace ipclab
