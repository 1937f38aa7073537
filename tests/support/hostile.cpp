#include "tests/support/hostile.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/registry.hpp"
#include "ipc/transports.hpp"
#include "server/objects.hpp"
#include "tests/support/proc_inspect.hpp"

namespace ipclab::test {

std::string fresh_name(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return prefix + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

Endpoint endpoint_for(const std::string& transport, const std::string& name) {
    Endpoint ep;
    ep.transport = transport;
    ep.name = name;
    ep.host = "127.0.0.1";
    ep.port = "0";
    return ep;
}

ServerOptions echo_server(int idle_ms, unsigned max_clients) {
    ServerOptions o;
    o.reply = ReplyMode::echo;
    o.quiet = true;
    o.grace_seconds = 2;
    o.max_clients = max_clients;
    o.limits.timeout_ms = idle_ms;
    return o;
}

Limits client_limits(int timeout_ms) {
    Limits l;
    l.timeout_ms = timeout_ms;
    return l;
}

ipclab::Bytes seeded_bytes(std::size_t n, std::uint32_t seed) {
    ipclab::Bytes v(n);
    std::uint32_t x = seed ? seed : 1;
    for (auto& b : v) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<std::byte>(x >> 11);
    }
    return v;
}

std::string echo_once(const Endpoint& ep, std::size_t size, int timeout_ms) {
    try {
        auto ch = connect(ep, client_limits(timeout_ms));
        ipclab::Bytes payload;
        fill_payload(payload, size, size);
        ch->send(FrameType::data, payload);
        Message reply;
        if (!ch->receive(reply)) return "the server ended the session without a reply";
        if (reply.type != FrameType::data) return "error frame: " + std::string(
            reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size());
        if (auto d = first_difference(reply.payload, payload))
            return "echo of " + std::to_string(size) + " bytes differs at byte " + std::to_string(*d);
        return "";
    } catch (const std::exception& e) {
        return std::string("echo_once: ") + e.what();
    }
}

std::string transport_test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n = info.param;
    for (char& c : n)
        if (c == '-' || c == '/') c = '_';  // "prethread/posix-mq" -> prethread_posix_mq
    return n;
}

int sysv_server_queue(const std::string& name) {
    std::string key = slurp(private_dir() + "/" + name + ".sysv-mq.key");
    if (key.empty()) return -1;
    return ::msgget(static_cast<key_t>(std::stoul(key, nullptr, 16)), 0);
}

Fd raw_stream(const Endpoint& ep, int timeout_ms) { return connect_stream(ep, timeout_ms); }

namespace {

// One read(2) once fd is readable before the deadline: bytes read, 0 at EOF,
// -1 on an error or the timeout.
ssize_t read_within(int fd, void* buf, std::size_t len, const Deadline& deadline) {
    for (;;) {
        struct pollfd p {fd, POLLIN, 0};
        int left = deadline.remaining_ms();
        if (left == 0) return -1;
        int n = ::poll(&p, 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        ssize_t got = ::read(fd, buf, len);
        if (got < 0 && errno == EINTR) continue;
        return got;
    }
}

}  // namespace

std::string read_until_eof(int fd, int timeout_ms) {
    std::string out;
    Deadline deadline(timeout_ms);
    char buf[4096];
    for (;;) {
        ssize_t got = read_within(fd, buf, sizeof buf, deadline);
        if (got <= 0) return out;
        out.append(buf, static_cast<std::size_t>(got));
    }
}

bool read_exactly(int fd, std::span<std::byte> buf, int timeout_ms) {
    Deadline deadline(timeout_ms);
    for (std::size_t got = 0; got < buf.size();) {
        ssize_t n = read_within(fd, buf.data() + got, buf.size() - got, deadline);
        if (n <= 0) return false;
        got += static_cast<std::size_t>(n);
    }
    return true;
}

bool write_raw(int fd, const ipclab::Bytes& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

std::size_t count_of(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
    return n;
}

bool log_has(const ServerProcess& server, const std::string& text, int timeout_ms) {
    return eventually([&] { return server.stderr_text().find(text) != std::string::npos; },
                      timeout_ms);
}

// ---- Companion ----

namespace {

[[noreturn]] void companion_main(const Endpoint& ep, int timeout_ms, int stop_fd, int report_fd) {
    auto report = [&](const std::string& s) {
        [[maybe_unused]] ssize_t n = ::write(report_fd, s.data(), s.size());
    };
    constexpr std::size_t kSizes[] = {0, 1, 100, 5000, 8193, 70000};
    int rc = 0;
    // An iterative server serves one session at a time: a companion holding
    // one open would keep the hostile client from ever being served, so
    // there it opens a fresh session per exchange and is served in turn.
    const bool one_at_a_time = test_model() == ServerModel::iterative;
    try {
        auto ch = connect(ep, client_limits(timeout_ms));
        ipclab::Bytes payload;
        Message reply;
        for (long i = 0; i < 1000000; ++i) {  // bounded; finish() ends it long before
            struct pollfd p {stop_fd, POLLIN, 0};
            if (::poll(&p, 1, 0) > 0) break;
            if (one_at_a_time && i > 0) {
                ch.reset();
                ch = connect(ep, client_limits(timeout_ms));
            }
            std::size_t size = kSizes[static_cast<std::size_t>(i) % std::size(kSizes)];
            fill_payload(payload, static_cast<std::uint64_t>(i), size);
            ch->send(FrameType::data, payload);
            if (!ch->receive(reply)) throw PeerGone("the server ended the companion's session");
            if (reply.type != FrameType::data || first_difference(reply.payload, payload))
                throw std::runtime_error("wrong echo for exchange " + std::to_string(i) + " (" +
                                         std::to_string(size) + " bytes)");
            report("+");
            if (i % 25 == 24 && !one_at_a_time) {  // (one at a time: every session is fresh)
                std::string e = echo_once(ep, 300 + static_cast<std::size_t>(i), timeout_ms);
                if (!e.empty()) throw std::runtime_error("fresh session: " + e);
                report("+");
            }
            ::poll(nullptr, 0, 3);  // leave the CPU to the hostile side too
        }
    } catch (const std::exception& e) {
        report(std::string("companion failed: ") + e.what() + "\n");
        rc = 1;
    }
    ::_exit(rc);
}

}  // namespace

Companion::Companion(const Endpoint& ep, int timeout_ms) {
    int stop[2], rep[2];
    if (::pipe2(stop, O_CLOEXEC) != 0 || ::pipe2(rep, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe2 failed");
    Fd stop_r(stop[0]), rep_w(rep[1]);
    stop_write_.reset(stop[1]);
    report_read_.reset(rep[0]);
    set_nonblocking(report_read_.get(), true);
    std::fflush(nullptr);
    pid_ = test_fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        stop_write_.reset();
        report_read_.reset();
        companion_main(ep, timeout_ms, stop_r.get(), rep_w.get());
    }
}

Companion::~Companion() {
    if (pid_ > 0) finish(5000);
}

long Companion::progress() const {
    char buf[512];
    for (;;) {
        ssize_t n = ::read(report_read_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] == '+')
                ++last_;
            else
                report_ += buf[i];
        }
    }
    return last_;
}

bool Companion::wait_exchanges(long n, int timeout_ms) {
    return eventually([&] { return progress() >= n || !report_.empty(); }, timeout_ms) &&
           report_.empty();
}

std::string Companion::finish(int timeout_ms) {
    if (pid_ <= 0) return "companion already finished";
    // A byte, not EOF: processes forked since we started hold the write end too.
    [[maybe_unused]] ssize_t n = ::write(stop_write_.get(), "x", 1);
    stop_write_.reset();
    int status = wait_or_kill(pid_, timeout_ms);
    pid_ = -1;
    set_nonblocking(report_read_.get(), true);
    progress();
    if (!report_.empty()) return report_;
    if (status == -1) return "companion hung (killed after " + std::to_string(timeout_ms) + " ms)";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return "companion ended with status " + std::to_string(status);
    if (last_ == 0) return "companion made no exchange";
    return "";
}

// ---- fork_reporting ----

ReportingChild fork_reporting(const std::function<std::string()>& body, bool linger) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    Fd rd(p[0]), wr(p[1]);
    std::fflush(nullptr);
    pid_t pid = test_fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        rd.reset();
        std::string out = body();
        [[maybe_unused]] ssize_t n = ::write(wr.get(), out.data(), out.size());
        wr.reset();
        if (linger)
            for (int i = 0; i < 600; ++i) ::sleep(1);  // bounded: killed long before
        ::_exit(0);
    }
    return {pid, std::move(rd)};
}

// ---- ForeignProcess ----

ForeignProcess::~ForeignProcess() { stop(); }

bool ForeignProcess::start(const std::function<std::string()>& setup) {
    if (::geteuid() != 0) {
        result_ = "not root: cannot run a process as another user";
        return false;
    }
    auto child = fork_reporting(
        [&] {
            std::string out;
            if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
                out = std::string("-setuid: ") + std::strerror(errno);
            } else {
                try {
                    out = "+" + (setup ? setup() : std::string());
                } catch (const std::exception& e) {
                    out = std::string("-") + e.what();
                }
            }
            return out + "\n";
        },
        true);
    pid_ = child.pid;
    Fd rd = std::move(child.report);
    std::string line;
    char buf[256];
    struct pollfd pfd {rd.get(), POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10000) > 0) {
        ssize_t n = ::read(rd.get(), buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<std::size_t>(n));
    }
    if (line.empty() || line[0] != '+') {
        result_ = line.empty() ? "no word from the foreign process" : line.substr(1);
        stop();
        return false;
    }
    result_ = line.substr(1, line.find('\n') - 1);
    return true;
}

void ForeignProcess::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    wait_or_kill(pid_, 5000);
    pid_ = -1;
}

// ---- NoopSignal ----

struct NoopSignal::Saved {
    struct sigaction old;
};

NoopSignal::NoopSignal(int signo) : signo_(signo), saved_(new Saved{}) {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocked calls return EINTR
    if (::sigaction(signo, &sa, &saved_->old) != 0) throw std::runtime_error("sigaction failed");
}

NoopSignal::~NoopSignal() {
    ::sigaction(signo_, &saved_->old, nullptr);
    delete saved_;
}

void remove_stale_objects(const std::string& name) {
    std::ostringstream out, err;
    for (const auto& t : transports()) {
        try {
            cleanup_stale_objects(std::string(t.name), name, false, out, err);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "removing what the test left (" << t.name << "): " << e.what();
        }
    }
}

// ---- LeakGuard ----

LeakGuard::LeakGuard() : before_(ipc_object_snapshot()) {}

std::string LeakGuard::leftovers(int timeout_ms) {
    std::string out;
    bool reaped = eventually([] {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return children_of(::getpid()).empty();
    }, timeout_ms);
    if (!reaped) out += std::to_string(children_of(::getpid()).size()) + " children left; ";
    std::string objects;
    eventually([&] {
        objects.clear();
        for (const auto& o : ipc_object_snapshot())
            if (!before_.count(o)) objects += o + "; ";
        return objects.empty();
    }, timeout_ms);
    if (!objects.empty()) out += "leftover objects: " + objects;
    return out;
}

// ---- GuardedTest ----

void GuardedTest::SetUp() {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphans of the server are ours to reap
    guard_ = std::make_unique<LeakGuard>();
    name_ = fresh_name(prefix_);
}

void GuardedTest::TearDown() {
    server_.reset();
    std::string left = guard_->leftovers();
    EXPECT_EQ(left, "");
    if (!left.empty()) remove_stale_objects(name_);
}

}  // namespace ipclab::test
