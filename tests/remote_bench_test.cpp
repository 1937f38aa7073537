// ipc-bench --remote HOST:PORT: against a plain `bin/server` every remote
// benchmark runs and checks its replies, with no server CPU counters (the
// server is not ours to read); against a server that is absent, older (it
// closes a session whose opening it does not know), ignores the reply mode or
// speaks another protocol, one clear line on stderr and exit 1, before any
// benchmark runs. Loopback only (tests/two_hosts_test.cpp runs the remote
// benchmarks across network namespaces). No timing is asserted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "ipc/fd.hpp"
#include "ipc/framing.hpp"
#include "tests/support/program.hpp"

namespace {

using namespace ipclab::test;
using ipclab::Fd;

// A TCP listener on 127.0.0.1 with a kernel-chosen port.
Fd loopback_listener(std::string& port) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd.get(), 4) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("bind/listen");
    port = std::to_string(ntohs(a.sin_port));
    return fd;
}

// A fake server for one session: reads what the client sends first, then
// answers `answer` (nothing: it just closes) and closes.
class FakeServer {
public:
    explicit FakeServer(std::string answer) : listener_(loopback_listener(port_)) {
        thread_ = std::thread([this, answer = std::move(answer)] {
            Fd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c) return;
            char buf[256];
            if (::recv(c.get(), buf, sizeof buf, 0) <= 0) return;
            if (!answer.empty()) (void)::send(c.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
        });
    }
    ~FakeServer() {
        ::shutdown(listener_.get(), SHUT_RDWR);  // wakes an accept that never got its client
        thread_.join();
    }
    const std::string& port() const { return port_; }

private:
    std::string port_;
    Fd listener_;
    std::thread thread_;
};

std::string frame(std::uint8_t type, const std::string& payload) {
    auto h = ipclab::encode_header(static_cast<ipclab::FrameType>(type), payload.size());
    return std::string(reinterpret_cast<const char*>(h.data()), h.size()) + payload;
}

// ipc-bench --remote against `port`: exit 1 and exactly one line naming it.
void expect_one_clear_line(const std::string& port, const std::string& says) {
    const std::string remote = "127.0.0.1:" + port;
    auto r = run_program({bin("ipc-bench"), "--remote", remote, "--transports", "tcp", "--sizes", "64",
                          "--benchmark_filter=/remote"},
                         "", 30000);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("ipc-bench: --remote " + remote + ": ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("ERROR OCCURRED"), std::string::npos) << r.out;
}

TEST(RemoteBench, AgainstAPlainServerEveryRemoteBenchmarkRunsAndChecksItsReplies) {
    // The seed's command line with its default --reply ack: each session asks for what it needs.
    RunningProgram server({bin("server"), "--quiet", "--bind", "127.0.0.1", "0"});
    std::string port = server.listening_port();
    ASSERT_FALSE(port.empty()) << server.err();
    auto r = run_program({bin("ipc-bench"), "--remote", "127.0.0.1:" + port, "--transports", "tcp", "--sizes",
                          "64,70000", "--benchmark_filter=/remote", "--benchmark_min_time=0.005",
                          "--benchmark_format=json"},
                         "", 120000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* name : {"RoundTrip/remote/64", "Baseline/remote/64", "Paired/remote/64", "Stream/remote/64",
                             "RoundTrip/remote/70000", "Baseline/remote/70000", "Paired/remote/70000",
                             "Stream/remote/70000", "Connect/remote"})
        EXPECT_NE(r.out.find(std::string("\"name\": \"") + name + "\""), std::string::npos) << name;
    EXPECT_EQ(r.out.find("\"error_occurred\": true"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("server_cpu_ns_per_msg"), std::string::npos) << "the remote server's CPU is not ours";
    EXPECT_NE(r.out.find("\"remote\": \"127.0.0.1:" + port + "\""), std::string::npos) << "not in the context";
    EXPECT_EQ(server.stop(SIGTERM), 0) << server.err();
}

TEST(RemoteBench, AnAbsentServerIsOneLine) {
    std::string port;
    { Fd gone = loopback_listener(port); }  // nothing listens there now
    expect_one_clear_line(port, "Connection refused");
}

TEST(RemoteBench, AnOlderServerThatClosesAtTheOpeningIsOneLine) {
    FakeServer older("");
    expect_one_clear_line(older.port(), "older than the reply-mode opening");
}

TEST(RemoteBench, AServerThatIgnoresTheReplyModeIsOneLine) {
    FakeServer acking(frame(1, ipclab::kAckText));
    expect_one_clear_line(acking.port(), "instead of the echo its opening asked for");
}

TEST(RemoteBench, AServerOfAnotherProtocolIsOneLine) {
    FakeServer ssh("SSH-2.0-OpenSSH_9.2\r\n");
    expect_one_clear_line(ssh.port(), "other than ipclab's framing");
}

TEST(RemoteBench, AMalformedRemoteIsAUsageError) {
    for (const char* bad : {"hostonly", "host:0", "host:99999", "::1:5000", "[::1]5000", ":5000"}) {
        auto r = run_program({bin("ipc-bench"), "--remote", bad});
        EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
        EXPECT_NE(r.err.find("--remote"), std::string::npos) << r.err;
    }
}

}  // namespace
