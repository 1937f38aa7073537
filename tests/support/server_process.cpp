#include "tests/support/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ipc/fd.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"
#include "server/server_loop.hpp"
#include "server/session_threads.hpp"
#include "tests/support/proc_inspect.hpp"

namespace ipclab::test {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string make_capture_dir() {
    char tmpl[] = "/tmp/ipclab-test-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

pid_t test_fork() {
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);  // the test died before prctl took effect
    }
    return pid;
}

std::optional<int> wait_within(pid_t pid, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
}

int wait_or_kill(pid_t pid, int timeout_ms) {
    if (auto done = wait_within(pid, timeout_ms)) return *done;
    int status = 0;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return -1;
}

ServerModel test_model() {
    const char* name = std::getenv("IPCLAB_TEST_MODEL");
    if (name != nullptr)
        for (ServerModel m : kServerModels)
            if (std::string(name) == model_name(m)) return m;
    return ServerModel::fork;
}

std::optional<std::size_t> sessions_in_service(pid_t server) {
    switch (test_model()) {
        case ServerModel::fork: return children_of(server).size();
        case ServerModel::thread: return static_cast<std::size_t>(threads_named(server, kSessionThreadName));
        // Its sessions are its sockets but the listener; children: where it
        // does not apply, the test server falls back to fork.
        case ServerModel::epoll:
            return children_of(server).size() + static_cast<std::size_t>(std::max(0, socket_fd_count(server) - 1));
        default: return std::nullopt;
    }
}

std::size_t in_service(const ServerProcess& server) { return sessions_in_service(server.pid()).value_or(0); }

ServerProcess::ServerProcess(const Endpoint& ep, const ServerOptions& options) : ep_(ep) {
    dir_ = make_capture_dir();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    Fd ready_read(p[0]), ready_write(p[1]);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // If the test dies (a crash, an abort), the server ends and cleans up too.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        ready_read.reset();
        int out = ::open((dir_ + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = ::open((dir_ + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(out, STDOUT_FILENO);
        ::dup2(err, STDERR_FILENO);
        ::close(out);
        ::close(err);
        // "ok" goes out before run_server installs its stop handlers: a
        // SIGTERM from a short test in between took the default action and
        // left the listener's FIFO and lock behind (2 in 60 runs of
        // Contract.ASecondLiveServerIsRefused/shm under load). Blocked here,
        // it waits for run_server, which unblocks it once it is handled.
        int rc = 1;
        try {
            SignalsBlocked until_run_server_handles_them({SIGTERM, SIGINT});
            auto listener = listen(ep, options.limits);
            std::string msg = "ok " + listener->bound_port() + "\n";
            [[maybe_unused]] ssize_t n = ::write(ready_write.get(), msg.data(), msg.size());
            ready_write.reset();
            ServerOptions o = options;
            if (o.model == ServerModel::fork) o.model = test_model();
            if (!model_applies(o.model, transport_info(ep.transport))) o.model = ServerModel::fork;
            rc = run_server(std::move(listener), o);
        } catch (const std::exception& e) {
            std::string msg = std::string("error ") + e.what() + "\n";
            [[maybe_unused]] ssize_t n = ::write(ready_write.get(), msg.data(), msg.size());
        }
        ::_exit(rc);
    }
    ready_write.reset();
    std::string line;
    char buf[512];
    struct pollfd pfd {ready_read.get(), POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10000) > 0) {
        ssize_t n = ::read(ready_read.get(), buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<std::size_t>(n));
    }
    if (line.rfind("ok ", 0) != 0) {
        wait_or_kill(pid_, 5000);
        pid_ = -1;
        ::unlink((dir_ + "/stdout").c_str());
        ::unlink((dir_ + "/stderr").c_str());
        ::rmdir(dir_.c_str());
        throw std::runtime_error("server did not start: " + (line.empty() ? "no word" : line));
    }
    port_ = line.substr(3, line.find('\n') - 3);
}

ServerProcess::~ServerProcess() {
    if (pid_ > 0) stop(SIGTERM, 15000);
    ::unlink((dir_ + "/stdout").c_str());
    ::unlink((dir_ + "/stderr").c_str());
    ::rmdir(dir_.c_str());
}

Endpoint ServerProcess::client_endpoint(const std::string& host) const {
    return reach(ep_, port_, host);
}

namespace {
// One line per process of the server (itself, then its children): state,
// kernel wait channel and system call, for a stop that timed out.
std::string where_it_hangs(pid_t server) {
    std::ostringstream out;
    std::vector<pid_t> all{server};
    for (pid_t c : children_of(server)) all.push_back(c);
    for (pid_t p : all) {
        const std::string dir = "/proc/" + std::to_string(p);
        std::string wchan = slurp(dir + "/wchan"), call = slurp(dir + "/syscall");
        if (!call.empty() && call.back() == '\n') call.pop_back();
        out << "[test] pid " << p << (p == server ? " (server)" : "") << ": state " << process_state(p) << ", wchan "
            << (wchan.empty() ? "-" : wchan) << ", syscall " << (call.empty() ? "-" : call) << "\n";
    }
    return out.str();
}
}  // namespace

int ServerProcess::stop(int signo, int timeout_ms) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signo);
    int status;
    if (auto done = wait_within(pid_, timeout_ms)) {
        status = *done;
    } else {
        // Appended to its stderr, which a failing test prints.
        std::ofstream(dir_ + "/stderr", std::ios::app)
            << "[test] no exit " << timeout_ms << " ms after signal " << signo << "; SIGKILL follows\n"
            << where_it_hangs(pid_);
        status = wait_or_kill(pid_, 0);
    }
    pid_ = -1;
    return status;
}

std::string ServerProcess::stdout_text() const { return slurp(dir_ + "/stdout"); }
std::string ServerProcess::stderr_text() const { return slurp(dir_ + "/stderr"); }

}  // namespace ipclab::test
