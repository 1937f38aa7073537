#include "bench/paired_bench.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "bench/interference.hpp"
#include "bench/ping_pong.hpp"
#include "bench/placement.hpp"
#include "bench/stream_pump.hpp"
#include "client/latency.hpp"
#include "client/payload.hpp"
#include "ipc/framing.hpp"
#include "ipc/error.hpp"

namespace ipclab::bench {

namespace {

constexpr std::uint64_t kMaxSliceMessages = 4096;
// Untimed messages that set a paired stream's slice length.
constexpr int kStreamWarmup = 16;
// A paired stream's slice holds at least this many messages, however long
// they take: a slice of one to six 1 MiB messages (what ~1 ms holds) timed
// the burst's start and its flush more than the stream, and a burst of one
// 1 MiB message over tcp was bimodal per process (pinned 1,1, 6 processes
// with the count fixed at 1: ipclab 393 us per message against raw's 214,
// per-process ratio 0.48-0.95). PairedStream/tcp/1048576 pinned, one
// process per build alternating, 16 rounds: 0.965 [0.672, 1.048] (6 of 16
// under 0.95) with 1-6 messages a slice, 1.008 [0.824, 1.067] (1 of 16)
// with 16; 8 rounds earlier, 0.918 and 0.980. Smaller messages fill more
// than 16 into ~1 ms anyway (64 KiB: 23-88). The price is fewer pairs in a
// 1 MiB repetition (10-14 in 0.1 s, not 60-120): its ratio spreads more
// (tcp: standard deviation 0.11 over 24 repetitions, against 0.03).
constexpr std::uint64_t kMinStreamSliceMessages = 16;

// One member of the pair with the marks taken around its slices.
struct Side {
    PingPong& p;
    TreeSchedStat server;
    Histogram samples;                    // every message of the repetition
    std::vector<std::uint64_t> slice;     // the current slice (at most kMaxSliceMessages: its exact median)
    std::uint64_t client_cpu = 0, server_cpu = 0, client_runq = 0, server_runq = 0;
    std::uint64_t ns = 0;  // wall time of the timed slices
};

// This thread's CPU time, up to date (schedstat's figure of a task that has
// not been switched out lags until the next tick: a spinning client reads 0).
std::uint64_t thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// One slice: an untimed round trip that wakes the peer (a parked or
// sleeping server pays its wake-up there, on both sides alike), then n round
// trips, each timed; the last one's echo checked untimed. Returns the
// slice's median.
double run_slice(Side& side, const SchedStat& self, Bytes& payload, std::uint64_t& seq,
                 std::uint64_t n) {
    side.p.resume();
    side.p.round_trip(payload);
    std::uint64_t cpu0 = thread_cpu_ns();
    auto c0 = self.read();
    auto s0 = side.server.read();
    side.slice.clear();
    const auto start = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        if (payload.size() >= 8) put_u64(payload.data(), seq++);
        auto t0 = Clock::now();
        side.p.round_trip(payload);
        side.slice.push_back(elapsed_ns(t0, Clock::now()));
    }
    side.ns += elapsed_ns(start, Clock::now());
    auto c1 = self.read();
    std::uint64_t cpu1 = thread_cpu_ns();
    auto s1 = side.server.read();
    side.p.pause();
    if (!side.p.echoed(payload)) throw ProtocolError(side.p.mismatch(payload));
    side.client_cpu += cpu1 - cpu0;
    side.client_runq += c1.runq_ns - c0.runq_ns;
    side.server_cpu += s1.cpu_ns - s0.cpu_ns;
    side.server_runq += s1.runq_ns - s0.runq_ns;
    for (auto ns : side.slice) side.samples.record(ns);
    std::sort(side.slice.begin(), side.slice.end());
    return static_cast<double>(percentile(side.slice, 50));
}

// One member of a paired stream with its totals.
struct StreamSide {
    StreamPump& p;
    TreeSchedStat server;
    std::uint64_t messages = 0, ns = 0, client_runq = 0, server_runq = 0;
};

// One stream slice: n messages and the flush that proves they arrived,
// timed together. Returns ns per message.
double run_stream_slice(StreamSide& side, const SchedStat& self, Bytes& payload, std::uint64_t& seq,
                        std::uint64_t n) {
    auto c0 = self.read();
    auto s0 = side.server.read();
    auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < n; ++i) {
        if (payload.size() >= 8) put_u64(payload.data(), seq++);
        side.p.send(payload);
    }
    side.p.flush();
    std::uint64_t ns = elapsed_ns(t0, Clock::now());
    auto c1 = self.read();
    auto s1 = side.server.read();
    side.messages += n;
    side.ns += ns;
    side.client_runq += c1.runq_ns - c0.runq_ns;
    side.server_runq += s1.runq_ns - s0.runq_ns;
    return static_cast<double>(ns) / static_cast<double>(n);
}

// One pair of slices: A B in even pairs, B A in odd ones, so a drift within
// a pair favours neither side. Returns {ours, raw}.
template <typename Ours, typename Raw>
std::pair<double, double> alternate(std::uint64_t pair, Ours ours, Raw raw) {
    if (pair % 2 == 0) {
        double o = ours();
        return {o, raw()};
    }
    double r = raw();
    return {ours(), r};
}

// The interference counters of a paired run, over both members: either
// side's queueing moves the ratio.
class PairInterference {
public:
    PairInterference(pid_t ours, pid_t raw)
        : ours_(ours), raw_(raw), nivcsw0_(switches()), steal0_(steal_ns()), start_(Clock::now()) {}
    // Just after the last pair.
    void stop() {
        wall_ = elapsed_ns(start_, Clock::now());
        nivcsw1_ = switches();
        steal1_ = steal_ns();
    }
    // measured_ns: the wall time of the slices, over which the run delay was read.
    void report(benchmark::State& state, std::uint64_t client_runq, std::uint64_t server_runq,
                std::uint64_t messages, std::size_t size, std::uint64_t measured_ns) const {
        auto per_msg = [&](std::uint64_t v) { return static_cast<double>(v) / static_cast<double>(messages); };
        state.counters["client_runq_ns_per_msg"] = per_msg(client_runq);
        state.counters["server_runq_ns_per_msg"] = per_msg(server_runq);
        state.counters["nivcsw_per_msg"] = per_msg(nivcsw1_ - nivcsw0_);
        state.counters["steal_ns_per_msg"] = per_msg(steal1_ - steal0_);
        state.counters["runq_share"] = runq_share(client_runq + server_runq, measured_ns);
        double share = interference_share(client_runq + server_runq, wall_, messages, message_allowance_ns(size));
        state.counters["interference"] = share;
        state.counters["disturbed"] = share > kDisturbedShare ? 1 : 0;
    }

private:
    std::uint64_t switches() const {
        return involuntary_switches(0) + tree_involuntary_switches(ours_) + tree_involuntary_switches(raw_);
    }
    pid_t ours_, raw_;
    std::uint64_t nivcsw0_, nivcsw1_ = 0, steal0_, steal1_ = 0, wall_ = 0;
    Clock::time_point start_;
};

}  // namespace

void paired_round_trip(benchmark::State& state, const PingPongMaker& make_ours, const PingPongMaker& make_raw,
                       std::size_t size, std::uint64_t slice_ns) {
    if (!begin_run(state)) return;
    try {
        auto ours = make_ours();
        auto raw = make_raw();
        Bytes payload = request_buffer(size);
        std::uint64_t t_ours = warm_up(*ours, payload, size);
        std::uint64_t t_raw = warm_up(*raw, payload, size);
        raw->pause();
        // The same message count on both sides, so both slices span about the
        // same stretch of the machine's time.
        std::uint64_t per = std::max<std::uint64_t>({t_ours, t_raw, 1});
        std::uint64_t n = std::clamp<std::uint64_t>(slice_ns / per, 1, kMaxSliceMessages);
        fill_payload(payload, 0, size);

        Side a{*ours, TreeSchedStat(ours->server()), {}, {}};
        Side b{*raw, TreeSchedStat(raw->server()), {}, {}};
        SchedStat self(0);
        std::vector<double> ratios;
        std::uint64_t seq = 0, pairs = 0;
        ours->mark_start();
        PairInterference interference(ours->server(), raw->server());
        for (auto _ : timed(state)) {
            stop_if_signalled();
            auto [m_ours, m_raw] = alternate(pairs, [&] { return run_slice(a, self, payload, seq, n); },
                                             [&] { return run_slice(b, self, payload, seq, n); });
            if (m_raw > 0) ratios.push_back(m_ours / m_raw);
            ++pairs;
        }
        interference.stop();
        raw->resume();

        const std::uint64_t msgs = a.samples.count();
        const std::uint64_t all = msgs + b.samples.count();
        if (msgs == 0 || all == msgs) return fail(state, "no pair completed");
        auto put = [&](const char* k, double v) { state.counters[k] = v; };
        auto per_msg = [](std::uint64_t v, std::uint64_t m) { return static_cast<double>(v) / static_cast<double>(m); };
        put_percentiles(state, a.samples);
        put_percentiles(state, b.samples, "raw_");
        put("ratio", median_of(ratios));
        put("pairs", static_cast<double>(pairs));
        put("slice_messages", static_cast<double>(n));
        put("client_cpu_ns_per_msg", per_msg(a.client_cpu, msgs));
        put("server_cpu_ns_per_msg", per_msg(a.server_cpu, msgs));
        put("raw_client_cpu_ns_per_msg", per_msg(b.client_cpu, all - msgs));
        put("raw_server_cpu_ns_per_msg", per_msg(b.server_cpu, all - msgs));
        interference.report(state, a.client_runq + b.client_runq, a.server_runq + b.server_runq, all, size,
                            a.ns + b.ns);
        state.SetBytesProcessed(static_cast<std::int64_t>(msgs * size));
        ours->report(state, msgs + pairs);  // the waits counted include each slice's untimed first message
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

double median_of(std::vector<double> values) {
    if (values.empty()) return 0;
    auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
    std::nth_element(values.begin(), mid, values.end());
    return *mid;
}

namespace {

// Both servers of a pair on one CPU: on this kind of VM a wake-up across
// CPUs costs several times one on the same CPU, and the scheduler places
// each new process by lottery, so unpinned the two members of a pair could
// land on different paths and their ratio would measure the placement.
int pair_server_cpu(const Config& c, const std::string& transport) {
    long last = ::sysconf(_SC_NPROCESSORS_ONLN) - 1;
    return c.server_cpu >= 0 ? server_cpu_for(c, transport) : static_cast<int>(last > 0 ? last : 0);
}

benchmark::internal::Benchmark* register_pair(const std::string& family, const Config& c,
                                              const std::string& transport, std::size_t size, BaselineMaker make_raw) {
    std::string name = family + "/" + transport + "/" + std::to_string(size);
    int cpu = pair_server_cpu(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        report_placement(s, cpu);
        paired_round_trip(
            s, [&] { return make_ipclab_ping_pong(transport, cpu); }, [&] { return make_raw(transport, size, cpu); },
            size);
    })->UseRealTime();
}

}  // namespace

benchmark::internal::Benchmark* register_paired_round_trip(const Config& c, const std::string& transport,
                                                           std::size_t size) {
    return register_pair("Paired", c, transport, size, make_baseline_ping_pong);
}

benchmark::internal::Benchmark* register_duplex_paired_round_trip(const Config& c, const std::string& transport,
                                                                  std::size_t size) {
    return register_pair("PairedDuplex", c, transport, size, make_duplex_baseline_ping_pong);
}

benchmark::internal::Benchmark* register_paired_connect(const Config& c, const std::string& transport) {
    std::string name = "PairedConnect/" + transport;
    int cpu = pair_server_cpu(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        report_placement(s, cpu);
        paired_round_trip(
            s, [&] { return make_ipclab_session_ping_pong(transport, cpu); },
            [&] { return make_session_baseline_ping_pong(cpu); }, kSessionMessage, kSessionSliceNs);
    })->UseRealTime();
}

namespace {

// What names a paired stream's two members in its counters.
struct StreamPairNames {
    const char* ours;   // <ours>_bytes_per_second
    const char* other;  // <other>_bytes_per_second
};

// The stream pair's core: ours sets the slice (about slice_ns, in whole
// messages); make_other gets the bytes a slice carries (a raw reader
// answers once per slice's bytes). throughput_ratio is ours ÷ other.
void run_stream_pair(benchmark::State& state, std::unique_ptr<StreamPump> ours,
                     const std::function<std::unique_ptr<StreamPump>(std::uint64_t)>& make_other, std::size_t size,
                     StreamPairNames names, std::uint64_t slice_ns, std::uint64_t max_messages = kMaxSliceMessages) {
    Bytes payload = request_buffer(size);
    fill_payload(payload, 0, size);
    // The pace is the messages' own, after a first batch that pays for
    // first touches (a ring's pages, the reader's buffer) and without the
    // flush: a flush waits for the reader to wake, across CPUs up to a
    // millisecond on the EPYC host, and timing it with 16 messages made
    // 64 KiB shm messages look 30x slower and their slices that much
    // shorter than meant.
    for (int i = 0; i < kStreamWarmup; ++i) ours->send(payload);
    ours->flush();
    std::uint64_t sent = 0, spent = 0;
    for (const auto t0 = Clock::now(); sent < max_messages && spent < slice_ns;
         spent = elapsed_ns(t0, Clock::now())) {
        ours->send(payload);
        ++sent;
    }
    ours->flush();
    std::uint64_t per = std::max<std::uint64_t>(spent / std::max<std::uint64_t>(sent, 1), 1);
    std::uint64_t n = std::clamp<std::uint64_t>(slice_ns / per, kMinStreamSliceMessages, max_messages);
    auto other = make_other(n * size);
    for (std::uint64_t i = 0; i < n; ++i) other->send(payload);
    other->flush();

    StreamSide a{*ours, TreeSchedStat(ours->server())};
    StreamSide b{*other, TreeSchedStat(other->server())};
    SchedStat self(0);
    std::vector<double> ratios;
    std::uint64_t seq = 0, pairs = 0;
    PairInterference interference(ours->server(), other->server());
    for (auto _ : timed(state)) {
        stop_if_signalled();
        auto [t_ours, t_other] = alternate(pairs, [&] { return run_stream_slice(a, self, payload, seq, n); },
                                           [&] { return run_stream_slice(b, self, payload, seq, n); });
        if (t_ours > 0) ratios.push_back(t_other / t_ours);
        ++pairs;
    }
    interference.stop();
    if (pairs == 0) return fail(state, "no pair completed");
    auto bytes_per_second = [&](const StreamSide& x) {
        return static_cast<double>(x.messages * size) * 1e9 / static_cast<double>(std::max<std::uint64_t>(x.ns, 1));
    };
    state.counters["throughput_ratio"] = median_of(ratios);
    state.counters[std::string(names.ours) + "_bytes_per_second"] = bytes_per_second(a);
    state.counters[std::string(names.other) + "_bytes_per_second"] = bytes_per_second(b);
    state.counters["pairs"] = static_cast<double>(pairs);
    state.counters["slice_messages"] = static_cast<double>(n);
    interference.report(state, a.client_runq + b.client_runq, a.server_runq + b.server_runq, a.messages + b.messages,
                        size, a.ns + b.ns);
    state.SetBytesProcessed(static_cast<std::int64_t>(a.messages * size));
}

}  // namespace

void paired_stream(benchmark::State& state, const std::string& transport, std::size_t size, int cpu) {
    if (!begin_run(state)) return;
    try {
        run_stream_pair(
            state, make_ipclab_stream_pump(transport, cpu),
            [&](std::uint64_t slice_bytes) { return make_baseline_stream_pump(transport, size, slice_bytes, cpu); },
            size, {"ipclab", "raw"}, kSliceNs);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

void paired_wait_stream(benchmark::State& state, std::size_t size, int block_cpu, int spin_cpu) {
    if (!begin_run(state)) return;
    try {
        run_stream_pair(
            state, make_ipclab_stream_pump("shm", block_cpu),
            [&](std::uint64_t) { return make_ipclab_stream_pump("shm-spin", spin_cpu); }, size, {"block", "spin"},
            kWaitSliceNs, kMaxWaitSliceMessages);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

benchmark::internal::Benchmark* register_paired_stream(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "PairedStream/" + transport + "/" + std::to_string(size);
    int cpu = pair_server_cpu(c, transport);  // servers on one CPU, as for the round trips
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        report_placement(s, cpu);
        paired_stream(s, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_paired_wait_stream(const Config& c, std::size_t size) {
    std::string name = "PairedWait/shm/" + std::to_string(size);
    // Each mode's server where its own Stream benchmark puts it.
    int block_cpu = server_cpu_for(c, "shm"), spin_cpu = server_cpu_for(c, "shm-spin");
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        report_placement(s, block_cpu);
        paired_wait_stream(s, size, block_cpu, spin_cpu);
    })->UseRealTime();
}

}  // namespace ipclab::bench
