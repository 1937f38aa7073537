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

// What one benchmark's runs add up to: its sessions' totals (every run's
// sessions added, so percentiles span all of them) and the gated time, CPU,
// steal and sleeps of both sides.
struct LoadTotals {
    SessionTotals sessions;
    double seconds = 0;
    std::uint64_t client_cpu = 0, server_cpu = 0, steal = 0, client_sleeps = 0, server_sleeps = 0;
    // The last run's sessions' own rates (fairness): the end of sessions.session_rates.
    std::vector<double> last_rates(std::size_t sessions_per_run) const {
        const auto& all = sessions.session_rates;
        return {all.end() - static_cast<std::ptrdiff_t>(std::min(sessions_per_run, all.size())), all.end()};
    }
};

// Runs options.clients sessions through the gate once and adds them to
// total. Returns "" or why the run failed ("client I of N: why").
std::string run_gated(const Endpoint& ep, const ClientOptions& options, pid_t server, LoadTotals& total) {
    CpuMarks marks(server);
    std::vector<SessionResult> results = run_sessions(ep, options, &marks);
    for (std::size_t c = 0; c < results.size(); ++c) {
        if (!results[c].error.empty())
            return "client " + std::to_string(c + 1) + " of " + std::to_string(options.clients) + ": " +
                   results[c].error;
        if (results[c].interrupted) return "interrupted";
    }
    const auto& a = marks.open();
    const auto& b = marks.done();
    if (!(a.taken && b.taken)) return "the CPU counters in /proc could not be read";
    std::uint64_t round_trips = 0;
    for (const auto& r : results) round_trips += r.round_trips;
    double seconds = std::chrono::duration<double>(b.at - a.at).count();
    if (round_trips == 0 || seconds <= 0) return "no round trip completed";
    for (const auto& r : results) total.sessions.add(r);
    auto diff = [](std::uint64_t x, std::uint64_t y) { return y > x ? y - x : 0; };
    total.seconds += seconds;
    total.client_cpu += diff(a.client_cpu, b.client_cpu);
    total.server_cpu += diff(a.server_cpu, b.server_cpu);
    total.steal += diff(a.steal, b.steal);
    total.client_sleeps += diff(a.client_sleeps, b.client_sleeps);
    total.server_sleeps += diff(a.server_sleeps, b.server_sleeps);
    return "";
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
    // Bounds each reply and each session's wait to be taken: 64 sessions of
    // a spinning transport opened under a sanitizer on 2 CPUs took over 3 s.
    // A wait for a budget others hold (posix-mq's queues: a gated session
    // holds them until every session is open, so the wait cannot end early)
    // is paid once per process (see refusals()).
    o.limits.timeout_ms = 10000;
    return o;
}

// The counters both kinds share. msgs_per_s is over the gated time only
// (every session open to every session done), not over the iteration's
// wall time, which includes opening and closing sessions.
void report_runs(benchmark::State& state, const LoadTotals& total) {
    const SessionTotals& t = total.sessions;
    state.SetBytesProcessed(static_cast<std::int64_t>(t.round_trips * kLoadMessageSize));
    state.SetItemsProcessed(static_cast<std::int64_t>(t.round_trips));
    state.counters["msgs_per_s"] = static_cast<double>(t.round_trips) / total.seconds;
    put_percentiles(state, t.latency);
    auto per = [&](std::uint64_t v) { return static_cast<double>(v) / static_cast<double>(t.round_trips); };
    // The open loop's client spins to slots too near to sleep for: that is
    // the pacing's cost, not the transport's, so it is counted apart.
    state.counters["client_cpu_ns_per_msg"] =
        per(total.client_cpu > t.pacing_spin_ns ? total.client_cpu - t.pacing_spin_ns : 0);
    state.counters["client_pacing_ns_per_msg"] = per(t.pacing_spin_ns);
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

// One Concurrent or OpenLoop benchmark: its runs (one per iteration), each
// failing the benchmark with its line; the counters when all went through.
bool run_all(benchmark::State& state, const Endpoint& ep, const ClientOptions& options, pid_t server,
             LoadTotals& total, std::string* failure = nullptr) {
    for (auto _ : timed(state)) {
        std::string why = run_gated(ep, options, server, total);
        if (!why.empty()) {
            if (failure) *failure = why;
            state.SkipWithError(why.c_str());
            return false;
        }
    }
    report_runs(state, total);
    return true;
}

// A transport that ran out of a per-user resource at some client count
// (posix-mq: RLIMIT_MSGQUEUE, whose budget a session waits for until its
// connect times out) runs out at every larger one: later repetitions and
// larger counts fail at once with the same reason instead of each waiting
// out the session's timeout for the budget again.
struct Refusal {
    int clients = 0;
    std::string why;
};
std::map<std::string, Refusal>& refusals() {
    static std::map<std::string, Refusal> known;
    return known;
}

bool is_resource_limit(const std::string& why) {
    for (const char* sign : {"RLIMIT", "Too many open files", "No space left on device", "connect took longer"})
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
        LoadTotals total;
        std::string failure;
        if (!run_all(state, server.client_endpoint(), load_options(static_cast<std::size_t>(clients), seconds, 0),
                     server.pid(), total, &failure)) {
            if (is_resource_limit(failure)) refusals()[transport] = Refusal{clients, failure};
            return;
        }
        state.counters["fairness"] = jain_index(total.last_rates(static_cast<std::size_t>(clients)));
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
    LoadTotals run;
    std::string why = run_gated(ep, load_options(1, kCalibrationSeconds, 0), server, run);
    if (!why.empty()) throw std::runtime_error("measuring the closed-loop rate: " + why);
    double rate = static_cast<double>(run.sessions.round_trips) / run.seconds;
    known.emplace(transport, rate);
    return rate;
}

void open_loop(benchmark::State& state, const std::string& transport, int percent, int cpu, double seconds) {
    if (!begin_run(state)) return;
    try {
        BenchServer& server = server_for(transport, ReplyMode::echo, cpu);
        const double full = capacity(transport, server.client_endpoint(), server.pid());
        const double rate = full * percent / 100.0;
        LoadTotals total;
        if (!run_all(state, server.client_endpoint(), load_options(1, seconds, rate), server.pid(), total)) return;
        const SessionTotals& t = total.sessions;
        state.counters["capacity_per_s"] = full;
        state.counters["offered_per_s"] = rate;
        state.counters["behind_share"] =
            t.scheduled ? static_cast<double>(t.behind) / static_cast<double>(t.scheduled) : 0;
        state.counters["unsent"] = static_cast<double>(t.unsent);
        // The client's own lateness at its slots, part of every latency above.
        state.counters["wake_late_p50_ns"] = static_cast<double>(t.wake_late.percentile(50));
        state.counters["wake_late_p99_ns"] = static_cast<double>(t.wake_late.percentile(99));
        state.counters["percent"] = percent;
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// Concurrent/<t>/<n> or OpenLoop/<t>/<pct>: body(state, transport, n, server CPU, seconds).
using LoadBody = void (*)(benchmark::State&, const std::string&, int, int, double);
benchmark::internal::Benchmark* register_load(const Config& c, const char* kind, LoadBody body,
                                              const std::string& transport, int n, double seconds) {
    std::string name = std::string(kind) + "/" + transport + "/" + std::to_string(n);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
               body(s, transport, n, cpu, seconds);
           })
        ->UseRealTime();
}

}  // namespace

benchmark::internal::Benchmark* register_concurrent(const Config& c, const std::string& transport, int clients,
                                                    double seconds) {
    return register_load(c, "Concurrent", concurrent, transport, clients, seconds);
}

benchmark::internal::Benchmark* register_open_loop(const Config& c, const std::string& transport, int percent,
                                                   double seconds) {
    return register_load(c, "OpenLoop", open_loop, transport, percent, seconds);
}

}  // namespace ipclab::bench
