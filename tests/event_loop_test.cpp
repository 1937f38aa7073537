// The event-loop design (server --model epoll, issue 16) on the transports
// it applies to (stream sockets): many sessions at once in one process with
// no child, byte-exact; a peer that never reads its replies neither stalls
// the others nor grows the server without bound; the grace period and the
// idle timeout as in the other designs. (The contract, hostile and fault
// suites run under it too: `make check-models`.) No timing is asserted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

// Resident memory of pid in KiB (VmRSS), or -1.
long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

class EventLoopServer : public DesignTest {
protected:
    EventLoopServer() : DesignTest("ev") {}
    void start_epoll(int idle_ms = 20000, double grace = 5) {
        ServerOptions o = echo_server(idle_ms);
        o.model = ServerModel::epoll;
        o.grace_seconds = grace;
        o.quiet = true;
        start(o);
    }
};

TEST_P(EventLoopServer, ServesManySessionsAtOnceInOneProcessByteExact) {
    start_epoll();
    constexpr int kSessions = 24;
    std::vector<std::unique_ptr<Channel>> open_sessions;
    for (int i = 0; i < kSessions; ++i) open_sessions.push_back(open());
    // Every session sends before any reads, so the server holds them all at once.
    std::vector<ipclab::Bytes> sent;
    for (int i = 0; i < kSessions; ++i) {
        sent.push_back(seeded_bytes(static_cast<std::size_t>(i) * 10007 % (256 * 1024), static_cast<std::uint32_t>(i + 7)));
        open_sessions[static_cast<std::size_t>(i)]->send(FrameType::data, sent.back());
    }
    // Its sessions are its sockets but the listener.
    auto sessions = [&] { return socket_fd_count(server_->pid()) - 1; };
    EXPECT_TRUE(eventually([&] { return sessions() == kSessions; })) << sessions();
    for (int i = 0; i < kSessions; ++i) {
        Message reply;
        ASSERT_TRUE(open_sessions[static_cast<std::size_t>(i)]->receive(reply)) << i;
        EXPECT_EQ(reply.payload, sent[static_cast<std::size_t>(i)]) << "session " << i;
    }
    EXPECT_TRUE(children_of(server_->pid()).empty()) << "the event loop forks no child";
    open_sessions.clear();
    EXPECT_TRUE(eventually([&] { return count_of(server_->stderr_text(), "session ended") == kSessions; }))
        << server_->stderr_text();
    EXPECT_EQ(sessions(), 0);
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

TEST_P(EventLoopServer, APeerThatNeverReadsStallsNoOneAndCostsABoundedQueue) {
    start_epoll();
    ASSERT_EQ(echo_once(server_->client_endpoint(), 100), "");  // past start-up
    [[maybe_unused]] const long rss_before = rss_kib(server_->pid());  // (not compared under sanitizers)
    // Echo requests of 64 KiB sent as fast as the socket takes them, replies
    // never read: the server's reply queue fills, then it stops reading this
    // peer, whose sends then block (here: EAGAIN, and we stop).
    Fd hog = raw_stream(server_->client_endpoint());
    ipclab::Bytes wire(kFramedOpening.begin(), kFramedOpening.end());
    ASSERT_TRUE(write_raw(hog.get(), wire));
    auto payload = seeded_bytes(64 * 1024, 3);
    HeaderBytes header = encode_header(FrameType::data, payload.size());
    ipclab::Bytes frame(header.begin(), header.end());
    frame.insert(frame.end(), payload.begin(), payload.end());
    std::size_t sent = 0;
    for (int stalls = 0, i = 0; i < 20000 && stalls < 20; ++i) {  // bounded: 20 stalls of 50 ms, or 20000 sends
        // Whole frames, resumed where a short send left off (the stream must stay well-formed).
        std::size_t at = sent % frame.size();
        ssize_t n = ::send(hog.get(), frame.data() + at, frame.size() - at, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            stalls = 0;
            continue;
        }
        ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
        ++stalls;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_LT(sent, std::size_t{20000} * 1024) << "the server took 20000 sends without a stall: no back-pressure";
    // The others are served meanwhile, large messages included.
    for (std::size_t size : {std::size_t{64}, std::size_t{1} << 20}) EXPECT_EQ(echo_once(server_->client_endpoint(), size), "");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // Bounded: the reply queue (1 MiB) and the message in hand, not what was sent
    // (ASan's quarantine and TSan's shadow keep freed buffers resident: not there).
    const long growth = rss_kib(server_->pid()) - rss_before;
    EXPECT_LT(growth, 16 * 1024) << "KiB more resident after " << sent / 1024 << " KiB sent by the hog";
#endif
    hog.reset();
    EXPECT_TRUE(log_has(*server_, "peer vanished")) << server_->stderr_text();
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

TEST_P(EventLoopServer, AStopGivesTheSessionsTheGracePeriodThenEndsThem) {
    start_epoll(20000, 0.5);
    auto a = open(), b = open();
    for (auto* ch : {a.get(), b.get()}) ASSERT_EQ(exchange(*ch, "before"), "before");
    ::kill(server_->pid(), SIGTERM);
    ASSERT_EQ(exchange(*a, "in the grace period"), "in the grace period");
    int status = server_->stop(0, 15000);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(count_of(server_->stderr_text(), "ended by server shutdown"), 2u) << server_->stderr_text();
    EXPECT_NE(server_->stderr_text().find("2 session(s) still running after the grace period"), std::string::npos);
}

TEST_P(EventLoopServer, AnIdleSessionTimesOutWhileOthersAreServed) {
    start_epoll(300);
    auto idle = open();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(echo_once(server_->client_endpoint(), 4096), "") << i;
    EXPECT_TRUE(log_has(*server_, "idle timeout")) << server_->stderr_text();
    EXPECT_EQ(count_of(server_->stderr_text(), "idle timeout"), 1u) << server_->stderr_text();
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

INSTANTIATE_TEST_SUITE_P(StreamSockets, EventLoopServer, ::testing::Values("tcp", "unix"), transport_test_name);

TEST(EventLoop, RealBinaryServesTheSeedsExchangeAndTextLines) {
    RunningProgram server({bin("server"), "--model", "epoll", "--bind", "127.0.0.1", "0"});
    std::string port = server.listening_port();
    ASSERT_FALSE(port.empty()) << server.err();
    EXPECT_EQ(seed_exchanges(port), "");
    // Two lines in one write, as `printf 'a\nb\n' | nc` sends them: two replies.
    Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = port;
    Fd s = raw_stream(ep);
    ASSERT_TRUE(write_raw(s.get(), ipclab::Bytes{std::byte{'a'}, std::byte{'\n'}, std::byte{'b'}, std::byte{'\n'}}));
    ::shutdown(s.get(), SHUT_WR);
    EXPECT_EQ(read_until_eof(s.get(), 10000), "I got your messageI got your message");
    EXPECT_EQ(server.stop(SIGINT, 15000), 0) << server.err();
    EXPECT_NE(server.out().find("Here is the message: b"), std::string::npos) << server.out();
    EXPECT_NE(server.err().find("server: stopped"), std::string::npos) << server.err();
}

TEST(EventLoop, TransportsWithoutAPollableStreamSessionAreUsageErrors) {
    for (const auto& t : transports()) {
        if (t.connect_stream) continue;
        auto r = run_program({bin("server"), "--model", "epoll", "--transport", std::string(t.name)});
        EXPECT_EQ(r.exit_code, 2) << t.name << ": " << r.err;
        EXPECT_NE(r.err.find("epoll does not apply to --transport"), std::string::npos) << r.err;
    }
    for (std::vector<std::string> flag : {std::vector<std::string>{"--workers", "3"}, {"--no-reap"}, {"--accept-lock", "flock"}}) {
        flag.insert(flag.begin(), {bin("server"), "--model", "epoll", "51718"});
        EXPECT_EQ(run_program(flag).exit_code, 2) << flag[4];
    }
}

}  // namespace
}  // namespace ipclab::test
