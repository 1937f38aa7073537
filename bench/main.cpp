// bin/ipc-bench: Google Benchmark over every transport, against the real
// forked server, beside plain baselines. Its own flags (--transports,
// --sizes, --pin) are taken out of argv before Google Benchmark parses the
// rest, so every --benchmark_* flag works as usual.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/baselines.hpp"
#include "bench/bench_server.hpp"
#include "bench/bench_util.hpp"
#include "bench/ipclab_bench.hpp"
#include "bench/paired_bench.hpp"
#include "ipc/channel.hpp"
#include "ipc/io.hpp"

namespace ipclab::bench {
namespace {

// Long enough for thousands of round-trip samples per repetition, short
// enough that the default sweep with 5 repetitions fits `make compare`.
constexpr double kDefaultMinTime = 0.05;

const char kUsage[] =
    "ipc-bench: ipclab transports against plain baselines (Google Benchmark)\n"
    "\n"
    "Own flags (besides every --benchmark_* flag of Google Benchmark):\n"
    "  --transports=a,b   subset of tcp,unix,fifo,posix-mq,sysv-mq,shm,shm-spin (default: all)\n"
    "  --sizes=64,4k,1M   message sizes, 0 to 16M, suffixes k and M are KiB and MiB\n"
    "                     (default: 64,1k,4k,64k,1M)\n"
    "  --pin=C,S          pin this process (the client) to CPU C and the servers to CPU S;\n"
    "                     either may be 'any' (not pinned), e.g. --pin=any,1\n"
    "\n"
    "Benchmarks: RoundTrip/<t>/<bytes>, Stream/<t>/<bytes>, Connect/<t>,\n"
    "Baseline/<t>/<bytes>, BaselineStream/<t>/<bytes> (tcp, unix, fifo),\n"
    "Baseline/connect-fork, Baseline/connect-socat, Baseline/memcpy/<bytes>. Compare with scripts/ratios.\n"
    "Without --benchmark_min_time each benchmark runs for at least 0.05 s.\n";

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

// Google Benchmark appends "/real_time" to the name of every UseRealTime()
// benchmark; the names users filter and compare on are the plain ones of
// INTERFACE.md (every benchmark here uses wall-clock time).
template <typename Base>
class PlainNames : public Base {
public:
    using Base::Base;
    void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
        auto copy = runs;
        for (auto& r : copy) r.run_name.time_type.clear();
        Base::ReportRuns(copy);
    }
};

// console or json get the renaming reporter; anything else (csv) Google
// Benchmark's own, with its suffixed names.
std::unique_ptr<benchmark::BenchmarkReporter> make_reporter(const std::string& format, bool display) {
    if (format == "json") return std::make_unique<PlainNames<benchmark::JSONReporter>>();
    if (format == "console") {
        auto opts = display && ::isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                       : benchmark::ConsoleReporter::OO_None;
        return std::make_unique<PlainNames<benchmark::ConsoleReporter>>(opts);
    }
    return nullptr;
}

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Takes our flags out of argv (both --flag=value and --flag value).
struct ReportFlags {
    std::string format = "console", out_format = "json";
    bool out = false;
};

Config parse_own_flags(int& argc, char** argv, bool& min_time_given, ReportFlags& report) {
    Config c;
    c.transports = transport_names();
    c.transports.push_back("shm-spin");
    c.sizes = {64, 1024, 4096, 65536, 1048576};
    min_time_given = false;
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        std::string key = a, value;
        bool has_value = false;
        if (auto eq = a.find('='); eq != std::string::npos) {
            key = a.substr(0, eq);
            value = a.substr(eq + 1);
            has_value = true;
        }
        if (key == "--benchmark_min_time") min_time_given = true;
        if (key == "--benchmark_format" && has_value) report.format = value;
        if (key == "--benchmark_out_format" && has_value) report.out_format = value;
        if (key == "--benchmark_out" && has_value && !value.empty()) report.out = true;
        if (key != "--transports" && key != "--sizes" && key != "--pin") {
            argv[out++] = argv[i];
            continue;
        }
        if (!has_value) {
            if (i + 1 >= argc) throw UsageError(key + " needs a value");
            value = argv[++i];
        }
        if (key == "--transports") {
            c.transports.clear();
            for (const auto& t : split(value)) {
                if (!is_transport(t) && t != "shm-spin")
                    throw UsageError("unknown transport '" + t + "'");
                if (std::find(c.transports.begin(), c.transports.end(), t) == c.transports.end())
                    c.transports.push_back(t);
            }
            if (c.transports.empty()) throw UsageError("--transports is empty");
        } else if (key == "--sizes") {
            c.sizes.clear();
            try {
                for (const auto& s : split(value)) c.sizes.push_back(parse_size(s));
            } catch (const std::invalid_argument& e) {
                throw UsageError(std::string("--sizes: ") + e.what());
            }
            if (c.sizes.empty()) throw UsageError("--sizes is empty");
        } else {
            auto cpus = split(value);
            long ncpu = ::sysconf(_SC_NPROCESSORS_CONF);
            auto cpu = [&](const std::string& s) {
                if (s == "any") return -1;
                char* end = nullptr;
                long v = std::strtol(s.c_str(), &end, 10);
                if (*end != '\0' || v < 0 || v >= ncpu)
                    throw UsageError("--pin: bad CPU '" + s + "' (0 to " + std::to_string(ncpu - 1) + ", or any)");
                return static_cast<int>(v);
            };
            if (cpus.size() != 2) throw UsageError("--pin wants two CPUs: CLIENT,SERVER");
            c.client_cpu = cpu(cpus[0]);
            c.server_cpu = cpu(cpus[1]);
        }
    }
    argc = out;
    argv[argc] = nullptr;
    return c;
}

// Pairs each ipclab benchmark with its baseline, next to each other in time.
void register_all(const Config& c) {
    auto add = [](benchmark::internal::Benchmark*) {};
    for (const auto& t : c.transports) {
        bool stream_socket_like = t == "tcp" || t == "unix" || t == "fifo";
        for (std::size_t s : c.sizes) {
            add(register_ipclab_round_trip(c, t, s));
            // A zero-byte stream message cannot be read back; queues and shm can carry it.
            if (s > 0 || !stream_socket_like) {
                add(register_baseline_round_trip(c, t, s));
                add(register_paired_round_trip(c, t, s));
            }
        }
        for (std::size_t s : c.sizes) {
            if (s == 0) continue;  // an empty message is the sink's sync point
            add(register_ipclab_stream(c, t, s));
            if (has_baseline_stream(t)) add(register_baseline_stream(c, t, s));
        }
        add(register_ipclab_connect(c, t));
        if (t == "tcp") {
            add(register_baseline_connect_fork(c));
            add(register_baseline_connect_socat(c));
        }
    }
    for (std::size_t s : c.sizes)
        if (s > 0) add(register_baseline_memcpy(s));
}

}  // namespace
}  // namespace ipclab::bench

int main(int argc, char** argv) {
    using namespace ipclab::bench;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            std::cout << kUsage << "\nGoogle Benchmark's flags:\n" << std::flush;
            break;
        }
        if (std::strcmp(argv[i], "--version") == 0) {
            std::cout << "ipc-bench (ipclab) " << IPCLAB_VERSION << "\n";
            return 0;
        }
    }
    Config config;
    bool min_time_given = false;
    ReportFlags report;
    try {
        config = parse_own_flags(argc, argv, min_time_given, report);
    } catch (const UsageError& e) {
        std::cerr << "ipc-bench: " << e.what() << "\nRun with --help for more information.\n";
        return 2;
    }
    // Our default minimum time goes in as a flag: a registered MinTime would
    // beat the user's flag and also change the benchmark names.
    std::vector<char*> args(argv, argv + argc);
    std::string min_time = "--benchmark_min_time=" + std::to_string(kDefaultMinTime);
    if (!min_time_given) args.push_back(min_time.data());
    args.push_back(nullptr);
    argc = static_cast<int>(args.size()) - 1;
    argv = args.data();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

    try {
        ipclab::ignore_sigpipe();
        install_stop_handlers();
        // Grandchildren orphaned by a stopped server come back to us to be reaped.
        ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        pin_to_cpu(config.client_cpu);
    } catch (const std::exception& e) {
        std::cerr << "ipc-bench: " << e.what() << "\n";
        return 1;
    }
    add_context(config);
    register_all(config);
    auto display = make_reporter(report.format, true);
    auto file = report.out ? make_reporter(report.out_format, false) : nullptr;
    std::size_t ran = benchmark::RunSpecifiedBenchmarks(display.get(), file.get());
    benchmark::Shutdown();
    stop_servers();
    // Bounded: anything still alive here is an orphaned session child ending.
    for (int i = 0; i < 2000; ++i) {
        int status;
        pid_t r = ::waitpid(-1, &status, WNOHANG);
        if (r < 0) break;  // ECHILD: nothing left
        if (r == 0) ::usleep(1000);
    }
    if (interrupted()) return 130;
    if (ran == 0) {
        // Google Benchmark said which filter matched nothing; a script must not take that for a run.
        std::cerr << "ipc-bench: no benchmark matched; --benchmark_list_tests=true lists them\n";
        return 2;
    }
    return 0;
}
