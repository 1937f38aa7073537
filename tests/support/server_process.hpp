// Runs the real server loop in a forked child for a test, and ends it.
//
// The child opens the listener itself (so it owns the names it creates),
// reports readiness and the bound endpoint through a pipe, and runs
// run_server with stdout and stderr captured to files the fixture removes.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/registry.hpp"
#include "server/options.hpp"

namespace ipclab::test {

// The server design the suites run under: IPCLAB_TEST_MODEL (fork,
// iterative, prefork, thread, prethread, epoll; `make check-models` sets it), fork
// when unset. ServerProcess serves with it unless the test chose a design
// itself (prefork only where a pool can share the listener).
ServerModel test_model();

// The sessions a server is serving, where its design lets a test see them:
// its forked children (fork), its session threads (thread), its connected
// sockets (epoll); nullopt for the designs that serve inside a pool or the
// server itself.
std::optional<std::size_t> sessions_in_service(pid_t server);

// For a test that counts the sessions in service: skipped under a design
// that does not show them (`make check-models`; see sessions_in_service). Expands where gtest is included.
#define SKIP_UNLESS_SESSIONS_VISIBLE()                                                        \
    if (!::ipclab::test::sessions_in_service(::getpid()).has_value())                           \
    GTEST_SKIP() << "the " << ::ipclab::model_name(::ipclab::test::test_model())               \
                 << " design does not show its sessions in service"

class ServerProcess;
// sessions_in_service of a running test server; 0 where the design hides
// them (tests that need the count skip those designs: SKIP_UNLESS_SESSIONS_VISIBLE).
std::size_t in_service(const ServerProcess& server);

class ServerProcess {
public:
    // Throws std::runtime_error with the server's error if it cannot start.
    ServerProcess(const Endpoint& ep, const ServerOptions& options);
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;
    ~ServerProcess();

    pid_t pid() const { return pid_; }
    // The endpoint clients use (tcp: 127.0.0.1 or ::1 and the bound port).
    Endpoint client_endpoint(const std::string& host = "127.0.0.1") const;
    const std::string& port() const { return port_; }

    // Sends signo and waits up to timeout_ms for the server to exit;
    // returns its wait status, or -1 if it had to be killed.
    int stop(int signo = SIGTERM, int timeout_ms = 15000);
    bool running() const { return pid_ > 0; }

    std::string stdout_text() const;
    std::string stderr_text() const;

private:
    Endpoint ep_;
    std::string port_;
    pid_t pid_ = -1;
    std::string dir_;
};

// A file's whole contents ("" when unreadable).
std::string slurp(const std::string& path);

// A fresh private directory for captured output; the caller removes it.
std::string make_capture_dir();

// fork() for tests: the child is SIGKILLed when the test process dies (a
// crash, or a failed ASSERT that skipped the test's own kill), so no orphan
// outlives its test or holds ctest's output pipe open until the timeout.
pid_t test_fork();

// Waits up to timeout_ms for a child to exit, killing nothing: its wait
// status, or nullopt while it still runs. A pid that is no child of ours
// (ECHILD) counts as gone, status 0.
std::optional<int> wait_within(pid_t pid, int timeout_ms);

// Waits for a child to exit within timeout_ms; kills it if it does not.
// Returns the wait status, or -1 when it had to be killed.
int wait_or_kill(pid_t pid, int timeout_ms);

}  // namespace ipclab::test
