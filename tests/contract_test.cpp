// The contract every transport keeps: the same exchange, the same limits,
// the same clean-up, run over all six transports.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include "client/payload.hpp"
#include "ipc/registry.hpp"
#include "ipc/error.hpp"
#include "ipc/objects.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/transports.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

constexpr char kAck[] = "I got your message";

std::string unique_name() {
    static std::atomic<int> counter{0};
    return "ct" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string text(const Message& m) {
    return std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
}

class Contract : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        // Orphans of a killed server become ours, so we reap them too.
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
        before_ = ipc_object_snapshot();
        ep_.transport = GetParam();
        ep_.name = unique_name();
        ep_.port = "0";
        ep_.host = "127.0.0.1";
    }

    void TearDown() override {
        server_.reset();
        // Every child we ever forked is gone and reaped.
        EXPECT_TRUE(eventually([] {
            while (::waitpid(-1, nullptr, WNOHANG) > 0) {
            }
            return children_of(::getpid()).empty();
        }, 10000)) << "children left behind";
        EXPECT_TRUE(eventually([&] { return leftovers().empty(); }))
            << "leftover objects: " << leftovers();
    }

    std::string leftovers() {
        std::string out;
        for (const auto& o : leftover_objects(before_, ep_.name)) out += o + "; ";
        return out;
    }

    void start(ReplyMode reply, std::size_t max_message = kDefaultMaxMessage, double grace = 5) {
        ServerOptions o;
        o.reply = reply;
        o.quiet = true;
        o.grace_seconds = grace;
        o.limits.max_message = max_message;
        o.limits.timeout_ms = 20000;
        server_ = std::make_unique<ServerProcess>(ep_, o);
    }

    Endpoint client_ep() const { return server_->client_endpoint(); }
    // Addressed by HOST PORT (tcp, udp) rather than by --name.
    bool host_port() const { return transport_info(GetParam()).host_port; }

    std::unique_ptr<Channel> open_client() {
        Limits l;
        l.timeout_ms = 20000;
        return connect(client_ep(), l);
    }

    // Runs fn in a forked client process; returns its exit code.
    template <typename Fn>
    pid_t fork_client(Fn fn) {
        pid_t pid = test_fork();
        if (pid == 0) {
            int rc = 1;
            try {
                rc = fn() ? 0 : 3;
            } catch (...) {
                rc = 2;
            }
            ::_exit(rc);
        }
        return pid;
    }

    Endpoint ep_;
    std::set<std::string> before_;
    std::unique_ptr<ServerProcess> server_;
};

TEST_P(Contract, EchoesEverySizeByteExact) {
    start(ReplyMode::echo);
    auto ch = open_client();
    Message reply;
    ipclab::Bytes payload;
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{8192}, std::size_t{8193},
                             std::size_t{1} << 20, std::size_t{16} << 20}) {
        fill_payload(payload, size, size);
        ch->send(FrameType::data, payload);
        ASSERT_TRUE(ch->receive(reply)) << size;
        ASSERT_EQ(reply.type, FrameType::data);
        ASSERT_EQ(reply.payload.size(), size);
        EXPECT_EQ(first_difference(reply.payload, payload), std::nullopt) << size;
    }
}

TEST_P(Contract, AcknowledgesWithTheSeedsEighteenBytes) {
    start(ReplyMode::ack);
    auto ch = open_client();
    Message reply;
    for (const char* msg : {"hello", "", "third"}) {
        ch->send(FrameType::data, as_bytes(msg));
        ASSERT_TRUE(ch->receive(reply));
        EXPECT_EQ(text(reply), kAck);
    }
}

TEST_P(Contract, RefusesAnOversizedMessageAndKeepsServing) {
    start(ReplyMode::echo, 10000);
    {
        auto ch = open_client();
        ipclab::Bytes big(10001);
        Message reply;
        try {
            ch->send(FrameType::data, big);
            ASSERT_TRUE(ch->receive(reply));
            EXPECT_EQ(reply.type, FrameType::error);
            EXPECT_NE(text(reply).find("exceeds"), std::string::npos) << text(reply);
        } catch (const PeerGone&) {
            // A stream may be reset before the refusal is read; the session still ended.
        }
    }
    auto ch = open_client();
    ipclab::Bytes ok(10000, std::byte{1});
    Message reply;
    ch->send(FrameType::data, ok);
    ASSERT_TRUE(ch->receive(reply));
    EXPECT_EQ(reply.payload, ok);
}

TEST_P(Contract, TwoSessionsFromOneProcessAtOnce) {
    if (test_model() == ServerModel::iterative) GTEST_SKIP() << "the iterative design serves one session at a time";
    start(ReplyMode::echo);
    auto a = open_client();
    auto b = open_client();
    Message reply;
    for (int i = 0; i < 5; ++i) {
        for (auto* ch : {a.get(), b.get()}) {
            std::string msg = (ch == a.get() ? "a" : "b") + std::to_string(i);
            ch->send(FrameType::data, as_bytes(msg));
            ASSERT_TRUE(ch->receive(reply));
            EXPECT_EQ(text(reply), msg);
        }
    }
    a.reset();  // ending one session must not disturb the other
    b->send(FrameType::data, as_bytes("still b"));
    ASSERT_TRUE(b->receive(reply));
    EXPECT_EQ(text(reply), "still b");
}

TEST_P(Contract, HundredSequentialSessions) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    start(ReplyMode::echo);
    Message reply;
    for (int i = 0; i < 100; ++i) {
        auto ch = open_client();
        std::string msg = "session " + std::to_string(i);
        ch->send(FrameType::data, as_bytes(msg));
        ASSERT_TRUE(ch->receive(reply)) << i;
        ASSERT_EQ(text(reply), msg);
    }
    EXPECT_TRUE(eventually([&] { return in_service(*server_) == 0; }));
    EXPECT_TRUE(zombie_children_of(server_->pid()).empty());
}

TEST_P(Contract, EightConcurrentSessionsWithoutZombiesOrDescriptorGrowth) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    start(ReplyMode::echo);
    {
        auto warm = open_client();
        Message r;
        warm->send(FrameType::data, as_bytes("warm"));
        ASSERT_TRUE(warm->receive(r));
    }
    ASSERT_TRUE(eventually([&] { return in_service(*server_) == 0; }));
    int fds = open_fd_count(server_->pid());
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i)
        kids.push_back(fork_client([&, i] {
            auto ch = open_client();
            ipclab::Bytes p;
            Message r;
            for (std::uint64_t k = 0; k < 50; ++k) {
                fill_payload(p, k * 8 + i, 100 + 997 * k);
                ch->send(FrameType::data, p);
                if (!ch->receive(r) || r.payload != p) return false;
            }
            return true;
        }));
    for (pid_t k : kids) EXPECT_EQ(wait_or_kill(k, 60000), 0);
    EXPECT_TRUE(eventually([&] { return in_service(*server_) == 0; }));
    EXPECT_TRUE(zombie_children_of(server_->pid()).empty());
    EXPECT_EQ(open_fd_count(server_->pid()), fds);
}

TEST_P(Contract, ClientKilledMidMessageLeavesTheServerServing) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    start(ReplyMode::echo);
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    Fd ready_r(pipefd[0]), ready_w(pipefd[1]);
    pid_t victim = fork_client([&] {
        auto ch = open_client();
        ipclab::Bytes huge(16u << 20, std::byte{9});
        char c = 'x';
        if (::write(ready_w.get(), &c, 1) != 1) return false;
        for (;;) ch->send(FrameType::data, huge);  // killed somewhere in here
    });
    char c;
    ASSERT_EQ(::read(ready_r.get(), &c, 1), 1);
    ASSERT_TRUE(eventually([&] { return !in_service(*server_) == 0; }));
    ::kill(victim, SIGKILL);
    EXPECT_EQ(wait_or_kill(victim, 5000), SIGKILL);
    auto ch = open_client();
    Message reply;
    ch->send(FrameType::data, as_bytes("after the crash"));
    ASSERT_TRUE(ch->receive(reply));
    EXPECT_EQ(text(reply), "after the crash");
    ch.reset();
    EXPECT_TRUE(eventually([&] { return in_service(*server_) == 0; }, 10000));
}

TEST_P(Contract, SigtermWithClientsAttachedEndsCleanly) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    start(ReplyMode::echo, kDefaultMaxMessage, 0.3);
    auto a = open_client();
    auto b = open_client();
    Message reply;
    a->send(FrameType::data, as_bytes("a"));
    ASSERT_TRUE(a->receive(reply));
    ASSERT_TRUE(eventually([&] { return in_service(*server_) == 2; }));
    pid_t server = server_->pid();
    int status = server_->stop(SIGTERM, 15000);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server_->stderr_text();
    EXPECT_EQ(sessions_in_service(server).value_or(0), 0u);
    // The attached clients learn the session is over instead of hanging.
    for (auto* ch : {a.get(), b.get()}) {
        try {
            ch->send(FrameType::data, as_bytes("anyone?"));
            EXPECT_FALSE(ch->receive(reply));
        } catch (const PeerGone&) {
        } catch (const RemoteError&) {
        }
    }
}

TEST_P(Contract, RestartAfterAKilledServerReclaimsItsObjects) {
    start(ReplyMode::echo);
    pid_t first = server_->pid();
    ASSERT_EQ(server_->stop(SIGKILL, 5000), SIGKILL);
    ASSERT_FALSE(process_alive(first));
    start(ReplyMode::echo);  // same name: stale objects must be reclaimed, not refused
    auto ch = open_client();
    Message reply;
    ch->send(FrameType::data, as_bytes("second life"));
    ASSERT_TRUE(ch->receive(reply));
    EXPECT_EQ(text(reply), "second life");
}

TEST_P(Contract, ListObjectsShowsStaleOnesAndCleanupRemovesThem) {
    if (host_port()) GTEST_SKIP() << GetParam() << " creates no named objects";
    start(ReplyMode::echo);
    // --name keeps the test to its own objects: another user of this machine
    // may have stale ones of other names, which are not the test's to remove.
    const std::vector<std::string> ours{"--transport", GetParam(), "--name", ep_.name};
    auto with = [&](std::vector<std::string> argv, const std::vector<std::string>& extra) {
        argv.insert(argv.begin(), bin("server"));
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run_program(argv);
    };
    auto live = with(ours, {"--list-objects"});
    EXPECT_EQ(live.exit_code, 0) << live.err;
    EXPECT_NE(live.out.find(ep_.name), std::string::npos) << live.out;
    EXPECT_NE(live.out.find("live"), std::string::npos) << live.out;
    auto other = with({"--transport", GetParam(), "--name", ep_.name + "-other"}, {"--list-objects"});
    EXPECT_EQ(other.out.find(ep_.name + " "), std::string::npos) << other.out;
    EXPECT_NE(other.out.find("0 object(s)"), std::string::npos) << other.out;
    ASSERT_EQ(server_->stop(SIGKILL, 5000), SIGKILL);
    auto stale = with(ours, {"--list-objects"});
    EXPECT_NE(stale.out.find("stale"), std::string::npos) << stale.out;
    auto clean = with(ours, {"--cleanup"});
    EXPECT_EQ(clean.exit_code, 0) << clean.err;
    EXPECT_NE(clean.out.find("removed"), std::string::npos) << clean.out;
    // TearDown asserts that nothing of ours is left.
}

TEST_P(Contract, ASecondLiveServerIsRefused) {
    if (host_port()) GTEST_SKIP() << GetParam() << ": the port itself is the exclusive name";
    start(ReplyMode::echo);
    ServerOptions o;
    try {
        ServerProcess second(ep_, o);
        FAIL() << "a second server started";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("already running, pid " + std::to_string(server_->pid())),
                  std::string::npos)
            << e.what();
    }
}

TEST_P(Contract, RealBinariesPrintTheSeedsLines) {
    std::vector<std::string> sargs{bin("server"), "--transport", GetParam()};
    std::vector<std::string> cargs{bin("client"), "--transport", GetParam(), "-m", "hello"};
    if (host_port()) {
        sargs.push_back("0");
    } else {
        sargs.insert(sargs.end(), {"--name", ep_.name});
        cargs.insert(cargs.end(), {"--name", ep_.name});
    }
    RunningProgram server(sargs);
    std::string port = server.listening_port();
    ASSERT_FALSE(port.empty()) << server.err();
    if (host_port()) cargs.insert(cargs.end(), {"127.0.0.1", port});
    auto r = run_program(cargs);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "I got your message\n");
    EXPECT_TRUE(eventually([&] { return server.out() == "Here is the message: hello\n"; })) << server.out();
    EXPECT_EQ(server.stop(SIGINT), 0) << server.err();
}

TEST_P(Contract, ClientWithoutAServerFailsClearly) {
    std::vector<std::string> cargs{bin("client"), "--transport", GetParam(), "-m", "x", "--timeout", "2"};
    if (host_port()) {
        cargs.insert(cargs.end(), {"127.0.0.1", "1"});
    } else {
        cargs.insert(cargs.end(), {"--name", ep_.name});
    }
    auto r = run_program(cargs);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

INSTANTIATE_TEST_SUITE_P(AllTransports, Contract, ::testing::ValuesIn(transport_names()),
                         [](const auto& p) {
                             std::string n = p.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
}  // namespace ipclab::test
