// Channels over byte streams: the framed channel (header + payload, one
// writev per message) and the text channel (one line per message) that plain
// line clients such as the seed's client and nc get.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/copy_inline.hpp"
#include "ipc/fd.hpp"
#include "ipc/local_heap.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/tick_timer.hpp"

namespace ipclab {

// The size of a StreamReader's buffer: park_read_buffer(kReadBuffer)
// before forking session children (ipc/page_buffer.hpp).
inline constexpr std::size_t kReadBuffer = 64 * 1024;

// Read side of a stream with a buffer, so small frames cost one read(2).
class StreamReader : public LocalHeapAllocated<LocalHeap::Use::session> {
public:
    // Reads are bounded by timeout_ms (<= 0: none) through a tick timer of
    // this thread, for pipes and sockets alike (see read_ticked).
    StreamReader(int fd, int timeout_ms);
    StreamReader(const StreamReader&) = delete;
    StreamReader& operator=(const StreamReader&) = delete;

    // Ensures at least n buffered bytes; false if EOF came first. With
    // nothing buffered and a page offset `at`, the next bytes are read to
    // that offset of a page of the buffer (see FramedChannel::receive).
    static constexpr std::size_t kAnywhere = static_cast<std::size_t>(-1);
    bool fill(std::size_t n, std::size_t at = kAnywhere) { return buffered() >= n || refill(n, at); }
    std::size_t buffered() const { return end_ - pos_; }
    const std::byte* data() const { return buf_.data() + pos_; }
    void consume(std::size_t n) { pos_ += n; }
    // Copies out buffered bytes first, then reads the rest straight into out.
    // Returns false on EOF before any byte; throws PeerGone on EOF part-way.
    // Inline for a small frame's payload, which is all buffered already.
    bool read_exact(std::span<std::byte> out, const char* what) {
        if (buffered() < out.size()) return read_rest(out, what);
        copy_inline(out.data(), data(), out.size());
        consume(out.size());
        return true;
    }
    // With nothing buffered, one readv(2): up to `head` bytes into the
    // buffer, what follows straight into `rest` (a frame's header, then its
    // payload without a copy out of the buffer). Returns the bytes that went
    // to `rest`; false (and nothing read) on EOF.
    bool read_split(std::size_t head, std::span<std::byte> rest, std::size_t& into_rest);
    // Buffers bytes that were read past a frame, so the next fill sees them
    // first. Only with nothing buffered (after read_split overshot).
    void put_back(std::span<const std::byte> bytes);

private:
    bool refill(std::size_t n, std::size_t at);
    bool read_rest(std::span<std::byte> out, const char* what);  // read_exact beyond the buffer
    // What every read does first: the tick (see stream_channel.cpp), a stop seen.
    void before_read();
    // Before one of a session's first reads: waits in poll until the
    // descriptor is readable, as the timeout allows (see stream_channel.cpp).
    void wait_readable();
    // One read(2) or readv(2), bounded by the timeout (see stream_channel.cpp).
    std::size_t read_ticked(std::byte* buf, std::size_t len);
    std::size_t readv_ticked(::iovec* iov, int count);
    // After a read failed with err: waits as the timeout allows, then reads again.
    std::size_t read_again(::iovec* iov, int count, int err);
    // Makes the buffer at least n bytes, keeping what is buffered.
    void grow(std::size_t n);

    int fd_;
    int timeout_ms_;
    // Not a vector: its zero-filling would touch (and, in a forked child,
    // fault in) every page of the buffer before the first byte arrives.
    // Page-aligned, so offsets in it are page offsets (fill's `at`). In a
    // session child, the buffer its server parked (ipc/page_buffer.hpp).
    ReadBuffer buf_;
    std::size_t pos_ = 0, end_ = 0;
    std::optional<TickTimer> tick_;  // with a timeout: wakes blocked reads (in place: no allocation)
    int polled_reads_ = 0;           // reads that waited in poll, before the tick was made
};

struct StreamFds {
    Fd read;
    Fd write;        // empty: write to `read` (a socket)
    bool is_socket;
};

// What a framed channel over a pair of FIFOs adds (fifo.cpp): a wait before
// its first read, and the session's names, dropped around the close. Held by
// the channel rather than wrapping it, so a message passes one channel's
// calls (a wrapper was a tenth of a small message's instructions outside
// the kernel).
class StreamSessionHooks {
public:
    virtual ~StreamSessionHooks() = default;  // runs after the descriptors closed
    virtual void before_first_read() = 0;
    // The channel is closing, its descriptors still open; peer_ended: the
    // peer closed or went away first (an EOF, or PeerGone thrown).
    virtual void before_close(bool peer_ended) = 0;
};

// Framed channel. With send_opening, the first send carries the opening
// (asking for `reply`, ipc/framing.hpp) in the same system call.
// timeouts_set: a socket that already has limits.timeout_ms as its SO_SNDTIMEO.
std::unique_ptr<Channel> make_framed_channel(StreamFds fds, const Limits& limits,
                                             bool send_opening,
                                             SessionReply reply = SessionReply::server_default,
                                             bool timeouts_set = false,
                                             std::unique_ptr<StreamSessionHooks> hooks = nullptr);

// Reads the session's first bytes and picks the framed or the text channel.
// timeouts_set: the socket already has limits.timeout_ms as its SO_SNDTIMEO
// (inherited from its listener); its reads are bounded by the reader's tick.
std::unique_ptr<Channel> open_stream_session(Fd socket, const Limits& limits, bool timeouts_set = false);

}  // namespace ipclab
