// ipc-bench --remote HOST:PORT: the benchmarks against a plain `bin/server
// PORT` on another host (the measurement peer, as `iperf3 -s` is). No server
// is forked for them: each session's opening asks the one running server for
// the replies it needs (echo, sink, ack; ipc/framing.hpp, version 2).
//   RoundTrip/remote/<bytes>  one request and its echo per iteration
//   Baseline/remote/<bytes>   the same round trip in raw system calls (connect,
//                             write the opening once, then one writev of header
//                             and payload, reads until the echo is whole): the
//                             network's floor under ipclab's round trip
//   Paired/remote/<bytes>     the two alternating in slices (bench/paired_bench.hpp)
//   Stream/remote/<bytes>     one-way to the server as a sink
//   Connect/remote            open a session, one exchange (ack), close
// The server's CPU is not ours to read: these runs carry no server_* counters.
#pragma once

#include <stdexcept>
#include <string>

#include "bench/bench_util.hpp"
#include "ipc/channel.hpp"

namespace ipclab::bench {

// The remote server cannot serve these benchmarks; what() is one line
// naming the server and why (absent, older, not an ipclab server).
struct RemoteUnusable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "HOST:PORT", "[IPV6]:PORT" -> a tcp endpoint. Throws std::invalid_argument.
Endpoint parse_remote(const std::string& text);

// One echo exchange through a version-2 opening, so a run fails at once with
// one line rather than with every benchmark's error. Returns the address the
// server answered on. Throws RemoteUnusable.
std::string probe_remote(const Endpoint& ep, int timeout_ms);

// Registers the remote benchmarks for c.sizes.
void register_remote(const Config& c, const Endpoint& ep);

}  // namespace ipclab::bench
