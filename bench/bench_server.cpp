#include "bench/bench_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <vector>
#include <stdexcept>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"
#include "ipc/transports.hpp"
#include "server/objects.hpp"
#include "server/server_loop.hpp"

namespace ipclab::bench {

namespace {

// The live servers, one per (transport, reply mode, CPU). With repetitions
// interleaved in random order, benchmarks of one transport follow each
// other rarely, so each server is kept for the whole run rather than started
// anew for every repetition; an idle one sleeps in its rendezvous and takes
// no CPU from the benchmark running.
struct Key {
    std::string transport;
    ReplyMode reply;
    int cpu;
    ServerModel model;
    bool operator==(const Key& o) const {
        return transport == o.transport && reply == o.reply && cpu == o.cpu && model == o.model;
    }
};
struct Slot {
    Key key;
    std::unique_ptr<BenchServer> server;
};

std::vector<Slot>& slots() {
    static std::vector<Slot> s;
    return s;
}

std::string unique_name() {
    static std::atomic<unsigned> n{0};
    return "ipcbench-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// Reads the child's one-line report: "ok <describe>" or "error <what>".
std::string read_ready_line(int fd, int timeout_ms) {
    std::string line;
    char buf[512];
    Deadline deadline(timeout_ms);
    while (line.find('\n') == std::string::npos) {
        struct pollfd p {fd, POLLIN, 0};
        int left = deadline.remaining_ms();
        if (left == 0) break;
        int r = ::poll(&p, 1, left);
        if (r < 0 && errno == EINTR) {
            if (stop_requested()) throw Interrupted();
            continue;
        }
        if (r <= 0) break;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<std::size_t>(n));
    }
    return line;
}

}  // namespace

BenchServer::BenchServer(const std::string& bench_transport, ReplyMode reply, int cpu, ServerModel model)
    : server_ep_(variant_endpoint(transport_variant(bench_transport), unique_name())) {
    const Endpoint& ep = server_ep_;
    ServerOptions options;
    options.reply = reply;
    options.model = model;
    options.quiet = true;
    options.log_sessions = false;
    options.grace_seconds = 1;
    options.limits.max_message = kMaxBenchMessage;
    options.limits.timeout_ms = 60000;

    int p[2];
    check(::pipe2(p, O_CLOEXEC), "pipe2");
    Fd ready_read(p[0]), ready_write(p[1]);
    pid_t pid = fork_child(cpu, [&]() -> int {
        ready_read.reset();
        // stdout may carry the JSON report: the server must not write to it.
        int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, STDOUT_FILENO);
            ::close(null);
        }
        try {
            auto listener = listen(ep, options.limits);
            std::string msg = "ok " + listener->bound_port() + "\n";
            [[maybe_unused]] ssize_t n = ::write(ready_write.get(), msg.data(), msg.size());
            ready_write.reset();
            return run_server(std::move(listener), options);
        } catch (const std::exception& e) {
            std::string msg = std::string("error ") + e.what() + "\n";
            [[maybe_unused]] ssize_t n = ::write(ready_write.get(), msg.data(), msg.size());
            return 1;
        }
    });
    child_ = Child(pid);
    ready_write.reset();
    std::string line = read_ready_line(ready_read.get(), 10000);
    if (line.rfind("ok ", 0) != 0) {
        child_.stop();
        throw std::runtime_error("the " + bench_transport + " server did not start: " +
                                 (line.empty() ? std::string("no word from it") : line));
    }
    client_ep_ = reach(ep, line.substr(3, line.find('\n') - 3));
}

BenchServer::~BenchServer() {
    const pid_t pid = child_.pid();
    const int status = child_.stop();
    // A server that ends its loop exits 0 and has removed its names. Any
    // other end removed nothing: SIGKILL after the wait (-1, as for one
    // reaped already), or SIGTERM's default action, which a stop meets in
    // the moment between the child's "ok" and its loop's handler (seen in
    // CI: the test below, 4 ms). What it made is stale once its lock is
    // free, which a prefork server's workers (ended by PDEATHSIG) may hold
    // a moment longer: up to a second's wait for that, then what `server
    // --cleanup` does.
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    auto all_stale = [&] {
        try {
            const auto objects = list_objects(server_ep_.transport, server_ep_.name);
            return std::all_of(objects.begin(), objects.end(), [](const ObjectInfo& o) { return o.stale; });
        } catch (const std::exception&) {  // an unreadable private directory: nothing to wait for
            return true;
        }
    };
    for (int attempt = 0; attempt < 100 && !all_stale(); ++attempt) ::poll(nullptr, 0, 10);
    std::ostringstream removed;
    try {
        cleanup_stale_objects(server_ep_.transport, server_ep_.name, false, removed, removed);
    } catch (const std::exception& e) {
        removed << "clean-up failed: " << e.what() << "\n";
    }
    const std::string how = status == -1          ? "was killed 5 s after SIGTERM, or had died"
                            : WIFSIGNALED(status) ? "ended by signal " + std::to_string(WTERMSIG(status))
                                                  : "exited " + std::to_string(WEXITSTATUS(status));
    std::string msg = "ipc-bench: the " + server_ep_.transport + " server (pid " + std::to_string(pid) + ") " +
                      how + "; what it left:\n" + removed.str();
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg.data(), msg.size());
}

BenchServer& server_for(const std::string& bench_transport, ReplyMode reply, int cpu, ServerModel model) {
    Key key{bench_transport, reply, cpu, model};
    auto& all = slots();
    for (auto& s : all)
        if (s.key == key) {
            // A server that died (killed, or failed) is replaced, not reused.
            if (::kill(s.server->pid(), 0) == 0) return *s.server;
            s.server = std::make_unique<BenchServer>(bench_transport, reply, cpu, model);
            return *s.server;
        }
    all.push_back(Slot{key, std::make_unique<BenchServer>(bench_transport, reply, cpu, model)});
    return *all.back().server;
}

void stop_servers() { slots().clear(); }

}  // namespace ipclab::bench
