// The ipclab benchmarks: RoundTrip, Stream and Connect against the real
// server loop, through the same Channel the client program uses.
#include "bench/ipclab_bench.hpp"

#include <optional>
#include <string>
#include <vector>

#include "bench/bench_server.hpp"
#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/shm_stats.hpp"

namespace ipclab::bench {

namespace {

constexpr std::uint64_t kVerifyEvery = 64;
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

std::string describe_mismatch(std::uint64_t seq, const Message& reply,
                              std::span<const std::byte> sent) {
    if (reply.type == FrameType::error)
        return "server refused message " + std::to_string(seq) + ": " +
               std::string(reinterpret_cast<const char*>(reply.payload.data()),
                           reply.payload.size());
    auto at = first_difference(reply.payload, sent);
    return "reply " + std::to_string(seq) + " (" + std::to_string(reply.payload.size()) +
           " bytes) differs from the " + std::to_string(sent.size()) + "-byte payload at byte " +
           std::to_string(at.value_or(0));
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

void round_trip(benchmark::State& state, const std::string& instance, const std::string& transport,
                std::size_t size, int server_cpu) {
    if (interrupted()) return state.SkipWithError("interrupted");
    try {
        BenchServer& server = server_for(instance, transport, ReplyMode::echo, server_cpu);
        auto channel = connect(server.client_endpoint(), client_limits());
        std::vector<std::byte> payload;
        Message reply;
        for (int i = 0; i < kWarmupMessages; ++i) {
            fill_payload(payload, static_cast<std::uint64_t>(i), size);
            channel->send(FrameType::data, payload);
            if (!channel->receive(reply) || first_difference(reply.payload, payload))
                return state.SkipWithError(("warm-up: " + describe_mismatch(0, reply, payload)).c_str());
        }
        Meter meter(state, server.pid());
        ShmWaits waits(*channel);
        const auto last = static_cast<std::uint64_t>(state.max_iterations) - 1;
        std::uint64_t seq = 0;
        meter.start();
        for (auto _ : state) {
            // Every 64th message, the first and the last get a fresh pattern and
            // a byte-exact check, both outside the timed section.
            bool verify = seq % kVerifyEvery == 0 || seq == last;
            if (verify) {
                state.PauseTiming();
                fill_payload(payload, seq, size);
                state.ResumeTiming();
            } else if (size >= 8) {
                put_u64(payload.data(), seq);
            }
            auto t0 = Clock::now();
            channel->send(FrameType::data, payload);
            bool got = channel->receive(reply);
            auto t1 = Clock::now();
            meter.add(elapsed_ns(t0, t1));
            if (!got) {
                state.SkipWithError("the server ended the session");
                break;
            }
            if (verify || reply.type != FrameType::data) {
                state.PauseTiming();
                bool ok = reply.type == FrameType::data && !first_difference(reply.payload, payload);
                if (!ok) {
                    state.SkipWithError(describe_mismatch(seq, reply, payload).c_str());
                    break;
                }
                state.ResumeTiming();
            }
            ++seq;
        }
        meter.stop();
        if (!state.error_occurred()) {
            meter.report(static_cast<std::int64_t>(size), seq);
            waits.report(state, *channel, seq);
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

// One-way: every iteration sends one message to the sink; the last one is
// followed by an empty message, whose ack proves everything arrived.
void stream(benchmark::State& state, const std::string& instance, const std::string& transport,
            std::size_t size, int server_cpu) {
    if (interrupted()) return state.SkipWithError("interrupted");
    try {
        BenchServer& server = server_for(instance, transport, ReplyMode::sink, server_cpu);
        auto channel = connect(server.client_endpoint(), client_limits());
        std::vector<std::byte> payload;
        fill_payload(payload, 0, size);
        Message reply;
        const std::span<const std::byte> sync{};
        for (int i = 0; i < kWarmupMessages; ++i) channel->send(FrameType::data, payload);
        channel->send(FrameType::data, sync);
        if (!channel->receive(reply) || !is_ack(reply))
            return state.SkipWithError("warm-up: the sink did not acknowledge the sync message");
        Meter meter(state, server.pid());
        ShmWaits waits(*channel);
        const auto last = static_cast<std::uint64_t>(state.max_iterations) - 1;
        std::uint64_t seq = 0;
        bool acked = false;
        meter.start();
        for (auto _ : state) {
            if (size >= 8) put_u64(payload.data(), seq);
            auto t0 = Clock::now();
            channel->send(FrameType::data, payload);
            if (seq == last) {
                channel->send(FrameType::data, sync);
                acked = channel->receive(reply);
            }
            meter.add(elapsed_ns(t0, Clock::now()));
            ++seq;
        }
        meter.stop();
        if (!state.error_occurred()) {
            if (!acked || !is_ack(reply))
                return state.SkipWithError("the sink did not acknowledge the final sync message");
            meter.report(static_cast<std::int64_t>(size), seq);
            waits.report(state, *channel, seq);
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

// Per iteration: open a session (the server forks a child for it), one
// exchange, close.
void connect_once(benchmark::State& state, const std::string& instance,
                  const std::string& transport, int server_cpu) {
    if (interrupted()) return state.SkipWithError("interrupted");
    try {
        BenchServer& server = server_for(instance, transport, ReplyMode::ack, server_cpu);
        const Endpoint& ep = server.client_endpoint();
        std::vector<std::byte> payload;
        fill_payload(payload, 1, 64);
        Message reply;
        auto exchange = [&]() {
            auto channel = connect(ep, client_limits());
            channel->send(FrameType::data, payload);
            return channel->receive(reply);
        };
        for (int i = 0; i < 2; ++i)
            if (!exchange() || !is_ack(reply))
                return state.SkipWithError("warm-up: no ack from the server");
        measure_exchanges(state, server.pid(), [&] { return exchange() && is_ack(reply); },
                          "the server did not acknowledge the session's message");
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
}

}  // namespace

benchmark::internal::Benchmark* register_ipclab_round_trip(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "RoundTrip/" + transport + "/" + std::to_string(size);
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        round_trip(s, name, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_ipclab_stream(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "Stream/" + transport + "/" + std::to_string(size);
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        stream(s, name, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_ipclab_connect(const Config& c, const std::string& transport) {
    std::string name = "Connect/" + transport;
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        connect_once(s, name, transport, cpu);
    })->UseRealTime();
}

}  // namespace ipclab::bench
