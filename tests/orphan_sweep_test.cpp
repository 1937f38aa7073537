// Clients killed in their first milliseconds leave nothing for good (issue
// 12, finding 5). A client creates its session objects before a server
// child owns the session; killed then, nobody would remove them. The
// server's orphan sweep (Listener::orphan_sweep, every second and once at
// exit) must: nothing of the killed clients is left while the server still
// serves, after one sweep interval, and nothing at all after it exits.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ipc/fifo_hello.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/random.hpp"
#include "ipc/shm_layout.hpp"
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
    EXPECT_GE(completed, kSessions - killed) << "clients that were not killed must succeed" << server_->stderr_text();
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

// What a client leaves when it dies between creating its session objects
// and sending its hello, made by a child that then exits - deterministic,
// where the kills above land in that window only now and then. The names
// follow each transport's documented format.
std::string leave_orphans(const std::string& transport, const std::string& name) {
    const std::string pid = std::to_string(::getpid());
    const std::uint64_t r = random_u64();
    auto marker = [](const std::string& path) {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return false;
        ::close(fd);
        return true;
    };
    if (transport == "fifo") {
        auto paths = fifo::session_paths(private_dir(), name, static_cast<std::uint32_t>(::getpid()), 0);
        for (const auto& p : {paths.c2s, paths.s2c})
            if (::mkfifo(p.c_str(), 0600) != 0) return "mkfifo " + p;
    } else if (transport == "posix-mq") {
        std::string q = "/" + global_prefix(name) + "@" + pid + "." + to_hex(r, 16) + ".c2s";
        if (!marker(private_dir() + q + ".pmq")) return "marker for " + q;
        struct mq_attr attr {};
        attr.mq_maxmsg = 1;
        attr.mq_msgsize = 64;
        // The user's queue budget (RLIMIT_MSGQUEUE, 800 KiB: about nine
        // default-sized queues) is shared with every other process of the
        // user; a second test run at once can hold all of it for a moment.
        mqd_t d = mqd_t(-1);
        for (int tries = 0; tries < 100; ++tries) {
            d = ::mq_open(q.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
            if (d != mqd_t(-1) || errno != EMFILE) break;
            ::usleep(100000);
        }
        if (d == mqd_t(-1)) return "mq_open " + q + ": " + std::strerror(errno);
        ::mq_close(d);
    } else if (transport == "sysv-mq") {
        auto key = static_cast<key_t>(r | 1);
        std::string m = private_dir() + "/" + name + "@" + pid + ".k" +
                        to_hex(static_cast<std::uint32_t>(key), 8) + ".smq";
        if (!marker(m)) return "marker " + m;
        if (::msgget(key, IPC_CREAT | IPC_EXCL | 0600) < 0) return "msgget";
    } else if (transport == "shm") {
        std::string seg = shm::segment_name(name, ::getpid(), static_cast<std::uint32_t>(r));
        int fd = ::shm_open(seg.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0) return "shm_open " + seg;
        ::close(fd);
    }
    return "";
}

TEST_P(KilledEarly, AnOrphanOfADeadCreatorIsSweptWhileServing) {
    server_ = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_), echo_server());
    ReportingChild child = fork_reporting([&] { return leave_orphans(GetParam(), name_); });
    EXPECT_EQ(read_until_eof(child.report.get(), 10000), "");
    EXPECT_EQ(wait_or_kill(child.pid, 5000), 0);
    std::vector<std::string> left = session_objects();
    EXPECT_FALSE(left.empty()) << "the orphans were not made (or not listed)";
    EXPECT_TRUE(eventually([&] { return (left = session_objects()).empty(); }, kSweepWaitMs))
        << left.size() << " left, e.g. " << (left.empty() ? "" : left.front());
    EXPECT_EQ(echo_once(server_->client_endpoint(), 100), "");
}

INSTANTIATE_TEST_SUITE_P(Transports, KilledEarly, ::testing::ValuesIn(kCreating),
                         transport_test_name);

}  // namespace
}  // namespace ipclab::test
