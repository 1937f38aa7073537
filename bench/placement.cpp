#include "bench/placement.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>

#include "ipc/shm_futex.hpp"

namespace ipclab::bench {

namespace {

using Clock = std::chrono::steady_clock;

// 7 batches of 128 round trips after 64 to warm up: 0.1-0.6 ms of round
// trips on the EPYC hosts. The median batch, so one interrupt inside a batch
// does not move the figure.
constexpr int kWarmup = 64;
constexpr int kBatches = 7;
constexpr int kPerBatch = 128;
// A side that loses its CPU stalls a round trip until both run at once
// again (a time slice or a few; the median batch leaves such a batch out). A
// probe longer than kBudget means the CPUs were not to be had: no placement
// figure then (the run's interference counters say why). Under a loaded test
// run (ctest -j4 and the labs on the 2-vCPU hosts) a 5 ms bound per round
// trip, and then 20 ms, gave up on some probes.
constexpr auto kBudget = std::chrono::milliseconds(100);

struct Line {
    alignas(64) std::atomic<std::uint64_t> ping{0};
    alignas(64) std::atomic<std::uint64_t> pong{0};
    alignas(64) std::atomic<int> state{0};  // 1: stop
};

void answer(Line& l) {
    std::uint64_t seen = 0;
    while (l.state.load(std::memory_order_relaxed) == 0) {
        std::uint64_t v = l.ping.load(std::memory_order_acquire);
        if (v != seen) {
            seen = v;
            l.pong.store(v, std::memory_order_release);
        } else {
            cpu_relax();
        }
    }
}

// One round trip; false when the probe has run past `until` or the answerer quit.
bool round_trip(Line& l, std::uint64_t n, Clock::time_point until) {
    l.ping.store(n, std::memory_order_release);
    for (unsigned spins = 1;; ++spins) {
        if (l.pong.load(std::memory_order_acquire) == n) return true;
        cpu_relax();
        if (spins % 1024 != 0) continue;  // the clock only now and then: it costs about a pause
        if (l.state.load() != 0 || Clock::now() > until) return false;
    }
}

std::optional<double> ask(Line& l) {
    const auto until = Clock::now() + kBudget;
    std::uint64_t n = 0;
    for (int i = 0; i < kWarmup; ++i)
        if (!round_trip(l, ++n, until)) return std::nullopt;
    std::array<double, kBatches> ns{};
    for (auto& batch : ns) {
        auto t0 = Clock::now();
        for (int i = 0; i < kPerBatch; ++i)
            if (!round_trip(l, ++n, until)) return std::nullopt;
        batch = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kPerBatch;
    }
    std::nth_element(ns.begin(), ns.begin() + kBatches / 2, ns.end());
    return ns[kBatches / 2];
}

// A thread born on one CPU, joined on every path. Born there, not moved
// there: a thread that starts beside a spinning probe thread and pins itself
// first waits for the spinner's time slice to end (4 ms per probe, measured).
// started() is false when the CPU does not exist or is not allowed.
class PinnedThread {
public:
    PinnedThread(int cpu, std::function<void()> body, std::function<void()> stop)
        : body_(std::move(body)), stop_(std::move(stop)) {
        if (cpu < 0 || cpu >= CPU_SETSIZE) return;
        pthread_attr_t attr;
        if (::pthread_attr_init(&attr) != 0) return;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (::pthread_attr_setaffinity_np(&attr, sizeof set, &set) == 0)
            started_ = ::pthread_create(&thread_, &attr, &PinnedThread::run, this) == 0;
        ::pthread_attr_destroy(&attr);
    }
    ~PinnedThread() { join(); }
    PinnedThread(const PinnedThread&) = delete;
    PinnedThread& operator=(const PinnedThread&) = delete;
    bool started() const { return started_; }
    void join() {
        if (!started_) return;
        stop_();
        ::pthread_join(thread_, nullptr);
        started_ = false;
    }

private:
    static void* run(void* self) {
        static_cast<PinnedThread*>(self)->body_();
        return nullptr;
    }
    std::function<void()> body_, stop_;
    pthread_t thread_{};
    bool started_ = false;
};

}  // namespace

std::optional<double> cross_cpu_round_trip_ns(int cpu_a, int cpu_b) {
    auto line = std::make_unique<Line>();
    auto stop = [l = line.get()] { l->state.store(1); };
    std::optional<double> result;
    PinnedThread b(cpu_b, [l = line.get()] { answer(*l); }, stop);
    if (!b.started()) return std::nullopt;
    if (pinned_cpu() == cpu_a) {
        result = ask(*line);  // a benchmark's client thread: no thread to start for this side
    } else {
        // On a thread of its own, so the caller's affinity is left as it was.
        PinnedThread a(cpu_a, [&] { result = ask(*line); }, [] {});
        if (!a.started()) return std::nullopt;
        a.join();
    }
    b.join();
    return result;
}

int pinned_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set)) return cpu;
    return -1;
}

void report_placement(benchmark::State& state, int server_cpu) {
    int client_cpu = pinned_cpu();
    if (client_cpu < 0 || server_cpu < 0 || client_cpu == server_cpu) return;
    try {
        if (auto ns = cross_cpu_round_trip_ns(client_cpu, server_cpu)) state.counters["xcpu_rtt_ns"] = *ns;
    } catch (const std::exception&) {
        // No memory or thread for the probe: the run goes on without its counter.
    }
}

}  // namespace ipclab::bench
