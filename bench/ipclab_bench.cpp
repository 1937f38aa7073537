// The ipclab benchmarks: RoundTrip, Stream and Connect against the real
// server loop, through the same Channel the client program uses.
#include "bench/ipclab_bench.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "bench/bench_server.hpp"
#include "bench/ping_pong.hpp"
#include "bench/placement.hpp"
#include "bench/stream_pump.hpp"
#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/registry.hpp"
#include "ipc/shm_stats.hpp"

namespace ipclab::bench {

namespace {

constexpr int kWarmupMessages = 16;

Limits client_limits() {
    Limits l;
    l.max_message = kMaxBenchMessage;
    l.timeout_ms = 30000;
    return l;
}

bool is_ack(const Message& m) {
    return m.type == FrameType::data && !first_difference(m.payload, as_bytes(kAckText));
}

std::string describe_mismatch(const Message& reply, std::span<const std::byte> sent) {
    if (reply.type == FrameType::error)
        return "the server refused it: " +
               std::string(reinterpret_cast<const char*>(reply.payload.data()),
                           std::min<std::size_t>(reply.payload.size(), 200));
    auto at = first_difference(reply.payload, sent);
    return "the reply (" + std::to_string(reply.payload.size()) + " bytes) differs from the " +
           std::to_string(sent.size()) + "-byte payload at byte " + std::to_string(at.value_or(0));
}

// Spun/slept waits per message of an shm session (client side and server side).
class ShmWaits {
public:
    explicit ShmWaits(const Channel& ch) : start_(shm_session_counts(ch)) {}
    void report(benchmark::State& state, const Channel& ch, std::uint64_t messages) const {
        auto end = shm_session_counts(ch);
        if (!start_ || !end || messages == 0) return;
        auto per = [&](std::uint64_t a, std::uint64_t b) {
            return static_cast<double>(b - a) / static_cast<double>(messages);
        };
        state.counters["client_waits_immediate_per_msg"] = per(start_->local.immediate, end->local.immediate);
        state.counters["client_waits_spun_per_msg"] = per(start_->local.spun, end->local.spun);
        state.counters["client_waits_slept_per_msg"] = per(start_->local.slept, end->local.slept);
        state.counters["server_waits_immediate_per_msg"] = per(start_->peer.immediate, end->peer.immediate);
        state.counters["server_waits_spun_per_msg"] = per(start_->peer.spun, end->peer.spun);
        state.counters["server_waits_slept_per_msg"] = per(start_->peer.slept, end->peer.slept);
    }

private:
    std::optional<ShmSessionCounts> start_;
};

// ipclab's side of a round trip: one session with an echo server, run by
// process `server` (-1: on another host).
class IpclabPingPong : public PingPong {
public:
    IpclabPingPong(const Endpoint& ep, pid_t server) : server_(server), channel_(connect(ep, client_limits())) {}

    void round_trip(std::span<const std::byte> request) override {
        channel_->send(FrameType::data, request);
        if (!channel_->receive(reply_)) throw PeerGone("the server ended the session");
        if (reply_.type != FrameType::data) throw ProtocolError(describe_mismatch(reply_, request));
    }
    bool echoed(std::span<const std::byte> request) const override {
        return reply_.type == FrameType::data && !first_difference(reply_.payload, request);
    }
    std::string mismatch(std::span<const std::byte> request) const override {
        return describe_mismatch(reply_, request);
    }
    pid_t server() const override { return server_; }
    void mark_start() override { waits_.emplace(*channel_); }
    void report(benchmark::State& state, std::uint64_t messages) const override {
        if (waits_) waits_->report(state, *channel_, messages);
    }

private:
    pid_t server_;
    std::unique_ptr<Channel> channel_;
    Message reply_;
    std::optional<ShmWaits> waits_;
};

// A whole session per round trip, with the ack server: connect (a
// fork-per-session server forks a child for it), one message, its
// acknowledgement, close. Connect/<t> times these; PairedConnect/<t> pairs
// them with the C fork server's.
class IpclabSessionPingPong : public PingPong {
public:
    IpclabSessionPingPong(const Endpoint& ep, pid_t server) : ep_(ep), server_(server) {}

    void round_trip(std::span<const std::byte> request) override {
        auto channel = connect(ep_, client_limits());
        channel->send(FrameType::data, request);
        if (!channel->receive(reply_)) throw PeerGone("the server ended the session before its reply");
    }
    bool echoed(std::span<const std::byte>) const override { return is_ack(reply_); }
    std::string mismatch(std::span<const std::byte>) const override {
        return "the server did not acknowledge the session's message";
    }
    pid_t server() const override { return server_; }

private:
    Endpoint ep_;
    pid_t server_;
    Message reply_;
};

// ipclab's side of a paired stream: one session with the sink server.
class IpclabStreamPump : public StreamPump {
public:
    IpclabStreamPump(const Endpoint& ep, pid_t server) : server_(server), channel_(connect(ep, client_limits())) {}
    void send(std::span<const std::byte> message) override { channel_->send(FrameType::data, message); }
    void flush() override {
        channel_->send(FrameType::data, std::span<const std::byte>{});
        if (!channel_->receive(reply_) || !is_ack(reply_))
            throw ProtocolError("the sink did not acknowledge the sync message");
    }
    pid_t server() const override { return server_; }
    const Channel& channel() const { return *channel_; }

private:
    pid_t server_;
    std::unique_ptr<Channel> channel_;
    Message reply_;
};

void round_trip(benchmark::State& state, const std::string& transport, std::size_t size, int server_cpu) {
    if (!begin_run(state)) return;
    report_placement(state, server_cpu);
    try {
        measure_round_trips(state, *make_ipclab_ping_pong(transport, server_cpu), size);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

void stream(benchmark::State& state, const std::string& transport, std::size_t size, int server_cpu) {
    if (!begin_run(state)) return;
    report_placement(state, server_cpu);
    try {
        BenchServer& server = server_for(transport, ReplyMode::sink, server_cpu);
        stream_to(state, server.client_endpoint(), server.pid(), size);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

void connect_once(benchmark::State& state, const std::string& transport, int server_cpu, ServerModel model) {
    if (!begin_run(state)) return;
    try {
        BenchServer& server = server_for(transport, ReplyMode::ack, server_cpu, model);
        connect_to(state, server.client_endpoint(), server.pid());
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

}  // namespace

// One-way to a sink: every iteration sends one message; the last one is
// followed by an empty message, whose ack proves everything arrived.
void stream_to(benchmark::State& state, const Endpoint& ep, pid_t server, std::size_t size) {
    IpclabStreamPump pump(ep, server);
    Bytes payload = request_buffer(size);
    fill_payload(payload, 0, size);
    for (int i = 0; i < kWarmupMessages; ++i) pump.send(payload);
    pump.flush();
    Meter meter(state, server);
    ShmWaits waits(pump.channel());
    const auto last = static_cast<std::uint64_t>(state.max_iterations) - 1;
    std::uint64_t seq = 0;
    meter.start();
    for (auto _ : timed(state)) {
        stop_if_signalled();
        if (size >= 8) put_u64(payload.data(), seq);
        auto t0 = Clock::now();
        pump.send(payload);
        if (seq == last) pump.flush();  // the sink's acknowledgement proves everything arrived
        meter.add(elapsed_ns(t0, Clock::now()));
        ++seq;
    }
    meter.stop();
    if (!state.error_occurred()) {
        meter.report(static_cast<std::int64_t>(size), seq);
        waits.report(state, pump.channel(), seq);
    }
}

// Per iteration: open a session (a fork-per-session server forks a child for
// it), one exchange, close.
void connect_to(benchmark::State& state, const Endpoint& ep, pid_t server) {
    Bytes payload;
    fill_payload(payload, 1, 64);
    IpclabSessionPingPong session(ep, server);
    auto exchange = [&]() {
        session.round_trip(payload);
        return session.echoed(payload);
    };
    for (int i = 0; i < 2; ++i)
        if (!exchange()) return fail(state, "warm-up: no ack from the server");
    measure_exchanges(state, server, exchange, "the server did not acknowledge the session's message");
}

std::unique_ptr<StreamPump> make_ipclab_stream_pump(const std::string& transport, int server_cpu) {
    BenchServer& server = server_for(transport, ReplyMode::sink, server_cpu);
    return std::make_unique<IpclabStreamPump>(server.client_endpoint(), server.pid());
}

std::unique_ptr<PingPong> make_ipclab_ping_pong(const std::string& transport, int server_cpu) {
    BenchServer& server = server_for(transport, ReplyMode::echo, server_cpu);
    return make_ipclab_ping_pong(server.client_endpoint(), server.pid());
}

std::unique_ptr<PingPong> make_ipclab_ping_pong(const Endpoint& ep, pid_t server) {
    return std::make_unique<IpclabPingPong>(ep, server);
}

std::unique_ptr<PingPong> make_ipclab_session_ping_pong(const std::string& transport, int server_cpu) {
    BenchServer& server = server_for(transport, ReplyMode::ack, server_cpu, ServerModel::fork);
    return std::make_unique<IpclabSessionPingPong>(server.client_endpoint(), server.pid());
}

benchmark::internal::Benchmark* register_ipclab_round_trip(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "RoundTrip/" + transport + "/" + std::to_string(size);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        round_trip(s, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_ipclab_stream(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "Stream/" + transport + "/" + std::to_string(size);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        stream(s, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_ipclab_connect(const Config& c, const std::string& transport,
                                                        ServerModel model) {
    // No suffix for the default design: Connect/<t> is fork per session.
    std::string name = "Connect/" + transport + (model == ServerModel::fork ? "" : std::string("/") + model_name(model));
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        connect_once(s, transport, cpu, model);
    })->UseRealTime();
}

}  // namespace ipclab::bench
