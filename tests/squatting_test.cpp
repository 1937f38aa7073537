// Another local user squats on ipclab's kernel-global names (issue 12,
// finding 4). Per-session names are random (getrandom), so a squatter can
// only guess; these tests make it guess right - the next draw is preset to
// the name it holds - and check that the honest session takes a fresh name,
// never waits on, opens, or removes the squatter's object. Well-known names
// are predictable by design: a squatter's object there is not ours, and the
// server (root here) replaces it. Needs root for the second uid (65534).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "ipc/private_dir.hpp"
#include "ipc/random.hpp"
#include "ipc/shm_layout.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

constexpr std::uint64_t kGuess = 0x5157a77e0000beefull;  // the draw the squatter "guessed"

class Squatting : public GuardedTest {
protected:
    Squatting() : GuardedTest("sq") {}
    void TearDown() override {
        preset_random_draws({});
        squatter_.stop();
        GuardedTest::TearDown();
    }

    // Runs make() as uid 65534; false (test skipped) when we are not root.
    bool squat(const std::function<std::string()>& make) {
        bool started = squatter_.start(make);
        if (!started && squatter_.result().rfind("not root", 0) == 0) return false;
        EXPECT_TRUE(started) << squatter_.result();
        return started;
    }

    // Starts an echo server of transport, the squatter's object in place.
    Endpoint serve(const std::string& transport) {
        server_ = std::make_unique<ServerProcess>(endpoint_for(transport, name_), echo_server());
        return server_->client_endpoint();
    }

    // The squatter's System V queue under key: its msqid, or kSkipped.
    static constexpr int kSkipped = -2;
    int squat_key(key_t key) {
        if (!squat([key] {
                if (::msgget(key, IPC_CREAT | IPC_EXCL | 0600) < 0)
                    throw std::runtime_error(std::string("msgget: ") + std::strerror(errno));
                return std::string();
            }))
            return kSkipped;
        return ::msgget(key, 0);
    }

    ForeignProcess squatter_;
};

std::string mq_create(const std::string& q) {
    struct mq_attr attr {};
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = 16;
    mqd_t d = ::mq_open(q.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
    if (d == mqd_t(-1)) throw std::runtime_error("mq_open " + q + ": " + std::strerror(errno));
    ::mq_close(d);
    return q;
}

uid_t mq_owner(const std::string& q) {
    mqd_t d = ::mq_open(q.c_str(), O_RDONLY);
    if (d == mqd_t(-1)) return static_cast<uid_t>(-1);
    struct stat st {};
    ::fstat(d, &st);
    ::mq_close(d);
    return st.st_uid;
}

std::string posix_session_queue(const std::string& name, std::uint64_t draw, const char* dir) {
    return "/" + global_prefix(name) + "@" + std::to_string(::getpid()) + "." + to_hex(draw, 16) +
           "." + dir;
}

TEST_F(Squatting, ShmSegmentNameTakenGetsAFreshName) {
    Endpoint ep = serve("shm");
    std::string seg = shm::segment_name(name_, ::getpid(), static_cast<std::uint32_t>(kGuess));
    if (!squat([&] {
            int fd = ::shm_open(seg.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
            if (fd < 0) throw std::runtime_error("shm_open " + seg + ": " + std::strerror(errno));
            ::close(fd);
            return seg;
        }))
        GTEST_SKIP() << squatter_.result();
    preset_random_draws({kGuess, kGuess});  // taken twice in a row: still a fresh draw after
    EXPECT_EQ(echo_once(ep, 1000), "");
    struct stat st {};
    EXPECT_EQ(::stat(("/dev/shm" + seg).c_str(), &st), 0) << "the squatter's segment was removed";
    EXPECT_EQ(st.st_uid, kNobody);
    EXPECT_EQ(::shm_unlink(seg.c_str()), 0);
}

TEST_F(Squatting, PosixSessionQueueNamesTakenGetFreshNames) {
    Endpoint ep = serve("posix-mq");
    std::string c2s = posix_session_queue(name_, kGuess, "c2s");
    std::string s2c = posix_session_queue(name_, kGuess + 1, "s2c");  // the second draw's s2c
    if (!squat([&] { return mq_create(c2s) + " " + mq_create(s2c); }))
        GTEST_SKIP() << squatter_.result();
    preset_random_draws({kGuess, kGuess + 1});  // c2s taken, then s2c taken
    EXPECT_EQ(echo_once(ep, 1000), "");
    for (const auto& q : {c2s, s2c}) {
        EXPECT_EQ(mq_owner(q), kNobody) << q << " was removed or replaced";
        EXPECT_EQ(::mq_unlink(q.c_str()), 0) << q;
    }
}

TEST_F(Squatting, PosixWellKnownQueueOfAnotherUserIsReplaced) {
    std::string q = "/" + global_prefix(name_);
    if (!squat([&] { return mq_create(q); })) GTEST_SKIP() << squatter_.result();
    Endpoint ep = serve("posix-mq");
    EXPECT_EQ(echo_once(ep, 1000), "");
    EXPECT_EQ(mq_owner(q), ::geteuid());
}

TEST_F(Squatting, SysvSessionKeyTakenGetsAFreshKey) {
    Endpoint ep = serve("sysv-mq");
    auto key = static_cast<key_t>(static_cast<std::uint32_t>(kGuess));
    int theirs = squat_key(key);
    if (theirs == kSkipped) GTEST_SKIP() << squatter_.result();
    ASSERT_GE(theirs, 0);
    preset_random_draws({kGuess, kGuess});
    EXPECT_EQ(echo_once(ep, 1000), "");
    struct msqid_ds ds {};
    EXPECT_EQ(::msgctl(theirs, IPC_STAT, &ds), 0) << "the squatter's queue was removed";
    EXPECT_EQ(ds.msg_perm.uid, kNobody);
    EXPECT_EQ(::msgctl(theirs, IPC_RMID, nullptr), 0);
}

TEST_F(Squatting, SysvServerKeyTakenGetsAFreshKey) {
    auto key = static_cast<key_t>(static_cast<std::uint32_t>(kGuess >> 8));
    int theirs = squat_key(key);
    if (theirs == kSkipped) GTEST_SKIP() << squatter_.result();
    ASSERT_GE(theirs, 0);
    preset_random_draws({kGuess >> 8});  // the forked server inherits the preset draw
    Endpoint ep = serve("sysv-mq");
    preset_random_draws({});
    EXPECT_EQ(echo_once(ep, 1000), "");
    EXPECT_EQ(::msgctl(theirs, IPC_RMID, nullptr), 0) << "the squatter's queue was removed";
}

}  // namespace
}  // namespace ipclab::test
