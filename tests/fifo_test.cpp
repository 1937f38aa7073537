// The fifo transport against the real forked server loop: exchanges, many
// sessions, hostile hellos, clients and servers that die, object listing.
//
// Every test checks afterwards that no child is left (reaped, no zombie)
// and that the objects carrying this binary's endpoint names are exactly
// as before. Only names with our prefix are compared: other transports'
// suites may share the private directory when run by hand in parallel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/transports.hpp"
#include "server/options.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab {
namespace {

using test::eventually;
using test::ServerProcess;

constexpr int kTimeoutMs = 10000;

std::string name_prefix() { return "fifot-" + std::to_string(::getpid()) + "-"; }

std::string unique_name() {
    static int counter = 0;
    return name_prefix() + std::to_string(++counter);
}

std::set<std::string> own_objects() {
    std::set<std::string> out;
    for (const auto& o : test::ipc_object_snapshot())
        if (o.find(name_prefix()) != std::string::npos) out.insert(o);
    return out;
}

Limits client_limits() {
    Limits l;
    l.timeout_ms = kTimeoutMs;
    return l;
}

ServerOptions echo_options() {
    ServerOptions o;
    o.reply = ReplyMode::echo;
    o.quiet = true;
    o.limits.timeout_ms = kTimeoutMs;
    return o;
}

ipclab::Bytes pattern(std::size_t n, unsigned seed = 7) {
    ipclab::Bytes v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<unsigned char>(i * 131 + seed));
    return v;
}

// One message and its reply.
Message exchange(Channel& ch, std::span<const std::byte> payload) {
    ch.send(FrameType::data, payload);
    Message reply;
    if (!ch.receive(reply)) throw PeerGone("server ended the session without a reply");
    return reply;
}

bool echoes(Channel& ch, std::span<const std::byte> payload) {
    Message r = exchange(ch, payload);
    return r.type == FrameType::data && r.payload.size() == payload.size() &&
           std::equal(r.payload.begin(), r.payload.end(), payload.begin());
}

// Files in the private directory that belong to pid's sessions on `name`.
std::vector<std::string> session_files(const std::string& name, pid_t pid) {
    std::vector<std::string> out;
    std::string prefix = name + "." + std::to_string(pid) + ".";
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(private_dir(), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::string f = it->path().filename().string();
        if (f.rfind(prefix, 0) == 0) out.push_back(it->path().string());
    }
    return out;
}

// Forks a child that runs body and _exits with its result (1 on any exception).
pid_t fork_child(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_t pid = test::test_fork();
    if (pid == 0) {
        int rc = 1;
        try {
            rc = body();
        } catch (...) {
            rc = 1;
        }
        ::_exit(rc);
    }
    return pid;
}

// Reads n bytes from fd within timeout_ms; false on timeout or EOF.
bool read_bytes(int fd, std::size_t n, int timeout_ms) {
    Deadline deadline(timeout_ms);
    std::size_t got = 0;
    char buf[64];
    while (got < n) {
        struct pollfd p {fd, POLLIN, 0};
        int left = deadline.remaining_ms();
        if (left == 0 || ::poll(&p, 1, left) <= 0) return false;
        ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - got));
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
    }
    return true;
}

void write_to_well_known(const std::string& name, std::span<const std::byte> bytes) {
    std::string path = fifo::well_known_path(private_dir(), name);
    Fd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_TRUE(fd) << path << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

bool exited_ok(int status) { return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

class FifoTest : public ::testing::Test {
protected:
    void SetUp() override {
        before_ = own_objects();
        ep_.transport = "fifo";
        ep_.name = unique_name();
    }

    void TearDown() override {
        EXPECT_TRUE(test::children_of(::getpid()).empty()) << "a child was left unreaped";
        EXPECT_TRUE(test::zombie_children_of(::getpid()).empty());
        EXPECT_EQ(own_objects(), before_);
    }

    std::set<std::string> before_;
    Endpoint ep_;
};

TEST(FifoHello, EncodesAndDecodes) {
    auto b = fifo::encode_hello({4242, 7});
    EXPECT_EQ(b[0], std::byte{'I'});
    EXPECT_EQ(b[3], std::byte{'F'});
    auto h = fifo::decode_hello(b);
    EXPECT_EQ(h.pid, 4242u);
    EXPECT_EQ(h.serial, 7u);
    auto v2 = fifo::encode_hello({1, 0}, 2);
    EXPECT_THROW(fifo::decode_hello(v2), ProtocolError);
    b[0] = std::byte{'X'};
    EXPECT_THROW(fifo::decode_hello(b), ProtocolError);
}

TEST(FifoHello, ParsesFileNamesFromTheRight) {
    auto p = fifo::parse_file_name("a.b.123.4.c2s");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, fifo::ParsedName::Kind::c2s);
    EXPECT_EQ(p->name, "a.b");
    EXPECT_EQ(p->pid, 123u);
    EXPECT_EQ(p->serial, 4u);
    auto w = fifo::parse_file_name("x.y.fifo");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->kind, fifo::ParsedName::Kind::well_known);
    EXPECT_EQ(w->name, "x.y");
    auto l = fifo::parse_file_name("x.fifo.lock");
    ASSERT_TRUE(l);
    EXPECT_EQ(l->kind, fifo::ParsedName::Kind::lock);
    EXPECT_FALSE(fifo::parse_file_name("x.sock"));
    EXPECT_FALSE(fifo::parse_file_name("x.12a.3.s2c"));
    EXPECT_FALSE(fifo::parse_file_name(".1.2.s2c"));
    EXPECT_FALSE(fifo::parse_file_name("x.unix.lock"));
}

TEST_F(FifoTest, EchoesPayloadsByteExact) {
    ServerProcess server(ep_, echo_options());
    auto ch = connect(ep_, client_limits());
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{64 * 1024 + 1},
                          std::size_t{1} << 20}) {
        auto payload = pattern(n, static_cast<unsigned>(n));
        EXPECT_TRUE(echoes(*ch, payload)) << n << " bytes";
    }
    ch.reset();
    EXPECT_TRUE(session_files(ep_.name, ::getpid()).empty());
}

TEST_F(FifoTest, AcksAndPrintsTheMessage) {
    ServerOptions opt;
    opt.limits.timeout_ms = kTimeoutMs;
    ServerProcess server(ep_, opt);
    auto ch = connect(ep_, client_limits());
    Message r = exchange(*ch, as_bytes("hello"));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()),
              kAckText);
    ch.reset();
    EXPECT_EQ(server.stop(), 0);
    EXPECT_NE(server.stdout_text().find("Here is the message: hello\n"), std::string::npos);
    EXPECT_NE(server.stderr_text().find("end=\"client closed\""), std::string::npos);
}

TEST_F(FifoTest, TwentySequentialSessions) {
    ServerProcess server(ep_, echo_options());
    for (int i = 0; i < 20; ++i) {
        auto ch = connect(ep_, client_limits());
        auto payload = pattern(100 + static_cast<std::size_t>(i), static_cast<unsigned>(i));
        ASSERT_TRUE(echoes(*ch, payload)) << "session " << i;
        ASSERT_TRUE(echoes(*ch, payload)) << "session " << i;
    }
    EXPECT_TRUE(session_files(ep_.name, ::getpid()).empty());
    EXPECT_TRUE(eventually([&] { return test::children_of(server.pid()).empty(); }));
    EXPECT_TRUE(test::zombie_children_of(server.pid()).empty());
}

TEST_F(FifoTest, TwoSessionsFromOneProcessAtOnce) {
    ServerProcess server(ep_, echo_options());
    auto a = connect(ep_, client_limits());
    auto b = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*b, pattern(10, 1)));
    EXPECT_TRUE(echoes(*a, pattern(20, 2)));
    EXPECT_EQ(session_files(ep_.name, ::getpid()).size(), 4u);
}

TEST_F(FifoTest, EightConcurrentSessions) {
    ServerProcess server(ep_, echo_options());
    int ready[2], go[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    Fd ready_r(ready[0]), ready_w(ready[1]), go_r(go[0]), go_w(go[1]);
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i) {
        pid_t pid = fork_child([&, i] {
            ready_r.reset();
            go_w.reset();
            auto ch = connect(ep_, client_limits());
            auto payload = pattern(1000 + static_cast<std::size_t>(i) * 4096, static_cast<unsigned>(i));
            if (!echoes(*ch, payload)) return 2;
            if (::write(ready_w.get(), "r", 1) != 1) return 3;
            char c;
            while (::read(go_r.get(), &c, 1) < 0 && errno == EINTR) {
            }  // EOF: everyone is connected
            for (int k = 0; k < 10; ++k)
                if (!echoes(*ch, payload)) return 4;
            return 0;
        });
        ASSERT_GT(pid, 0);
        kids.push_back(pid);
    }
    ready_w.reset();
    go_r.reset();
    bool all_ready = read_bytes(ready_r.get(), kids.size(), kTimeoutMs);
    EXPECT_TRUE(all_ready);
    // Eight sessions open at once: eight server children.
    if (all_ready) {
        EXPECT_EQ(test::children_of(server.pid()).size(), kids.size());
    }
    go_w.reset();
    for (pid_t pid : kids) EXPECT_TRUE(exited_ok(test::wait_or_kill(pid, kTimeoutMs))) << pid;
    for (pid_t pid : kids) EXPECT_TRUE(session_files(ep_.name, pid).empty()) << pid;
    EXPECT_TRUE(eventually([&] { return test::children_of(server.pid()).empty(); }));
}

TEST_F(FifoTest, RejectsForgedHellosAndKeepsServing) {
    ServerProcess server(ep_, echo_options());
    std::string dir = private_dir();
    auto served = [&] {
        auto ch = connect(ep_, client_limits());
        return echoes(*ch, pattern(33));
    };
    // A pid no process can have (pid_max is at most 2^22).
    write_to_well_known(ep_.name, fifo::encode_hello({0x3FFFFFFF, 0}));
    EXPECT_TRUE(served());
    // A live pid (ours) without session FIFOs.
    write_to_well_known(ep_.name, fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 900000}));
    EXPECT_TRUE(served());
    // Session FIFOs open to others.
    auto loose = fifo::session_paths(dir, ep_.name, static_cast<std::uint32_t>(::getpid()), 900001);
    ASSERT_EQ(::mkfifo(loose.c2s.c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo(loose.s2c.c_str(), 0600), 0);
    ASSERT_EQ(::chmod(loose.c2s.c_str(), 0644), 0);
    write_to_well_known(ep_.name, fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 900001}));
    EXPECT_TRUE(served());
    // A symlink where a session FIFO should be.
    auto linked = fifo::session_paths(dir, ep_.name, static_cast<std::uint32_t>(::getpid()), 900002);
    ASSERT_EQ(::symlink(loose.s2c.c_str(), linked.c2s.c_str()), 0);
    ASSERT_EQ(::mkfifo(linked.s2c.c_str(), 0600), 0);
    write_to_well_known(ep_.name, fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 900002}));
    EXPECT_TRUE(served());
    // Well-formed FIFOs, but nobody reads s2c.
    auto deaf = fifo::session_paths(dir, ep_.name, static_cast<std::uint32_t>(::getpid()), 900003);
    ASSERT_EQ(::mkfifo(deaf.c2s.c_str(), 0600), 0);
    ASSERT_EQ(::mkfifo(deaf.s2c.c_str(), 0600), 0);
    write_to_well_known(ep_.name, fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 900003}));
    EXPECT_TRUE(served());
    // Another version, and bytes that are no hello at all.
    write_to_well_known(ep_.name, fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 1}, 9));
    EXPECT_TRUE(served());
    write_to_well_known(ep_.name, as_bytes("junk\n"));
    EXPECT_TRUE(served());

    for (const auto& p : {loose.c2s, loose.s2c, linked.c2s, linked.s2c, deaf.c2s, deaf.s2c})
        EXPECT_EQ(::unlink(p.c_str()), 0) << p;
    EXPECT_EQ(server.stop(), 0);
    std::string log = server.stderr_text();
    for (const char* want : {"rejected a session: hello from pid 1073741823, which is not running",
                             ".900000.c2s of pid", "does not exist", "has mode 0644, not 0600",
                             ".900002.c2s of pid", "is not a FIFO", "nobody is reading",
                             "version 9, expected 1", "discarded 5 bytes"})
        EXPECT_NE(log.find(want), std::string::npos) << "missing '" << want << "' in\n" << log;
    EXPECT_NE(log.find("session ended pid="), std::string::npos);
}

TEST_F(FifoTest, ClientKilledMidMessage) {
    ServerProcess server(ep_, echo_options());
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    Fd ready_r(ready[0]), ready_w(ready[1]);
    pid_t pid = fork_child([&] {
        auto ch = connect(ep_, client_limits());
        if (!echoes(*ch, pattern(10))) return 2;
        // Half a message: a header announcing 100000 bytes, then 10 of them.
        auto files = session_files(ep_.name, ::getpid());
        auto c2s = std::find_if(files.begin(), files.end(), [](const std::string& f) {
            return f.size() > 4 && f.compare(f.size() - 4, 4, ".c2s") == 0;
        });
        if (c2s == files.end()) return 3;
        Fd raw(::open(c2s->c_str(), O_WRONLY | O_CLOEXEC));
        if (!raw) return 4;
        auto header = encode_header(FrameType::data, 100000);
        auto body = pattern(10);
        if (::write(raw.get(), header.data(), header.size()) != 5) return 5;
        if (::write(raw.get(), body.data(), body.size()) != 10) return 6;
        if (::write(ready_w.get(), "r", 1) != 1) return 7;
        for (;;) ::pause();
    });
    ASSERT_GT(pid, 0);
    ready_w.reset();
    ASSERT_TRUE(read_bytes(ready_r.get(), 1, kTimeoutMs));
    EXPECT_EQ(session_files(ep_.name, pid).size(), 2u);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = test::wait_or_kill(pid, kTimeoutMs);
    EXPECT_TRUE(WIFSIGNALED(status));
    // The server child saw the client go and removed its FIFOs.
    EXPECT_TRUE(eventually([&] { return session_files(ep_.name, pid).empty(); }));
    {
        auto ch = connect(ep_, client_limits());
        EXPECT_TRUE(echoes(*ch, pattern(1000)));
    }
    EXPECT_TRUE(eventually([&] { return test::children_of(server.pid()).empty(); }));
    EXPECT_TRUE(test::zombie_children_of(server.pid()).empty());
    EXPECT_EQ(server.stop(), 0);
    EXPECT_NE(server.stderr_text().find("peer vanished"), std::string::npos)
        << server.stderr_text();
}

TEST_F(FifoTest, ClientKilledAwaitingALargeReply) {
    ServerProcess server(ep_, echo_options());
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    Fd ready_r(ready[0]), ready_w(ready[1]);
    pid_t pid = fork_child([&] {
        auto ch = connect(ep_, client_limits());
        // The echo fills the pipe and the server child blocks writing it.
        ch->send(FrameType::data, pattern(4u << 20));
        if (::write(ready_w.get(), "r", 1) != 1) return 7;
        for (;;) ::pause();
    });
    ASSERT_GT(pid, 0);
    ready_w.reset();
    ASSERT_TRUE(read_bytes(ready_r.get(), 1, kTimeoutMs));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    EXPECT_TRUE(WIFSIGNALED(test::wait_or_kill(pid, kTimeoutMs)));
    EXPECT_TRUE(eventually([&] { return session_files(ep_.name, pid).empty(); }));
    EXPECT_TRUE(eventually([&] { return test::children_of(server.pid()).empty(); }));
    auto ch = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*ch, pattern(5)));
}

TEST_F(FifoTest, EmptySessionAndIdleTimeout) {
    ServerOptions opt = echo_options();
    opt.limits.timeout_ms = 300;
    ServerProcess server(ep_, opt);
    connect(ep_, client_limits()).reset();  // opened and closed without a message
    auto ch = connect(ep_, client_limits());
    Message m;
    // The server child gives up on the silent session; we then read EOF.
    EXPECT_FALSE(ch->receive(m));
    ch.reset();
    EXPECT_EQ(server.stop(), 0);
    std::string log = server.stderr_text();
    EXPECT_NE(log.find("messages=0 bytes_in=0 bytes_out=0"), std::string::npos) << log;
    EXPECT_NE(log.find("end=\"client closed\""), std::string::npos) << log;
    EXPECT_NE(log.find("end=\"idle timeout\""), std::string::npos) << log;
}

TEST_F(FifoTest, OversizeRefusedThenServesOthers) {
    ServerOptions opt = echo_options();
    opt.limits.max_message = 1000;
    ServerProcess server(ep_, opt);
    {
        auto ch = connect(ep_, client_limits());
        ch->send(FrameType::data, pattern(2000));
        Message m;
        ASSERT_TRUE(ch->receive(m));
        EXPECT_EQ(m.type, FrameType::error);
    }
    auto ch = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*ch, pattern(1000)));
}

TEST_F(FifoTest, ServerStopEndsLiveSessions) {
    ServerOptions opt = echo_options();
    opt.grace_seconds = 0.2;
    ServerProcess server(ep_, opt);
    auto ch = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*ch, pattern(64)));
    EXPECT_EQ(server.stop(SIGTERM), 0);
    Message m;
    bool ended = false;
    try {
        ended = !ch->receive(m);
    } catch (const PeerGone&) {
        ended = true;
    }
    EXPECT_TRUE(ended);
    EXPECT_THROW(ch->send(FrameType::data, pattern(8)), PeerGone);
}

TEST_F(FifoTest, SecondServerOnTheSameNameFails) {
    ServerProcess server(ep_, echo_options());
    try {
        listen(ep_, Limits{});
        ADD_FAILURE() << "a second listener opened";
    } catch (const AlreadyRunning& e) {
        EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(server.pid())),
                  std::string::npos)
            << e.what();
    }
    auto ch = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*ch, pattern(3)));
}

TEST_F(FifoTest, ConnectWithoutServerSaysSo) {
    try {
        connect(ep_, client_limits());
        ADD_FAILURE() << "connected to nothing";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("no fifo server named '" + ep_.name + "'"),
                  std::string::npos)
            << e.what();
    }
}

TEST_F(FifoTest, StaleServerObjectsAreReclaimedOnRestart) {
    std::string dir = private_dir();
    pid_t dead;
    {
        ServerProcess first(ep_, echo_options());
        dead = first.pid();
        first.stop(SIGKILL);
    }
    struct stat st {};
    ASSERT_EQ(::lstat(fifo::well_known_path(dir, ep_.name).c_str(), &st), 0);
    bool listed = false;
    for (const auto& o : list_fifo_objects())
        if (o.what == fifo::well_known_path(dir, ep_.name)) {
            listed = true;
            EXPECT_TRUE(o.stale);
            EXPECT_EQ(o.owner, dead);
        }
    EXPECT_TRUE(listed);
    ServerProcess second(ep_, echo_options());
    auto ch = connect(ep_, client_limits());
    EXPECT_TRUE(echoes(*ch, pattern(77)));
}

TEST_F(FifoTest, ListsLiveObjectsAndRemovesStaleOnes) {
    std::string dir = private_dir();
    {
        ServerProcess server(ep_, echo_options());
        auto ch = connect(ep_, client_limits());
        EXPECT_TRUE(echoes(*ch, pattern(3)));
        int ours = 0, server_owned = 0;
        for (const auto& o : list_fifo_objects()) {
            if (o.what.find("/" + ep_.name + ".") == std::string::npos) continue;
            EXPECT_EQ(o.transport, "fifo");
            EXPECT_FALSE(o.stale) << o.what;
            if (o.owner == ::getpid()) ++ours;
            if (o.owner == server.pid()) ++server_owned;
        }
        EXPECT_EQ(ours, 2);          // c2s, s2c
        EXPECT_EQ(server_owned, 1);  // NAME.fifo (lock files are list_lock_files()'s)
        ch.reset();
        server.stop(SIGKILL);
    }
    int removed = 0;
    for (const auto& o : list_fifo_objects()) {
        if (o.what.find("/" + ep_.name + ".") == std::string::npos) continue;
        EXPECT_TRUE(o.stale) << o.what;
        o.remove();
        ++removed;
    }
    EXPECT_EQ(removed, 1);
    // The dead server's lock file, which the fifo listing leaves to list_lock_files().
    EXPECT_EQ(::unlink((dir + "/" + ep_.name + ".fifo.lock").c_str()), 0);
}

TEST_F(FifoTest, SessionFifosAreMode0600WhateverTheUmask) {
    ServerProcess server(ep_, echo_options());
    for (mode_t mask : {mode_t{0}, mode_t{0277}}) {
        mode_t old = ::umask(mask);
        auto ch = connect(ep_, client_limits());
        ::umask(old);
        auto files = session_files(ep_.name, ::getpid());
        ASSERT_EQ(files.size(), 2u);
        for (const auto& f : files) {
            struct stat st {};
            ASSERT_EQ(::lstat(f.c_str(), &st), 0);
            EXPECT_TRUE(S_ISFIFO(st.st_mode));
            EXPECT_EQ(st.st_mode & 07777, 0600u) << f << " umask " << mask;
        }
        EXPECT_TRUE(echoes(*ch, pattern(9)));
    }
    struct stat st {};
    ASSERT_EQ(::lstat(fifo::well_known_path(private_dir(), ep_.name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

}  // namespace
}  // namespace ipclab
