// Registration of the ipclab benchmarks (names as in the interface contract):
//   RoundTrip/<transport>/<bytes>  echo server, one request and its reply per iteration
//   Stream/<transport>/<bytes>     sink server, one one-way message per iteration
//   Connect/<transport>            ack server, open + one exchange + close per iteration
#pragma once

#include <cstddef>
#include <string>

#include "bench/bench_util.hpp"
#include "server/options.hpp"

namespace ipclab::bench {

benchmark::internal::Benchmark* register_ipclab_round_trip(const Config& c, const std::string& transport, std::size_t size);
benchmark::internal::Benchmark* register_ipclab_stream(const Config& c, const std::string& transport, std::size_t size);
// Connect/<t> (fork per session, the default design), Connect/<t>/iterative or Connect/<t>/prefork.
benchmark::internal::Benchmark* register_ipclab_connect(const Config& c, const std::string& transport,
                                                        ServerModel model = ServerModel::fork);

}  // namespace ipclab::bench
