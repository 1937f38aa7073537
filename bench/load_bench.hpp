// Behaviour under load, driven by the client's own load code (client/load.hpp)
// against the real forking echo server, 64-byte messages:
//
//   Concurrent/<transport>/<clients>  `clients` sessions at once, each a
//       closed loop (send, wait for the echo, send again) for the load
//       seconds. Counters: msgs_per_s (round trips/s over all
//       sessions), p50/p99/p999/max_ns over all of them, fairness (Jain's
//       index of the sessions' own rates), client/server_cpu_ns_per_msg,
//       client/server_sleeps_per_msg (voluntary context switches: each a
//       sleep and a wake-up).
//   OpenLoop/<transport>/<percent>    one session, open loop: requests on a
//       fixed schedule at <percent>% of this transport's closed-loop rate
//       (measured once per process: capacity_per_s), each latency counted
//       from its scheduled send time, so a stall counts for every request
//       due during it. Counters: offered_per_s, msgs_per_s (achieved), behind_share
//       (requests sent late because the previous reply came after their
//       time), unsent, wake_late_p50/p99_ns (how late the client itself
//       woke for its slots: in every latency), the percentiles and both
//       sides' CPU per message (the client's without client_pacing_ns_per_msg,
//       its spinning to slots too near to sleep for) - at a
//       modest rate a spinning transport burns CPU a blocking one spends
//       asleep, which a closed loop's CPU column cannot show.
//
// One iteration is one run of the load seconds (a run is longer than the
// usual --benchmark_min_time, so one iteration per repetition); the
// repetitions give the intervals. Rates, latencies and CPU count only from
// the moment every session is open to the moment every one had its last
// reply (CPU of the server's whole process tree and of this whole process,
// read at those two moments), so opening and closing sessions - the forks -
// are not in the per-message figures.
#pragma once

#include <string>
#include <vector>

#include "bench/bench_util.hpp"

namespace ipclab::bench {

inline constexpr std::size_t kLoadMessageSize = 64;
inline const std::vector<int> kConcurrentClients = {1, 2, 4, 8, 16, 64};
// From well below the knee to past saturation (100 = the closed loop's rate).
inline const std::vector<int> kOpenLoopPercents = {10, 25, 50, 75, 90, 100, 110, 125};

benchmark::internal::Benchmark* register_concurrent(const Config& c, const std::string& transport, int clients,
                                                    double seconds);
benchmark::internal::Benchmark* register_open_loop(const Config& c, const std::string& transport, int percent,
                                                   double seconds);

}  // namespace ipclab::bench
