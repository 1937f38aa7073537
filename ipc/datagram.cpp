#include "ipc/datagram.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "ipc/error.hpp"

namespace ipclab {

namespace {

std::string n(std::size_t v) { return std::to_string(v); }

}  // namespace

DatagramHeader decode_any_datagram_header(std::span<const std::byte> d) {
    if (d.size() < kDatagramHeaderSize)
        throw ProtocolError("truncated datagram: " + n(d.size()) + " bytes, shorter than its " +
                            n(kDatagramHeaderSize) + "-byte header");
    auto kind = static_cast<std::uint8_t>(d[0]);
    auto type = static_cast<std::uint8_t>(d[1]);
    auto version = static_cast<unsigned>(static_cast<std::uint8_t>(d[2])) << 8 | static_cast<std::uint8_t>(d[3]);
    if (version != kDatagramVersion)
        throw ProtocolError("datagram of protocol version " + n(version) + "; this build speaks version " +
                            n(kDatagramVersion));
    if (kind < 1 || kind > 5) throw ProtocolError("malformed datagram: unknown kind " + n(kind));
    DatagramHeader h;
    h.kind = static_cast<DatagramKind>(kind);
    read_datagram_numbers(d, h);
    if (h.session == 0) throw ProtocolError("malformed datagram: session 0");
    if (h.kind == DatagramKind::data) {
        if (type != static_cast<std::uint8_t>(FrameType::data) && type != static_cast<std::uint8_t>(FrameType::error))
            throw ProtocolError("malformed datagram: unknown message type " + n(type));
        h.type = static_cast<FrameType>(type);
        return h;
    }
    bool numbered = h.kind == DatagramKind::end;
    bool windowed = h.kind == DatagramKind::hello || h.kind == DatagramKind::welcome;
    if (type != 0 || h.message != 0 || h.index != 0 || h.count != 0 || (!windowed && h.total != 0) ||
        (!numbered && h.dgram != 0) || (h.kind == DatagramKind::hello && h.ack != 0) ||
        d.size() != kDatagramHeaderSize)
        throw ProtocolError("malformed datagram: a " + std::string(h.kind == DatagramKind::hello     ? "hello"
                                                                   : h.kind == DatagramKind::welcome ? "welcome"
                                                                   : h.kind == DatagramKind::credit  ? "credit"
                                                                                                     : "end") +
                            " with fields or bytes it does not use");
    return h;
}

std::size_t piece_size(std::uint32_t window) {
    std::size_t quarter = std::max(window, kMinWindow) / 4;
    return std::min(kMaxPiece, quarter - kDatagramHeaderSize - kDatagramOverhead);
}

std::uint32_t chunk_count(std::size_t total, std::size_t piece) {
    return total == 0 ? 1 : static_cast<std::uint32_t>((total + piece - 1) / piece);
}

DatagramAssembler::DatagramAssembler(std::size_t max_message, std::uint32_t own_window)
    : max_message_(max_message), piece_(piece_size(own_window)) {}

DatagramAssembler::Result DatagramAssembler::feed(const DatagramHeader& h, std::span<const std::byte> piece,
                                                  Message& msg) {
    if (h.dgram != next_dgram_)
        throw ProtocolError(h.dgram < next_dgram_
                                ? "datagram " + n(h.dgram) + " arrived again or late (" + n(next_dgram_) +
                                      " was due): duplicated or reordered"
                                : "datagrams " + n(next_dgram_) + ".." + n(h.dgram - 1) +
                                      " missing (" + n(h.dgram) + " arrived): lost or reordered");
    ++next_dgram_;
    if (h.kind == DatagramKind::end) {
        if (active_)
            throw ProtocolError("end of session after " + n(msg.payload.size()) + " of " + n(current_.total) +
                                " bytes of a message");
        return Result::end;
    }
    if (!active_) {
        if (h.message != next_message_ || h.index != 0)
            throw ProtocolError("message " + n(h.message) + " chunk " + n(h.index) + " where message " +
                                n(next_message_) + " chunk 0 was due");
        if (h.total > max_message_)
            throw OversizeError("message of " + n(h.total) + " bytes exceeds the receiver's limit of " +
                                n(max_message_) + " bytes");
        if (h.count != chunk_count(h.total, piece_))
            throw ProtocolError("malformed datagram: " + n(h.count) + " chunks for " + n(h.total) +
                                " bytes in pieces of " + n(piece_));
        msg.type = h.type;
        current_ = h;
        next_index_ = 0;
        if (h.count == 1) {  // the whole message (total <= piece_): no reassembly
            if (piece.size() != h.total)
                throw ProtocolError("malformed datagram: chunk 0 carries " + n(piece.size()) + " bytes where " +
                                    n(h.total) + " were due (truncated or overlong)");
            size_received(msg.payload, h.total);
            if (h.total != 0) std::memcpy(msg.payload.data(), piece.data(), h.total);
            ++next_message_;
            return Result::message;
        }
        msg.payload.clear();
        active_ = true;
    } else if (h.message != current_.message || h.index != next_index_ || h.count != current_.count ||
               h.total != current_.total || h.type != current_.type) {
        throw ProtocolError("message " + n(h.message) + " chunk " + n(h.index) + " of " + n(h.count) +
                            " where message " + n(current_.message) + " chunk " + n(next_index_) + " of " +
                            n(current_.count) + " was due");
    }
    std::size_t have = msg.payload.size();
    std::size_t due = std::min(piece_, std::size_t{current_.total} - have);
    if (piece.size() != due)
        throw ProtocolError("malformed datagram: chunk " + n(h.index) + " carries " + n(piece.size()) +
                            " bytes where " + n(due) + " were due (truncated or overlong)");
    // Grow geometrically with what arrived, never past the announced total.
    if (have + due > msg.payload.capacity())
        msg.payload.reserve(std::min<std::size_t>(current_.total, std::max(have + due, 2 * msg.payload.capacity())));
    append_bytes(msg.payload, piece);
    if (++next_index_ < current_.count) return Result::more;
    active_ = false;
    ++next_message_;
    return Result::message;
}

SendWindow::SendWindow(std::uint32_t peer_window) : window_(peer_window) {
    if (peer_window < kMinWindow || peer_window > kMaxWindow)
        throw ProtocolError("the peer's receive window of " + n(peer_window) + " bytes is outside " +
                            n(kMinWindow) + ".." + n(kMaxWindow));
    // Every datagram costs at least kDatagramOverhead, so this many are never outgrown.
    ring_.resize(window_ / kDatagramOverhead + 1);
}

void SendWindow::sent(std::uint32_t dgram, std::size_t len) {
    if (size_ == ring_.size()) throw std::logic_error("SendWindow: datagram sent beyond the window");
    ring_[(head_ + size_) % ring_.size()] = {dgram, static_cast<std::uint32_t>(datagram_cost(len))};
    ++size_;
    in_flight_ += datagram_cost(len);
    last_sent_ = dgram;
}

void SendWindow::acked(std::uint32_t ack) {
    if (ack > last_sent_)
        throw ProtocolError("the peer acknowledges datagram " + n(ack) + " of only " + n(last_sent_) + " sent");
    if (ack <= last_acked_) return;  // an older credit, overtaken by a newer one
    last_acked_ = ack;
    while (size_ > 0 && ring_[head_].dgram <= ack) {
        in_flight_ -= ring_[head_].cost;
        head_ = (head_ + 1) % ring_.size();
        --size_;
    }
}

}  // namespace ipclab
