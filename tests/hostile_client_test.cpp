// Hostile clients against the real forked server loop: silent, dribbling,
// lying about sizes, sending garbage, resetting before accept, crowding past
// --max-clients, forging hellos that name other users' processes. In every
// case the server says what happened on stderr, a concurrent well-behaved
// client (Companion) keeps getting byte-exact echoes, the server still
// answers new sessions, and nothing is left behind (LeakGuard).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "ipc/chunking.hpp"
#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

std::string text(const Message& m) {
    return std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
}

ipclab::Bytes bytes_of(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

ipclab::Bytes operator+(ipclab::Bytes a, std::span<const std::byte> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

bool is_stream(const std::string& t) { return t == "tcp" || t == "unix"; }

// The fifo session files of process pid on `name` (c2s first).
fifo::SessionPaths fifo_session_of(const std::string& name, pid_t pid) {
    fifo::SessionPaths out;
    std::string prefix = name + "." + std::to_string(pid) + ".";
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(private_dir(), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::string f = it->path().filename().string();
        if (f.rfind(prefix, 0) != 0) continue;
        if (f.ends_with(".c2s")) out.c2s = it->path().string();
        if (f.ends_with(".s2c")) out.s2c = it->path().string();
    }
    return out;
}

// The c2s queue of pid's newest posix-mq session on `name`, found by its
// marker file (QUEUE.pmq in the private directory): /ipclab-UID-NAME@PID.N.c2s.
std::string posix_c2s_queue(const std::string& name, pid_t pid) {
    std::string prefix = global_prefix(name) + "@" + std::to_string(pid) + ".";
    std::string best;
    long best_serial = -1;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(private_dir(), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::string f = it->path().filename().string();
        if (f.rfind(prefix, 0) != 0 || !f.ends_with(".c2s.pmq")) continue;
        long serial = std::strtol(f.c_str() + prefix.size(), nullptr, 10);
        if (serial > best_serial) {
            best_serial = serial;
            best = "/" + f.substr(0, f.size() - 4);
        }
    }
    return best;
}

// A session whose client side writes raw bytes: a socket (tcp, unix), the
// c2s FIFO or the c2s POSIX queue of a session opened by ipclab::connect.
// Replies are read back as frames (or raw bytes in text mode).
class RawSession {
public:
    RawSession(const Endpoint& ep, bool framed) : transport_(ep.transport) {
        if (is_stream(transport_)) {
            sock_ = raw_stream(ep);
            if (framed) write(bytes_of(kFramedOpening));
            return;
        }
        channel_ = connect(ep, client_limits(10000));
        if (transport_ == "fifo") {
            auto paths = fifo_session_of(ep.name, ::getpid());
            fifo_c2s_.reset(::open(paths.c2s.c_str(), O_WRONLY | O_CLOEXEC));
            if (!fifo_c2s_) throw std::runtime_error("open " + paths.c2s + " failed");
        } else if (transport_ == "posix-mq") {
            std::string q = posix_c2s_queue(ep.name, ::getpid());
            mq_ = ::mq_open(q.c_str(), O_WRONLY | O_NONBLOCK);
            if (mq_ == mqd_t(-1)) throw std::runtime_error("mq_open " + q + " failed");
        } else {
            throw std::runtime_error("no raw access to " + transport_);
        }
    }
    ~RawSession() {
        if (mq_ != mqd_t(-1)) ::mq_close(mq_);
    }

    // Stream transports: bytes as they are. Queues: one queue message.
    bool write(const ipclab::Bytes& bytes) {
        if (mq_ != mqd_t(-1))
            return ::mq_send(mq_, reinterpret_cast<const char*>(bytes.data()), bytes.size(), 0) == 0;
        return write_raw(sock_ ? sock_.get() : fifo_c2s_.get(), bytes);
    }

    int socket() const { return sock_.get(); }

    // The next reply frame: true with msg, or false at the end of the session.
    // PeerGone (reset) counts as the end too.
    bool receive(Message& msg) {
        try {
            if (sock_) {
                if (!reader_) {
                    StreamFds fds{Fd(::dup(sock_.get())), Fd{}, true};
                    reader_ = make_framed_channel(std::move(fds), client_limits(10000), false);
                }
                return reader_->receive(msg);
            }
            return channel_->receive(msg);
        } catch (const PeerGone&) {
            return false;
        }
    }

private:
    std::string transport_;
    Fd sock_, fifo_c2s_;
    mqd_t mq_ = mqd_t(-1);
    std::unique_ptr<Channel> channel_, reader_;
};

class HostileBase : public GuardedTest {
protected:
    explicit HostileBase(std::string transport = "")
        : GuardedTest("hc"), transport_(std::move(transport)) {}

    void start(const ServerOptions& options) {
        server_ = std::make_unique<ServerProcess>(endpoint_for(transport_, name_), options);
    }

    Endpoint ep() const { return server_->client_endpoint(); }

    // The server is still answering: a fresh session echoes correctly.
    void expect_answering(std::size_t size = 4321) {
        EXPECT_EQ(echo_once(ep(), size), "") << server_->stderr_text();
    }

    std::string transport_;
};

// The same, once per transport named by the test parameter.
class HostileP : public HostileBase, public ::testing::WithParamInterface<std::string> {
protected:
    HostileP() : HostileBase(GetParam()) {}
};

std::string param_name(const ::testing::TestParamInfo<std::string>& p) {
    std::string n = p.param;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
}

// ---------------------------------------------------------------------------
// A client that opens a session and never writes holds its slot only until
// the idle timeout: with --max-clients 1 the next client is served after it.

class SilentClient : public HostileP {};

TEST_P(SilentClient, IdleTimeoutFreesTheOnlySlot) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    start(echo_server(400, 1));
    Fd silent_socket;
    std::unique_ptr<Channel> silent_channel;
    if (is_stream(GetParam()))
        silent_socket = raw_stream(ep());
    else
        silent_channel = connect(ep(), client_limits(10000));
    ASSERT_TRUE(eventually([&] { return in_service(*server_) == 1; }));
    // The second client waits for the slot, then is served.
    EXPECT_EQ(echo_once(ep(), 2000, 15000), "") << server_->stderr_text();
    EXPECT_TRUE(log_has(*server_, "end=\"idle timeout\"")) << server_->stderr_text();
    EXPECT_LE(in_service(*server_), 1u);
    // The silent client learns its session is over instead of hanging.
    if (silent_socket) {
        EXPECT_EQ(read_until_eof(silent_socket.get(), 10000), "");
    } else {
        Message m;
        bool ended = false;
        try {
            ended = !silent_channel->receive(m) || m.type == FrameType::error;
        } catch (const PeerGone&) {
            ended = true;
        }
        EXPECT_TRUE(ended);
    }
}

INSTANTIATE_TEST_SUITE_P(Transports, SilentClient, ::testing::ValuesIn(transport_names()), param_name);

// ---------------------------------------------------------------------------
// One byte a second: the dribbler's session stays open (its bytes keep it
// alive) while others are served normally; its message still arrives whole.

class Dribbler : public HostileP {};

TEST_P(Dribbler, OneByteASecondDoesNotStallOthers) {
    start(echo_server());
    const bool text_mode = GetParam() == "tcp";  // tcp: the seed's line; others: a frame
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    Fd result_r(p[0]), result_w(p[1]);
    Endpoint e = ep();
    std::fflush(nullptr);
    pid_t dribbler = test_fork();
    ASSERT_GE(dribbler, 0);
    if (dribbler == 0) {
        result_r.reset();
        std::string outcome = "failed";
        try {
            RawSession s(e, !text_mode);
            ipclab::Bytes msg;
            if (text_mode) {
                msg = bytes_of(as_bytes("hi\n"));
            } else {
                auto h = encode_header(FrameType::data, 2);
                msg = bytes_of(h) + as_bytes("hi");
            }
            std::size_t fast = msg.size() - 3;  // the last three bytes go one a second
            bool ok = s.write({msg.begin(), msg.begin() + static_cast<long>(fast)});
            [[maybe_unused]] ssize_t n = ::write(result_w.get(), "s", 1);  // started
            for (std::size_t i = fast; ok && i < msg.size(); ++i) {
                ::sleep(1);
                ok = s.write({msg[i]});
            }
            if (!ok) throw std::runtime_error("write refused");
            if (text_mode) {
                ipclab::Bytes reply(3);
                bool got = read_exactly(s.socket(), reply, 10000);
                outcome = got && reply == msg ? "ok" : "no echo of the line";
            } else {
                Message m;
                outcome = s.receive(m) && text(m) == "hi" ? "ok" : "no echo";
            }
        } catch (const std::exception& ex) {
            outcome = ex.what();
        }
        [[maybe_unused]] ssize_t n = ::write(result_w.get(), outcome.data(), outcome.size());
        ::_exit(0);
    }
    result_w.reset();
    char c = 0;
    ASSERT_TRUE(wait_fd(result_r.get(), POLLIN, 10000, "dribbler"));
    ASSERT_EQ(::read(result_r.get(), &c, 1), 1);
    ASSERT_EQ(c, 's');
    // While the dribbler is mid-message, others are served.
    Companion companion(ep());
    EXPECT_TRUE(companion.wait_exchanges(5)) << companion.finish();
    expect_answering();
    EXPECT_EQ(wait_or_kill(dribbler, 20000), 0);
    std::string outcome = read_until_eof(result_r.get(), 1000);
    EXPECT_EQ(outcome, "ok");
    EXPECT_EQ(companion.finish(), "");
    expect_answering();
    EXPECT_TRUE(log_has(*server_, "bytes_in=" + std::string(text_mode ? "3" : "2")))
        << server_->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Transports, Dribbler, ::testing::Values("tcp", "fifo"), param_name);

// ---------------------------------------------------------------------------
// A header announcing 0xFFFFFFFF bytes is refused before any payload is read
// (no 4 GiB allocation), with an error to that client only.

class HugeAnnouncement : public HostileP {};

TEST_P(HugeAnnouncement, FourGibibyteFrameIsRefusedClearly) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    {
        RawSession s(ep(), true);
        ipclab::Bytes lie;
        if (GetParam() == "posix-mq") {
            lie.resize(kChunkHeaderSize + 100);
            encode_chunk_header(lie.data(), ChunkHeader{FrameType::data, kChunkFirst, 0xFFFFFFFFu, 0});
        } else {
            lie = bytes_of(encode_header(FrameType::data, 0xFFFFFFFFu));
            lie.resize(lie.size() + 100);  // a little of the "payload"
        }
        ASSERT_TRUE(s.write(lie));
        Message m;
        ASSERT_TRUE(s.receive(m)) << server_->stderr_text();
        EXPECT_EQ(m.type, FrameType::error);
        EXPECT_NE(text(m).find("4294967295 bytes exceeds"), std::string::npos) << text(m);
        EXPECT_FALSE(s.receive(m));  // and that session is over
    }
    EXPECT_TRUE(log_has(*server_, "refused: message of 4294967295 bytes")) << server_->stderr_text();
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(30)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
}

INSTANTIATE_TEST_SUITE_P(Transports, HugeAnnouncement, ::testing::Values("tcp", "unix", "fifo", "posix-mq"),
                         param_name);

// ---------------------------------------------------------------------------
// Random bytes (fixed seed, 4 KiB): as a session's first bytes and after a
// valid opening. Each time: a log line naming the problem, others unaffected.

class RandomBytes : public HostileP {};

constexpr std::uint32_t kSeed = 20240606;

// Random bytes whose first byte is no frame type, so the outcome is fixed.
ipclab::Bytes garbage(std::size_t n, std::uint32_t seed) {
    auto g = seeded_bytes(n, seed);
    auto t = static_cast<unsigned char>(g[0]);
    if (t == 1 || t == 2 || t == 0) g[0] = std::byte{0x5A};
    return g;
}

TEST_P(RandomBytes, AfterAValidOpeningTheSessionEndsWithAProtocolError) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    auto junk = garbage(4096, kSeed);
    {
        RawSession s(ep(), true);
        ASSERT_TRUE(s.write(junk));
        Message m;
        // The server may answer with an error frame or just close.
        while (s.receive(m)) EXPECT_EQ(m.type, FrameType::error) << text(m);
    }
    std::string want = GetParam() == "posix-mq" ? "end=\"protocol error: "
                                                : "end=\"protocol error: malformed frame: unknown type " +
                                                      std::to_string(static_cast<int>(junk[0]));
    EXPECT_TRUE(log_has(*server_, want)) << "want " << want << " in\n" << server_->stderr_text();
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(30)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
}

TEST_P(RandomBytes, AsTheFirstBytesOfASession) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    if (is_stream(GetParam())) {
        // A leading NUL claims the framed mode: the opening is checked.
        auto junk = seeded_bytes(4096, kSeed);
        junk[0] = std::byte{0};
        {
            RawSession s(ep(), false);
            ASSERT_TRUE(s.write(junk));
            ::shutdown(s.socket(), SHUT_WR);
            EXPECT_EQ(read_until_eof(s.socket(), 10000), "");
        }
        EXPECT_TRUE(log_has(*server_, "end=\"protocol error: malformed opening"))
            << server_->stderr_text();
        // Anything else is text: every line gets its ack, the last one too.
        junk = seeded_bytes(4096, kSeed + 1);
        if (junk[0] == std::byte{0}) junk[0] = std::byte{'x'};
        std::size_t lines = static_cast<std::size_t>(std::count(junk.begin(), junk.end(), std::byte{'\n'}));
        if (junk.back() != std::byte{'\n'}) ++lines;
        {
            RawSession s(ep(), false);
            ASSERT_TRUE(s.write(junk));
            ::shutdown(s.socket(), SHUT_WR);
            // --reply echo: every line comes back, so all of it does.
            std::string echoed = read_until_eof(s.socket(), 10000);
            EXPECT_TRUE(echoed == std::string(reinterpret_cast<const char*>(junk.data()), junk.size()))
                << echoed.size() << " bytes came back";
        }
        EXPECT_TRUE(log_has(*server_, "messages=" + std::to_string(lines) + " bytes_in=4096"))
            << server_->stderr_text();
    } else if (GetParam() == "fifo") {
        // Garbage on the well-known FIFO (one atomic write) is discarded.
        auto junk = seeded_bytes(4096, kSeed);
        std::string path = fifo::well_known_path(private_dir(), name_);
        Fd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::write(fd.get(), junk.data(), junk.size()), 4096);
        EXPECT_TRUE(log_has(*server_, "rejected a session: discarded")) << server_->stderr_text();
    } else {
        // posix-mq: a hello-sized random record on the well-known queue.
        auto junk = seeded_bytes(kHelloSize, kSeed);
        std::string q = "/" + global_prefix(name_);
        mqd_t mq = ::mq_open(q.c_str(), O_WRONLY | O_NONBLOCK);
        ASSERT_NE(mq, mqd_t(-1));
        EXPECT_EQ(::mq_send(mq, reinterpret_cast<const char*>(junk.data()), junk.size(), 0), 0);
        ::mq_close(mq);
        EXPECT_TRUE(log_has(*server_, "rejected a session:")) << server_->stderr_text();
    }
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(30)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
}

INSTANTIATE_TEST_SUITE_P(Transports, RandomBytes, ::testing::Values("tcp", "unix", "fifo", "posix-mq"),
                         param_name);

// ---------------------------------------------------------------------------
// Connections reset (SO_LINGER {1, 0}) or closed before the server accepts
// them, while it is busy at --max-clients and while it is free: the server
// keeps answering and no child or descriptor leaks.

class ResetBeforeAccept : public HostileP {};

void abort_connection(const Endpoint& ep) {
    Fd fd = raw_stream(ep);
    struct linger lg {1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);  // unix: a plain close
}

TEST_P(ResetBeforeAccept, ManyResetsLeakNothing) {
    SKIP_UNLESS_SESSIONS_VISIBLE();
    constexpr int kResets = 100;
    start(echo_server(20000, 2));
    expect_answering();
    ASSERT_TRUE(eventually([&] { return in_service(*server_) == 0; }));
    int fds = open_fd_count(server_->pid());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    {
        Fd blocker = raw_stream(ep());  // the second slot: the parent stops accepting
        ASSERT_TRUE(eventually([&] { return in_service(*server_) == 2; }));
        for (int i = 0; i < kResets; ++i) abort_connection(ep());
        EXPECT_LE(in_service(*server_), 2u);
        EXPECT_TRUE(companion.wait_exchanges(20)) << companion.finish();
    }  // the blocker goes; the parent now meets the dead connections
    for (int i = 0; i < kResets; ++i) abort_connection(ep());  // racing accept
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(40)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
    EXPECT_TRUE(eventually([&] { return in_service(*server_) == 0; }, 15000))
        << in_service(*server_) << " sessions left";
    EXPECT_TRUE(zombie_children_of(server_->pid()).empty());
    EXPECT_EQ(open_fd_count(server_->pid()), fds);
    // Every dead connection that was accepted got its one log line.
    std::string log = server_->stderr_text();
    EXPECT_GE(count_of(log, "session ended"), 3u) << log;
    EXPECT_EQ(count_of(log, "ended abnormally"), 0u) << log;
}

INSTANTIATE_TEST_SUITE_P(Transports, ResetBeforeAccept, ::testing::Values("tcp", "unix"), param_name);

// ---------------------------------------------------------------------------
// More sessions than --max-clients: never more than N children, all served.

class Crowd : public HostileP {};

TEST_P(Crowd, NeverMoreChildrenThanMaxClientsAndAllServed) {
    SKIP_UNLESS_SESSIONS_VISIBLE();  // --max-clients: fork and thread only
    constexpr unsigned kMax = 3;
    constexpr int kClients = 8;
    start(echo_server(20000, kMax));
    int ready[2], go[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    Fd ready_r(ready[0]), ready_w(ready[1]), go_r(go[0]), go_w(go[1]);
    Endpoint e = ep();
    std::vector<pid_t> kids;
    std::fflush(nullptr);
    for (int i = 0; i < kClients; ++i) {
        pid_t pid = test_fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ready_r.reset();
            go_w.reset();
            int rc = 1;
            try {
                auto ch = connect(e, client_limits(30000));
                auto payload = seeded_bytes(1000 + 977 * static_cast<std::size_t>(i), static_cast<std::uint32_t>(i + 1));
                Message m;
                ch->send(FrameType::data, payload);
                if (ch->receive(m) && m.payload == payload) {
                    [[maybe_unused]] ssize_t n = ::write(ready_w.get(), "r", 1);
                    char c;
                    while (::read(go_r.get(), &c, 1) < 0 && errno == EINTR) {
                    }  // EOF: the test has seen the crowd
                    ch->send(FrameType::data, payload);
                    rc = ch->receive(m) && m.payload == payload ? 0 : 3;
                }
            } catch (...) {
                rc = 2;
            }
            ::_exit(rc);
        }
        kids.push_back(pid);
    }
    ready_w.reset();
    go_r.reset();
    std::size_t most = 0;
    auto sample = [&] {
        most = std::max(most, in_service(*server_));
        return most;
    };
    // The first kMax sessions are served and wait for us; the rest wait for a slot.
    std::size_t served = 0;
    char buf[16];
    for (int i = 0; i < 2000 && served < kMax; ++i) {
        sample();
        if (wait_fd(ready_r.get(), POLLIN, 10, "ready")) {
            ssize_t n = ::read(ready_r.get(), buf, sizeof buf);
            if (n > 0) served += static_cast<std::size_t>(n);
        }
    }
    EXPECT_EQ(served, kMax);
    for (int i = 0; i < 30; ++i) {  // a while at the limit: it holds
        sample();
        ::poll(nullptr, 0, 10);
    }
    EXPECT_EQ(in_service(*server_), kMax);
    go_w.reset();  // the rest are served as slots free up
    std::map<pid_t, int> ended;  // sampled until every client is reaped
    for (int i = 0; i < 3000 && ended.size() < kids.size(); ++i) {
        sample();
        for (pid_t k : kids) {
            int status = 0;
            if (!ended.count(k) && ::waitpid(k, &status, WNOHANG) == k) ended[k] = status;
        }
        if (ended.size() < kids.size()) ::poll(nullptr, 0, 5);
    }
    for (pid_t k : kids) {
        int status = ended.count(k) ? ended[k] : wait_or_kill(k, 1000);
        EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << "client " << k << " status " << status;
    }
    EXPECT_LE(most, kMax) << "the server had more children than --max-clients";
    expect_answering();
    EXPECT_TRUE(eventually([&] { return in_service(*server_) == 0; }));
    EXPECT_EQ(count_of(server_->stderr_text(), "session ended"), static_cast<std::size_t>(kClients) + 1);
}

INSTANTIATE_TEST_SUITE_P(Transports, Crowd, ::testing::ValuesIn(transport_names()), param_name);

// ---------------------------------------------------------------------------
// Forged hellos naming another user's live process (uid 65534) or a pid that
// does not exist. The per-transport suites cover our own pid and junk; these
// cover a foreign process and objects that process owns.

struct ForgedFifoHello : HostileBase {
    ForgedFifoHello() : HostileBase("fifo") {}
};
struct ForgedPosixHello : HostileBase {
    ForgedPosixHello() : HostileBase("posix-mq") {}
};
struct ForgedSysvHello : HostileBase {
    ForgedSysvHello() : HostileBase("sysv-mq") {}
};

TEST_F(ForgedFifoHello, NamingAnotherUsersProcess) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    ForeignProcess nobody;
    if (!nobody.start()) GTEST_SKIP() << nobody.result();
    auto pid = static_cast<std::uint32_t>(nobody.pid());
    std::string dir = private_dir();
    std::string well_known = fifo::well_known_path(dir, name_);
    auto hello = [&](std::uint32_t serial) {
        Fd fd(::open(well_known.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        ASSERT_TRUE(fd);
        auto b = fifo::encode_hello({pid, serial});
        ASSERT_EQ(::write(fd.get(), b.data(), b.size()), 16);
    };
    // 1: no session FIFOs at all.
    hello(1);
    EXPECT_TRUE(log_has(*server_, ".1.c2s of pid " + std::to_string(pid) + " does not exist"))
        << server_->stderr_text();
    // 2: FIFOs in place, but they belong to that other user.
    auto paths = fifo::session_paths(dir, name_, pid, 2);
    for (const auto& p : {paths.c2s, paths.s2c}) {
        ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
        ASSERT_EQ(::chown(p.c_str(), kNobody, kNobody), 0);
    }
    hello(2);
    EXPECT_TRUE(log_has(*server_, "belongs to uid 65534, not to us")) << server_->stderr_text();
    for (const auto& p : {paths.c2s, paths.s2c}) EXPECT_EQ(::unlink(p.c_str()), 0) << p;
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(20)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
    EXPECT_LE(in_service(*server_), 1u);
}

TEST_F(ForgedPosixHello, NamingAnotherUsersProcess) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    // The other user squats on the session queue names of its own pid.
    std::string base = "/" + global_prefix(name_);
    ForeignProcess nobody;
    bool started = nobody.start([&] {
        std::string me = std::to_string(::getpid());
        struct mq_attr attr {};
        attr.mq_maxmsg = 1;
        attr.mq_msgsize = 64;
        for (const char* dir : {".c2s", ".s2c"}) {
            std::string q = base + "@" + me + ".0000000000000000" + dir;  // id 0, as in the hello
            mqd_t d = ::mq_open(q.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
            if (d == mqd_t(-1)) throw std::runtime_error("mq_open " + q + ": " + std::strerror(errno));
            ::mq_close(d);
        }
        return me;
    });
    if (!started && nobody.result().rfind("not root", 0) == 0) GTEST_SKIP() << nobody.result();
    ASSERT_TRUE(started) << nobody.result();
    std::string pid = nobody.result();
    mqd_t wk = ::mq_open(base.c_str(), O_WRONLY | O_NONBLOCK);
    ASSERT_NE(wk, mqd_t(-1));
    auto h = encode_hello(Hello{nobody.pid(), 0, 0});
    EXPECT_EQ(::mq_send(wk, reinterpret_cast<const char*>(h.data()), h.size(), 0), 0);
    EXPECT_TRUE(log_has(*server_, "peer=pid " + pid)) << server_->stderr_text();
    EXPECT_TRUE(log_has(*server_, "is not ours with mode 0600")) << server_->stderr_text();
    // A pid that does not exist.
    h = encode_hello(Hello{0x7ffffff0, 0, 0});
    EXPECT_EQ(::mq_send(wk, reinterpret_cast<const char*>(h.data()), h.size(), 0), 0);
    ::mq_close(wk);
    EXPECT_TRUE(log_has(*server_, "hello from pid 2147483632, which is not running"))
        << server_->stderr_text();
    for (const char* dir : {".c2s", ".s2c"})
        EXPECT_EQ(::mq_unlink((base + "@" + pid + ".0000000000000000" + dir).c_str()), 0);
    nobody.stop();
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(20)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
}

TEST_F(ForgedSysvHello, NamingAnotherUsersProcess) {
    start(echo_server());
    Companion companion(ep());
    ASSERT_TRUE(companion.wait_exchanges(3)) << companion.finish();
    // The other user's process and two queues it created itself.
    ForeignProcess nobody;
    bool started = nobody.start([] {
        int a = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600), b = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (a < 0 || b < 0) throw std::runtime_error(std::string("msgget: ") + std::strerror(errno));
        return std::to_string(a) + " " + std::to_string(b);
    });
    if (!started && nobody.result().rfind("not root", 0) == 0) GTEST_SKIP() << nobody.result();
    ASSERT_TRUE(started) << nobody.result();
    int theirs_a = -1, theirs_b = -1;
    ASSERT_EQ(std::sscanf(nobody.result().c_str(), "%d %d", &theirs_a, &theirs_b), 2);
    int ours_a = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600), ours_b = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    ASSERT_GE(ours_a, 0);
    ASSERT_GE(ours_b, 0);
    int wk = sysv_server_queue(name_);
    ASSERT_GE(wk, 0);
    auto send = [&](const Hello& hello) {
        struct {
            long mtype;
            char text[kHelloSize];
        } m{};
        m.mtype = 1;
        auto b = encode_hello(hello);
        std::memcpy(m.text, b.data(), b.size());
        EXPECT_EQ(::msgsnd(wk, &m, b.size(), 0), 0);
    };
    auto u = [](int id) { return static_cast<std::uint32_t>(id); };
    send(Hello{nobody.pid(), u(theirs_a), u(theirs_b)});  // the other user's queues
    EXPECT_TRUE(log_has(*server_, "names msqid " + std::to_string(theirs_a) + ", which is not ours"))
        << server_->stderr_text();
    send(Hello{nobody.pid(), u(ours_a), u(ours_b)});  // our queues, which that pid did not create
    EXPECT_TRUE(log_has(*server_, "which that pid did not create")) << server_->stderr_text();
    send(Hello{0x7ffffff0, u(ours_a), u(ours_b)});  // nobody at all
    EXPECT_TRUE(log_has(*server_, "hello from pid 2147483632, which is not running"))
        << server_->stderr_text();
    for (int id : {theirs_a, theirs_b, ours_a, ours_b}) EXPECT_EQ(::msgctl(id, IPC_RMID, nullptr), 0);
    nobody.stop();
    expect_answering();
    EXPECT_TRUE(companion.wait_exchanges(20)) << companion.finish();
    EXPECT_EQ(companion.finish(), "");
}

}  // namespace
}  // namespace ipclab::test
