// Tests shared by the two queue transports (posix-mq, sysv-mq), included by
// posix_mq_test.cpp and sysv_mq_test.cpp after they define kTransport. Each
// test runs the real server loop in a forked child (ServerProcess) and
// checks afterwards that no zombie and no IPC object is left behind.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/transports.hpp"
#include "server/options.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {

inline ipclab::Bytes pattern(std::size_t n, unsigned seed = 1) {
    ipclab::Bytes v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<std::byte>(x >> 24);
    }
    return v;
}

inline std::string as_text(const ipclab::Bytes& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

class QueueTransport : public ::testing::Test {
protected:
    void SetUp() override {
        before_ = ipc_object_snapshot();
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        name_ = std::string("t-") + info->name() + "-" + std::to_string(::getpid());
        ep_.transport = kTransport;
        ep_.name = name_;
        echo_.reply = ReplyMode::echo;
        echo_.quiet = true;
        echo_.limits.timeout_ms = 10000;
        echo_.grace_seconds = 2;
        client_.timeout_ms = 10000;
    }

    void TearDown() override {
        EXPECT_TRUE(eventually([] { return zombie_children_of(::getpid()).empty(); }))
            << "zombie children left";
        EXPECT_TRUE(eventually([&] { return leftover_objects(before_, name_).empty(); }))
            << "IPC objects left behind:" << diff();
    }

    std::string diff() const { return snapshot_diff(before_); }

    // One echo round trip over an open channel, byte-exact.
    static void expect_echo(Channel& ch, const ipclab::Bytes& payload) {
        ch.send(FrameType::data, payload);
        Message reply;
        ASSERT_TRUE(ch.receive(reply));
        ASSERT_EQ(reply.type, FrameType::data) << as_text(reply.payload);
        ASSERT_EQ(reply.payload.size(), payload.size());
        EXPECT_TRUE(reply.payload == payload) << "payload of " << payload.size() << " bytes differs";
    }

    void echo_session(std::size_t size) {
        auto ch = connect(ep_, client_);
        expect_echo(*ch, pattern(size, static_cast<unsigned>(size)));
    }

    // Forks a client that runs body and _exits 0 on success; returns its pid.
    template <typename Body>
    pid_t fork_client(Body body) {
        std::fflush(nullptr);
        pid_t pid = ::fork();
        if (pid == 0) {
            int rc = 1;
            try {
                rc = body() ? 0 : 1;
            } catch (const std::exception& e) {
                std::string line = std::string("client child: ") + e.what() + "\n";
                [[maybe_unused]] ssize_t n = ::write(2, line.data(), line.size());
                rc = 2;
            }
            ::_exit(rc);
        }
        return pid;
    }

    std::set<std::string> before_;
    std::string name_;
    Endpoint ep_;
    ServerOptions echo_;
    Limits client_;
};

TEST_F(QueueTransport, EchoesEverySizeByteExact) {
    ServerProcess server(ep_, echo_);
    auto ch = connect(ep_, client_);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{8192},
                             std::size_t{8193}, std::size_t{1} << 20, std::size_t{16} << 20})
        expect_echo(*ch, pattern(size, static_cast<unsigned>(size)));
}

TEST_F(QueueTransport, AckReply) {
    ServerOptions ack = echo_;
    ack.reply = ReplyMode::ack;
    ack.quiet = false;
    ServerProcess server(ep_, ack);
    {
        auto ch = connect(ep_, client_);
        ch->send(FrameType::data, as_bytes("hello"));
        Message reply;
        ASSERT_TRUE(ch->receive(reply));
        EXPECT_EQ(as_text(reply.payload), kAckText);
    }
    server.stop();
    EXPECT_NE(server.stdout_text().find("Here is the message: hello"), std::string::npos);
}

TEST_F(QueueTransport, TwentySequentialSessions) {
    ServerProcess server(ep_, echo_);
    for (int i = 0; i < 20; ++i) echo_session(static_cast<std::size_t>(i) * 1000);
}

TEST_F(QueueTransport, EightConcurrentSessions) {
    ServerProcess server(ep_, echo_);
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i)
        kids.push_back(fork_client([&, i] {
            auto ch = connect(ep_, client_);
            for (int j = 0; j < 20; ++j) {
                auto p = pattern(static_cast<std::size_t>(100 + 5000 * j), static_cast<unsigned>(i));
                ch->send(FrameType::data, p);
                Message reply;
                if (!ch->receive(reply) || reply.payload != p) return false;
            }
            return true;
        }));
    for (pid_t k : kids) {
        int status = wait_or_kill(k, 30000);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client " << k << " status "
                                                                   << status;
    }
}

TEST_F(QueueTransport, OversizedMessageIsRefusedAndServingContinues) {
    ServerOptions small = echo_;
    small.limits.max_message = 1000;
    ServerProcess server(ep_, small);
    for (std::size_t size : {std::size_t{1001}, std::size_t{1} << 20}) {
        auto ch = connect(ep_, client_);
        ch->send(FrameType::data, pattern(size));
        Message reply;
        ASSERT_TRUE(ch->receive(reply));
        EXPECT_EQ(reply.type, FrameType::error);
        EXPECT_NE(as_text(reply.payload).find("exceeds the receiver's limit"), std::string::npos)
            << as_text(reply.payload);
        EXPECT_FALSE(ch->receive(reply));  // the server ended that session
    }
    echo_session(1000);
}

TEST_F(QueueTransport, IdleSessionEndsCleanly) {
    ServerOptions quick = echo_;
    quick.limits.timeout_ms = 300;
    ServerProcess server(ep_, quick);
    auto ch = connect(ep_, client_);
    Message reply;
    EXPECT_FALSE(ch->receive(reply));  // the server's idle timeout ends the session
    EXPECT_THROW(ch->send(FrameType::data, as_bytes("late")), PeerGone);
}

TEST_F(QueueTransport, ClientTimesOutWhenNoReplyComes) {
    ServerProcess server(ep_, echo_);
    Limits shortwait = client_;
    shortwait.timeout_ms = 300;
    auto ch = connect(ep_, shortwait);
    Message reply;
    EXPECT_THROW(ch->receive(reply), TimeoutError);  // we never asked anything
}

TEST_F(QueueTransport, ClientKilledWhileServerRepliesLeavesNothing) {
    ServerProcess server(ep_, echo_);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd rd(p[0]), wr(p[1]);
    pid_t kid = fork_client([&] {
        auto ch = connect(ep_, client_);
        ch->send(FrameType::data, pattern(std::size_t{4} << 20));
        // The server is now echoing into our full queue; we never read it.
        char c = 'x';
        if (::write(wr.get(), &c, 1) != 1) return false;
        ::pause();
        return true;
    });
    wr.reset();
    char c;
    ASSERT_EQ(::read(rd.get(), &c, 1), 1);
    ::kill(kid, SIGKILL);
    wait_or_kill(kid, 5000);
    echo_session(100);  // still serving
}

TEST_F(QueueTransport, ClientKilledWhileSendingLeavesNothing) {
    ServerProcess server(ep_, echo_);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd rd(p[0]), wr(p[1]);
    pid_t kid = fork_client([&] {
        auto ch = connect(ep_, client_);
        char c = 'x';
        if (::write(wr.get(), &c, 1) != 1) return false;
        for (;;) ch->send(FrameType::data, pattern(std::size_t{16} << 20));
    });
    wr.reset();
    char c;
    ASSERT_EQ(::read(rd.get(), &c, 1), 1);
    ::kill(kid, SIGKILL);  // somewhere inside a multi-chunk message
    wait_or_kill(kid, 5000);
    echo_session(100);
}

TEST_F(QueueTransport, SecondServerOnTheSameNameIsRefused) {
    ServerProcess server(ep_, echo_);
    try {
        listen(ep_, echo_.limits);
        FAIL() << "a second listener started";
    } catch (const AlreadyRunning& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(server.pid())), std::string::npos)
            << e.what();
    }
    echo_session(10);
}

TEST_F(QueueTransport, NoServerIsAClearError) {
    EXPECT_THROW(connect(ep_, client_), std::runtime_error);
}

TEST_F(QueueTransport, KilledServersQueuesAreReclaimedOnRestart) {
    {
        ServerProcess first(ep_, echo_);
        echo_session(10);
        first.stop(SIGKILL);
    }
    EXPECT_NE(ipc_object_snapshot(), before_);  // the dead server's leftovers
    // Under --model prefork the workers hold the instance lock until they
    // have ended on the supervisor's death (PR_SET_PDEATHSIG, then their own
    // shutdown): only then is the queue stale. Bounded wait, no timing asserted.
    bool saw_stale = eventually([&] {
        bool stale = false;
        for (const auto& o : kTransport == std::string("posix-mq") ? list_posix_mq_objects()
                                                                  : list_sysv_mq_objects())
            if (o.what.find(name_) != std::string::npos || o.stale) stale = stale || o.stale;
        return stale;
    });
    EXPECT_TRUE(saw_stale) << "the listing does not show the dead server's queue as stale";
    ServerProcess second(ep_, echo_);
    echo_session(20000);
    second.stop();
}

}  // namespace ipclab::test
