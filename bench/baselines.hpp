// The reference baselines: each mechanism used as plainly as it allows (raw
// system calls, no framing, no ipclab classes), so every run prints
// ipclab's overhead as a ratio measured minutes apart on the same machine.
//   Baseline/<transport>/<bytes>        round-trip ping-pong with a forked echo child
//   BaselineDuplex/<transport>/<bytes>  shm and shm-spin: the same with the reply in a buffer
//                                       of its own, not in the request's bytes
//   BaselineStream/<transport>/<bytes>  one-way writes to a forked reader (tcp, unix, fifo)
//   Baseline/connect-fork               minimal C fork-per-connection TCP server, one-shot
//                                       (the child reads once, replies, exits: the seed's server)
//   Baseline/connect-fork-session       the same, its child answering until the client closes,
//                                       as an ipclab session child does (compare Connect/tcp with it)
//   Baseline/connect-socat              socat in fork mode, echoing (skipped without socat)
//   Baseline/memcpy/<bytes>             the memory bandwidth shm is held to
#pragma once

#include <cstddef>
#include <string>

#include "bench/bench_util.hpp"

namespace ipclab::bench {

benchmark::internal::Benchmark* register_baseline_round_trip(const Config& c, const std::string& transport, std::size_t size);
// Only where has_duplex_baseline (bench/ping_pong.hpp).
benchmark::internal::Benchmark* register_duplex_baseline_round_trip(const Config& c, const std::string& transport,
                                                                    std::size_t size);
// Registered only for transports with a one-way baseline (the byte streams).
bool has_baseline_stream(const std::string& transport);
benchmark::internal::Benchmark* register_baseline_stream(const Config& c, const std::string& transport, std::size_t size);
// The raw connection baselines (a C fork server, socat) exist for tcp only.
bool has_baseline_connect(const std::string& transport);
benchmark::internal::Benchmark* register_baseline_connect_fork(const Config& c);
benchmark::internal::Benchmark* register_baseline_connect_fork_session(const Config& c);
benchmark::internal::Benchmark* register_baseline_connect_socat(const Config& c);
benchmark::internal::Benchmark* register_baseline_memcpy(std::size_t size);

}  // namespace ipclab::bench
