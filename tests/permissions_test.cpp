// Permissions: every object a server and a client create is 0600 and ours
// (even under umask 0), the private directory is 0700, and a private
// directory that belongs to another user, is open to others or is a symlink
// is refused with a message naming it, by the real binaries too.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "ipc/error.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"

namespace ipclab::test {
namespace {

const std::vector<std::string> kNamedTransports{"unix", "fifo", "posix-mq", "sysv-mq", "shm"};

std::string param_name(const ::testing::TestParamInfo<std::string>& p) {
    std::string n = p.param;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

std::string octal(mode_t m) {
    std::ostringstream o;
    o << std::oct << (m & 07777);
    return o.str();
}

class Permissions : public GuardedTest, public ::testing::WithParamInterface<std::string> {
protected:
    Permissions() : GuardedTest("pt") {}
};

// ---------------------------------------------------------------------------
// With umask 0 in force while the server starts and the client connects,
// every object of a live session is 0600 and belongs to us.

TEST_P(Permissions, EveryObjectIs0600AndTheDirectory0700) {
    auto before = ipc_object_snapshot();
    mode_t old = ::umask(0);
    server_ = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_), echo_server());
    auto ch = connect(server_->client_endpoint(), client_limits());
    ::umask(old);
    ipclab::Bytes ping(100, std::byte{1});
    ch->send(FrameType::data, ping);
    Message reply;
    ASSERT_TRUE(ch->receive(reply));  // the session is fully open now

    struct stat st {};
    std::string dir = private_dir();
    ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(octal(st.st_mode), "700") << dir;
    EXPECT_EQ(st.st_uid, ::geteuid());

    int checked = 0;
    for (const auto& o : ipc_object_snapshot()) {
        if (before.count(o)) continue;
        std::string kind = o.substr(0, o.find(' '));
        std::string rest = o.substr(o.find(' ') + 1);
        SCOPED_TRACE(o);
        if (kind == "file" || kind == "shm" || kind == "posix-mq") {
            std::string path = kind == "file" ? rest : (kind == "shm" ? "/dev/shm/" : "/mnt/") + rest;
            ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
            EXPECT_FALSE(S_ISLNK(st.st_mode));
            EXPECT_EQ(octal(st.st_mode), "600") << path;
            EXPECT_EQ(st.st_uid, ::geteuid()) << path;
            ++checked;
        } else if (kind == "sysv-msg" || kind == "sysv-shm" || kind == "sysv-sem") {
            int id = std::stoi(rest.substr(3));  // "id N key K"
            ASSERT_EQ(kind, "sysv-msg") << "ipclab creates no other System V objects";
            struct msqid_ds ds {};
            ASSERT_EQ(::msgctl(id, IPC_STAT, &ds), 0) << id;
            EXPECT_EQ(octal(ds.msg_perm.mode), "600") << "msqid " << id;
            EXPECT_EQ(ds.msg_perm.uid, ::geteuid());
            EXPECT_EQ(ds.msg_perm.cuid, ::geteuid());
            ++checked;
        }
    }
    // Each transport has at least a lock file and its rendezvous object.
    EXPECT_GE(checked, 2) << "too few objects seen to check";
    if (GetParam() == "posix-mq" && !make_posix_queues_visible())
        std::cout << "[ note      ] no private mqueue mount: queues checked through their markers only\n";
}

INSTANTIATE_TEST_SUITE_P(Transports, Permissions, ::testing::ValuesIn(kNamedTransports), param_name);

// ---------------------------------------------------------------------------
// IPCLAB_DIR pointing at a directory we must not trust: every transport's
// server and client refuse it, exit 1 and name it; nothing is created in it.

class UntrustedDirectory : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/ipclab-perm-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        base_ = tmpl;  // ours, 0700: holds the directories under test
    }
    void TearDown() override {
        use_test_private_dir();
        for (const auto& p : made_) {
            ::unlink(p.c_str());
            ::rmdir(p.c_str());
        }
        EXPECT_EQ(::rmdir(base_.c_str()), 0) << "something was created in " << base_;
    }

    std::string make_dir(const std::string& leaf, mode_t mode, uid_t uid) {
        std::string p = base_ + "/" + leaf;
        EXPECT_EQ(::mkdir(p.c_str(), 0700), 0);
        EXPECT_EQ(::chmod(p.c_str(), mode), 0);
        EXPECT_EQ(::chown(p.c_str(), uid, uid), 0);
        made_.insert(made_.begin(), p);
        return p;
    }

    // Every transport's server and client refuse dir with `why` in one line.
    void expect_refused(const std::string& dir, const std::string& why) {
        ::setenv("IPCLAB_DIR", dir.c_str(), 1);
        for (const auto& t : kNamedTransports) {
            for (const char* prog : {"server", "client"}) {
                std::vector<std::string> argv{bin(prog), "--transport", t, "--name", "perm"};
                if (std::string(prog) == "client") argv.insert(argv.end(), {"-m", "x", "--timeout", "2"});
                auto r = run_program(argv, "", 15000);
                EXPECT_EQ(r.exit_code, 1) << prog << " " << t << ": " << r.err;
                // A posix-mq client looks for the server's queue first; with
                // no server it fails on that, before touching the directory.
                if (t == "posix-mq" && std::string(prog) == "client" &&
                    r.err.find("no posix-mq server") != std::string::npos)
                    continue;
                EXPECT_NE(r.err.find(dir), std::string::npos) << prog << " " << t << ": " << r.err;
                EXPECT_NE(r.err.find(why), std::string::npos) << prog << " " << t << ": " << r.err;
                EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
            }
        }
        // The library says the same to a caller that does not exit.
        try {
            ServerProcess server(endpoint_for("fifo", "perm"), echo_server());
            ADD_FAILURE() << "a server started in " << dir;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
        }
        use_test_private_dir();
    }

    static bool empty_dir(const std::string& dir) {
        std::error_code ec;
        return std::filesystem::is_empty(dir, ec);
    }

    std::string base_;
    std::vector<std::string> made_;
};

TEST_F(UntrustedDirectory, OwnedByAnotherUserIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
    std::string dir = make_dir("foreign", 0700, kNobody);
    expect_refused(dir, "belongs to uid 65534, not to us");
    EXPECT_TRUE(empty_dir(dir));
}

TEST_F(UntrustedDirectory, OpenToOthersIsRefused) {
    for (mode_t mode : {mode_t{0755}, mode_t{0770}, mode_t{0703}, mode_t{01777}}) {
        std::string dir = make_dir("open" + octal(mode), mode, ::geteuid());
        expect_refused(dir, "is open to other users (mode " + octal(mode & 0777) + ")");
        EXPECT_TRUE(empty_dir(dir));
    }
}

TEST_F(UntrustedDirectory, SymlinkInPlaceOfTheDirectoryIsRefused) {
    std::string target = make_dir("target", 0700, ::geteuid());
    std::string link = base_ + "/link";
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    made_.insert(made_.begin(), link);
    expect_refused(link, "is not a directory");
    EXPECT_TRUE(empty_dir(target));
    // A dangling link: nothing may be created at its target either.
    std::string dangling = base_ + "/dangling";
    std::string nowhere = base_ + "/nowhere";
    ASSERT_EQ(::symlink(nowhere.c_str(), dangling.c_str()), 0);
    made_.insert(made_.begin(), dangling);
    expect_refused(dangling, "is not a directory");
    struct stat st {};
    EXPECT_NE(::lstat(nowhere.c_str(), &st), 0) << nowhere << " was created through the link";
}

// Look-ups never create the directory: a client finding no server, and a
// listing, leave no trace (TearDown's rmdir of base_ proves nothing was made).
TEST_F(UntrustedDirectory, LookUpsWithoutAServerCreateNoDirectory) {
    std::string dir = base_ + "/absent";
    ::setenv("IPCLAB_DIR", dir.c_str(), 1);
    for (const auto& t : kNamedTransports) {
        auto r = run_program({bin("client"), "--transport", t, "--name", "nobody-here", "-m", "x",
                              "--timeout", "2"},
                             "", 15000);
        EXPECT_EQ(r.exit_code, 1) << t << ": " << r.err;
        EXPECT_NE(r.err.find("no " + t + " server"), std::string::npos) << t << ": " << r.err;
        auto list = run_program({bin("server"), "--transport", t, "--list-objects"}, "", 15000);
        EXPECT_EQ(list.exit_code, 0) << t << ": " << list.err;
        struct stat st {};
        EXPECT_NE(::lstat(dir.c_str(), &st), 0) << t << " created " << dir;
    }
    use_test_private_dir();
}

// ---------------------------------------------------------------------------
// A System V queue of another user sitting on the server's key is refused
// at start, not taken over or reused.

// The key file names another user's queue (a squatter, or a key reused
// since a dead server wrote it): the server neither takes nor removes that
// queue; it draws a fresh key and serves.
TEST(ForeignObjects, SysvKeyTakenByAnotherUsersQueueIsLeftAndReplaced) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a queue away";
    std::string name = fresh_name("pt");
    std::string key_file = private_dir() + "/" + name + ".sysv-mq.key";
    key_t key = 0;
    int q = -1;
    for (int i = 0; i < 16 && q < 0; ++i) {  // a key nobody holds
        key = static_cast<key_t>(0x1c000000 + ::getpid() * 16 + i);
        q = ::msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    }
    ASSERT_GE(q, 0);
    struct msqid_ds ds {};
    ASSERT_EQ(::msgctl(q, IPC_STAT, &ds), 0);
    ds.msg_perm.uid = kNobody;
    ASSERT_EQ(::msgctl(q, IPC_SET, &ds), 0);
    {
        Fd f(::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        ASSERT_TRUE(f);
        char hex[16];
        std::snprintf(hex, sizeof hex, "%08x\n", static_cast<unsigned>(key));
        ASSERT_EQ(::write(f.get(), hex, 9), 9);
    }
    {
        ServerProcess server(endpoint_for("sysv-mq", name), echo_server());
        EXPECT_EQ(echo_once(server.client_endpoint(), 100), "");
    }
    EXPECT_EQ(::msgctl(q, IPC_STAT, &ds), 0) << "the foreign queue was removed";
    EXPECT_EQ(::msgctl(q, IPC_RMID, nullptr), 0);
    ::unlink(key_file.c_str());
    ::unlink((private_dir() + "/" + name + ".sysv-mq.lock").c_str());
}

}  // namespace
}  // namespace ipclab::test
