// The benchmark harness's own rules, in process with Google Benchmark: a
// repetition that fails before its timed loop must not abort the whole run
// (Google Benchmark 1.7 checks that every repetition reports the same
// iteration count, and one that never entered its loop reports 0), and the
// interference share is what interference.hpp says. No timing is asserted.
#include <gtest/gtest.h>

#include <benchmark/benchmark.h>

#include <signal.h>
#include <sys/msg.h>
#include <unistd.h>

#include <string>
#include <optional>
#include <thread>
#include <vector>

#include "bench/bench_server.hpp"
#include "bench/bench_util.hpp"
#include "bench/interference.hpp"
#include "bench/placement.hpp"
#include "client/payload.hpp"
#include "ipc/transports.hpp"
#include "tests/support/proc_inspect.hpp"

namespace {

using namespace ipclab;
using namespace ipclab::bench;

int g_calls = 0;

// Fails before its loop on its second call (a setup that broke mid-run).
void flaky_setup(benchmark::State& state) {
    if (!begin_run(state)) return;
    if (++g_calls == 2) return fail(state, "setup failed on purpose");
    for (auto _ : timed(state)) benchmark::DoNotOptimize(g_calls);
}

// Fails inside its loop, after an exception (the catch-block path).
void throws_in_loop(benchmark::State& state) {
    if (!begin_run(state)) return;
    try {
        for (auto _ : timed(state)) throw std::runtime_error("peer gone on purpose");
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

class Collect : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) (r.error_occurred ? errors : ok) += 1;
    }
    int ok = 0, errors = 0;
};

TEST(BenchHarness, AFailureBeforeTheLoopInOneRepetitionDoesNotAbortTheRun) {
    // Death test style isolation is not needed: before the fix this aborted
    // the test binary itself, which ctest reports as a failure.
    benchmark::ClearRegisteredBenchmarks();
    benchmark::RegisterBenchmark("FlakySetup", flaky_setup)->Iterations(5)->Repetitions(3);
    benchmark::RegisterBenchmark("ThrowsInLoop", throws_in_loop)->Iterations(5)->Repetitions(2);
    Collect collect;
    std::size_t ran = benchmark::RunSpecifiedBenchmarks(&collect);
    EXPECT_EQ(ran, 2u);
    EXPECT_EQ(collect.errors, 3) << "one FlakySetup repetition and both ThrowsInLoop ones";
    EXPECT_GE(collect.ok, 2) << "the other FlakySetup repetitions (and their aggregates)";
    benchmark::ClearRegisteredBenchmarks();
}

// Every size's request starts at one page offset, so no raw baseline's
// copy of it is 4K-aliased in one process and not in the next.
TEST(BenchHarness, RequestBuffersStartAtOnePageOffsetAtEverySize) {
    for (std::size_t size : {std::size_t{0}, std::size_t{64}, std::size_t{4096}, std::size_t{65535},
                             kLargeBuffer, std::size_t{1} << 20}) {
        Bytes b = request_buffer(size);
        fill_payload(b, 7, size);
        ASSERT_EQ(b.size(), size);
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % kPageSize, kLargeBufferPageOffset) << size;
    }
}

TEST(BenchHarness, InterferenceShareSubtractsTheAllowance) {
    // 10 messages of 1 ms wall in all, 20 µs of run delay each: 200 µs, less
    // the 1 µs allowance per message, over 10 ms.
    EXPECT_NEAR(interference_share(200000, 10000000, 10), (200000.0 - 10 * kWakeAllowanceNs) / 10000000, 1e-12);
    EXPECT_EQ(interference_share(5000, 10000000, 10), 0.0) << "within the allowance";
    EXPECT_EQ(interference_share(1, 0, 1), 0.0);
    EXPECT_GT(message_allowance_ns(1 << 20), message_allowance_ns(64));
}

TEST(PlacementProbe, MeasuresALineBetweenTwoCpusAndNothingWhereItCannotPin) {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "one CPU: no line travels between CPUs";
    // A probe gives up when the CPUs are busy elsewhere (a loaded test run
    // shares them): a few tries, bounded (at most 100 ms each).
    auto probe = [](auto attempt) {
        std::optional<double> got;
        for (int i = 0; i < 10 && !got; ++i) got = attempt();
        return got;
    };
    auto line = probe([] { return cross_cpu_round_trip_ns(0, 1); });
    ASSERT_TRUE(line.has_value()) << "both CPUs online, yet no figure in 10 tries";
    EXPECT_GT(*line, 0.0);
    std::optional<double> from_pinned;
    std::thread t([&] {
        pin_to_cpu(0);
        from_pinned = probe([] { return cross_cpu_round_trip_ns(0, 1); });  // asks from the calling thread itself
    });
    t.join();
    ASSERT_TRUE(from_pinned.has_value());
    EXPECT_GT(*from_pinned, 0.0);
    EXPECT_FALSE(cross_cpu_round_trip_ns(0, CPU_SETSIZE - 1).has_value()) << "no such CPU: no figure, no hang";
}

TEST(PlacementProbe, PinnedCpuIsTheOneCpuOfTheCallingThreadOnly) {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP();
    const int main_thread = pinned_cpu();  // -1 unless the test itself was started pinned (taskset)
    int seen_pinned = -2, seen_free = -2;
    // A thread of its own: the test's main thread keeps its affinity.
    std::thread t([&] {
        seen_free = pinned_cpu();
        pin_to_cpu(1);
        seen_pinned = pinned_cpu();
    });
    t.join();
    EXPECT_EQ(seen_pinned, 1);
    EXPECT_EQ(seen_free, main_thread) << "a new thread has its creator's CPUs";
}

// A bench server that does not end on SIGTERM is killed after the bounded
// wait, and then nothing removes its names but ipc-bench: its System V queue
// outlived a sanitizer run that way. Stopped (SIGSTOP), the server cannot
// answer the SIGTERM; what it made must still be gone afterwards. (A SIGTERM
// that lands before the server's loop has its handler ends it by default
// action instead, with the same duty for ipc-bench: either way, nothing left.)
TEST(BenchServer, OneThatHadToBeKilledLeavesNothingBehind) {
    const auto before = ipclab::test::ipc_object_snapshot();
    std::vector<int> queues;
    {
        BenchServer server("sysv-mq", ipclab::ReplyMode::echo, -1);
        for (const auto& o : ipclab::list_objects("sysv-mq"))
            if (o.what.rfind("msqid ", 0) == 0) queues.push_back(std::stoi(o.what.substr(6)));
        ASSERT_FALSE(queues.empty()) << "the server's well-known queue is not listed";
        ASSERT_NE(ipclab::test::ipc_object_snapshot(), before);
        ASSERT_EQ(::kill(server.pid(), SIGSTOP), 0);
    }  // SIGTERM, 5 s, SIGKILL, the clean-up
    EXPECT_EQ(ipclab::test::ipc_object_snapshot(), before) << ipclab::test::snapshot_diff(before);
    for (int id : queues) {
        struct msqid_ds ds {};
        EXPECT_NE(::msgctl(id, IPC_STAT, &ds), 0) << "msqid " << id << " is still there";
    }
}

}  // namespace
