// One side of a one-way stream: the writer's end, for ipclab's channel to a
// sink server and for the raw stream baselines alike, so a paired stream run
// (bench/paired_stream.hpp) can alternate the two.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace ipclab::bench {

class StreamPump {
public:
    virtual ~StreamPump() = default;
    // One message; returns once it is handed over (it may still be in flight).
    virtual void send(std::span<const std::byte> message) = 0;
    // Returns once the reader has taken every byte sent so far; throws
    // (PeerGone, ProtocolError, ...) when the reader does not confirm it.
    virtual void flush() = 0;
    // The process that reads (its tree is the server's CPU and run delay).
    virtual pid_t server() const = 0;
};

// ipclab: one session with the sink bench server of `transport` (flush: an
// empty message and its acknowledgement).
std::unique_ptr<StreamPump> make_ipclab_stream_pump(const std::string& transport, int server_cpu);

// The raw stream baseline of `transport` (tcp, unix, fifo: see
// has_baseline_stream) with a cat-like reader child on server_cpu, reading
// into a buffer of max(size, 64 KiB) as BaselineStream's, that answers one
// byte per flush_bytes bytes taken: every flush must follow exactly
// flush_bytes bytes of messages. Throws std::invalid_argument for other
// transports or flush_bytes 0.
std::unique_ptr<StreamPump> make_baseline_stream_pump(const std::string& transport, std::size_t size,
                                                      std::uint64_t flush_bytes, int server_cpu);

}  // namespace ipclab::bench
