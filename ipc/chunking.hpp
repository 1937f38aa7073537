// Message chunking for the queue transports (posix-mq, sysv-mq), whose kernel
// limit per queue message (msgsize_max, msgmax: 8192 bytes by default) is far
// below Limits::max_message. A message becomes one or more chunks, each one
// queue message; the receiver reassembles them. Pure functions, no I/O.
//
//   chunk header (12 bytes, big-endian, then the piece of payload):
//     0  type    u8   1 = data, 2 = error (FrameType)
//     1  flags   u8   0x01 first, 0x02 last, 0x04 end of session
//     2  zero    u16  reserved, must be 0
//     4  total   u32  length of the whole message
//     8  offset  u32  where this piece starts inside the message
//
// A message of n bytes is ceil(n / capacity) chunks (one for n == 0), the
// first flagged first, the last flagged last, offsets consecutive. The
// receiver checks every field against the chunks before it: a piece that
// does not continue the message exactly (reordered, duplicated, truncated,
// overlong, a chunk after the last one, a new first chunk mid-message) is a
// ProtocolError; total > max_message is an OversizeError at the first chunk.
//
// End of session is explicit: a lone header with flags == end, type data,
// total 0, offset 0. It is only valid between messages.
//
// The rendezvous messages are fixed records of big-endian u32:
//   hello   (client -> well-known queue): magic "IPCH", version, pid, id_a, id_b
//           (sysv-mq: the msqids of the client->server and server->client queues)
//   welcome (server child -> client, first message of a session): magic "IPCW",
//           version, pid of the server child (the peer whose liveness the
//           client checks while it waits)
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/page_buffer.hpp"

namespace ipclab {

inline constexpr std::size_t kChunkHeaderSize = 12;
inline constexpr std::uint8_t kChunkFirst = 0x01;
inline constexpr std::uint8_t kChunkLast = 0x02;
inline constexpr std::uint8_t kChunkEnd = 0x04;

struct ChunkHeader {
    FrameType type = FrameType::data;
    std::uint8_t flags = 0;
    std::uint32_t total = 0;
    std::uint32_t offset = 0;
};

inline void encode_chunk_header(std::byte* out, const ChunkHeader& h) {
    out[0] = static_cast<std::byte>(h.type);
    out[1] = static_cast<std::byte>(h.flags);
    out[2] = std::byte{0};
    out[3] = std::byte{0};
    put_u32(out + 4, h.total);
    put_u32(out + 8, h.offset);
}

// decode_chunk_header's errors, out of line: the decoding is inline because
// every queue message passes it (see encode_header in ipc/framing.hpp).
[[noreturn]] void throw_bad_chunk_header(std::span<const std::byte> chunk);

// Throws ProtocolError for a chunk shorter than the header, an unknown type
// or flag, or non-zero reserved bytes.
inline ChunkHeader decode_chunk_header(std::span<const std::byte> chunk) {
    if (chunk.size() < kChunkHeaderSize) throw_bad_chunk_header(chunk);
    auto type = static_cast<std::uint8_t>(chunk[0]);
    auto flags = static_cast<std::uint8_t>(chunk[1]);
    if ((type != static_cast<std::uint8_t>(FrameType::data) && type != static_cast<std::uint8_t>(FrameType::error)) ||
        (flags & ~(kChunkFirst | kChunkLast | kChunkEnd)) != 0 || chunk[2] != std::byte{0} || chunk[3] != std::byte{0})
        throw_bad_chunk_header(chunk);
    ChunkHeader h;
    h.type = static_cast<FrameType>(type);
    h.flags = flags;
    h.total = get_u32(chunk.data() + 4);
    h.offset = get_u32(chunk.data() + 8);
    return h;
}

// Writes the end-of-session marker into out (kChunkHeaderSize bytes).
void encode_end_marker(std::byte* out);

// Cuts one message into chunks of at most max_chunk bytes (header included).
class ChunkSplitter {
public:
    // Throws ProtocolError when the payload does not fit 32 bits and
    // std::invalid_argument when max_chunk leaves no room for payload.
    ChunkSplitter(FrameType type, std::span<const std::byte> payload, std::size_t max_chunk);
    bool done() const { return done_; }
    // Number of chunks the whole message takes.
    std::size_t count() const;
    // Writes the next chunk (header + piece) into out, which must hold
    // max_chunk bytes; returns its length.
    std::size_t next(std::span<std::byte> out);

private:
    FrameType type_;
    std::span<const std::byte> payload_;
    std::size_t capacity_;  // payload bytes per chunk
    std::size_t sent_ = 0;
    bool done_ = false;
};

// Reassembles chunks into messages and validates their sequence.
class ChunkAssembler {
public:
    enum class Result { more, message, end };
    explicit ChunkAssembler(std::size_t max_message) : max_message_(max_message) {}
    // Feeds one received chunk. `message`: msg now holds a whole message;
    // `end`: the peer ended the session; `more`: keep feeding. Throws
    // ProtocolError / OversizeError for malformed input, after which the
    // session is unusable.
    Result feed(std::span<const std::byte> chunk, Message& msg) {
        // The usual case in a few instructions: a whole message in one chunk
        // between messages (a small message's instructions outside the
        // kernel are most of what it costs beyond the raw floor).
        if (!active_ && chunk.size() >= kChunkHeaderSize) [[likely]] {
            ChunkHeader h = decode_chunk_header(chunk);
            std::size_t piece = chunk.size() - kChunkHeaderSize;
            if (h.flags == (kChunkFirst | kChunkLast) && h.offset == 0 && h.total == piece && piece <= max_message_) {
                msg.type = h.type;
                size_received(msg.payload, piece);
                if (piece != 0) std::memcpy(msg.payload.data(), chunk.data() + kChunkHeaderSize, piece);
                return Result::message;
            }
        }
        return feed_any(chunk, msg);
    }
    // True between messages (no partial message held).
    bool idle() const { return !active_; }
    // Where the next chunk's piece will be copied to: msg's storage (reused
    // from the last message) at the end of what it holds, or nullptr while
    // msg has none yet. The queue transports place the chunk they receive
    // against it (ipc/page_buffer.hpp).
    const std::byte* next_piece(const Message& msg) const {
        if (msg.payload.capacity() == 0) return nullptr;
        return msg.payload.data() + (active_ ? msg.payload.size() : 0);
    }

private:
    Result feed_any(std::span<const std::byte> chunk, Message& msg);

    std::size_t max_message_;
    bool active_ = false;
    FrameType type_ = FrameType::data;
    std::uint32_t total_ = 0;
};

// The send and receive loops both queue transports share. send_one(len,
// may_abort) ships the chunk just written into buf and returns false when it
// was not sent because the peer answered first (only a chunk after the first
// may be abandoned). Returns false when the message was abandoned.
template <typename SendOne>
bool send_chunked(FrameType type, std::span<const std::byte> payload, std::span<std::byte> buf,
                  SendOne send_one) {
    if (buf.size() >= kChunkHeaderSize && payload.size() <= buf.size() - kChunkHeaderSize) [[likely]] {
        // One chunk: written here, without the splitter (see ChunkAssembler::feed).
        encode_chunk_header(buf.data(), ChunkHeader{type, static_cast<std::uint8_t>(kChunkFirst | kChunkLast),
                                                    static_cast<std::uint32_t>(payload.size()), 0});
        if (!payload.empty()) std::memcpy(buf.data() + kChunkHeaderSize, payload.data(), payload.size());
        return send_one(kChunkHeaderSize + payload.size(), false);
    }
    ChunkSplitter splitter(type, payload, buf.size());
    for (bool first = true; !splitter.done(); first = false)
        if (!send_one(splitter.next(buf), !first)) return false;
    return true;
}

// Feeds next_chunk() (a received chunk, or nullopt when the peer removed its
// queue) to the assembler until a whole message (true) or the end of the
// session (false). A queue removed mid-message is PeerGone.
template <typename NextChunk>
bool receive_chunked(ChunkAssembler& assembler, Message& msg, NextChunk next_chunk) {
    for (;;) {
        std::optional<std::span<const std::byte>> chunk = next_chunk();
        if (!chunk) {
            if (!assembler.idle()) throw PeerGone("the peer removed its queue mid-message");
            return false;
        }
        switch (assembler.feed(*chunk, msg)) {
            case ChunkAssembler::Result::message:
                return true;
            case ChunkAssembler::Result::end:
                return false;
            case ChunkAssembler::Result::more:
                break;
        }
    }
}

inline constexpr std::uint32_t kHelloMagic = 0x49504348;    // "IPCH"
inline constexpr std::uint32_t kWelcomeMagic = 0x49504357;  // "IPCW"
inline constexpr std::uint32_t kQueueProtocolVersion = 1;
inline constexpr std::size_t kHelloSize = 20;
inline constexpr std::size_t kWelcomeSize = 12;

struct Hello {
    pid_t pid = 0;
    std::uint32_t id_a = 0;
    std::uint32_t id_b = 0;
};

std::array<std::byte, kHelloSize> encode_hello(const Hello& h);
// Throws ProtocolError for a wrong size, magic, version or a pid <= 0.
Hello decode_hello(std::span<const std::byte> bytes);
std::array<std::byte, kWelcomeSize> encode_welcome(pid_t pid);
pid_t decode_welcome(std::span<const std::byte> bytes);

}  // namespace ipclab
