#include "bench/remote_bench.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "bench/ipclab_bench.hpp"
#include "bench/paired_bench.hpp"
#include "bench/ping_pong.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/registry.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/stream_channel.hpp"

namespace ipclab::bench {

namespace {

// How long a remote run waits for any one reply: a network, not a pipe.
constexpr int kRemoteTimeoutMs = 30000;

std::string where(const Endpoint& ep) {
    bool v6 = ep.host.find(':') != std::string::npos;
    return (v6 ? "[" + ep.host + "]" : ep.host) + ":" + ep.port;
}

Endpoint asking(Endpoint ep, SessionReply reply) {
    ep.reply = reply;
    return ep;
}

std::string text_of(const Message& m, std::size_t max = 120) {
    std::string s(reinterpret_cast<const char*>(m.payload.data()), std::min(m.payload.size(), max));
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '.';
    return s;
}

// The remote host's CPU is not measured: a zero would read as "free".
void drop_server_counters(benchmark::State& state) {
    for (auto it = state.counters.begin(); it != state.counters.end();)
        it = it->first.find("server_") != std::string::npos ? state.counters.erase(it) : std::next(it);
}

// The floor: ipclab's wire bytes written with plain calls on a plain socket.
class RawRemotePingPong : public PingPong {
public:
    RawRemotePingPong(const Endpoint& ep, std::size_t size) : fd_(connect_stream(ep, kRemoteTimeoutMs)) {
        timeval tv{kRemoteTimeoutMs / 1000, 0};
        check(::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), "setsockopt(SO_RCVTIMEO)");
        check(::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), "setsockopt(SO_SNDTIMEO)");
        auto opening = opening_bytes(SessionReply::echo);
        writen(fd_.get(), opening.data(), opening.size());
        header_ = encode_header(FrameType::data, size);
        reply_.resize(kFrameHeaderSize + size);
    }

    void round_trip(std::span<const std::byte> request) override {
        iovec iov[2] = {{header_.data(), header_.size()},
                        {const_cast<std::byte*>(request.data()), request.size()}};
        int first = 0;
        for (std::size_t left = header_.size() + request.size(); left > 0;) {
            ssize_t n = ::writev(fd_.get(), iov + first, 2 - first);
            if (n < 0) {
                raw_io_failed("writev");
                continue;
            }
            left -= static_cast<std::size_t>(n);
            for (auto done = static_cast<std::size_t>(n); done > 0 && first < 2;) {
                std::size_t take = std::min(done, iov[first].iov_len);
                iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + take;
                iov[first].iov_len -= take;
                done -= take;
                if (iov[first].iov_len == 0) ++first;
            }
        }
        if (!readn(fd_.get(), reply_.data(), reply_.size())) throw PeerGone("the remote server closed mid-reply");
    }
    bool echoed(std::span<const std::byte> request) const override {
        return std::equal(header_.begin(), header_.end(), reply_.begin()) &&
               std::equal(request.begin(), request.end(), reply_.begin() + kFrameHeaderSize);
    }
    pid_t server() const override { return -1; }

private:
    Fd fd_;
    HeaderBytes header_{};
    std::vector<std::byte> reply_;
};

// Each remote benchmark: begin, run, fail with the reason, no server counters.
template <typename Body>
void remote_run(benchmark::State& state, Body body) {
    if (!begin_run(state)) return;
    try {
        body();
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
    drop_server_counters(state);
}

}  // namespace

Endpoint parse_remote(const std::string& text) {
    Endpoint ep;
    ep.transport = "tcp";
    std::string port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find("]:");
        if (close == std::string::npos) throw std::invalid_argument("'" + text + "' is not [IPV6]:PORT");
        ep.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon)
            throw std::invalid_argument("'" + text + "' is not HOST:PORT (an IPv6 address goes in brackets: [::1]:PORT)");
        ep.host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (ep.host.empty() || port.empty() || *end != '\0' || p < 1 || p > 65535)
        throw std::invalid_argument("'" + text + "' needs a host and a port from 1 to 65535");
    ep.port = port;
    return ep;
}

std::string probe_remote(const Endpoint& target, int timeout_ms) {
    const std::string at = "the server at " + where(target);
    Limits limits;
    limits.timeout_ms = timeout_ms;
    limits.max_message = 4096;
    std::string address;
    std::unique_ptr<Channel> ch;
    try {
        Fd fd = connect_stream(target, timeout_ms);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
            address = sockaddr_to_string(reinterpret_cast<sockaddr*>(&ss), len);
        ch = make_framed_channel(StreamFds{std::move(fd), Fd{}, true}, limits, true, SessionReply::echo);
    } catch (const std::invalid_argument&) {
        throw;
    } catch (const std::exception& e) {
        // Refused or timed out: nothing listens, or a firewall drops the port.
        std::string why = e.what();
        if (why.rfind("cannot connect", 0) == 0) why += ": is `bin/server " + target.port + "` running there?";
        throw RemoteUnusable(why);
    }
    const std::string probe = "ipclab remote probe " + std::to_string(::getpid());
    Message reply;
    bool got = false;
    try {
        ch->send(FrameType::data, as_bytes(probe));
        got = ch->receive(reply);
    } catch (const TimeoutError&) {
        throw RemoteUnusable(at + " did not answer within " + std::to_string(timeout_ms / 1000) +
                             " s: not an ipclab bin/server?");
    } catch (const PeerGone&) {
        got = false;
    } catch (const ProtocolError& e) {
        throw RemoteUnusable(at + " answered with something other than ipclab's framing (" + e.what() +
                             "): not an ipclab bin/server");
    }
    if (!got)
        throw RemoteUnusable(at + " closed the session at its opening: an ipclab bin/server older than the "
                                  "reply-mode opening (version 2), or not an ipclab server; update bin/server there");
    if (reply.type == FrameType::error)
        throw RemoteUnusable(at + " refused the session: " + text_of(reply));
    if (reply.payload.size() != probe.size() ||
        !std::equal(reply.payload.begin(), reply.payload.end(), as_bytes(probe).begin()))
        throw RemoteUnusable(at + " answered '" + text_of(reply) +
                             "' instead of the echo its opening asked for: an older ipclab bin/server?");
    return address;
}

void register_remote(const Config& c, const Endpoint& ep) {
    const Endpoint echo = asking(ep, SessionReply::echo), sink = asking(ep, SessionReply::sink),
                   ack = asking(ep, SessionReply::ack);
    auto add = [](const std::string& name, auto body) {
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { remote_run(s, [&] { body(s); }); })
            ->UseRealTime();
    };
    for (std::size_t size : c.sizes) {
        const std::string tail = "/remote/" + std::to_string(size);
        auto ours = [=] { return make_ipclab_ping_pong(echo, -1); };
        auto raw = [=]() -> std::unique_ptr<PingPong> { return std::make_unique<RawRemotePingPong>(echo, size); };
        add("RoundTrip" + tail, [=](benchmark::State& s) { measure_round_trips(s, *ours(), size); });
        // A zero-byte message is only a header: no raw round trip to hold it to (as for tcp).
        if (size == 0) continue;
        add("Baseline" + tail, [=](benchmark::State& s) { measure_round_trips(s, *raw(), size); });
        add("Paired" + tail, [=](benchmark::State& s) { paired_round_trip(s, ours, raw, size); });
    }
    for (std::size_t size : c.sizes)
        if (size > 0)  // an empty message is the sink's sync point
            add("Stream/remote/" + std::to_string(size), [=](benchmark::State& s) { stream_to(s, sink, -1, size); });
    add("Connect/remote", [=](benchmark::State& s) { connect_to(s, ack, -1); });
}

}  // namespace ipclab::bench
