// Resources that run out (issue 12): the private directory on a full file
// system, the system-wide System V queue limit, and the per-user
// RLIMIT_MSGQUEUE used up by another process of the same user. Each must
// give one clear error naming what ran out, and work again once the
// resource is freed. All need root: a tmpfs mounted in this test process's
// private mount namespace (test_main made one), private IPC namespaces (a
// kernel.msgmni we may lower, POSIX queues nobody else sees), and uid 65534,
// for whom RLIMIT_MSGQUEUE holds (root's CAP_SYS_RESOURCE lifts it).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "client/payload.hpp"
#include "ipc/chunking.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/registry.hpp"
#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

// A 64 KiB tmpfs with few inodes, mounted on a fresh directory; its "d" is
// the private directory. fill() takes every block and inode, free() returns them.
class SmallTmpfs {
public:
    SmallTmpfs() {
        char tmpl[] = "/tmp/ipclab-full-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) return;
        mount_ = tmpl;
        if (::mount("tmpfs", tmpl, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=32,mode=0700") != 0) {
            ::rmdir(tmpl);
            mount_.clear();
            return;
        }
        dir_ = mount_ + "/d";
        ::mkdir(dir_.c_str(), 0700);
    }
    ~SmallTmpfs() {
        if (mount_.empty()) return;
        ::umount2(mount_.c_str(), MNT_DETACH);
        ::rmdir(mount_.c_str());
    }
    bool mounted() const { return !mount_.empty(); }
    const std::string& dir() const { return dir_; }

    // Every block (a file takes them all) and, unless blocks_only, every inode.
    void fill(bool blocks_only = false) {
        std::string big = mount_ + "/fill-blocks";
        int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            std::vector<char> block(4096, 'f');
            for (int i = 0; i < 64 && ::write(fd, block.data(), block.size()) > 0; ++i) {
            }
            ::close(fd);
        }
        for (int i = 0; i < 64 && !blocks_only; ++i) {  // the inodes (tmpfs counts one per file)
            std::string f = mount_ + "/fill-" + std::to_string(i);
            int g = ::open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (g < 0) break;
            ::close(g);
            fills_.push_back(f);
        }
        fills_.push_back(big);
    }
    void free() {
        for (const auto& f : fills_) ::unlink(f.c_str());
        fills_.clear();
    }

private:
    std::string mount_, dir_;
    std::vector<std::string> fills_;
};

class FullDirectory : public GuardedTest, public ::testing::WithParamInterface<std::string> {
protected:
    FullDirectory() : GuardedTest("fd") {}
};

// Clients of these transports create files in the private directory.
TEST_P(FullDirectory, ClearErrorThenRecoveryOnceFreed) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
    SmallTmpfs fs;
    if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
    ::setenv("IPCLAB_DIR", fs.dir().c_str(), 1);
    const std::string t = GetParam();
    auto client = [&] {
        return run_program({bin("client"), "--transport", t, "--name", name_, "-m", "hi",
                            "--timeout", "2"},
                           "", 15000);
    };
    {
        auto server = std::make_unique<ServerProcess>(endpoint_for(t, name_), echo_server());
        fs.fill();
        auto r = client();
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(fs.dir()), std::string::npos) << "the error names the path: " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        fs.free();
        r = client();
        EXPECT_EQ(r.exit_code, 0) << "after freeing: " << r.err;
        EXPECT_EQ(server->stop(), 0);
    }
    // A server that cannot create its lock or well-known object says so, exit 1.
    fs.fill();
    auto s = run_program({bin("server"), "--transport", t, "--name", name_}, "", 15000);
    EXPECT_EQ(s.exit_code, 1) << s.err;
    EXPECT_NE(s.err.find("No space left on device"), std::string::npos) << s.err;
    fs.free();
    // Room for a file but not for its contents: nothing half-made is left.
    fs.fill(true);
    s = run_program({bin("server"), "--transport", t, "--name", name_}, "", 15000);
    EXPECT_EQ(s.exit_code, 1) << s.err;
    EXPECT_NE(s.err.find("No space left on device"), std::string::npos) << s.err;
    std::error_code ec;
    EXPECT_TRUE(std::filesystem::is_empty(fs.dir(), ec)) << "a failed start left files in " << fs.dir();
    fs.free();
    {
        ServerProcess server(endpoint_for(t, name_), echo_server());
        EXPECT_EQ(echo_once(server.client_endpoint(), 100), "");
    }
    use_test_private_dir();
}

INSTANTIATE_TEST_SUITE_P(Transports, FullDirectory,
                         ::testing::Values("fifo", "posix-mq", "sysv-mq"), transport_test_name);

// Runs body in a forked child; returns what it returned (or why it failed).
std::string in_child(const std::function<std::string()>& body) {
    ReportingChild child = fork_reporting(body);
    std::string out = read_until_eof(child.report.get(), 30000);
    wait_or_kill(child.pid, 5000);
    return out;
}

// In a private IPC namespace with kernel.msgmni = 3: the server's queue and
// a hog's two leave none for a client. It waits (as for a busy server) and
// then names the limit; once the hog frees its queues, a client gets through.
TEST(SysvLimit, SystemWideQueueLimitIsAClearErrorThenRecovers) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private IPC namespace";
    std::string name = fresh_name("sl");
    std::string report = in_child([&]() -> std::string {
        if (::unshare(CLONE_NEWIPC) != 0) return "skip: unshare(CLONE_NEWIPC) not permitted";
        {
            std::ofstream mni("/proc/sys/kernel/msgmni");
            mni << 3;
            if (!mni.flush()) return "skip: cannot set kernel.msgmni";
        }
        std::string out;
        ServerProcess server(endpoint_for("sysv-mq", name), echo_server());
        std::vector<int> hog;
        for (int i = 0; i < 8; ++i) {
            int q = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
            if (q < 0) break;
            hog.push_back(q);
        }
        std::string err = echo_once(server.client_endpoint(), 100, 500);
        out += "full: " + err + "\n";
        // Free the hog's queues while a patient client waits for one.
        pid_t freer = test_fork();
        if (freer == 0) {
            ::usleep(300 * 1000);
            for (int q : hog) ::msgctl(q, IPC_RMID, nullptr);
            ::_exit(0);
        }
        out += "freed: " + echo_once(server.client_endpoint(), 100, 10000) + "\n";
        wait_or_kill(freer, 5000);
        for (int q : hog) ::msgctl(q, IPC_RMID, nullptr);
        server.stop();
        return out;
    });
    RecordProperty("report", report);
    if (report.rfind("skip:", 0) == 0) GTEST_SKIP() << report;
    EXPECT_NE(report.find("full: echo_once: msgget: the system-wide limit of System V queues "
                          "(kernel.msgmni = 3) is reached"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("freed: \n"), std::string::npos) << report;
}

// Fills this user's RLIMIT_MSGQUEUE with queues, large ones first, down to
// a few bytes; returns their names.
std::vector<std::string> hog_msgqueue_budget() {
    std::vector<std::string> names;
    for (long size = 8192; size >= 8; size /= 2) {
        for (long depth = 10; depth >= 1; --depth) {
            for (;;) {
                struct mq_attr attr {};
                attr.mq_maxmsg = depth;
                attr.mq_msgsize = size;
                std::string q = "/ipclab-hog-" + std::to_string(::getpid()) + "-" +
                                std::to_string(names.size());
                mqd_t d = ::mq_open(q.c_str(), O_RDONLY | O_CREAT | O_EXCL, 0600, &attr);
                if (d == mqd_t(-1)) break;  // EMFILE: the budget; ENOSPC: queues_max
                ::mq_close(d);
                names.push_back(q);
            }
        }
    }
    return names;
}

// uid 65534 in a private IPC namespace: another process of the same user
// holds the whole RLIMIT_MSGQUEUE; a posix-mq client waits for room, then
// names the limit; once that process frees its queues, a client gets through.
TEST(MsgqueueLimit, UsedUpByAnotherProcessIsAClearErrorThenRecovers) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to become uid 65534 in a private IPC namespace";
    std::string name = fresh_name("ml");
    char tmpl[] = "/tmp/ipclab-rl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
    std::string report = in_child([&]() -> std::string {
        if (::unshare(CLONE_NEWIPC) != 0) return "skip: unshare(CLONE_NEWIPC) not permitted";
        if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
            return "skip: cannot become uid 65534";
        ::setenv("IPCLAB_DIR", dir.c_str(), 1);
        std::string out;
        ServerProcess server(endpoint_for("posix-mq", name), echo_server());
        Endpoint ep = server.client_endpoint();
        auto client = [&](int timeout_ms) {  // another process than the hog
            std::string r = in_child([&] { return echo_once(ep, 100, timeout_ms); });
            return r;
        };
        std::vector<std::string> hog = hog_msgqueue_budget();
        out += "hog " + std::to_string(hog.size()) + "\n";
        out += "full: " + client(500) + "\n";
        pid_t freer = test_fork();
        if (freer == 0) {
            ::usleep(300 * 1000);
            for (const auto& q : hog) ::mq_unlink(q.c_str());
            ::_exit(0);
        }
        out += "freed: " + client(10000) + "\n";
        wait_or_kill(freer, 5000);
        for (const auto& q : hog) ::mq_unlink(q.c_str());
        server.stop();
        return out;
    });
    ::rmdir(dir.c_str());
    RecordProperty("report", report);
    if (report.rfind("skip:", 0) == 0) GTEST_SKIP() << report;
    EXPECT_NE(report.find("full: echo_once: mq_open"), std::string::npos) << report;
    EXPECT_NE(report.find("RLIMIT_MSGQUEUE exhausted"), std::string::npos) << report;
    EXPECT_NE(report.find("freed: \n"), std::string::npos) << report;
}

// With fs.mqueue.msgsize_max raised (a private IPC namespace, as root), a
// 64 KiB message goes as one queue message, not nine 8 KiB chunks: the
// session queues take the limit they find, and the report's advice to raise
// it (scripts/report.py, limits_section) holds.
TEST(MsgqueueLimit, ARaisedMsgsizeMaxCarriesA64KiBMessageAsOneQueueMessage) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private IPC namespace";
    std::string name = fresh_name("mz");
    std::string report = in_child([&]() -> std::string {
        if (::unshare(CLONE_NEWIPC) != 0) return "skip: unshare(CLONE_NEWIPC) not permitted";
        // One 64 KiB piece and its chunk header per queue message; queues 4
        // deep, so a session's two fit the default RLIMIT_MSGQUEUE.
        for (auto [path, value] : {std::pair<const char*, std::size_t>{"/proc/sys/fs/mqueue/msgsize_max",
                                                                       65536 + kChunkHeaderSize},
                                   {"/proc/sys/fs/mqueue/msg_max", 4}}) {
            std::ofstream f(path);
            f << value;
            if (!f.flush()) return std::string("skip: cannot set ") + path;
        }
        Limits limits;
        limits.timeout_ms = 10000;
        Endpoint ep = endpoint_for("posix-mq", name);
        auto listener = listen(ep, limits);
        Bytes big;
        fill_payload(big, 1, 65536);
        int gave_up[2];
        if (::pipe(gave_up) != 0) return "pipe failed";
        Fd gave_up_read(gave_up[0]), gave_up_write(gave_up[1]);
        std::unique_ptr<Channel> client;
        std::string client_error;
        std::atomic<bool> client_failed{false};
        std::thread t([&] {
            try {
                client = connect(ep, limits);
                client->send(FrameType::data, big);
            } catch (const std::exception& e) {
                client_error = e.what();
                client_failed = true;
                gave_up_write.reset();  // wakes the accept below
            }
        });
        std::unique_ptr<PendingSession> pending;
        for (int i = 0; i < 100 && !pending && !client_failed; ++i) pending = listener->accept(gave_up_read.get());
        std::unique_ptr<Channel> server = pending ? pending->open(limits) : nullptr;
        t.join();
        if (!client_error.empty()) return "client: " + client_error;
        if (!server) return "no session";
        std::string out;
        for (const auto& o : list_posix_mq_objects()) {
            if (o.what.find(global_prefix(name)) == std::string::npos || !o.what.ends_with(".c2s")) continue;
            mqd_t q = ::mq_open(o.what.c_str(), O_RDONLY);
            if (q == mqd_t(-1)) return "mq_open " + o.what + ": " + std::strerror(errno);
            struct mq_attr attr {};
            ::mq_getattr(q, &attr);
            ::mq_close(q);
            out += "msgsize " + std::to_string(attr.mq_msgsize) + " curmsgs " + std::to_string(attr.mq_curmsgs) + "\n";
        }
        Message m;
        out += server->receive(m) && m.payload == big ? "payload ok\n" : "payload differs\n";
        return out;
    });
    RecordProperty("report", report);
    if (report.rfind("skip:", 0) == 0) GTEST_SKIP() << report;
    EXPECT_NE(report.find("msgsize 65548 curmsgs 1\n"), std::string::npos) << report;
    EXPECT_NE(report.find("payload ok"), std::string::npos) << report;
}

}  // namespace
}  // namespace ipclab::test
