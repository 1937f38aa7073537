#include "bench/sessions_bench.hpp"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_server.hpp"
#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/registry.hpp"

namespace ipclab::bench {

namespace {

// One client thread's round: its sessions, the time each took to open, and
// the first error (a failed session fails the benchmark).
struct ClientRound {
    std::vector<std::uint64_t> open_ns;
    std::string error;
};

void client_round(const Endpoint& ep, std::span<const std::byte> payload, ClientRound& out) {
    Limits limits;
    limits.timeout_ms = 30000;
    Message reply;
    try {
        for (int s = 0; s < kSessionsPerClient; ++s) {
            auto t0 = Clock::now();
            auto channel = connect(ep, limits);
            out.open_ns.push_back(elapsed_ns(t0, Clock::now()));
            for (int i = 0; i < kExchanges; ++i) {
                channel->send(FrameType::data, payload);
                if (!channel->receive(reply) || reply.type != FrameType::data)
                    throw ProtocolError("no acknowledgement from the server");
            }
        }
    } catch (const std::exception& e) {
        out.error = e.what();
    }
}

void sessions(benchmark::State& state, const std::string& transport, ServerModel model, int clients, int cpu) {
    if (!begin_run(state)) return;
    try {
        BenchServer& server = server_for(transport, ReplyMode::ack, cpu, model);
        const Endpoint& ep = server.client_endpoint();
        Bytes payload;
        fill_payload(payload, 1, 64);
        std::vector<ClientRound> rounds(static_cast<std::size_t>(clients));
        Meter meter(state, server.pid(), true);
        std::uint64_t done = 0;
        meter.start();
        for (auto _ : timed(state)) {
            std::vector<std::thread> threads;
            threads.reserve(rounds.size());
            for (auto& r : rounds) threads.emplace_back([&] { client_round(ep, payload, r); });
            for (auto& t : threads) t.join();
            bool failed = false;
            for (auto& r : rounds) {
                for (auto ns : r.open_ns) meter.add(ns);
                done += r.open_ns.size();
                r.open_ns.clear();
                if (!r.error.empty() && !failed) {
                    state.SkipWithError(("a client session failed: " + r.error).c_str());
                    failed = true;
                }
            }
            if (failed) break;
        }
        meter.stop();
        if (state.error_occurred()) return;
        state.SetItemsProcessed(static_cast<std::int64_t>(done));
        meter.report(0, done);
        // Meter's per-message counters are per session here.
        state.counters["server_cpu_ns_per_session"] = state.counters["server_cpu_ns_per_msg"];
        state.counters["clients"] = clients;
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

}  // namespace

benchmark::internal::Benchmark* register_ipclab_sessions(const Config& c, const std::string& transport,
                                                         ServerModel model, int clients) {
    std::string name = "Sessions/" + transport + "/" + model_name(model) + "/" + std::to_string(clients);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        sessions(s, transport, model, clients, cpu);
    })->UseRealTime();
}

}  // namespace ipclab::bench
