// bin/ipc-bench runs every benchmark once, briefly: each must finish without
// error, carry its counters, verify its payloads, and leave no IPC object and
// no process behind; a run disturbed by a busy loop is flagged. No timing is
// asserted.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace {

using namespace ipclab::test;

// Just enough JSON for Google Benchmark's report: each entry of the
// "benchmarks" array becomes a map of its scalar fields (numbers, strings,
// booleans as text).
class MiniJson {
public:
    explicit MiniJson(std::string text) : s_(std::move(text)) {}

    std::vector<std::map<std::string, std::string>> benchmarks() {
        std::vector<std::map<std::string, std::string>> out;
        auto at = s_.find("\"benchmarks\"");
        if (at == std::string::npos) return out;
        i_ = s_.find('[', at);
        if (i_ == std::string::npos) return out;
        ++i_;
        for (;;) {
            ws();
            if (i_ >= s_.size() || s_[i_] == ']') break;
            if (s_[i_] == ',') {
                ++i_;
                continue;
            }
            out.push_back(object());
        }
        return out;
    }

private:
    void ws() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    std::string string() {
        std::string v;
        ++i_;  // opening quote
        while (i_ < s_.size() && s_[i_] != '"') {
            if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
            v += s_[i_++];
        }
        ++i_;
        return v;
    }
    // Scalars as text; nested values are skipped.
    std::string value() {
        ws();
        if (s_[i_] == '"') return string();
        if (s_[i_] == '{' || s_[i_] == '[') {
            int depth = 0;
            do {
                if (s_[i_] == '"') {
                    string();
                    continue;
                }
                if (s_[i_] == '{' || s_[i_] == '[') ++depth;
                if (s_[i_] == '}' || s_[i_] == ']') --depth;
                ++i_;
            } while (depth > 0 && i_ < s_.size());
            return "";
        }
        std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && !std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
        return s_.substr(start, i_ - start);
    }
    std::map<std::string, std::string> object() {
        std::map<std::string, std::string> m;
        ++i_;  // {
        for (;;) {
            ws();
            if (i_ >= s_.size()) break;
            if (s_[i_] == '}') {
                ++i_;
                break;
            }
            if (s_[i_] == ',') {
                ++i_;
                continue;
            }
            std::string key = string();
            ws();
            ++i_;  // :
            m[key] = value();
        }
        return m;
    }

    std::string s_;
    std::size_t i_ = 0;
};

std::vector<std::string> expected_names() {
    const std::vector<std::string> transports{"tcp", "unix",     "fifo", "posix-mq",
                                              "sysv-mq", "shm", "shm-spin", "udp"};
    std::vector<std::string> names;
    for (const auto& t : transports) {
        for (const char* size : {"64", "4096"}) {
            names.push_back("RoundTrip/" + t + "/" + size);
            names.push_back("Baseline/" + t + "/" + size);
            names.push_back("Paired/" + t + "/" + size);
            names.push_back("Stream/" + t + "/" + size);
            if (t == "tcp" || t == "unix" || t == "fifo") {
                names.push_back("BaselineStream/" + t + "/" + size);
                names.push_back("PairedStream/" + t + "/" + size);
            }
            if (t == "shm" || t == "shm-spin") {  // the raw reply in a buffer of its own
                names.push_back("BaselineDuplex/" + t + "/" + size);
                names.push_back("PairedDuplex/" + t + "/" + size);
            }
        }
        names.push_back("Connect/" + t);
        names.push_back("Connect/" + t + "/iterative");
        if (t == "tcp" || t == "unix" || t == "posix-mq" || t == "sysv-mq" || t == "udp")
            names.push_back("Connect/" + t + "/prefork");
    }
    names.push_back("Baseline/connect-fork");
    names.push_back("Baseline/connect-fork-session");
    names.push_back("PairedConnect/tcp");
    names.push_back("PairedWait/shm/64");
    names.push_back("PairedWait/shm/4096");
    names.push_back("Baseline/connect-socat");  // make test installs socat
    names.push_back("Baseline/memcpy/64");
    names.push_back("Baseline/memcpy/4096");
    return names;
}

double number(const std::map<std::string, std::string>& b, const std::string& key) {
    auto it = b.find(key);
    return it == b.end() ? -1 : std::strtod(it->second.c_str(), nullptr);
}

// Concurrent/<t>/<clients> and OpenLoop/<t>/<pct> (bench/load_bench.hpp):
// each ran with its counters, or - posix-mq beyond the sessions the per-user
// RLIMIT_MSGQUEUE holds (other ipclab processes on the machine share it) -
// failed saying so, or that the connect waiting for that budget timed out.
// posix-mq with 16 and 64 sessions is left out of the run (see below).
void check_load_benchmarks(const std::map<std::string, std::map<std::string, std::string>>& by_name) {
    for (const char* t : {"tcp", "unix", "fifo", "posix-mq", "sysv-mq", "shm", "shm-spin", "udp"}) {
        for (int clients : {1, 2, 4, 8, 16, 64}) {
            if (std::string(t) == "posix-mq" && clients > 8) continue;
            std::string name = std::string("Concurrent/") + t + "/" + std::to_string(clients);
            SCOPED_TRACE(name);
            auto it = by_name.find(name);
            ASSERT_NE(it, by_name.end()) << "missing from the report";
            const auto& b = it->second;
            if (b.count("error_occurred")) {
                // Out of queue budget: refused outright, or waited for until the connect timed out.
                const std::string& why = b.at("error_message");
                EXPECT_TRUE(std::string(t) == "posix-mq" && clients > 1 &&
                            (why.find("RLIMIT_MSGQUEUE") != std::string::npos ||
                             why.find("connect took longer") != std::string::npos))
                    << why;
                continue;
            }
            for (const char* c : {"msgs_per_s", "p50_ns", "p99_ns", "max_ns"}) EXPECT_GT(number(b, c), 0) << c;
            EXPECT_LE(number(b, "p50_ns"), number(b, "p99_ns"));
            EXPECT_EQ(number(b, "clients"), clients);
            EXPECT_GT(number(b, "fairness"), 0);
            EXPECT_LE(number(b, "fairness"), 1.000001);
            for (const char* c : {"client_cpu_ns_per_msg", "server_cpu_ns_per_msg", "steal_ns_per_msg",
                                  "client_sleeps_per_msg", "server_sleeps_per_msg"})
                EXPECT_GE(number(b, c), 0) << c;
        }
        for (int pct : {10, 25, 50, 75, 90, 100, 110, 125}) {
            std::string name = std::string("OpenLoop/") + t + "/" + std::to_string(pct);
            SCOPED_TRACE(name);
            auto it = by_name.find(name);
            ASSERT_NE(it, by_name.end()) << "missing from the report";
            const auto& b = it->second;
            ASSERT_EQ(b.count("error_occurred"), 0u) << b.at("error_message");
            for (const char* c : {"msgs_per_s", "p50_ns", "p99_ns", "capacity_per_s", "offered_per_s"})
                EXPECT_GT(number(b, c), 0) << c;
            // The offered rate is the stated share of the measured closed-loop rate (arithmetic, not timing).
            EXPECT_NEAR(number(b, "offered_per_s"), number(b, "capacity_per_s") * pct / 100.0,
                        number(b, "capacity_per_s") * 1e-4);
            EXPECT_GE(number(b, "behind_share"), 0);
            EXPECT_LE(number(b, "behind_share"), 1);
            for (const char* c : {"wake_late_p50_ns", "client_pacing_ns_per_msg", "client_cpu_ns_per_msg",
                                  "server_cpu_ns_per_msg", "unsent"})
                EXPECT_GE(number(b, c), 0) << c;
        }
    }
}

TEST(BenchSmoke, EveryBenchmarkRunsVerifiesAndCleansUp) {
    const std::string exe = bin("ipc-bench");
    ASSERT_EQ(::access(exe.c_str(), X_OK), 0) << exe << " is not built (cmake --build: ipc-bench)";
    char tmpl[] = "/tmp/ipclab-bench-smoke-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, json = dir + "/bench.json";

    auto before = ipc_object_snapshot();
    // Not posix-mq with 16 or 64 sessions: they use up this user's
    // RLIMIT_MSGQUEUE (about 13 sessions) for the session timeout, and the
    // posix-mq tests running beside this one would find no budget left.
    ProgramResult r = run_program({exe, "--sizes=64,4096", "--benchmark_min_time=0.001", "--load-seconds=0.01",
                                   "--benchmark_filter=-^Concurrent/posix-mq/(16|64)/",
                                   "--benchmark_out=" + json, "--benchmark_out_format=json"},
                                  "", 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;

    std::string text = slurp(json);
    std::filesystem::remove_all(dir);
    auto entries = MiniJson(text).benchmarks();
    std::map<std::string, std::map<std::string, std::string>> by_name;
    for (auto& e : entries) by_name[e["run_name"]] = e;

    for (const auto& name : expected_names()) {
        SCOPED_TRACE(name);
        auto it = by_name.find(name);
        ASSERT_NE(it, by_name.end()) << "missing from the report";
        const auto& b = it->second;
        ASSERT_EQ(b.count("error_occurred"), 0u) << b.at("error_message");
        EXPECT_GT(number(b, "iterations"), 0);
        bool memcpy = name.rfind("Baseline/memcpy/", 0) == 0;
        bool connect = name.rfind("Connect/", 0) == 0 || name.rfind("Baseline/connect-", 0) == 0;
        if (!connect) {
            EXPECT_GT(number(b, "bytes_per_second"), 0);
        }
        if (memcpy) continue;
        const bool wait_pair = name.rfind("PairedWait/", 0) == 0;
        if (name.rfind("PairedStream/", 0) == 0 || wait_pair) {
            // A slice is timed whole: no per-message samples, no CPU split.
            for (const char* c : {"throughput_ratio", "pairs", "slice_messages"}) EXPECT_GT(number(b, c), 0) << c;
            // By value: a conditional between two braced lists would leave
            // the loop with a list whose array had already gone (ASan).
            const std::array<const char*, 2> members = wait_pair ? std::array<const char*, 2>{"block", "spin"}
                                                                 : std::array<const char*, 2>{"ipclab", "raw"};
            for (const char* member : members)
                EXPECT_GT(number(b, std::string(member) + "_bytes_per_second"), 0) << member;
            for (const char* c : {"client_runq_ns_per_msg", "server_runq_ns_per_msg", "interference", "runq_share"})
                EXPECT_GE(number(b, c), 0) << c;
            continue;
        }
        for (const char* c : {"p50_ns", "p99_ns", "p999_ns", "max_ns", "client_cpu_ns_per_msg"})
            EXPECT_GT(number(b, c), 0) << c;
        // The server's CPU time comes from /proc: schedstat of a task running
        // on the other core lags until its next tick or switch, and a reaped
        // session reaches cutime in clock ticks, so over one brief iteration it
        // may read zero. Present and not negative is what can be asserted.
        EXPECT_GE(number(b, "server_cpu_ns_per_msg"), 0);
        const bool paired = name.rfind("Paired/", 0) == 0 || name.rfind("PairedDuplex/", 0) == 0 ||
                            name.rfind("PairedConnect/", 0) == 0;
        // Page faults per message (the fork path's profile), counted by the kernel.
        if (!paired) {
            for (const char* c : {"client_faults_per_msg", "server_faults_per_msg"}) EXPECT_GE(number(b, c), 0) << c;
        }
        // Interference counters on every measured run (values depend on the machine).
        for (const char* c :
             {"client_runq_ns_per_msg", "server_runq_ns_per_msg", "steal_ns_per_msg", "interference", "runq_share"})
            EXPECT_GE(number(b, c), 0) << c;
        EXPECT_TRUE(b.count("disturbed") == 1 && (number(b, "disturbed") == 0 || number(b, "disturbed") == 1));
        if (paired) {
            for (const char* c : {"raw_p50_ns", "raw_p99_ns", "ratio", "pairs", "slice_messages"})
                EXPECT_GT(number(b, c), 0) << c;
        }
        bool shm = name.find("/shm/") != std::string::npos || name.find("/shm-spin/") != std::string::npos;
        bool raw = name.rfind("Baseline/", 0) == 0 || name.rfind("BaselineDuplex/", 0) == 0;
        // Connect benchmarks count sessions, not the waits of one session.
        if (shm && !raw && name.rfind("Connect/", 0) != 0) {
            EXPECT_GE(number(b, "server_waits_slept_per_msg"), 0) << "shm wait counters missing";
        }
    }

    check_load_benchmarks(by_name);

    EXPECT_TRUE(eventually([&] { return ipc_object_snapshot() == before; }, 5000))
        << "ipc-bench left IPC objects behind:" << snapshot_diff(before) << "\nits stderr:\n" << r.err;
    EXPECT_TRUE(children_of(::getpid()).empty());
}

// A busy loop at a high CPU priority pinned to the server's CPU: the server
// waits for that CPU on nearly every message, and the run must say so (run
// delay counted, the repetition flagged disturbed). At nice -10 the loop
// gets ~90% of the CPU by weight, so no timing noise can decide the outcome,
// and the server still gets enough to start (at nice -20, ~1%, a server
// under ThreadSanitizer took more than 30 s to fork its session). Both
// shares show it: `interference` (beyond the allowance) and runq_share,
// the counter scripts/compare judges by. (A stream here would starve for
// seconds, and with it every other test on that CPU.)
TEST(BenchSmoke, ABusyLoopOnTheServersCpuIsCountedAndFlagged) {
    const long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 2) GTEST_SKIP() << "needs two CPUs (client and server on different ones)";
    pid_t busy = test_fork();
    ASSERT_GE(busy, 0);
    if (busy == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(1, &set);
        ::sched_setaffinity(0, sizeof set, &set);
        ::setpriority(PRIO_PROCESS, 0, -10);  // as root; at nice 0 the test still holds, less sharply
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // bounded even if orphaned
        while (std::chrono::steady_clock::now() < end) {
        }
        ::_exit(0);
    }
    char tmpl[] = "/tmp/ipclab-bench-busy-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, json = dir + "/bench.json";
    ProgramResult r = run_program({bin("ipc-bench"), "--pin=0,1", "--transports=unix", "--sizes=64",
                                   "--benchmark_filter=^RoundTrip/unix/64/", "--benchmark_min_time=0.2",
                                   "--benchmark_out=" + json, "--benchmark_out_format=json"},
                                  "", 60000);
    ::kill(busy, SIGKILL);
    wait_or_kill(busy, 5000);
    std::string text = slurp(json);
    std::filesystem::remove_all(dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto entries = MiniJson(text).benchmarks();
    ASSERT_EQ(entries.size(), 1u) << text;
    const auto& b = entries[0];
    ASSERT_EQ(b.count("error_occurred"), 0u) << b.at("error_message");
    EXPECT_GT(number(b, "server_runq_ns_per_msg"), 0);
    EXPECT_GT(number(b, "interference"), 0.05) << "server run delay " << number(b, "server_runq_ns_per_msg");
    EXPECT_GT(number(b, "runq_share"), number(b, "interference")) << "runq_share has no allowance taken off";
    EXPECT_EQ(number(b, "disturbed"), 1);
}

// Client and servers on CPU 0: shm-spin's servers go to CPU 1, so its runs
// carry the placement probe's counter; unix's server shares the client's
// CPU, so its runs carry none (no line travels between fixed CPUs). A probe
// gives no figure when the two CPUs were busy elsewhere for its 100 ms (as
// in a loaded test run), so each benchmark gets several repetitions and
// must carry it in at least one.
TEST(BenchSmoke, RunsAcrossTwoPinnedCpusCarryThePlacementProbe) {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two CPUs";
    char tmpl[] = "/tmp/ipclab-bench-probe-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, json = dir + "/bench.json";
    ProgramResult r = run_program({bin("ipc-bench"), "--pin=0,0", "--transports=shm-spin,unix", "--sizes=64",
                                   "--benchmark_filter=^(Paired|Stream)/(shm-spin|unix)/64/",
                                   "--benchmark_min_time=0.005", "--benchmark_repetitions=6",
                                   "--benchmark_out=" + json, "--benchmark_out_format=json"},
                                  "", 60000);
    std::string text = slurp(json);
    std::filesystem::remove_all(dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, int> runs, probed;
    for (auto& b : MiniJson(text).benchmarks()) {
        if (b["run_type"] != "iteration") continue;
        SCOPED_TRACE(b["run_name"]);
        ASSERT_EQ(b.count("error_occurred"), 0u) << b["error_message"];
        ++runs[b["run_name"]];
        if (b.count("xcpu_rtt_ns")) {
            EXPECT_GT(number(b, "xcpu_rtt_ns"), 0);
            ++probed[b["run_name"]];
        }
    }
    ASSERT_EQ(runs.size(), 4u) << text;
    for (const auto& [name, n] : runs) {
        SCOPED_TRACE(name);
        EXPECT_EQ(n, 6);
        if (name.find("/shm-spin/") != std::string::npos)
            EXPECT_GE(probed[name], 1) << "no repetition of six carried the probe";
        else
            EXPECT_EQ(probed[name], 0) << "client and server on one CPU: nothing to probe";
    }
}

// A stop signal ends a run at once whatever kind of loop it lands in: a
// stream whose writes never block (nothing returns EINTR), a copy loop with
// no system call at all, a round trip, a paired slice. Each repetition here
// would last a minute; each must be gone 4 s after the signal.
TEST(BenchSmoke, AStopSignalEndsEveryKindOfTimedLoopAtOnce) {
    const std::string exe = bin("ipc-bench");
    auto before = ipc_object_snapshot();
    std::vector<std::string> filters = {"^BaselineStream/tcp/64/", "^Stream/unix/64/", "^Baseline/memcpy/64/",
                                        "^RoundTrip/fifo/64/", "^Paired/unix/64/"};
    std::vector<std::unique_ptr<RunningProgram>> runs;
    for (const auto& f : filters)
        runs.push_back(std::make_unique<RunningProgram>(std::vector<std::string>{
            exe, "--transports=tcp,unix,fifo", "--sizes=64", "--benchmark_filter=" + f,
            "--benchmark_min_time=60", "--benchmark_repetitions=2"}));
    // Three seconds in, Google Benchmark is in its iteration search, most
    // often in a round of several seconds: left to run out, the stop waits for it.
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    for (auto& r : runs) ASSERT_EQ(::kill(r->pid(), SIGINT), 0);
    const auto signalled = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < runs.size(); ++i) {
        auto rc = runs[i]->wait_exit(60000);
        ASSERT_TRUE(rc.has_value()) << filters[i] << ": still running a minute after SIGINT\n" << runs[i]->err();
        // A bound, not a timing: stopped at once it takes milliseconds; left
        // to a round's end it took 5-15 s at this point of the run.
        EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(4))
            << filters[i] << ": ran on after SIGINT\n" << runs[i]->err();
        EXPECT_EQ(*rc, 130) << filters[i] << "\n" << runs[i]->err();
    }
    EXPECT_TRUE(eventually([&] { return ipc_object_snapshot() == before; }, 5000)) << "an interrupted run left objects";
}

TEST(BenchSmoke, OwnFlagsAreCheckedAndOthersPassToGoogleBenchmark) {
    const std::string exe = bin("ipc-bench");
    EXPECT_EQ(run_program({exe, "--transports=carrier-pigeon"}).exit_code, 2);
    EXPECT_EQ(run_program({exe, "--sizes=17M"}).exit_code, 2);
    EXPECT_EQ(run_program({exe, "--pin=0"}).exit_code, 2);
    ProgramResult none = run_program({exe, "--benchmark_filter=^NoSuchBenchmark$"});
    EXPECT_EQ(none.exit_code, 2) << "a filter that matches nothing is a usage error";
    EXPECT_NE(none.err.find("no benchmark matched"), std::string::npos) << none.err;
    ProgramResult version = run_program({exe, "--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_NE(version.out.find("ipc-bench"), std::string::npos) << version.out;
    ProgramResult list = run_program({exe, "--transports=unix", "--sizes=1k",
                                      "--benchmark_list_tests=true"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("RoundTrip/unix/1024"), std::string::npos) << list.out;
    EXPECT_EQ(list.out.find("RoundTrip/tcp/"), std::string::npos) << list.out;
}

}  // namespace
