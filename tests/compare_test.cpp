// scripts/compare --quick into a private folder: every file of a run is
// there, results/latest points at it, summary.csv has a positive value per
// transport x size x metric, the plots are PNG images and REPORT.md shows
// them. No timing is asserted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ipclab::test;

const std::vector<std::string> kTransports = {"tcp", "unix", "fifo", "posix-mq", "sysv-mq", "shm", "udp", "shm-spin"};
const std::vector<std::string> kQuickSizes = {"64", "4096"};
const std::vector<std::string> kSizeMetrics = {"rtt_p50",           "rtt_p99",           "client_cpu_per_msg",
                                               "server_cpu_per_msg", "stream_throughput", "baseline_rtt_p50",
                                               "rtt_ratio"};

std::vector<std::string> split(const std::string& line, char sep) {
    std::vector<std::string> out;
    std::stringstream in(line);
    std::string item;
    while (std::getline(in, item, sep)) out.push_back(item);
    if (!line.empty() && line.back() == sep) out.emplace_back();
    return out;
}

std::uint32_t big_endian32(const std::string& s, std::size_t at) {
    auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])); };
    return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

TEST(Compare, QuickRunWritesEveryFile) {
    TempDir out("ipclab-compare-test");
    // A plain server as the --remote peer (on loopback: the two-hosts test
    // runs one in another network namespace), in the same run so the test
    // stays one compare run: its sessions ask for their replies.
    ipclab::Endpoint listen_on;
    listen_on.host = "127.0.0.1";
    listen_on.port = "0";
    ipclab::ServerOptions plain;
    plain.quiet = true;
    ServerProcess peer(listen_on, plain);
    const std::string remote = "127.0.0.1:" + peer.port();
    auto r = run_program({script("compare"), "--quick", "--out", out.path().string(), "--bench", bin("ipc-bench"),
                          "--remote", remote},
                         "", 180000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("\ntcp → 127.0.0.1 "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[1/"), std::string::npos) << "no progress lines:\n" << r.out;
    EXPECT_NE(r.out.find("round trip p50 ±95% CI / p99"), std::string::npos) << r.out;
    for (const auto& t : kTransports) EXPECT_NE(r.out.find("\n" + t + " "), std::string::npos) << t << "\n" << r.out;

    // One run folder, and latest-quick pointing at it: a smoke test never
    // becomes results/latest.
    std::vector<fs::path> runs;
    for (const auto& e : fs::directory_iterator(out.path()))
        if (e.path().filename() != "latest-quick") runs.push_back(e.path());
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_FALSE(fs::exists(out.path() / "latest"));
    fs::path latest = out.path() / "latest-quick";
    ASSERT_TRUE(fs::is_symlink(latest));
    EXPECT_EQ(fs::read_symlink(latest), runs[0].filename());
    EXPECT_EQ(fs::canonical(latest), fs::canonical(runs[0]));
    const fs::path run = runs[0];
    EXPECT_EQ(run.filename().string().size(), std::string("quick-YYYYmmdd-HHMMSS").size()) << run;

    for (const char* f : {"bench.json", "bench.log", "summary.csv", "latency.png", "throughput.png", "latency-p99.png",
                          "cpu.png", "connect.png", "REPORT.md"}) {
        ASSERT_TRUE(fs::is_regular_file(run / f)) << f;
        EXPECT_GT(fs::file_size(run / f), 0u) << f;
    }
    EXPECT_NE(slurp((run / "bench.json").string()).find("\"benchmarks\""), std::string::npos);

    // summary.csv: a positive value for every transport x size x metric.
    std::ifstream csv(run / "summary.csv");
    std::string line;
    ASSERT_TRUE(std::getline(csv, line));
    EXPECT_EQ(line, "transport,size_bytes,metric,value,unit,ci_low,ci_high,stable");
    std::map<std::string, int> seen;       // "transport/size/metric" -> rows
    std::map<std::string, double> value;  // "transport/size/metric" -> value
    auto number = [](const std::string& cell, double& v) {
        char* end = nullptr;
        v = std::strtod(cell.c_str(), &end);
        return end != cell.c_str() && *end == '\0';
    };
    while (std::getline(csv, line)) {
        auto cells = split(line, ',');
        ASSERT_EQ(cells.size(), 8u) << line;
        double v = 0, low = 0, high = 0;
        EXPECT_TRUE(number(cells[3], v)) << line;
        // The interval is of the median: it holds the figure.
        EXPECT_TRUE(number(cells[5], low) && number(cells[6], high)) << line;
        EXPECT_LE(low, v * (1 + 1e-5)) << line;
        EXPECT_GE(high, v * (1 - 1e-5)) << line;
        EXPECT_TRUE(cells[7] == "true" || cells[7] == "false") << line;
        // The server's CPU comes from /proc and may read zero over a --quick
        // run's few iterations (see bench_smoke_test); everything else is > 0.
        if (cells[2] == "server_cpu_per_msg")
            EXPECT_GE(v, 0.0) << line;
        else
            EXPECT_GT(v, 0.0) << line;
        EXPECT_FALSE(cells[4].empty()) << line;
        ++seen[cells[0] + "/" + cells[1] + "/" + cells[2]];
        value[cells[0] + "/" + cells[1] + "/" + cells[2]] = v;
    }
    for (const auto& t : kTransports) {
        for (const auto& s : kQuickSizes)
            for (const auto& m : kSizeMetrics) EXPECT_EQ(seen[t + "/" + s + "/" + m], 1) << t << " " << s << " " << m;
        EXPECT_EQ(seen[t + "//connect_rate"], 1) << t;
        // Whole sessions paired with the raw fork server: TCP's only (PairedConnect/tcp).
        EXPECT_EQ(seen[t + "//connect_ratio"], t == "tcp" ? 1 : 0) << t;
    }
    // The shared-memory transports also against the raw ping-pong whose
    // reply has a buffer of its own (PairedDuplex); no other transport has one.
    for (const auto& t : kTransports)
        for (const auto& s : kQuickSizes)
            EXPECT_EQ(seen[t + "/" + s + "/rtt_ratio_duplex"], t == "shm" || t == "shm-spin" ? 1 : 0) << t << " " << s;
    // The remote row: every figure but the remote server's CPU, which is not ours to read.
    for (const auto& s : kQuickSizes)
        for (const auto& m : kSizeMetrics)
            EXPECT_EQ(seen["remote/" + s + "/" + m], m == "server_cpu_per_msg" ? 0 : 1) << s << " " << m;
    EXPECT_EQ(seen["remote//connect_rate"], 1);

    // The plots: PNG signature, then an IHDR chunk with a sane size.
    for (const char* f : {"latency.png", "throughput.png", "latency-p99.png", "cpu.png", "connect.png"}) {
        std::string png = slurp((run / f).string());
        ASSERT_GE(png.size(), 33u) << f;
        EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << f;
        EXPECT_EQ(big_endian32(png, 8), 13u) << f;
        EXPECT_EQ(png.substr(12, 4), "IHDR") << f;
        std::uint32_t w = big_endian32(png, 16), h = big_endian32(png, 20);
        EXPECT_GE(w, 400u) << f;
        EXPECT_LE(w, 4000u) << f;
        EXPECT_GE(h, 300u) << f;
        EXPECT_LE(h, 4000u) << f;
    }

    // Error bars: the plots are drawn from each figure's interval.
    for (const char* f : {"latency.gp", "throughput.gp", "latency-p99.gp", "cpu.gp"}) {
        std::string gp = slurp((run / f).string());
        EXPECT_NE(gp.find("with yerrorlines"), std::string::npos) << f;
        EXPECT_NE(gp.find("95% confidence interval"), std::string::npos) << f;
    }

    std::string report = slurp((run / "REPORT.md").string());
    // Both hosts named, the remote row and its floor shown.
    for (const std::string& text : std::vector<std::string>{"Run on **", "**" + remote + "**", "## TCP to another host", "`tcp → 127.0.0.1`",
                                   "raw TCP floor p50"})
        EXPECT_NE(report.find(text), std::string::npos) << text;
    EXPECT_NE(slurp((run / "bench.json").string()).find("\"remote\": \"" + remote + "\""), std::string::npos);
    // The method, said where the figures are.
    for (const char* text : {"## How to read these figures", "confidence interval", "random interleaved order",
                             "Paired/<transport>/<bytes>", "run delay", "disturbed", "Stable means",
                             "the memcpy probe at its size",
                             "Smoke test, not a measurement", "## Interference",
                             "ipclab against raw system calls (paired", "`shm-spin` *own reply buffer*",
                             "PairedDuplex/<transport>/<bytes>", "PairedConnect/<transport>",
                             "- `tcp` session, ipclab / raw: "})
        EXPECT_NE(report.find(text), std::string::npos) << text;
    EXPECT_NE(report.find("](latency.png)"), std::string::npos);
    for (const char* plot : {"](latency-p99.png)", "](cpu.png)", "](connect.png)"})
        EXPECT_NE(report.find(plot), std::string::npos) << plot;
    // The verdict comes first, one line per use, each naming a transport of
    // this run or saying the data cannot decide.
    auto verdict = report.find("## Verdict: which mechanism for which use");
    ASSERT_NE(verdict, std::string::npos);
    EXPECT_LT(verdict, report.find("## How to read these figures"));
    for (const char* use : {"**Small messages (64 B round trip, median)**", "**Bulk transfer (4 KiB messages, one way)**",
                            "**Many short sessions", "**CPU budget**"}) {
        auto at = report.find(use);
        ASSERT_NE(at, std::string::npos) << use;
        std::string verdict_line = report.substr(at, report.find('\n', at) - at);
        bool names_one = false;
        for (const auto& t : kTransports) names_one = names_one || verdict_line.find("`" + t + "`") != std::string::npos;
        EXPECT_TRUE(names_one || verdict_line.find("cannot decide") != std::string::npos) << verdict_line;
    }
    EXPECT_NE(report.find("### Figures that contradict their neighbours"), std::string::npos);
    // ... and agrees with summary.csv: the small-message pick is the lowest median there.
    std::string fastest;
    for (const auto& t : kTransports)
        if (fastest.empty() || value[t + "/64/rtt_p50"] < value[fastest + "/64/rtt_p50"]) fastest = t;
    auto small = report.find("**Small messages (64 B round trip, median)**");
    EXPECT_NE(report.substr(small, report.find('\n', small) - small).find("`" + fastest + "`"), std::string::npos)
        << "the verdict does not start from summary.csv's fastest, " << fastest;
    EXPECT_NE(report.find("](throughput.png)"), std::string::npos);
    for (const char* fact : {"| cpu |", "| cores |", "| kernel |", "| governor |", "| fs.mqueue.msgsize_max |",
                             "| kernel.msgmax |", "| fs.pipe-max-size |", "| net.core.somaxconn |", "| git revision |"})
        EXPECT_NE(report.find(fact), std::string::npos) << fact;
    EXPECT_NE(report.find("## Reproduce"), std::string::npos);
    EXPECT_NE(report.find("scripts/compare --quick"), std::string::npos);
    for (const auto& t : kTransports) EXPECT_NE(report.find("| `" + t + "` |"), std::string::npos) << t;

    // scripts/ratios reads the same figures (through scripts/benchjson.py).
    auto ratios = run_program({script("ratios"), (run / "bench.json").string()});
    EXPECT_EQ(ratios.exit_code, 0) << ratios.err;
    for (const auto& t : kTransports)
        EXPECT_NE(ratios.out.find(t + " 64 B"), std::string::npos) << t << "\n" << ratios.out;
    EXPECT_NE(ratios.out.find("connect/s vs C fork server"), std::string::npos) << ratios.out;
    EXPECT_NE(ratios.out.find("median of per-pair ratios"), std::string::npos) << ratios.out;

    // Two runs compared: a run against itself has no significant change.
    auto same = run_program({script("compare"), "--diff", run.string(), run.string()});
    EXPECT_EQ(same.exit_code, 0) << same.err;
    EXPECT_NE(same.out.find("0 figure(s) changed significantly"), std::string::npos) << same.out;
    EXPECT_FALSE(fs::exists(fs::path(script("ratios")).parent_path() / "__pycache__"))
        << "the scripts must not write bytecode into the source tree";
}

// --peers: sockperf and iperf3 in interleaved pairs with ipclab's own
// benchmark; a ratio with its interval, and a verdict only outside the noise.
TEST(Compare, PeersArePairedAndJudgedByTheirInterval) {
    TempDir out("ipclab-compare-test");
    auto r = run_program({script("compare"), "--quick", "--transports", "tcp", "--peers", "--peer-pairs", "2",
                          "--out", out.path().string(), "--bench", bin("ipc-bench")},
                         "", 180000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    fs::path run = fs::canonical(out.path() / "latest-quick");
    std::ifstream csv(run / "peers.csv");
    std::string line;
    ASSERT_TRUE(std::getline(csv, line));
    EXPECT_EQ(line, "measure,tool,ipclab,tool_value,unit,ratio_ipclab_over_tool,ratio_ci_low,ratio_ci_high,verdict");
    int rows = 0;
    while (std::getline(csv, line)) {
        ++rows;
        EXPECT_TRUE(line.find("no difference outside the noise") != std::string::npos ||
                    line.find("ipclab faster") != std::string::npos || line.find("ipclab slower") != std::string::npos)
            << line;
    }
    EXPECT_EQ(rows, 3) << "sockperf p50, p99 and iperf3 (make test installs both)";
    std::string report = slurp((run / "REPORT.md").string());
    EXPECT_NE(report.find("interleaved pairs"), std::string::npos);
    EXPECT_TRUE(fs::exists(run / "peers-sockperf-ping-pong-0.log"));
}

// --models: the server designs table (issue 16) from the Sessions benchmarks.
TEST(Compare, ModelsRunWritesTheDesignsTable) {
    TempDir out("ipclab-compare-test");
    auto r = run_program({script("compare"), "--models", "--quick", "--transports", "unix,fifo", "--out",
                          out.path().string(), "--bench", bin("ipc-bench")},
                         "", 180000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    fs::path run = fs::canonical(out.path() / "latest-quick-models");
    std::ifstream csv(run / "designs.csv");
    std::string line;
    ASSERT_TRUE(std::getline(csv, line));
    EXPECT_EQ(line, "transport,model,clients,metric,value,unit,ci_low,ci_high,stable");
    std::set<std::string> rates;
    while (std::getline(csv, line)) {
        auto f = split(line, ',');
        ASSERT_EQ(f.size(), 9u) << line;
        if (f[3] == "sessions_per_s") {
            EXPECT_GT(std::stod(f[4]), 0) << line;
            EXPECT_LE(std::stod(f[6]), std::stod(f[4])) << line;
            EXPECT_GE(std::stod(f[7]), std::stod(f[4])) << line;
            rates.insert(f[0] + "/" + f[1] + "/" + f[2]);
        }
    }
    // Every design on unix; on fifo every one but prefork (refused there).
    for (const char* m : {"fork", "iterative", "prefork", "thread", "prethread"})
        for (const char* c : {"1", "16"}) {
            EXPECT_EQ(rates.count(std::string("unix/") + m + "/" + c), 1u) << m << " " << c;
            EXPECT_EQ(rates.count(std::string("fifo/") + m + "/" + c), std::string(m) == "prefork" ? 0u : 1u)
                << m << " " << c;
        }
    std::string report = slurp((run / "REPORT.md").string());
    for (const char* heading : {"## Method", "## 1 concurrent client", "## 16 concurrent clients", "## The designs"})
        EXPECT_NE(report.find(heading), std::string::npos) << heading;
    EXPECT_NE(report.find("server CPU/session"), std::string::npos);
    std::string png = slurp((run / "designs.png").string());
    EXPECT_EQ(png.substr(0, 4), "\x89PNG") << "designs.png is not a PNG image";
    EXPECT_NE(r.out.find("16 concurrent client(s)"), std::string::npos) << r.out;
}

TEST(Compare, LoadRunWritesScalingOpenLoopAndTheirPlots) {
    TempDir out;
    auto r = run_program({script("compare"), "--load", "--quick", "--repetitions", "2", "--transports", "unix",
                          "--out", out.path().string(), "--bench", bin("ipc-bench")},
                         "", 180000);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    fs::path run = fs::canonical(out.path() / "latest-quick-load");
    std::ifstream csv(run / "summary.csv");
    std::string line;
    ASSERT_TRUE(std::getline(csv, line));
    EXPECT_EQ(line, "transport,size_bytes,metric,value,unit,ci_low,ci_high,stable");
    std::set<std::string> metrics;
    while (std::getline(csv, line)) {
        auto f = split(line, ',');
        ASSERT_EQ(f.size(), 8u) << line;
        EXPECT_EQ(f[0], "unix") << line;
        EXPECT_EQ(f[1], "64") << line;
        EXPECT_LE(std::stod(f[5]), std::stod(f[3])) << line;
        EXPECT_GE(std::stod(f[6]), std::stod(f[3])) << line;
        EXPECT_TRUE(f[7] == "true" || f[7] == "false") << line;
        metrics.insert(f[2]);
    }
    for (int c : {1, 2, 4, 8, 16, 64})
        for (const char* m : {"msgs_per_s", "rtt_p50", "rtt_p99", "fairness", "client_cpu_per_msg",
                              "server_cpu_per_msg"})
            EXPECT_EQ(metrics.count("clients_" + std::to_string(c) + "_" + m), 1u) << c << " " << m;
    for (int pct : {10, 25, 50, 75, 90, 100, 110, 125})
        for (const char* m : {"offered_per_s", "msgs_per_s", "rtt_p99", "behind_share", "client_cpu_per_msg",
                              "server_cpu_per_msg"})
            EXPECT_EQ(metrics.count("offered_" + std::to_string(pct) + "pct_" + m), 1u) << pct << " " << m;
    std::string report = slurp((run / "REPORT.md").string());
    for (const char* heading : {"## Method", "## Sustainable rate at p99 <= 1000 us",
                                "## Scaling with concurrent clients", "## Latency against offered load",
                                "scheduled time", "Smoke test, not a measurement"})
        EXPECT_NE(report.find(heading), std::string::npos) << heading;
    for (const char* png : {"load.png", "scaling.png", "cpu-at-rate.png"}) {
        EXPECT_EQ(slurp((run / png).string()).substr(0, 4), "\x89PNG") << png << " is not a PNG image";
        EXPECT_NE(report.find(std::string("](") + png + ")"), std::string::npos) << png << " not in REPORT.md";
        // Error bars: every series is drawn with its interval.
        std::string gp = slurp((run / (std::string(png).substr(0, std::string(png).size() - 4) + ".gp")).string());
        EXPECT_NE(gp.find("yerrorlines"), std::string::npos) << png;
    }
    EXPECT_NE(r.out.find("sustainable rate"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out.path() / "latest")) << "a smoke run never becomes latest";
}

TEST(Compare, HelpAndUsageErrors) {
    auto help = run_program({script("compare"), "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    for (const char* flag : {"--transports", "--sizes", "--repetitions", "--pin", "--quick", "--out", "--peers",
                             "--models", "--load", "--load-seconds"})
        EXPECT_NE(help.out.find(flag), std::string::npos) << flag;

    TempDir out("ipclab-compare-test");
    for (std::vector<std::string> bad : {std::vector<std::string>{"--transports", "carrier-pigeon"},
                                         {"--sizes", "lots"},
                                         {"--repetitions", "0"},
                                         {"--pin", "zero"},
                                         {"--models", "--sizes", "64"},
                                         {"--load", "--models"},
                                         {"--load-seconds", "1"},
                                         {"--no-such-flag"}}) {
        std::vector<std::string> argv = {script("compare"), "--out", out.path().string()};
        argv.insert(argv.end(), bad.begin(), bad.end());
        auto r = run_program(argv);
        EXPECT_EQ(r.exit_code, 2) << bad[0] << "\n" << r.err;
        EXPECT_FALSE(r.err.empty()) << bad[0];
    }
    EXPECT_TRUE(fs::is_empty(out.path())) << "a usage error must not start a run";
}

}  // namespace
