// Clients killed in their first milliseconds leave nothing for good (issue
// 12, finding 5). A client creates its session objects before a server
// child owns the session; killed then, nobody would remove them. The
// server's orphan sweep (Listener::orphan_sweep, every second and once at
// exit) must: nothing of the killed clients is left while the server still
// serves, after one sweep interval, and nothing at all after it exits.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

// Transports whose clients create objects (tcp and unix create none).
const std::vector<std::string> kCreating = {"fifo", "posix-mq", "sysv-mq", "shm"};

constexpr int kSessions = 240;
constexpr int kWave = 16;      // concurrent clients
constexpr int kKillEvery = 4;  // a quarter of the clients are SIGKILLed early
constexpr int kSweepWaitMs = 5000;  // one sweep interval is 1 s; slack for a busy host

class KilledEarly : public GuardedTest, public ::testing::WithParamInterface<std::string> {
protected:
    KilledEarly() : GuardedTest("ke") {}

    // Session objects of this endpoint (clients' objects, not the server's).
    std::vector<std::string> session_objects() const {
        std::vector<std::string> out;
        for (const auto& o : list_objects(GetParam(), name_))
            if (o.session) out.push_back(o.what + (o.stale ? " (stale)" : " (live)"));
        return out;
    }
};

TEST_P(KilledEarly, NothingIsLeftAfterASweepNorAfterExit) {
    server_ = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_), echo_server(20000, 16));
    Endpoint ep = server_->client_endpoint();
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> delay_us(0, 20000);
    int killed = 0, completed = 0;
    for (int first = 0; first < kSessions; first += kWave) {
        std::vector<pid_t> wave;
        for (int i = first; i < first + kWave; ++i) {
            pid_t pid = test_fork();
            ASSERT_GE(pid, 0);
            if (pid == 0) ::_exit(echo_once(ep, 64, 10000).empty() ? 0 : 1);
            wave.push_back(pid);
        }
        for (int i = 0; i < kWave; ++i) {
            if ((first + i) % kKillEvery != 0) continue;
            ::usleep(static_cast<useconds_t>(delay_us(rng)) / kWave);  // 0-20 ms across the wave
            ::kill(wave[static_cast<std::size_t>(i)], SIGKILL);
            ++killed;
        }
        for (pid_t pid : wave) {
            int status = wait_or_kill(pid, 20000);
            if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) ++completed;
        }
    }
    RecordProperty("killed", killed);
    RecordProperty("completed", completed);
    EXPECT_GE(completed, kSessions - killed) << "clients that were not killed must succeed";
    // While the server still serves: its sweep reclaims what the killed left.
    std::vector<std::string> left;
    EXPECT_TRUE(eventually([&] { return (left = session_objects()).empty(); }, kSweepWaitMs))
        << left.size() << " left, e.g. " << (left.empty() ? "" : left.front());
    EXPECT_EQ(echo_once(ep, 100), "") << "the server still serves";
    EXPECT_EQ(server_->stop(), 0);
    server_.reset();
    EXPECT_TRUE(session_objects().empty());
    // TearDown: nothing of this test left at all (files, segments, queues).
}

INSTANTIATE_TEST_SUITE_P(Transports, KilledEarly, ::testing::ValuesIn(kCreating),
                         transport_test_name);

}  // namespace
}  // namespace ipclab::test
