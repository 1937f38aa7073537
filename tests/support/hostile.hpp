// Helpers for the hostile-client, fault and permission suites: a leak guard
// that every test ends with, a well-behaved companion client that keeps
// checking echoes while something hostile happens, raw stream connections,
// seeded random bytes and a process running as another user.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"
#include "server/options.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {

inline constexpr uid_t kNobody = 65534;

// A fresh endpoint name per call: PREFIX<pid>-<n>.
std::string fresh_name(const std::string& prefix);

// A transport as a test name: "posix-mq" -> "posix_mq".
std::string transport_test_name(const ::testing::TestParamInfo<std::string>& info);


// An endpoint of `transport` for ServerProcess (tcp: 127.0.0.1, port 0).
Endpoint endpoint_for(const std::string& transport, const std::string& name);

// Echo server options: quiet, idle timeout idle_ms, the given --max-clients.
ServerOptions echo_server(int idle_ms = 20000, unsigned max_clients = 64);

// Limits for a client that waits at most timeout_ms.
Limits client_limits(int timeout_ms = 20000);

// The msqid of the running sysv-mq server `name` (whose random key is in
// its key file), or -1.
int sysv_server_queue(const std::string& name);

// Deterministic pseudo-random bytes (xorshift32 from seed).
ipclab::Bytes seeded_bytes(std::size_t n, std::uint32_t seed);

// Opens a session, sends one payload of `size` bytes and checks the echo.
// Returns "" on success, else what went wrong (never throws).
std::string echo_once(const Endpoint& ep, std::size_t size, int timeout_ms = 20000);

// A raw connected stream socket (tcp or unix endpoints only).
Fd raw_stream(const Endpoint& ep, int timeout_ms = 5000);

// Reads until EOF, error or timeout_ms; returns what arrived.
std::string read_until_eof(int fd, int timeout_ms);

// Reads exactly buf.size() bytes within timeout_ms; false when EOF, an
// error or the timeout came first.
bool read_exactly(int fd, std::span<std::byte> buf, int timeout_ms);

// Writes bytes through a raw descriptor; false when the peer refused them.
bool write_raw(int fd, const ipclab::Bytes& bytes);

// Occurrences of needle in hay.
std::size_t count_of(const std::string& hay, const std::string& needle);

// Waits (bounded) until the server's stderr holds `text`.
bool log_has(const ServerProcess& server, const std::string& text, int timeout_ms = 10000);

// A forked well-behaved client holding one session open, sending echoes of
// mixed sizes (a few ms apart) until finish(); each reply is checked byte
// for byte. A second, fresh session is opened now and then, so new sessions
// are checked as well as the old one.
class Companion {
public:
    explicit Companion(const Endpoint& ep, int timeout_ms = 20000);
    Companion(const Companion&) = delete;
    Companion& operator=(const Companion&) = delete;
    ~Companion();
    // Waits (bounded) until at least n exchanges succeeded.
    bool wait_exchanges(long n, int timeout_ms = 20000);
    // Stops the companion; "" if every exchange was correct, else the failure.
    std::string finish(int timeout_ms = 30000);

private:
    long progress() const;
    pid_t pid_ = -1;
    Fd stop_write_, report_read_;
    mutable std::string report_;
    mutable long last_ = 0;
};

// A forked child that runs body and sends back what it returns through a
// pipe (report: the read end), then exits - or, with linger, sleeps (at most
// ten minutes) until the caller kills it. The child never returns into
// GoogleTest; body catches what it wants reported.
struct ReportingChild {
    pid_t pid = -1;
    Fd report;
};
ReportingChild fork_reporting(const std::function<std::string()>& body, bool linger = false);

// A process running as uid/gid 65534 that runs setup() (after setuid), sends
// its result string to us, then sleeps until killed. Skips (returns false
// from start) when we are not root.
class ForeignProcess {
public:
    ForeignProcess() = default;
    ForeignProcess(const ForeignProcess&) = delete;
    ForeignProcess& operator=(const ForeignProcess&) = delete;
    ~ForeignProcess();
    // Forks; returns false when not root or setup failed (result() says why).
    bool start(const std::function<std::string()>& setup = {});
    pid_t pid() const { return pid_; }
    const std::string& result() const { return result_; }
    void stop();

private:
    pid_t pid_ = -1;
    std::string result_;
};

// Installs a no-op handler for signo without SA_RESTART (so blocking calls
// see EINTR) and restores the old disposition on destruction. Children
// forked meanwhile (servers, clients) inherit it.
class NoopSignal {
public:
    explicit NoopSignal(int signo);
    NoopSignal(const NoopSignal&) = delete;
    NoopSignal& operator=(const NoopSignal&) = delete;
    ~NoopSignal();

private:
    int signo_;
    struct Saved;
    Saved* saved_;
};

// Every new object, child or zombie since construction, for TearDown.
// What a failed test's killed server left under this test's name: removes
// every stale object of that name, for every transport (`server --cleanup`'s
// rule: never one a live server holds), so a failure leaves nothing behind.
void remove_stale_objects(const std::string& name);

class LeakGuard {
public:
    LeakGuard();
    // Reaps our children (bounded) and returns a description of anything
    // left: children, zombies, new IPC objects. Empty when clean.
    std::string leftovers(int timeout_ms = 10000);

private:
    std::set<std::string> before_;
};

// The frame of the hostile, fault and permission suites: orphans of a
// killed server become ours to reap, each test gets a fresh endpoint name,
// and every test ends by asserting that nothing was left behind.
class GuardedTest : public ::testing::Test {
protected:
    explicit GuardedTest(std::string prefix) : prefix_(std::move(prefix)) {}
    void SetUp() override;
    void TearDown() override;

    std::string prefix_;
    std::string name_;
    std::unique_ptr<LeakGuard> guard_;
    std::unique_ptr<ServerProcess> server_;
};

// A parameterised test of one server design on the transport its parameter
// names: a fresh endpoint name, the server in a forked child, and at the end
// no object of that name left (the server is stopped first).
class DesignTest : public ::testing::TestWithParam<std::string> {
protected:
    explicit DesignTest(std::string prefix) : prefix_(std::move(prefix)) {}
    void SetUp() override {
        before_ = ipc_object_snapshot();
        name_ = fresh_name(prefix_);
    }
    void TearDown() override {
        server_.reset();
        bool clean = eventually([&] { return leftover_objects(before_, name_).empty(); });
        EXPECT_TRUE(clean) << "objects left behind";
        if (!clean) remove_stale_objects(name_);
    }
    // The transport under test (a subclass may carry more in its parameter).
    virtual std::string transport() const { return GetParam(); }
    void start(const ServerOptions& o) {
        server_ = std::make_unique<ServerProcess>(endpoint_for(transport(), name_), o);
    }
    std::unique_ptr<Channel> open() { return connect(server_->client_endpoint(), client_limits()); }
    // Sends text and returns the reply as text, "ended" when the server ended
    // the session, or "failed: why" (never throws).
    static std::string exchange(Channel& ch, const std::string& text) {
        try {
            ch.send(FrameType::data, as_bytes(text));
            Message reply;
            if (!ch.receive(reply)) return "ended";
            return std::string(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size());
        } catch (const std::exception& e) {
            return std::string("failed: ") + e.what();
        }
    }

    std::string prefix_;
    std::set<std::string> before_;
    std::string name_;
    std::unique_ptr<ServerProcess> server_;
};

}  // namespace ipclab::test
