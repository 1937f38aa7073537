#include "bench/load_bench.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <limits>
#include <map>

#include "bench/bench_server.hpp"
#include "bench/interference.hpp"
#include "client/latency.hpp"
#include "client/load.hpp"
#include "ipc/error.hpp"

namespace ipclab::bench {

namespace {

// Every thread of this process, ended ones included.
std::uint64_t self_voluntary_switches() {
    struct rusage ru {};
    check(::getrusage(RUSAGE_SELF, &ru), "getrusage");
    return static_cast<std::uint64_t>(ru.ru_nvcsw);
}

// How long the one-session closed loop that sets the open loop's 100% runs.
constexpr double kCalibrationSeconds = 0.2;

// CPU of both sides, the host's steal time and the wall clock, read at the
// gate's two moments (on a session thread, while the others wait).
class CpuMarks : public LoadMarks {
public:
    explicit CpuMarks(pid_t server) : server_(server) {}
    void all_open() noexcept override { take(open_); }
    void all_done() noexcept override { take(done_); }

    struct Mark {
        Clock::time_point at{};
        std::uint64_t client_cpu = 0, server_cpu = 0, steal = 0, client_sleeps = 0, server_sleeps = 0;
        bool taken = false;
    };
    const Mark& open() const { return open_; }
    const Mark& done() const { return done_; }

private:
    void take(Mark& m) noexcept {
        try {
            m.at = Clock::now();
            m.client_cpu = self_cpu_ns();  // every thread of this process
            m.server_cpu = tree_cpu_ns(server_);
            m.steal = steal_ns();
            m.client_sleeps = self_voluntary_switches();
            m.server_sleeps = tree_voluntary_switches(server_);
            m.taken = true;
        } catch (...) {
            m.taken = false;  // /proc unreadable: the run reports no figures
        }
    }
    pid_t server_;
    Mark open_, done_;
};

// One gated run of options.clients sessions and what it adds up to.
struct LoadRun {
    std::vector<SessionResult> sessions;
    Histogram latency, wake_late;
    std::uint64_t round_trips = 0, scheduled = 0, behind = 0, unsent = 0, pacing_spin = 0;
    double seconds = 0;
    std::uint64_t client_cpu = 0, server_cpu = 0, steal = 0, client_sleeps = 0, server_sleeps = 0;
    std::string failure;  // the first failed session, "client I of N: why"
};

LoadRun run_gated(const Endpoint& ep, const ClientOptions& options, pid_t server) {
    CpuMarks marks(server);
    LoadRun run;
    run.sessions = run_sessions(ep, options, &marks);
    for (std::size_t c = 0; c < run.sessions.size(); ++c) {
        const SessionResult& r = run.sessions[c];
        if (run.failure.empty() && !r.error.empty())
            run.failure = "client " + std::to_string(c + 1) + " of " + std::to_string(options.clients) + ": " + r.error;
        if (run.failure.empty() && r.interrupted) run.failure = "interrupted";
        run.latency.merge(r.latency);
        run.wake_late.merge(r.wake_late);
        run.pacing_spin += r.pacing_spin_ns;
        run.round_trips += r.round_trips;
        run.scheduled += r.scheduled;
        run.behind += r.behind;
        run.unsent += r.unsent;
    }
    const auto& a = marks.open();
    const auto& b = marks.done();
    if (run.failure.empty() && !(a.taken && b.taken)) run.failure = "the CPU counters in /proc could not be read";
    if (!run.failure.empty()) return run;
    run.seconds = std::chrono::duration<double>(b.at - a.at).count();
    auto diff = [](std::uint64_t x, std::uint64_t y) { return y > x ? y - x : 0; };
    run.client_cpu = diff(a.client_cpu, b.client_cpu);
    run.server_cpu = diff(a.server_cpu, b.server_cpu);
    run.steal = diff(a.steal, b.steal);
    run.client_sleeps = diff(a.client_sleeps, b.client_sleeps);
    run.server_sleeps = diff(a.server_sleeps, b.server_sleeps);
    if (run.round_trips == 0 || run.seconds <= 0) run.failure = "no round trip completed";
    return run;
}

ClientOptions load_options(std::size_t clients, double seconds, double rate) {
    ClientOptions o;
    o.size = kLoadMessageSize;
    o.count = std::numeric_limits<std::size_t>::max();  // --duration (or the schedule) ends each session
    o.duration_s = seconds;
    o.clients = clients;
    o.rate = rate;
    o.verify = true;  // every echo compared: a load that corrupts is no result
    o.stats = true;
    // Bounds each reply and each session's wait for a budget others hold
    // (posix-mq's queue budget: a gated session holds its queues until every
    // session is open, so the wait cannot end early).
    o.limits.timeout_ms = 3000;
    return o;
}

// Adds one run to the runs of this benchmark so far (Google Benchmark may
// ask for more than one iteration when --benchmark_min_time is longer than a
// run). False when the run failed: the benchmark then fails with its line.
bool add_run(benchmark::State& state, LoadRun& total, LoadRun&& run) {
    if (!run.failure.empty()) {
        state.SkipWithError(run.failure.c_str());
        return false;
    }
    total.latency.merge(run.latency);
    total.wake_late.merge(run.wake_late);
    total.pacing_spin += run.pacing_spin;
    total.round_trips += run.round_trips;
    total.scheduled += run.scheduled;
    total.behind += run.behind;
    total.unsent += run.unsent;
    total.seconds += run.seconds;
    total.client_cpu += run.client_cpu;
    total.server_cpu += run.server_cpu;
    total.steal += run.steal;
    total.client_sleeps += run.client_sleeps;
    total.server_sleeps += run.server_sleeps;
    total.sessions = std::move(run.sessions);  // fairness: the last run's sessions
    return true;
}

// The counters both kinds share. msgs_per_s is over the gated time only
// (every session open to every session done), not over the iteration's
// wall time, which includes opening and closing sessions.
void report_runs(benchmark::State& state, const LoadRun& total) {
    state.SetBytesProcessed(static_cast<std::int64_t>(total.round_trips * kLoadMessageSize));
    state.SetItemsProcessed(static_cast<std::int64_t>(total.round_trips));
    state.counters["msgs_per_s"] = static_cast<double>(total.round_trips) / total.seconds;
    put_percentiles(state, total.latency);
    auto per = [&](std::uint64_t v) { return static_cast<double>(v) / static_cast<double>(total.round_trips); };
    // The open loop's client spins to slots too near to sleep for: that is
    // the pacing's cost, not the transport's, so it is counted apart.
    state.counters["client_cpu_ns_per_msg"] = per(total.client_cpu > total.pacing_spin ? total.client_cpu - total.pacing_spin : 0);
    state.counters["client_pacing_ns_per_msg"] = per(total.pacing_spin);
    state.counters["server_cpu_ns_per_msg"] = per(total.server_cpu);
    // The load's own queueing for a CPU is what is measured here (more
    // sessions than CPUs), so run delay is no sign of interference; the
    // hypervisor's steal is.
    state.counters["steal_ns_per_msg"] = per(total.steal);
    // Times each side blocked (voluntary context switches: a sleep, then a
    // wake-up someone paid for): what a blocking transport spends per
    // message instead of CPU, and what a spinning one avoids.
    state.counters["client_sleeps_per_msg"] = per(total.client_sleeps);
    state.counters["server_sleeps_per_msg"] = per(total.server_sleeps);
}

// A transport that ran out of a per-user resource at some client count
// (posix-mq: RLIMIT_MSGQUEUE) runs out at every larger one: later
// repetitions and larger counts fail at once with the same reason instead
// of each waiting out the session's timeout for the budget again.
struct Refusal {
    int clients = 0;
    std::string why;
};
std::map<std::string, Refusal>& refusals() {
    static std::map<std::string, Refusal> known;
    return known;
}

bool is_resource_limit(const std::string& why) {
    for (const char* sign : {"RLIMIT", "Too many open files", "No space left on device"})
        if (why.find(sign) != std::string::npos) return true;
    return false;
}

void concurrent(benchmark::State& state, const std::string& transport, int clients, int cpu, double seconds) {
    if (!begin_run(state)) return;
    if (auto it = refusals().find(transport); it != refusals().end() && clients >= it->second.clients)
        return fail(state, it->second.why + " (at " + std::to_string(it->second.clients) +
                               " clients, earlier in this run: not tried again)");
    try {
        BenchServer& server = server_for(transport, ReplyMode::echo, cpu);
        LoadRun total;
        for (auto _ : timed(state)) {
            LoadRun run = run_gated(server.client_endpoint(),
                                    load_options(static_cast<std::size_t>(clients), seconds, 0), server.pid());
            if (is_resource_limit(run.failure)) refusals()[transport] = Refusal{clients, run.failure};
            if (!add_run(state, total, std::move(run))) return;
        }
        report_runs(state, total);
        std::vector<double> rates;
        for (const auto& r : total.sessions) {
            double own = std::chrono::duration<double>(r.end - r.start).count();
            rates.push_back(own > 0 ? static_cast<double>(r.round_trips) / own : 0);
        }
        state.counters["fairness"] = jain_index(rates);
        state.counters["clients"] = clients;
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// The closed-loop rate of one session, measured once per transport in this
// process (the first OpenLoop benchmark of the transport pays for it).
double capacity(const std::string& transport, const Endpoint& ep, pid_t server) {
    static std::map<std::string, double> known;
    auto it = known.find(transport);
    if (it != known.end()) return it->second;
    LoadRun run = run_gated(ep, load_options(1, kCalibrationSeconds, 0), server);
    if (!run.failure.empty()) throw std::runtime_error("measuring the closed-loop rate: " + run.failure);
    double rate = static_cast<double>(run.round_trips) / run.seconds;
    known.emplace(transport, rate);
    return rate;
}

void open_loop(benchmark::State& state, const std::string& transport, int percent, int cpu, double seconds) {
    if (!begin_run(state)) return;
    try {
        BenchServer& server = server_for(transport, ReplyMode::echo, cpu);
        const double full = capacity(transport, server.client_endpoint(), server.pid());
        const double rate = full * percent / 100.0;
        LoadRun total;
        for (auto _ : timed(state))
            if (!add_run(state, total, run_gated(server.client_endpoint(), load_options(1, seconds, rate), server.pid())))
                return;
        report_runs(state, total);
        state.counters["capacity_per_s"] = full;
        state.counters["offered_per_s"] = rate;
        state.counters["behind_share"] =
            total.scheduled ? static_cast<double>(total.behind) / static_cast<double>(total.scheduled) : 0;
        state.counters["unsent"] = static_cast<double>(total.unsent);
        // The client's own lateness at its slots, part of every latency above.
        state.counters["wake_late_p50_ns"] = static_cast<double>(total.wake_late.percentile(50));
        state.counters["wake_late_p99_ns"] = static_cast<double>(total.wake_late.percentile(99));
        state.counters["percent"] = percent;
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

}  // namespace

benchmark::internal::Benchmark* register_concurrent(const Config& c, const std::string& transport, int clients,
                                                    double seconds) {
    std::string name = "Concurrent/" + transport + "/" + std::to_string(clients);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
               concurrent(s, transport, clients, cpu, seconds);
           })
        ->UseRealTime();
}

benchmark::internal::Benchmark* register_open_loop(const Config& c, const std::string& transport, int percent,
                                                   double seconds) {
    std::string name = "OpenLoop/" + transport + "/" + std::to_string(percent);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
               open_loop(s, transport, percent, cpu, seconds);
           })
        ->UseRealTime();
}

}  // namespace ipclab::bench
