// bin/ipc-bench: Google Benchmark over every transport, against the real
// forked server, beside plain baselines. Its own flags (--transports,
// --sizes, --pin, --version) are parsed by CLI11 like the other programs';
// the rest go to Google Benchmark, so every --benchmark_* flag works as usual.
#include <CLI/CLI.hpp>
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
#include "bench/load_bench.hpp"
#include "bench/paired_bench.hpp"
#include "bench/remote_bench.hpp"
#include "bench/sessions_bench.hpp"
#include "ipc/channel.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"

namespace ipclab::bench {
namespace {

// Long enough for thousands of round-trip samples per repetition, short
// enough that the default sweep with 5 repetitions fits `make compare`.
constexpr double kDefaultMinTime = 0.05;

const char kDescription[] =
    "ipc-bench: ipclab transports against plain baselines (Google Benchmark).\n"
    "Benchmarks: RoundTrip/<t>/<bytes>, Paired/<t>/<bytes>, Stream/<t>/<bytes>, Connect/<t>,\n"
    "Baseline/<t>/<bytes>, BaselineStream/<t>/<bytes> and PairedStream/<t>/<bytes> (tcp, unix, fifo),\n"
    "Baseline/connect-fork, Baseline/connect-fork-session, PairedConnect/tcp (Connect/tcp and connect-fork-session\n"
    "interleaved), Concurrent/<t>/<clients>, OpenLoop/<t>/<percent of the closed-loop rate>,\n"
    "Connect/<t>/<model>, Sessions/<t>/<model>/<clients>,\n"
    "Baseline/connect-socat, Baseline/memcpy/<bytes>, BaselineDuplex/<t>/<bytes> and PairedDuplex/<t>/<bytes>\n"
    "(shm, shm-spin: the raw reply in a buffer of its own), PairedWait/shm/<bytes> (shm's block-mode stream\n"
    "against its spin-mode one, interleaved); with --remote HOST:PORT also\n"
    "RoundTrip/remote/<bytes>, Baseline/remote/<bytes>, Paired/remote/<bytes>, Stream/remote/<bytes>\n"
    "and Connect/remote. Every --benchmark_* flag of Google Benchmark works as usual (listed below);\n"
    "without --benchmark_min_time each benchmark runs for at least 0.05 s. scripts/compare runs the\n"
    "standard comparison; scripts/ratios reads a JSON report.";

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
// interface contract (every benchmark here uses wall-clock time).
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

struct ReportFlags {
    std::string format = "console", out_format = "json";
    bool out = false;
    bool min_time_given = false;
};

std::vector<std::string> all_transports() {
    std::vector<std::string> names;
    for (const auto& v : transport_variants()) names.push_back(v.name);
    return names;
}

void set_transports(Config& c, const std::string& value) {
    c.transports.clear();
    auto known = all_transports();
    for (const auto& t : split(value)) {
        if (std::find(known.begin(), known.end(), t) == known.end())
            throw CLI::ValidationError("--transports", "unknown transport '" + t + "'");
        if (std::find(c.transports.begin(), c.transports.end(), t) == c.transports.end())
            c.transports.push_back(t);
    }
    if (c.transports.empty()) throw CLI::ValidationError("--transports", "is empty");
}

void set_sizes(Config& c, const std::string& value) {
    c.sizes.clear();
    try {
        for (const auto& s : split(value)) c.sizes.push_back(parse_size(s));
    } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("--sizes", e.what());
    }
    if (c.sizes.empty()) throw CLI::ValidationError("--sizes", "is empty");
}

void set_pin(Config& c, const std::string& value) {
    auto cpus = split(value);
    long ncpu = ::sysconf(_SC_NPROCESSORS_CONF);
    auto cpu = [&](const std::string& s) {
        if (s == "any") return -1;
        char* end = nullptr;
        long v = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || v < 0 || v >= ncpu)
            throw CLI::ValidationError("--pin", "bad CPU '" + s + "' (0 to " + std::to_string(ncpu - 1) + ", or any)");
        return static_cast<int>(v);
    };
    if (cpus.size() != 2) throw CLI::ValidationError("--pin", "wants two CPUs: CLIENT,SERVER");
    c.client_cpu = cpu(cpus[0]);
    c.server_cpu = cpu(cpus[1]);
}

// Our flags through CLI11 (the same convention as server and client: its
// message and a pointer to --help, exit 2); everything else is left in argv
// for Google Benchmark in `rest`. Returns -1 to go on, else the exit code.
int parse_own_flags(int argc, char** argv, Config& c, ReportFlags& report, std::vector<std::string>& rest) {
    c.transports = all_transports();
    c.sizes = {64, 1024, 4096, 65536, 1048576};
    CLI::App app{kDescription, "ipc-bench"};
    app.allow_extras();
    app.set_help_flag();  // --help goes on to Google Benchmark, after our part
    app.failure_message([](const CLI::App*, const CLI::Error& e) {
        return std::string("ipc-bench: ") + e.what() + "\nRun with --help for more information.\n";
    });
    app.set_version_flag("--version", std::string("ipc-bench (ipclab) ") + IPCLAB_VERSION);
    std::string transports, sizes, pin;
    app.add_option("--load-seconds", c.load_seconds,
                   "seconds each Concurrent and OpenLoop run sends for (default 0.3)")
        ->check(CLI::Range(0.01, 60.0));
    std::string names;
    for (const auto& t : all_transports()) names += (names.empty() ? "" : ",") + t;
    app.add_option("--transports", transports, "comma-separated subset of " + names + " (default: all)");
    app.add_option("--sizes", sizes, "message sizes, 0 to 16M; k and M are KiB and MiB (default: 64,1k,4k,64k,1M)");
    app.add_option("--pin", pin,
                   "CLIENT,SERVER: pin this process to CPU CLIENT and the servers to CPU SERVER; either may be "
                   "'any' (Paired puts both servers of a pair on one CPU regardless: the last one when unpinned)");
    app.add_option("--remote", c.remote,
                   "HOST:PORT or [IPV6]:PORT of a plain `bin/server PORT` on another host: adds the */remote "
                   "benchmarks against it (no server forked for them)");
    bool list = false, describe = false;
    app.add_flag("--list-transports", list, "print the transports --transports takes, one per line, and exit");
    app.add_flag("--describe-transports", describe,
                 "print a tab-separated table of them (name, transport, wait, addressing, byte stream, how it "
                 "waits) for scripts, and exit");
    bool help = false;
    for (int i = 1; i < argc; ++i)
        help = help || std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0;
    try {
        app.parse(argc, argv);
        if (!transports.empty() || app.count("--transports")) set_transports(c, transports);
        if (app.count("--sizes")) set_sizes(c, sizes);
        if (app.count("--pin")) set_pin(c, pin);
        if (app.count("--remote")) try {
                parse_remote(c.remote);
            } catch (const std::invalid_argument& e) {
                throw CLI::ValidationError("--remote", e.what());
            }
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (list || describe) {
        if (describe) std::cout << "name\ttransport\twait\taddressing\tbyte_stream\twaits\n";
        for (const auto& v : transport_variants()) {
            std::cout << v.name;
            if (describe)
                std::cout << '\t' << v.transport->name << '\t' << (v.wait == WaitMode::spin ? "spin" : "block") << '\t'
                          << (v.transport->host_port ? "host-port" : "name") << '\t'
                          << (v.transport->byte_stream ? "yes" : "no") << '\t' << v.waits;
            std::cout << '\n';
        }
        return 0;
    }
    if (help) std::cout << app.help() << "\nGoogle Benchmark's flags:\n" << std::flush;
    for (const auto& a : app.remaining()) {
        auto eq = a.find('=');
        std::string key = a.substr(0, eq), value = eq == std::string::npos ? "" : a.substr(eq + 1);
        if (key == "--benchmark_min_time") report.min_time_given = true;
        if (key == "--benchmark_format" && !value.empty()) report.format = value;
        if (key == "--benchmark_out_format" && !value.empty()) report.out_format = value;
        if (key == "--benchmark_out" && !value.empty()) report.out = true;
        rest.push_back(a);
    }
    return -1;
}

// Pairs each ipclab benchmark with its baseline, next to each other in time.
void register_all(const Config& c) {
    for (const auto& t : c.transports) {
        bool byte_stream = transport_variant(t).transport->byte_stream;
        for (std::size_t s : c.sizes) {
            register_ipclab_round_trip(c, t, s);
            // A zero-byte stream message cannot be read back; queues and shm can carry it.
            if (s > 0 || !byte_stream) {
                register_baseline_round_trip(c, t, s);
                register_paired_round_trip(c, t, s);
                if (has_duplex_baseline(t)) {
                    register_duplex_baseline_round_trip(c, t, s);
                    register_duplex_paired_round_trip(c, t, s);
                }
            }
        }
        for (std::size_t s : c.sizes) {
            if (s == 0) continue;  // an empty message is the sink's sync point
            register_ipclab_stream(c, t, s);
            if (has_baseline_stream(t)) {
                register_baseline_stream(c, t, s);
                register_paired_stream(c, t, s);
            }
        }
        // Every server design the transport takes.
        for (ServerModel m : kServerModels)
            if (model_applies(m, *transport_variant(t).transport)) {
                register_ipclab_connect(c, t, m);
                for (int clients : {1, 16}) register_ipclab_sessions(c, t, m, clients);
            }
        for (int clients : kConcurrentClients) register_concurrent(c, t, clients, c.load_seconds);
        for (int percent : kOpenLoopPercents) register_open_loop(c, t, percent, c.load_seconds);
        if (has_baseline_connect(t)) {
            register_baseline_connect_fork(c);
            register_baseline_connect_fork_session(c);
            register_paired_connect(c, t);
            register_baseline_connect_socat(c);
        }
    }
    const bool both_modes = std::find(c.transports.begin(), c.transports.end(), "shm") != c.transports.end() &&
                            std::find(c.transports.begin(), c.transports.end(), "shm-spin") != c.transports.end();
    for (std::size_t s : c.sizes) {
        if (s > 0) register_baseline_memcpy(s);
        if (s > 0 && both_modes) register_paired_wait_stream(c, s);
    }
}

}  // namespace
}  // namespace ipclab::bench

int main(int argc, char** argv) {
    using namespace ipclab::bench;
    Config config;
    ReportFlags report;
    std::vector<std::string> rest;
    if (int rc = parse_own_flags(argc, argv, config, report, rest); rc >= 0) return rc;
    // Our default minimum time goes in as a flag: a registered MinTime would
    // beat the user's flag and also change the benchmark names.
    if (!report.min_time_given) rest.push_back("--benchmark_min_time=" + std::to_string(kDefaultMinTime));
    std::vector<char*> args{argv[0]};
    for (auto& a : rest) args.push_back(a.data());
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
    if (!config.remote.empty()) {
        // Checked before anything runs: an absent, older or foreign server is
        // one line and exit 1, not every remote benchmark's error.
        ipclab::Endpoint remote = parse_remote(config.remote);
        try {
            std::string address = probe_remote(remote, 5000);
            benchmark::AddCustomContext("remote", config.remote);
            benchmark::AddCustomContext("remote_address", address);
        } catch (const std::exception& e) {
            std::cerr << "ipc-bench: --remote " << config.remote << ": " << e.what() << "\n";
            return 1;
        }
        register_remote(config, remote);
    }
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
