// Registration of the ipclab benchmarks (names as in the interface contract):
//   RoundTrip/<transport>/<bytes>  echo server, one request and its reply per iteration
//   Stream/<transport>/<bytes>     sink server, one one-way message per iteration
//   Connect/<transport>            ack server, open + one exchange + close per iteration
#pragma once

#include <cstddef>
#include <string>

#include "bench/bench_util.hpp"
#include "ipc/channel.hpp"
#include "server/options.hpp"

namespace ipclab::bench {

// The timed loops of Stream and Connect against a server at `ep` (a sink,
// an ack server) run by process `server` (-1: not on this host, so no server
// CPU). Throw on a failed connection; a bad reply fails the state.
void stream_to(benchmark::State& state, const Endpoint& ep, pid_t server, std::size_t size);
void connect_to(benchmark::State& state, const Endpoint& ep, pid_t server);

benchmark::internal::Benchmark* register_ipclab_round_trip(const Config& c, const std::string& transport, std::size_t size);
benchmark::internal::Benchmark* register_ipclab_stream(const Config& c, const std::string& transport, std::size_t size);
// Connect/<t> (fork per session, the default design), Connect/<t>/iterative or Connect/<t>/prefork.
benchmark::internal::Benchmark* register_ipclab_connect(const Config& c, const std::string& transport,
                                                        ServerModel model = ServerModel::fork);

}  // namespace ipclab::bench
