#include "bench/ping_pong.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "client/latency.hpp"
#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"

namespace ipclab::bench {

namespace {
constexpr std::uint64_t kVerifyEvery = 64;
constexpr int kWarmupMessages = 16;
}  // namespace

std::string PingPong::mismatch(std::span<const std::byte> request) const {
    return "the echo differs from the " + std::to_string(request.size()) + "-byte request";
}

std::uint64_t warm_up(PingPong& p, Bytes& payload, std::size_t size) {
    std::vector<std::uint64_t> t;
    for (int i = 0; i < kWarmupMessages; ++i) {
        fill_payload(payload, static_cast<std::uint64_t>(i), size);
        auto t0 = Clock::now();
        p.round_trip(payload);
        t.push_back(elapsed_ns(t0, Clock::now()));
        if (!p.echoed(payload)) throw ProtocolError("warm-up: " + p.mismatch(payload));
    }
    std::sort(t.begin(), t.end());
    return percentile(t, 50);
}

void measure_round_trips(benchmark::State& state, PingPong& p, std::size_t size) {
    Bytes payload = request_buffer(size);
    warm_up(p, payload, size);
    Meter meter(state, p.server());
    p.mark_start();
    const auto last = static_cast<std::uint64_t>(state.max_iterations) - 1;
    std::uint64_t seq = 0;
    meter.start();
    for (auto _ : timed(state)) {
        stop_if_signalled();
        bool verify = seq % kVerifyEvery == 0 || seq == last;
        if (verify) {
            state.PauseTiming();
            fill_payload(payload, seq, size);
            state.ResumeTiming();
        } else if (size >= 8) {
            put_u64(payload.data(), seq);
        }
        auto t0 = Clock::now();
        p.round_trip(payload);
        meter.add(elapsed_ns(t0, Clock::now()));
        if (verify) {
            state.PauseTiming();
            if (!p.echoed(payload)) {
                state.SkipWithError(("message " + std::to_string(seq) + ": " + p.mismatch(payload)).c_str());
                break;
            }
            state.ResumeTiming();
        }
        ++seq;
    }
    meter.stop();
    if (!state.error_occurred()) {
        meter.report(static_cast<std::int64_t>(size), seq);
        p.report(state, seq);
    }
}

}  // namespace ipclab::bench
