// The real ipclab server loop (run_server) in a forked, pinned child, as the
// peer of the ipclab benchmarks. The child opens its own listener, so it owns
// and removes its names; readiness comes back through a pipe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "bench/bench_util.hpp"
#include "ipc/channel.hpp"
#include "server/options.hpp"

namespace ipclab::bench {

class BenchServer {
public:
    // bench_transport: a transport variant of the registry (transport_variants()).
    // Throws std::runtime_error with the server's own error if it cannot start.
    BenchServer(const std::string& bench_transport, ReplyMode reply, int cpu, ServerModel model = ServerModel::fork);
    BenchServer(const BenchServer&) = delete;
    BenchServer& operator=(const BenchServer&) = delete;
    // SIGTERM, a bounded wait, the reap; a server that did not exit 0 (killed
    // after the wait, or by the signal before its handler was set) removed
    // nothing itself, so its stale objects are removed here, as `server
    // --cleanup` would, and how it ended is reported.
    ~BenchServer();

    const Endpoint& client_endpoint() const { return client_ep_; }
    pid_t pid() const { return child_.pid(); }

private:
    Endpoint server_ep_;  // its transport and --name, for the clean-up after a kill
    Endpoint client_ep_;
    Child child_;
};

// The server for this transport, reply mode, CPU and design, started on first use
// and kept until stop_servers() (or replaced if it died). Throws like
// BenchServer.
BenchServer& server_for(const std::string& bench_transport, ReplyMode reply, int cpu,
                        ServerModel model = ServerModel::fork);
void stop_servers();

}  // namespace ipclab::bench
