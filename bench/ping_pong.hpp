// One request and its echo: the unit every round-trip benchmark times, for
// ipclab's channel and for each raw baseline alike, so the timed loop, the
// checks and the paired (interleaved) comparison are written once.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bench/bench_util.hpp"
#include "ipc/channel.hpp"

namespace ipclab::bench {

class PingPong {
public:
    virtual ~PingPong() = default;
    // Sends request, waits for its echo; throws (PeerGone, SystemError,
    // ProtocolError) when the exchange fails. The only thing timed.
    virtual void round_trip(std::span<const std::byte> request) = 0;
    // Whether the last echo equals request byte for byte (checked untimed).
    virtual bool echoed(std::span<const std::byte> request) const = 0;
    // What the last echo was instead, for the error message.
    virtual std::string mismatch(std::span<const std::byte> request) const;
    // The process that serves the exchange (its tree is the server's CPU).
    virtual pid_t server() const = 0;
    // Between the slices of a paired run: a peer that busy-polls must stop
    // polling while the other pair member is measured, or it would take the
    // CPU the other one needs. Blocking peers need nothing.
    virtual void pause() {}
    virtual void resume() {}
    // Extra counters of a measured run (e.g. how an shm session waited).
    virtual void mark_start() {}
    virtual void report(benchmark::State&, std::uint64_t /*messages*/) const {}
};

// The ipclab round trip: one session with the echo bench server.
std::unique_ptr<PingPong> make_ipclab_ping_pong(const std::string& transport, int server_cpu);
// The same with the echo server at `ep`, run by process `server` (-1: on another host).
std::unique_ptr<PingPong> make_ipclab_ping_pong(const Endpoint& ep, pid_t server);
// Makes a round trip on first use of a run.
using PingPongMaker = std::function<std::unique_ptr<PingPong>()>;

// One session per round trip (PairedConnect/<t>): connect to the ack server
// of the fork-per-session design, one message, its acknowledgement, close;
// echoed() then says whether the acknowledgement came.
std::unique_ptr<PingPong> make_ipclab_session_ping_pong(const std::string& transport, int server_cpu);
// The same against Baseline/connect-fork-session's C server (tcp).
std::unique_ptr<PingPong> make_session_baseline_ping_pong(int server_cpu);

// A raw baseline's maker: make_baseline_ping_pong or make_duplex_baseline_ping_pong.
using BaselineMaker = std::unique_ptr<PingPong> (*)(const std::string& transport, std::size_t size, int server_cpu);

// The raw baseline for the transport (tcp, unix, fifo, posix-mq, sysv-mq,
// shm, shm-spin, udp); throws std::invalid_argument for any other name.
std::unique_ptr<PingPong> make_baseline_ping_pong(const std::string& transport, std::size_t size,
                                                  int server_cpu);
// The shared-memory baselines again with the reply in a buffer of its own,
// as a duplex channel has one per direction (the plain ones reply in place:
// bench/baselines.cpp); shm and shm-spin only.
bool has_duplex_baseline(const std::string& transport);
std::unique_ptr<PingPong> make_duplex_baseline_ping_pong(const std::string& transport, std::size_t size,
                                                         int server_cpu);

// kWarmupMessages checked round trips (fresh patterns); returns their median
// time, ns. Throws ProtocolError when an echo differs.
std::uint64_t warm_up(PingPong& p, Bytes& payload, std::size_t size);

// Warm-up, then one sample per round trip while the state runs; every 64th
// message, the first and the last get a fresh pattern and a byte-exact check
// outside the timed section. Sets the Meter's counters.
void measure_round_trips(benchmark::State& state, PingPong& p, std::size_t size);

}  // namespace ipclab::bench
