// End-to-end: the real bin/server and bin/client over TCP on 127.0.0.1 and
// ::1, including the seed's own client and server behaviour.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <regex>

#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/registry.hpp"
#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

constexpr char kAck[] = "I got your message";

Fd raw_connect(const std::string& host, const std::string& port) {
    Endpoint ep;
    ep.host = host;
    ep.port = port;
    return connect_stream(ep, 5000);
}

// The seed's client: one write of the line, one read of up to 255 bytes.
std::string seed_client(const std::string& host, const std::string& port, const std::string& line) {
    Fd fd = raw_connect(host, port);
    if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return "write failed";
    char buf[256] = {};
    ssize_t n = ::read(fd.get(), buf, 255);
    return n < 0 ? "read failed" : std::string(buf, static_cast<std::size_t>(n));
}

class TcpServer : public ::testing::Test {
protected:
    void start(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{bin("server"), "0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        server_ = std::make_unique<RunningProgram>(argv);
        port_ = server_->listening_port();
        ASSERT_FALSE(port_.empty()) << server_->err();
    }
    void TearDown() override {
        if (server_ && server_->pid() > 0) {
            EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->err();
        }
    }
    ProgramResult client(std::vector<std::string> args, const std::string& in = "") {
        std::vector<std::string> argv{bin("client")};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_program(argv, in);
    }
    std::unique_ptr<RunningProgram> server_;
    std::string port_;
};

TEST_F(TcpServer, SeedExchangeWithMessageFlag) {
    start();
    auto r = client({"-m", "hello", "127.0.0.1", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "I got your message\n");
    EXPECT_TRUE(eventually([&] { return server_->out().find("Here is the message: hello\n") != std::string::npos; }))
        << server_->out();
}

// Names resolve (getaddrinfo through NSS): in a static-pie build
// (IPCLAB_STATIC_PIE) too, where glibc loads its NSS modules at run time.
TEST_F(TcpServer, ClientResolvesLocalhost) {
    start();
    auto r = client({"-m", "by name", "localhost", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "I got your message\n");
}

// What a forked session child says and does, whatever its memory tricks
// (a parked read buffer, lines built on the stack, sockets that inherit
// their options from the listener): the message line, the first reply, one
// log line with the session's figures.
TEST_F(TcpServer, SessionChildRepliesAndLogsItsEndAsBefore) {
    start();
    auto r = client({"--size", "64", "--count", "1", "127.0.0.1", port_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto r2 = client({"-m", "second", "127.0.0.1", port_});
    EXPECT_EQ(r2.out, "I got your message\n") << r2.err;
    ASSERT_TRUE(eventually([&] { return count_of(server_->err(), "session ended") == 2; })) << server_->err();
    const std::regex ended(
        "server: session ended pid=[1-9][0-9]* peer=127\\.0\\.0\\.1:[1-9][0-9]* messages=1 bytes_in=64 "
        "bytes_out=18 duration=[0-9]+\\.[0-9]{3}s end=\"client closed\"\n");
    EXPECT_TRUE(std::regex_search(server_->err(), ended)) << server_->err();
    EXPECT_TRUE(eventually([&] { return server_->out().find("Here is the message: second\n") != std::string::npos; }))
        << server_->out();
    EXPECT_EQ(count_of(server_->out(), "Here is the message: "), 2u) << server_->out();
}

// Accepted sockets inherit TCP_NODELAY and the send timeout from the listener
// (set once there instead of per session); the client's socket has them too.
// No receive timeout: it would arm a kernel timer on every read that sleeps,
// and the session's reader bounds its reads with a tick instead (io.hpp).
TEST(TcpSockets, SessionSocketsComeWithNoDelayAndTheSendTimeout) {
    Limits limits;
    limits.timeout_ms = 1500;
    Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = "0";
    auto listener = listen_tcp(ep, limits);
    ep.port = listener->bound_port();
    Fd client = connect_tcp_socket(ep, limits.timeout_ms);
    std::unique_ptr<PendingSession> pending;
    for (int i = 0; i < 100 && !pending; ++i) pending = listener->accept(-1);
    ASSERT_TRUE(pending);
    Fd served = pending->release_descriptor();
    for (int fd : {served.get(), client.get()}) {
        int nodelay = 0;
        socklen_t len = sizeof nodelay;
        ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
        EXPECT_NE(nodelay, 0);
        auto timeout_ms = [&](int opt) {
            struct timeval tv {};
            socklen_t tv_len = sizeof tv;
            EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, opt, &tv, &tv_len), 0);
            return tv.tv_sec * 1000L + tv.tv_usec / 1000L;
        };
        // The kernel keeps it in clock ticks: 1.5 s to within one tick.
        EXPECT_GE(timeout_ms(SO_SNDTIMEO), 1490);
        EXPECT_LE(timeout_ms(SO_SNDTIMEO), 1510);
        EXPECT_EQ(timeout_ms(SO_RCVTIMEO), 0);
    }
}

TEST_F(TcpServer, SeedExchangeInteractiveOverIpv6) {
    start();
    auto r = client({"::1", port_}, "hi there\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "Please enter the message: I got your message\n");
    EXPECT_TRUE(eventually([&] { return server_->out().find("Here is the message: hi there\n") != std::string::npos; }));
}

TEST_F(TcpServer, SeedClientGetsExactlyTheEighteenBytes) {
    start();
    EXPECT_EQ(seed_client("127.0.0.1", port_, "hello from the seed\n"), kAck);
    EXPECT_EQ(seed_client("::1", port_, "hello from the seed\n"), kAck);
}

TEST_F(TcpServer, NetcatStyleLinesGetOneReplyEach) {
    start();
    Fd fd = raw_connect("127.0.0.1", port_);
    write_all(fd.get(), as_bytes("one\ntwo\nthree\n"), true, 2000, "lines");
    std::string want = std::string(kAck) + kAck + kAck;
    ipclab::Bytes got(want.size());
    ASSERT_TRUE(read_exactly(fd.get(), got, 5000));
    EXPECT_EQ(std::string(reinterpret_cast<char*>(got.data()), got.size()), want);
}

TEST_F(TcpServer, EchoesOneMebibyteByteExact) {
    start({"--reply", "echo", "--quiet"});
    auto r = client({"--size", "1M", "--count", "3", "--verify", "127.0.0.1", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("verified: all 3 replies equal their payloads byte for byte"), std::string::npos) << r.out;
    r = client({"--size", "0", "--count", "2", "--verify", "::1", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(TcpServer, StatsReportPercentiles) {
    start({"--quiet"});
    auto r = client({"--count", "200", "--stats", "-m", "x", "127.0.0.1", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const char* field : {"min", "p50", "p90", "p99", "max", "msg/s"})
        EXPECT_NE(r.out.find(field), std::string::npos) << r.out;
}

TEST_F(TcpServer, OversizedFrameIsRefusedAndServingGoesOn) {
    start({"--max-message", "1000", "--quiet"});
    auto r = client({"--size", "1001", "127.0.0.1", port_});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("exceeds"), std::string::npos) << r.err;
    r = client({"--size", "1000", "127.0.0.1", port_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(server_->wait_for_err("refused"));
}

TEST_F(TcpServer, ManySequentialAndConcurrentSessionsLeaveNoZombiesOrDescriptors) {
    start({"--quiet", "--reply", "echo"});
    ASSERT_EQ(seed_client("127.0.0.1", port_, "warm up\n"), "warm up\n");
    ASSERT_TRUE(eventually([&] { return children_of(server_->pid()).empty(); }));
    int fds_before = open_fd_count(server_->pid());

    for (int i = 0; i < 200; ++i) {
        std::string line = "sequential " + std::to_string(i) + "\n";
        ASSERT_EQ(seed_client(i % 2 ? "::1" : "127.0.0.1", port_, line), line);
    }

    std::vector<pid_t> kids;
    for (int i = 0; i < 50; ++i) {
        pid_t pid = test_fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int ok = 0;
            try {
                Endpoint ep;
                ep.host = "127.0.0.1";
                ep.port = port_;
                auto ch = connect(ep, Limits{});
                std::string text = "concurrent " + std::to_string(i);
                Message m;
                for (int k = 0; k < 20; ++k) {
                    ch->send(FrameType::data, as_bytes(text));
                    if (!ch->receive(m) || m.payload.size() != text.size() ||
                        std::memcmp(m.payload.data(), text.data(), text.size()) != 0)
                        ::_exit(3);
                }
                ok = 1;
            } catch (...) {
            }
            ::_exit(ok ? 0 : 2);
        }
        kids.push_back(pid);
    }
    for (pid_t k : kids) EXPECT_EQ(wait_or_kill(k, 30000), 0);

    EXPECT_TRUE(eventually([&] { return children_of(server_->pid()).empty(); }))
        << children_of(server_->pid()).size() << " children left";
    EXPECT_TRUE(zombie_children_of(server_->pid()).empty());
    EXPECT_EQ(open_fd_count(server_->pid()), fds_before);
}

TEST_F(TcpServer, ClientKilledMidMessageDoesNotDisturbTheServer) {
    start({"--quiet"});
    pid_t pid = test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        try {
            Fd fd = raw_connect("127.0.0.1", port_);
            // Opening and a header announcing 1000 bytes, then only 10 of them.
            ipclab::Bytes bytes(kFramedOpening.begin(), kFramedOpening.end());
            auto h = encode_header(FrameType::data, 1000);
            bytes.insert(bytes.end(), h.begin(), h.end());
            bytes.resize(bytes.size() + 10);
            write_all(fd.get(), bytes, true, 2000, "partial");
            ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    ASSERT_TRUE(eventually([&] { return children_of(server_->pid()).size() == 1; }));
    ::kill(pid, SIGKILL);
    EXPECT_EQ(wait_or_kill(pid, 5000), SIGKILL);  // raw status of a SIGKILLed child
    EXPECT_TRUE(server_->wait_for_err("peer vanished"));
    EXPECT_EQ(seed_client("127.0.0.1", port_, "still there?\n"), kAck);
    EXPECT_TRUE(eventually([&] { return children_of(server_->pid()).empty(); }));
}

TEST_F(TcpServer, IdleSessionIsEndedByTheTimeout) {
    start({"--idle-timeout", "0.3"});
    Fd fd = raw_connect("127.0.0.1", port_);
    char c;
    ASSERT_TRUE(wait_fd(fd.get(), POLLIN, 10000, "idle"));
    EXPECT_EQ(::read(fd.get(), &c, 1), 0);  // the server closed the silent session
    EXPECT_TRUE(server_->wait_for_err("idle timeout"));
}

TEST_F(TcpServer, SigtermWithAClientAttachedEndsEverythingAndExitsZero) {
    start({"--grace", "0.5"});
    Fd fd = raw_connect("127.0.0.1", port_);
    ASSERT_TRUE(eventually([&] { return children_of(server_->pid()).size() == 1; }));
    pid_t child = children_of(server_->pid()).front();
    pid_t server = server_->pid();
    EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->err();
    EXPECT_NE(server_->err().find("after the grace period"), std::string::npos) << server_->err();
    EXPECT_TRUE(eventually([&] { return ::kill(child, 0) != 0; })) << "child survived";
    EXPECT_TRUE(children_of(server).empty());
    // The listener is gone: new connections are refused.
    Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port_;
    EXPECT_THROW(connect_stream(ep, 2000), std::runtime_error);
}

// Ctrl-C reaches the server's whole process group. A session child keeps
// the loop's signal handlers (it installs none of its own), which in a child
// ignore SIGINT: the session in progress goes on through the grace period and
// ends when its client closes; then the server exits 0.
TEST_F(TcpServer, CtrlCToTheGroupLetsTheSessionInProgressFinish) {
    start({"--grace", "20"});
    Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port_;
    auto channel = connect(ep, client_limits(10000));
    Message reply;
    channel->send(FrameType::data, as_bytes("before"));
    ASSERT_TRUE(channel->receive(reply));
    ASSERT_TRUE(eventually([&] { return children_of(server_->pid()).size() == 1; }));
    pid_t child = children_of(server_->pid()).front();
    ASSERT_EQ(::kill(child, SIGINT), 0);
    ASSERT_EQ(::kill(server_->pid(), SIGINT), 0);
    channel->send(FrameType::data, as_bytes("after"));
    ASSERT_TRUE(channel->receive(reply)) << server_->err();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size()),
              "I got your message");
    EXPECT_EQ(::kill(child, 0), 0) << "the session child did not outlive Ctrl-C";
    channel.reset();
    std::optional<int> rc = server_->wait_exit(10000);
    ASSERT_TRUE(rc.has_value()) << "the server did not stop once its last session ended\n" << server_->err();
    EXPECT_EQ(*rc, 0) << server_->err();
    EXPECT_NE(server_->err().find("messages=2 bytes_in=11 bytes_out=36"), std::string::npos) << server_->err();
    EXPECT_NE(server_->err().find("end=\"client closed\""), std::string::npos) << server_->err();
    EXPECT_EQ(server_->out(), "Here is the message: before\nHere is the message: after\n");
}

TEST_F(TcpServer, BindLimitsTheServerToOneAddress) {
    start({"--bind", "127.0.0.1"});
    EXPECT_EQ(seed_client("127.0.0.1", port_, "v4\n"), kAck);
    EXPECT_THROW(raw_connect("::1", port_), std::runtime_error);
    server_->stop(SIGTERM);
    start({"--bind", "::1"});
    EXPECT_EQ(seed_client("::1", port_, "v6\n"), kAck);
    EXPECT_THROW(raw_connect("127.0.0.1", port_), std::runtime_error);
}

TEST_F(TcpServer, NoReapTeachingSwitchLeavesZombiesUntilExit) {
    start({"--no-reap", "--quiet"});
    EXPECT_TRUE(server_->wait_for_err("teaching mode"));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(seed_client("127.0.0.1", port_, "z\n"), kAck);
    EXPECT_TRUE(eventually([&] { return zombie_children_of(server_->pid()).size() == 3; }))
        << zombie_children_of(server_->pid()).size();
    pid_t server = server_->pid();
    EXPECT_EQ(server_->stop(SIGTERM), 0);
    EXPECT_TRUE(children_of(server).empty());
}

TEST_F(TcpServer, OnceServesOneSessionThenExits) {
    start({"--once"});
    EXPECT_EQ(seed_client("127.0.0.1", port_, "only\n"), kAck);
    int status = wait_or_kill(server_->pid(), 10000);
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    server_.reset();
}

TEST_F(TcpServer, MaxClientsHoldsBackTheRest) {
    start({"--max-clients", "2", "--quiet"});
    Fd a = raw_connect("127.0.0.1", port_), b = raw_connect("127.0.0.1", port_);
    ASSERT_TRUE(eventually([&] { return children_of(server_->pid()).size() == 2; }));
    Fd c = raw_connect("127.0.0.1", port_);  // queued by the kernel, not forked
    write_all(c.get(), as_bytes("third\n"), true, 1000, "third");
    EXPECT_FALSE(wait_fd(c.get(), POLLIN, 300, "third reply"));
    EXPECT_EQ(children_of(server_->pid()).size(), 2u);
    a.reset();  // a slot frees up; the third session is served
    ipclab::Bytes reply(18);
    EXPECT_TRUE(read_exactly(c.get(), reply, 5000));
}

// The seed's one-shot server: accept once, read once, reply, exit.
TEST(SeedServer, ClientWorksAgainstIt) {
    Fd listener = new_socket(AF_INET, SOCK_STREAM);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listener.get(), 5), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    std::string port = std::to_string(ntohs(sa.sin_port));
    pid_t pid = test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int conn = ::accept(listener.get(), nullptr, nullptr);
        char buf[256] = {};
        if (conn < 0 || ::read(conn, buf, 255) <= 0) ::_exit(1);
        bool ok = std::string(buf) == "to the seed\n";
        if (::write(conn, kAck, 18) != 18) ::_exit(1);
        ::close(conn);
        ::_exit(ok ? 0 : 2);
    }
    listener.reset();
    auto r = run_program({bin("client"), "-m", "to the seed", "127.0.0.1", port});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "I got your message\n");
    EXPECT_EQ(wait_or_kill(pid, 5000), 0);
}

// A usage error: exit 2, a pointer to --help, and `says` (if not empty) on stderr.
void expect_usage_error(const std::vector<std::string>& argv, const std::string& says) {
    auto r = run_program(argv, "", 10000);
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    EXPECT_EQ(r.exit_code, 2) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << cmd << ": " << r.err;
    if (!says.empty()) {
        EXPECT_NE(r.err.find(says), std::string::npos) << cmd << ": " << r.err;
    }
}

TEST(CommandLine, BadFlagsExitTwoWithAPointerToHelp) {
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {bin("server"), "--bogus", "1"},
             {bin("server")},
             {bin("server"), "--max-clients", "0", "1"},
             {bin("server"), "--transport", "carrier-pigeon"},
             {bin("server"), "--reply", "shout", "1"},
             {bin("client")},
             {bin("client"), "localhost"},
             {bin("client"), "localhost", "99999"},
             {bin("client"), "--count", "0", "localhost", "1"},
             {bin("client"), "--size", "1k", "-m", "x", "localhost", "1"}}) {
        auto r = run_program(argv);
        EXPECT_EQ(r.exit_code, 2) << argv.back() << ": " << r.err;
        EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
    }
    for (const char* prog : {"server", "client"}) {
        EXPECT_EQ(run_program({bin(prog), "--help"}).exit_code, 0);
        auto v = run_program({bin(prog), "--version"});
        EXPECT_EQ(v.exit_code, 0);
        EXPECT_FALSE(v.out.empty());
    }
}

// Issue 12, findings 6 and 7: every duration refuses NaN, infinities,
// negatives and values whose milliseconds overflow an int; every numeric
// flag refuses negatives; --name is checked while parsing. All exit 2.
TEST(CommandLine, NonFiniteOrOutOfRangeNumbersAndBadNamesExitTwo) {
    std::vector<std::vector<std::string>> bad;
    for (const char* v : {"nan", "NaN", "inf", "-inf", "-1", "1e30", "86401", "x"}) {
        bad.push_back({bin("server"), "--idle-timeout", v, "1"});
        bad.push_back({bin("client"), "--timeout", v, "-m", "x", "localhost", "1"});
    }
    for (const char* v : {"nan", "inf", "-0.5", "3601"}) bad.push_back({bin("server"), "--grace", v, "1"});
    for (const char* flag : {"--max-clients", "--max-message", "PORT"}) {
        std::vector<std::string> argv{bin("server")};
        if (std::string(flag) != "PORT") argv.push_back(flag);
        argv.insert(argv.end(), {"-1", "1"});
        if (std::string(flag) == "PORT") argv.pop_back();
        bad.push_back(argv);
    }
    for (const char* flag : {"--count", "--size", "--max-message"})
        bad.push_back({bin("client"), flag, "-1", "localhost", "1"});
    for (const char* name : {"a/b", "..", ".hidden", "", "a b", "x\x1b[2J"}) {
        bad.push_back({bin("server"), "--transport", "fifo", "--name", name});
        bad.push_back({bin("client"), "--transport", "unix", "--name", name, "-m", "x"});
    }
    for (const auto& argv : bad) expect_usage_error(argv, "");
}

TEST(CommandLine, RuntimeFailuresExitOneWithOneClearLine) {
    auto r = run_program({bin("client"), "-m", "x", "no-such-host.invalid", "5"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("cannot resolve"), std::string::npos) << r.err;
    // A port nobody listens on: bind one, close it, connect.
    Fd s = new_socket(AF_INET, SOCK_STREAM);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    std::string port = std::to_string(ntohs(sa.sin_port));
    s.reset();
    r = run_program({bin("client"), "-m", "x", "127.0.0.1", port});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    // The endpoint is named once, not once by the library and again by the program.
    std::string where = "127.0.0.1 port " + port;
    auto first = r.err.find(where);
    ASSERT_NE(first, std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(where, first + 1), std::string::npos) << r.err;
}

// Issue 13: server, client and ipc-bench print the registry's transports one
// per line, and all three agree (ipc-bench adds the spinning variants).
TEST(CommandLine, ListTransportsComesFromTheRegistry) {
    std::string expected;
    for (const auto& t : transport_names()) expected += t + "\n";
    for (const char* prog : {"server", "client"}) {
        auto r = run_program({bin(prog), "--list-transports"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.out, expected) << prog;
    }
    auto b = run_program({bin("ipc-bench"), "--list-transports"});
    EXPECT_EQ(b.exit_code, 0) << b.err;
    std::string variants;
    for (const auto& v : transport_variants()) variants += v.name + "\n";
    EXPECT_EQ(b.out, variants);
    EXPECT_EQ(b.out.rfind(expected, 0), 0u) << "every transport comes first, in the registry's order";
    auto d = run_program({bin("ipc-bench"), "--describe-transports"});
    EXPECT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out.rfind("name\ttransport\twait\taddressing\tbyte_stream\twaits\n", 0), 0u) << d.out;
    EXPECT_EQ(std::count(d.out.begin(), d.out.end(), '\n'), static_cast<long>(transport_variants().size()) + 1);
}

// A flag that does not apply to the transport is refused the same way by
// both programs (exit 2 and a pointer to --help), never silently ignored.
TEST(CommandLine, FlagsThatDoNotApplyToTheTransportExitTwo) {
    std::string spin_less, host_port, by_name, with_wait;
    for (const auto& t : transports()) {
        if (!t.wait_modes && spin_less.empty()) spin_less = t.name;
        if (t.host_port && host_port.empty()) host_port = t.name;
        if (!t.host_port && by_name.empty()) by_name = t.name;
        if (t.wait_modes && with_wait.empty()) with_wait = t.name;
    }
    ASSERT_FALSE(host_port.empty() || by_name.empty() || with_wait.empty());
    std::vector<std::vector<std::string>> bad = {
        {bin("server"), "--transport", host_port, "--wait", "spin", "51718"},
        {bin("client"), "--transport", host_port, "--wait", "spin", "-m", "x", "localhost", "1"},
        {bin("server"), "--transport", host_port, "--name", "x", "51718"},
        {bin("client"), "--transport", host_port, "--name", "x", "-m", "x", "localhost", "1"},
        {bin("server"), "--transport", by_name, "--bind", "127.0.0.1"},
        {bin("server"), "--transport", by_name, "51718"},
        {bin("client"), "--transport", by_name, "-m", "x", "localhost", "1"},
    };
    if (!spin_less.empty() && spin_less != host_port)
        bad.push_back({bin("server"), "--transport", spin_less, "--wait", "spin"});
    for (const auto& argv : bad) expect_usage_error(argv, "not apply to --transport");
    // Where it applies the flag is accepted: no server there is a run-time failure (1), not a usage error.
    auto ok = run_program({bin("client"), "--transport", with_wait, "--wait", "spin", "--name",
                           fresh_name("nobody"), "-m", "x", "--timeout", "1"});
    EXPECT_EQ(ok.exit_code, 1) << ok.err;
}

}  // namespace
}  // namespace ipclab::test
