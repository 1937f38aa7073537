// The framed wire format over byte streams (TCP, UNIX sockets, FIFOs).
//
//   opening  : 8 bytes, client to server, once: 00 'I' 'P' 'C' 'L' 'A' 'B' 01
//              (no text line starts with NUL, so one port serves both modes)
//   frame    : type (1 byte) | length (4 bytes, big-endian) | payload
//   types    : 1 = data, 2 = error (payload is UTF-8 text, session ends)
//
// Pure functions without I/O so they can be unit-tested and fuzzed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
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

struct FrameHeader {
    FrameType type;
    std::uint32_t length;
};

using HeaderBytes = std::array<std::byte, kFrameHeaderSize>;

// Throws ProtocolError when the payload cannot be described in 32 bits.
HeaderBytes encode_header(FrameType type, std::size_t length);

// Throws ProtocolError for an unknown type, OversizeError when length > max_message.
FrameHeader decode_header(std::span<const std::byte, kFrameHeaderSize> bytes,
                          std::size_t max_message);

// Checks an opening whose first byte was NUL; throws ProtocolError if it is not ours.
void check_opening(std::span<const std::byte, kOpeningSize> bytes);
// The peer closed after `got` (< kOpeningSize) bytes of an opening: ProtocolError.
[[noreturn]] void throw_short_opening(std::size_t got);

// Text mode (the seed's client, nc): each line is a message, its '\n'
// included. Throws OversizeError when a line of len bytes, terminator
// included, is over max_message (the terminator is not payload).
void check_text_line(std::size_t len, std::size_t max_message);
// An error reply in text mode: "error: TEXT\n".
std::string text_error_line(std::span<const std::byte> text);

// Big-endian fixed-width fields, copied with memcpy (never a cast).
void put_u32(std::byte* out, std::uint32_t v);
std::uint32_t get_u32(const std::byte* in);
void put_u64(std::byte* out, std::uint64_t v);
std::uint64_t get_u64(const std::byte* in);

inline std::span<const std::byte> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace ipclab
