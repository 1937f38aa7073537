// Sessions/<transport>/<model>/<clients>: the server designs under
// concurrent clients, as UNP vol. 1 ch. 30's load client drives them
// (children x connections x exchanges): `clients` client threads, each
// opening kSessionsPerClient sessions in a row, each session kExchanges
// 64-byte exchanges, then closing. One iteration is one such round.
// Counters: items_per_second (sessions/s), p50/p99_ns of opening a session
// (connect until the channel is usable), server_cpu_ns_per_session across
// all the server's processes and threads.
#pragma once

#include <string>

#include "bench/bench_util.hpp"
#include "server/options.hpp"

namespace ipclab::bench {

inline constexpr int kSessionsPerClient = 4;
inline constexpr int kExchanges = 4;

benchmark::internal::Benchmark* register_ipclab_sessions(const Config& c, const std::string& transport,
                                                         ServerModel model, int clients);

}  // namespace ipclab::bench
