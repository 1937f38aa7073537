// The UDP transport's wire format, reassembly and credit window: pure code,
// no I/O, so it is unit-tested and fuzzed apart from the sockets (udp.cpp).
//
//   datagram header (32 bytes, big-endian fields), then a data datagram's piece:
//     0  kind     u8   1 hello, 2 welcome, 3 data, 4 credit, 5 end
//     1  type     u8   data: 1 data, 2 error (FrameType); 0 otherwise
//     2  version  u16  1
//     4  session  u32  drawn by the client (random, non-zero); every datagram of the session carries it
//     8  dgram    u32  data and end: this direction's datagram number, 1, 2, 3, ... ; 0 otherwise
//    12  ack      u32  how many of the peer's data and end datagrams the sender has taken in
//    16  message  u32  data: this direction's message number, 1, 2, 3, ... ; 0 otherwise
//    20  index    u32  data: the chunk's index in its message, 0 .. count-1
//    24  count    u32  data: how many chunks the message takes (1 for an empty message)
//    28  total    u32  data: the message's length in bytes;
//                      hello, welcome: the sender's receive window in bytes
//
// A message of n bytes travels as max(1, ceil(n / P)) data datagrams, chunk i
// carrying bytes [i*P, min((i+1)*P, n)), where P = piece_size(W) and W is the
// receiver's window (it knows its own W, so it checks every piece's length).
//
// Loss, duplication and reordering are detected, not recovered: every data
// and end datagram must carry exactly the next dgram number, and within it
// the next message number and chunk index; anything else is a
// ProtocolError and ends the session. On loopback and a LAN the only cause
// of loss is a full receive buffer, which the credit window prevents.
//
// Flow control (credit): a sender keeps at most W bytes of datagrams (each
// costed at its length plus kDatagramOverhead for the kernel's bookkeeping)
// not yet acknowledged. The receiver acknowledges in the ack field of every
// datagram it sends, and with a credit datagram of its own once a quarter
// of W has arrived since its last acknowledgement. W is half the socket's
// receive buffer (SO_RCVBUF as getsockopt reports it), and a piece is at
// most a quarter of W, so a stalled sender always leaves the receiver
// enough unacknowledged bytes to owe it a credit.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/framing.hpp"

namespace ipclab {

inline constexpr std::size_t kDatagramHeaderSize = 32;
inline constexpr std::uint16_t kDatagramVersion = 1;
// The largest datagram either side sends or accepts (IPv4's limit for a UDP payload).
inline constexpr std::size_t kMaxDatagram = 65507;
// What the kernel charges a datagram beyond its bytes (sk_buff, headers), as the window counts it.
inline constexpr std::size_t kDatagramOverhead = 1024;
// No piece above this: a datagram then stays within one 64 KiB kernel allocation.
inline constexpr std::size_t kMaxPiece = 60000;
// The windows a side may advertise: room for a few small messages at
// least; at most 16 MiB, so a forged one cannot make the sender allocate
// a huge cost table.
inline constexpr std::uint32_t kMinWindow = 16 * 1024;
inline constexpr std::uint32_t kMaxWindow = 16u << 20;

enum class DatagramKind : std::uint8_t { hello = 1, welcome = 2, data = 3, credit = 4, end = 5 };

struct DatagramHeader {
    DatagramKind kind = DatagramKind::data;
    FrameType type = FrameType::data;  // data datagrams only
    std::uint32_t session = 0;
    std::uint32_t dgram = 0;
    std::uint32_t ack = 0;
    std::uint32_t message = 0;
    std::uint32_t index = 0;
    std::uint32_t count = 0;
    std::uint32_t total = 0;
};

using DatagramHeaderBytes = std::array<std::byte, kDatagramHeaderSize>;

// Inline, as the framed and queue transports' headers are: every datagram
// passes them (ipc/framing.hpp).
inline DatagramHeaderBytes encode_datagram_header(const DatagramHeader& h) {
    DatagramHeaderBytes out{};
    out[0] = static_cast<std::byte>(h.kind);
    out[1] = h.kind == DatagramKind::data ? static_cast<std::byte>(h.type) : std::byte{0};
    out[2] = static_cast<std::byte>(kDatagramVersion >> 8);
    out[3] = static_cast<std::byte>(kDatagramVersion & 0xff);
    put_u32(out.data() + 4, h.session);
    put_u32(out.data() + 8, h.dgram);
    put_u32(out.data() + 12, h.ack);
    put_u32(out.data() + 16, h.message);
    put_u32(out.data() + 20, h.index);
    put_u32(out.data() + 24, h.count);
    put_u32(out.data() + 28, h.total);
    return out;
}

// The header's seven u32 fields (session .. total), unchecked; d holds a whole header.
inline void read_datagram_numbers(std::span<const std::byte> d, DatagramHeader& h) {
    h.session = get_u32(d.data() + 4);
    h.dgram = get_u32(d.data() + 8);
    h.ack = get_u32(d.data() + 12);
    h.message = get_u32(d.data() + 16);
    h.index = get_u32(d.data() + 20);
    h.count = get_u32(d.data() + 24);
    h.total = get_u32(d.data() + 28);
}

// Every kind, and every error: what decode_datagram_header does for all but
// a well-formed data datagram.
DatagramHeader decode_any_datagram_header(std::span<const std::byte> datagram);

// Throws ProtocolError for a datagram shorter than the header, an unknown
// kind or type, another version, or fields a kind does not use set.
inline DatagramHeader decode_datagram_header(std::span<const std::byte> d) {
    if (d.size() < kDatagramHeaderSize || d[0] != static_cast<std::byte>(DatagramKind::data) ||
        d[2] != static_cast<std::byte>(kDatagramVersion >> 8) ||
        d[3] != static_cast<std::byte>(kDatagramVersion & 0xff) ||
        (d[1] != static_cast<std::byte>(FrameType::data) && d[1] != static_cast<std::byte>(FrameType::error)))
        return decode_any_datagram_header(d);
    DatagramHeader h;
    h.kind = DatagramKind::data;
    h.type = static_cast<FrameType>(d[1]);
    read_datagram_numbers(d, h);
    if (h.session == 0) return decode_any_datagram_header(d);
    return h;
}

// The payload bytes per chunk for a receiver whose window is `window`.
std::size_t piece_size(std::uint32_t window);
// Chunks of a message of `total` bytes with pieces of `piece` bytes.
std::uint32_t chunk_count(std::size_t total, std::size_t piece);
// What a datagram of `len` bytes costs against a window.
inline std::size_t datagram_cost(std::size_t len) { return len + kDatagramOverhead; }

// Checks a receiving side's datagrams against the numbering above and
// reassembles messages. The reassembly grows with the pieces that arrived
// (never to a total announced up front) and is bounded by max_message.
class DatagramAssembler {
public:
    enum class Result { more, message, end };
    DatagramAssembler(std::size_t max_message, std::uint32_t own_window);
    // Feeds one data or end datagram (header decoded, piece = what follows
    // it). Throws ProtocolError (lost, duplicated, reordered, forged or
    // truncated datagram) or OversizeError; the session is then unusable.
    Result feed(const DatagramHeader& h, std::span<const std::byte> piece, Message& msg);
    bool idle() const { return !active_; }
    // Data and end datagrams taken in so far (the ack to send).
    std::uint32_t received() const { return next_dgram_ - 1; }

private:
    std::size_t max_message_;
    std::size_t piece_;
    std::uint32_t next_dgram_ = 1;
    std::uint32_t next_message_ = 1;
    bool active_ = false;
    DatagramHeader current_{};  // the message being reassembled
    std::uint32_t next_index_ = 0;
};

// The sender's side of the credit window: the cost of each datagram sent
// and not yet acknowledged, oldest first.
class SendWindow {
public:
    // Throws ProtocolError for a window outside kMinWindow..kMaxWindow.
    explicit SendWindow(std::uint32_t peer_window);
    std::uint32_t window() const { return window_; }
    // Whether a datagram of `len` bytes may go now.
    bool fits(std::size_t len) const { return in_flight_ + datagram_cost(len) <= window_; }
    // Records datagram number `dgram` (the next after the last) as sent.
    void sent(std::uint32_t dgram, std::size_t len);
    // The peer has taken in `ack` datagrams. Throws ProtocolError when it
    // acknowledges datagrams never sent.
    void acked(std::uint32_t ack);
    std::uint32_t sent_count() const { return last_sent_; }

private:
    struct Entry {
        std::uint32_t dgram;
        std::uint32_t cost;
    };
    std::uint32_t window_;
    std::size_t in_flight_ = 0;
    std::uint32_t last_sent_ = 0;
    std::uint32_t last_acked_ = 0;
    std::vector<Entry> ring_;  // a ring of at most window / kDatagramOverhead + 1 entries
    std::size_t head_ = 0, size_ = 0;
};

}  // namespace ipclab
