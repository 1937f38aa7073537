// scripts/two-hosts, as root: a short bounded run (compare --quick --remote
// from one namespace against a plain bin/server in the other) reports TCP
// across the veth link beside loopback and a same-host transport, writes the
// remote row to summary.csv, and leaves no namespace and no veth of its own
// behind, also when interrupted. Without root it must say so and exit 2. No
// timing is asserted; a missing kernel feature (netem) must not fail it.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ipclab::test;

std::string ip_tool() {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
        if (::access(p, X_OK) == 0) return p;
    return "";
}

// The run's pid, from "namespaces ipclab-srv-PID".
std::string run_id(const std::string& err) {
    std::smatch m;
    if (std::regex_search(err, m, std::regex("ipclab-srv-([0-9]+)"))) return m[1];
    return "";
}

void expect_nothing_left(const std::string& id) {
    ASSERT_FALSE(id.empty());
    auto netns = run_program({ip_tool(), "netns", "list"});
    EXPECT_EQ(netns.out.find("ipclab-srv-" + id), std::string::npos) << netns.out;
    EXPECT_EQ(netns.out.find("ipclab-cli-" + id), std::string::npos) << netns.out;
    EXPECT_FALSE(fs::exists("/run/netns/ipclab-srv-" + id));
    EXPECT_FALSE(fs::exists("/run/netns/ipclab-cli-" + id));
    auto links = run_program({ip_tool(), "link"});
    EXPECT_EQ(links.out.find("iplS" + id), std::string::npos) << links.out;
    EXPECT_EQ(links.out.find("iplC" + id), std::string::npos) << links.out;
}

// What a process was doing with its signals, for a failure message: the
// status lines (pending, blocked, ignored, caught), where it sleeps, its children.
std::string signal_state(pid_t pid) {
    std::string proc = "/proc/" + std::to_string(pid);
    std::istringstream status(slurp(proc + "/status"));
    std::string line, out;
    while (std::getline(status, line))
        if (line.rfind("State", 0) == 0 || line.rfind("Sig", 0) == 0 || line.rfind("ShdPnd", 0) == 0) out += line + "\n";
    out += "wchan: " + slurp(proc + "/wchan") + "\n";
    out += run_program({"/bin/ps", "-o", "pid,stat,wchan:20,cmd", "--ppid", std::to_string(pid)}).out;
    return out;
}

// Deletes what a run left (after its checks have failed): a failed test must
// not leave namespaces for the next one to find.
void remove_leftovers(const std::string& id) {
    if (id.empty()) return;
    for (const std::string& ns : {"ipclab-srv-" + id, "ipclab-cli-" + id})
        if (fs::exists("/run/netns/" + ns)) run_program({ip_tool(), "netns", "del", ns});
}

bool namespaces_unavailable(const ProgramResult& r) {
    return r.exit_code == 1 && r.err.find("failed: ip netns add") != std::string::npos;
}

class TwoHosts : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "two-hosts needs root";
        if (ip_tool().empty()) GTEST_SKIP() << "no ip (iproute2)";
    }
};

TEST_F(TwoHosts, ShortRunReportsAndTearsDown) {
    TempDir out("ipclab-two-hosts-test");
    auto r = run_program({script("two-hosts"), "--sizes", "64", "--transports", "unix", "--rate", "100mbit", "--delay",
                          "5ms", "--timeout", "120", "--out", out.path().string(), "--", "--quick"},
                         "", 150000);
    if (namespaces_unavailable(r)) GTEST_SKIP() << "network namespaces not available here: " << r.err;
    const std::string id = run_id(r.err);
    if (r.exit_code != 0) remove_leftovers(id);  // killed at its bound: its trap never ran
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // The remote row through the remote path (a plain server, ipc-bench --remote), beside the local ones.
    EXPECT_NE(r.out.find("\ntcp → 10.123.0.1 "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\ntcp "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nunix "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rate 100mbit"), std::string::npos) << r.out;
    // Either netem delayed the link, or the run said clearly that it did not.
    EXPECT_TRUE(r.out.find("delay 5ms each way (netem)") != std::string::npos ||
                r.err.find("DELAY SHAPING SKIPPED") != std::string::npos)
        << r.out << r.err;
    fs::path latest = out.path() / "latest-quick";
    ASSERT_TRUE(fs::exists(latest)) << r.out;
    std::string csv = slurp((latest / "summary.csv").string());
    for (const char* row : {"\nremote,64,rtt_p50,", "\nremote,64,baseline_rtt_p50,", "\nremote,64,stream_throughput,",
                            "\nremote,,connect_rate,", "\nunix,64,rtt_p50,"})
        EXPECT_NE(csv.find(row), std::string::npos) << row << "\n" << csv;
    EXPECT_NE(slurp((latest / "REPORT.md").string()).find("**10.123.0.1:"), std::string::npos);
    expect_nothing_left(id);
    remove_leftovers(id);
}

TEST_F(TwoHosts, InterruptedRunTearsDown) {
    TempDir out("ipclab-two-hosts-test");
    RunningProgram p({script("two-hosts"), "--sizes", "64", "--transports", "none", "--timeout", "120", "--out",
                      out.path().string(), "--", "--repetitions", "50", "--min-time", "5"});
    bool measuring = p.wait_for_err("TCP across the link", 30000);
    std::string err = p.err();
    if (!measuring && err.find("failed: ip netns add") != std::string::npos)
        GTEST_SKIP() << "network namespaces not available here: " << err;
    std::string id = run_id(err);
    if (!measuring) remove_leftovers(id);
    ASSERT_TRUE(measuring) << err;
    ASSERT_EQ(::kill(p.pid(), SIGINT), 0);
    // It stops within about a second (compare stops ipc-bench between copies
    // or at its next system call); 30 s is the bound for a loaded machine.
    auto rc = p.wait_exit(30000);
    if (!rc) {
        // The failure CI saw once: say what the script was doing, then stop it
        // with SIGTERM (its other trap), so the failure leaves nothing behind.
        ADD_FAILURE() << "two-hosts still ran 30 s after SIGINT:\n" << signal_state(p.pid()) << p.err();
        rc = p.stop(SIGTERM, 60000);
    }
    EXPECT_EQ(rc, 130) << p.err();
    EXPECT_NE(p.err().find("two-hosts: interrupted"), std::string::npos) << p.err();
    EXPECT_NE(p.err().find("removed namespaces"), std::string::npos) << p.err();
    expect_nothing_left(id);
    remove_leftovers(id);
}

TEST(TwoHostsUsage, HelpAndBadArguments) {
    auto help = run_program({script("two-hosts"), "--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* flag : {"--rate", "--delay", "--sizes", "--out", "compare --remote", "root"})
        EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
    auto bad = run_program({script("two-hosts"), "--rate", "fast"});
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    auto unknown = run_program({script("two-hosts"), "--frobnicate"});
    EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
}

TEST(TwoHostsUsage, WithoutRootSaysSoAndExits2) {
    if (::geteuid() == 0) {
        // Drop to nobody for this one run, if setpriv is there to do it.
        if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv to drop root";
        auto r = run_program({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash",
                              script("two-hosts"), "--sizes", "64"});
        if (r.exit_code == 126 || r.err.find("Permission denied") != std::string::npos)
            GTEST_SKIP() << "the script is not readable by nobody here: " << r.err;
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("needs root"), std::string::npos) << r.err;
    } else {
        auto r = run_program({script("two-hosts"), "--sizes", "64"});
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("needs root"), std::string::npos) << r.err;
    }
}

}  // namespace
