// Paired/<transport>/<bytes>: ipclab's round trip and its raw baseline in
// one process, alternating in short slices (A B B A A B ..., each slice about
// kSliceNs), so that whatever the machine does to one half of a pair it does
// to the other. A slow second on a shared VM moves both members of the pair
// together; their ratio holds still. Each iteration is one pair. Both
// servers run on one CPU (the --pin server CPU, else the last CPU); the
// client goes where --pin says.
//
// Counters: p50_ns, p99_ns, p999_ns, max_ns (ipclab, every sample of the repetition),
// raw_p50_ns, raw_p99_ns (the baseline's), ratio (the median over pairs of
// median(ipclab slice) / median(raw slice)), pairs, slice_messages, the
// CPU counters of ipclab's side, and the interference counters of both.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "bench/bench_util.hpp"
#include "bench/ping_pong.hpp"

namespace ipclab::bench {

inline constexpr std::uint64_t kSliceNs = 1'000'000;


// The paired run of two round trips (ours: ipclab's, raw: its baseline),
// each made on first use of the run, in slices of about slice_ns.
void paired_round_trip(benchmark::State& state, const PingPongMaker& make_ours, const PingPongMaker& make_raw,
                       std::size_t size, std::uint64_t slice_ns = kSliceNs);

benchmark::internal::Benchmark* register_paired_round_trip(const Config& c, const std::string& transport,
                                                           std::size_t size);
// PairedDuplex/<transport>/<bytes> (shm, shm-spin): the same against the raw
// ping-pong whose reply has a buffer of its own (make_duplex_baseline_ping_pong).
benchmark::internal::Benchmark* register_duplex_paired_round_trip(const Config& c, const std::string& transport,
                                                                  std::size_t size);

// PairedConnect/<transport> (tcp: the transport with a raw fork server):
// Connect/<t>'s sessions - connect, a 64-byte message, its acknowledgement,
// close, each served by a forked child - alternating in slices with
// Baseline/connect-fork-session's, the C fork server whose child also
// answers until the client closes. A session takes hundreds of µs, so a
// slice is about kSessionSliceNs (about ten sessions) rather than
// kSliceNs. Counters as Paired's: ratio is ipclab's session time over the
// C server's (below 1: ipclab faster); the CPU counters are per session.
inline constexpr std::size_t kSessionMessage = 64;
inline constexpr std::uint64_t kSessionSliceNs = 4'000'000;
benchmark::internal::Benchmark* register_paired_connect(const Config& c, const std::string& transport);

// PairedStream/<transport>/<bytes> (tcp, unix, fifo: the transports with a
// raw stream baseline): ipclab's one-way stream to the sink server and the
// raw stream (a cat-like reader) alternating in slices of about kSliceNs,
// each slice its messages and a flush that proves they arrived (ipclab: an
// empty message and its acknowledgement; raw: one byte the reader answers
// per slice of bytes), timed together. Each iteration is one pair.
// Counters: throughput_ratio (the median over pairs of ipclab's bytes per
// second / the raw stream's, per slice), ipclab_bytes_per_second and
// raw_bytes_per_second (over all slices, flushes included), pairs,
// slice_messages, and the interference counters of both members.
void paired_stream(benchmark::State& state, const std::string& transport, std::size_t size, int server_cpu);

benchmark::internal::Benchmark* register_paired_stream(const Config& c, const std::string& transport,
                                                       std::size_t size);

// PairedWait/shm/<bytes>: shm's stream in block mode (the default) against
// the same stream in spin mode, alternating in slices as PairedStream's,
// each mode's sink server where its own Stream benchmark puts it (with
// --pin=C,S both on S unless C = S, where the spinning one goes to the other
// CPU). Counters: throughput_ratio (the median over pairs of block's bytes
// per second ÷ spin's, per slice), block_bytes_per_second,
// spin_bytes_per_second, pairs, slice_messages and the interference counters.
// Slices of about kWaitSliceNs: the spin-mode sink keeps polling for up to a
// few hundred µs after its slice (its budget, see kSpinIterations), on the
// CPU the block-mode sink may share, which in 1 ms slices took a large share
// of the block member's CPU. A slice may hold up to kMaxWaitSliceMessages,
// so that small messages fill it too (at the round trips' cap of 4096, a
// 64-byte slice lasted ~0.2 ms and the spinning sink's tail still weighed).
inline constexpr std::uint64_t kWaitSliceNs = 10'000'000;
inline constexpr std::uint64_t kMaxWaitSliceMessages = std::uint64_t{1} << 20;
void paired_wait_stream(benchmark::State& state, std::size_t size, int block_cpu, int spin_cpu);
benchmark::internal::Benchmark* register_paired_wait_stream(const Config& c, std::size_t size);

// Median of values (by copy; 0 for none). Upper median for an even count, as
// the nearest-rank percentile.
double median_of(std::vector<double> values);

}  // namespace ipclab::bench
