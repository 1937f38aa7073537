// Server designs (issue 16), on every transport of the registry: the
// iterative server serves one session at a time in its own process, with
// the same exchange, limits, stop with --grace and clean-up as the
// fork-per-session default. No timing is asserted: "B waits for A" is
// checked as an ordering (B cannot finish while A is open), never as a speed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "ipc/error.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

ServerOptions iterative(double grace = 5) {
    ServerOptions o = echo_server();
    o.model = ServerModel::iterative;
    o.grace_seconds = grace;
    return o;
}

class Iterative : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        before_ = ipc_object_snapshot();
        name_ = fresh_name("it");
    }
    void TearDown() override {
        server_.reset();
        EXPECT_TRUE(eventually([&] { return leftover_objects(before_, name_).empty(); }))
            << "objects left behind";
    }
    void start(const ServerOptions& o) {
        server_ = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_), o);
    }
    std::unique_ptr<Channel> open() { return connect(server_->client_endpoint(), client_limits()); }

    std::set<std::string> before_;
    std::string name_;
    std::unique_ptr<ServerProcess> server_;
};

TEST_P(Iterative, ServesSessionsInItsOwnProcessByteExact) {
    start(iterative());
    for (int i = 0; i < 20; ++i) {
        auto ch = open();
        auto payload = seeded_bytes(static_cast<std::size_t>(i) * 997, static_cast<std::uint32_t>(i + 1));
        ch->send(FrameType::data, payload);
        Message reply;
        ASSERT_TRUE(ch->receive(reply)) << "session " << i;
        EXPECT_EQ(reply.payload, payload) << "session " << i;
        // The design itself: no child serves it.
        EXPECT_TRUE(children_of(server_->pid()).empty()) << "session " << i;
    }
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

TEST_P(Iterative, ASecondClientIsServedOnlyAfterTheFirstEnds) {
    start(iterative());
    auto first = open();
    first->send(FrameType::data, as_bytes("first"));
    Message reply;
    ASSERT_TRUE(first->receive(reply));
    std::atomic<bool> done{false};
    auto second = std::async(std::launch::async, [&] {
        std::string r = echo_once(server_->client_endpoint(), 64, 20000);
        done = true;
        return r;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(done) << "served while the first session was still open";
    first.reset();  // the first session ends; the server takes the next
    EXPECT_EQ(second.get(), "");
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

TEST_P(Iterative, AnOversizedMessageIsRefusedAndServingGoesOn) {
    ServerOptions o = iterative();
    o.limits.max_message = 1024;
    start(o);
    {
        auto ch = open();
        ch->send(FrameType::data, std::vector<std::byte>(4096));
        Message reply;
        bool got = false;
        try {
            got = ch->receive(reply);
        } catch (const std::exception&) {  // the session may end before the refusal is read
        }
        if (got) {
            EXPECT_EQ(reply.type, FrameType::error);
        }
    }
    EXPECT_EQ(echo_once(server_->client_endpoint(), 512, 20000), "");
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

TEST_P(Iterative, AStopLetsTheSessionInProgressRunItsGraceThenEndsIt) {
    start(iterative(0.5));
    auto ch = open();
    ch->send(FrameType::data, as_bytes("before the stop"));
    Message reply;
    ASSERT_TRUE(ch->receive(reply));
    ::kill(server_->pid(), SIGTERM);
    // Within the grace period the session still works.
    ch->send(FrameType::data, as_bytes("in the grace period"));
    ASSERT_TRUE(ch->receive(reply));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size()),
              "in the grace period");
    // Then the server ends it and exits 0, its names removed (TearDown).
    int status = server_->stop(SIGTERM, 15000);  // a second signal skips what is left of the grace
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_P(Iterative, AnIdleSessionEndsAtTheIdleTimeoutAndTheNextIsServed) {
    ServerOptions o = iterative();
    o.limits.timeout_ms = 300;
    start(o);
    auto idle = open();
    EXPECT_EQ(echo_once(server_->client_endpoint(), 100, 20000), "");
    EXPECT_EQ(server_->stop(SIGTERM), 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, Iterative, ::testing::ValuesIn(transport_names()), transport_test_name);

TEST(ServerModel, RealBinaryServesTheSeedsExchangeIteratively) {
    RunningProgram server({bin("server"), "--model", "iterative", "--bind", "127.0.0.1", "0"});
    std::string port = server.listening_port();
    ASSERT_FALSE(port.empty()) << server.err();
    for (int i = 0; i < 3; ++i) {
        auto r = run_program({bin("client"), "-m", "hello", "127.0.0.1", port});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.out, "I got your message\n");
    }
    EXPECT_EQ(server.stop(SIGINT, 15000), 0) << server.err();
    EXPECT_NE(server.err().find("server: stopped"), std::string::npos) << server.err();
}

TEST(ServerModel, FlagsOfOtherDesignsAreUsageErrors) {
    for (std::vector<std::string> argv : {std::vector<std::string>{"--max-clients", "3"}, {"--no-reap"}}) {
        argv.insert(argv.begin(), {bin("server"), "--model", "iterative", "51718"});
        auto r = run_program(argv);
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find("does not apply to --model iterative"), std::string::npos) << r.err;
    }
    EXPECT_EQ(run_program({bin("server"), "--model", "carrier-pigeon", "51718"}).exit_code, 2);
}

}  // namespace
}  // namespace ipclab::test
