// The framed wire format over byte streams (TCP, UNIX sockets, FIFOs).
//
//   opening  : client to server, once (no text line starts with NUL, so one
//              port serves both modes), one of
//              version 1: 8 bytes 00 'I' 'P' 'C' 'L' 'A' 'B' 01 (the server's --reply)
//              version 2: 9 bytes 00 'I' 'P' 'C' 'L' 'A' 'B' 02 MODE, where MODE
//                         asks for this session's replies: 1 ack, 2 echo, 3 sink
//              (a version-1 server closes a version-2 session at its opening,
//              so a client that asks learns the server is older instead of
//              silently getting other replies)
//   frame    : type (1 byte) | length (4 bytes, big-endian) | payload
//   types    : 1 = data, 2 = error (payload is UTF-8 text, session ends)
//
// Pure functions without I/O so they can be unit-tested and fuzzed.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace ipclab {

enum class FrameType : std::uint8_t { data = 1, error = 2 };

// The seed server's reply to every message, on every transport (--reply ack).
inline constexpr char kAckText[] = "I got your message";  // 18 bytes, no terminator

inline constexpr std::size_t kFrameHeaderSize = 5;
inline constexpr std::size_t kOpeningSize = 8;
inline constexpr std::array<std::byte, kOpeningSize> kFramedOpening{
    std::byte{0x00}, std::byte{'I'}, std::byte{'P'}, std::byte{'C'},
    std::byte{'L'},  std::byte{'A'}, std::byte{'B'}, std::byte{0x01}};
inline constexpr std::size_t kMaxWireLength = 0xFFFFFFFFu;

// The replies a session asks for in its opening; server_default sends
// version 1 and leaves the choice to the server's --reply.
enum class SessionReply : std::uint8_t { server_default = 0, ack = 1, echo = 2, sink = 3 };
inline constexpr std::size_t kOpeningV2Size = kOpeningSize + 1;

// What the opening that starts a session's bytes said: `size` bytes long
// (0: too few bytes yet to tell), asking for `reply`.
struct Opening {
    std::size_t size = 0;
    SessionReply reply = SessionReply::server_default;
};

struct FrameHeader {
    FrameType type;
    std::uint32_t length;
};

using HeaderBytes = std::array<std::byte, kFrameHeaderSize>;

// Big-endian fixed-width fields, copied with memcpy (never a cast).
inline void put_u32(std::byte* out, std::uint32_t v) {
    std::uint32_t be = htonl(v);
    std::memcpy(out, &be, sizeof be);
}
inline std::uint32_t get_u32(const std::byte* in) {
    std::uint32_t be;
    std::memcpy(&be, in, sizeof be);
    return ntohl(be);
}
inline void put_u64(std::byte* out, std::uint64_t v) {
    put_u32(out, static_cast<std::uint32_t>(v >> 32));
    put_u32(out + 4, static_cast<std::uint32_t>(v));
}
inline std::uint64_t get_u64(const std::byte* in) {
    return (std::uint64_t{get_u32(in)} << 32) | get_u32(in + 4);
}

// The errors of encode_header and decode_header, out of line: the two are
// inline because every message of every framed transport passes them (as
// calls they were a tenth of a small message's instructions outside the
// kernel, on each side).
[[noreturn]] void throw_unframeable(std::size_t length);
[[noreturn]] void throw_bad_header(std::uint8_t type, std::uint32_t length, std::size_t max_message);

// Throws ProtocolError when the payload cannot be described in 32 bits.
inline HeaderBytes encode_header(FrameType type, std::size_t length) {
    if (length > kMaxWireLength) throw_unframeable(length);
    HeaderBytes h{};
    h[0] = static_cast<std::byte>(type);
    put_u32(h.data() + 1, static_cast<std::uint32_t>(length));
    return h;
}

// Throws ProtocolError for an unknown type, OversizeError when length > max_message.
inline FrameHeader decode_header(std::span<const std::byte, kFrameHeaderSize> bytes,
                                 std::size_t max_message) {
    auto type = static_cast<std::uint8_t>(bytes[0]);
    std::uint32_t length = get_u32(bytes.data() + 1);
    if ((type != static_cast<std::uint8_t>(FrameType::data) &&
         type != static_cast<std::uint8_t>(FrameType::error)) ||
        length > max_message)
        throw_bad_header(type, length, max_message);
    return {static_cast<FrameType>(type), length};
}

// Reads the opening at the start of `bytes` (a session's first bytes, the
// first one NUL; more may follow). Returns size 0 while more bytes are needed
// to decide; throws ProtocolError for bytes that are not an opening this side
// speaks (another protocol, an unknown version or reply mode).
Opening parse_opening(std::span<const std::byte> bytes);
// The opening a client sends to ask for `reply` (version 1 for server_default).
std::span<const std::byte> opening_bytes(SessionReply reply);
// The peer closed after `got` bytes, too few for its opening: ProtocolError.
[[noreturn]] void throw_short_opening(std::size_t got);

// Text mode (the seed's client, nc): each line is a message, its '\n'
// included. Throws OversizeError when a line of len bytes, terminator
// included, is over max_message (the terminator is not payload).
void check_text_line(std::size_t len, std::size_t max_message);
// An error reply in text mode: "error: TEXT\n".
std::string text_error_line(std::span<const std::byte> text);

inline std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace ipclab
