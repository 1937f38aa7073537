#include "ipc/chunking.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ipc/error.hpp"

namespace ipclab {

namespace {

bool known_type(std::uint8_t t) {
    return t == static_cast<std::uint8_t>(FrameType::data) ||
           t == static_cast<std::uint8_t>(FrameType::error);
}

std::string n(std::size_t v) { return std::to_string(v); }

}  // namespace

void throw_bad_chunk_header(std::span<const std::byte> chunk) {
    if (chunk.size() < kChunkHeaderSize)
        throw ProtocolError("malformed chunk: " + n(chunk.size()) + " bytes, shorter than its " +
                            n(kChunkHeaderSize) + "-byte header");
    auto type = static_cast<std::uint8_t>(chunk[0]);
    auto flags = static_cast<std::uint8_t>(chunk[1]);
    if (!known_type(type)) throw ProtocolError("malformed chunk: unknown type " + n(type));
    if ((flags & ~(kChunkFirst | kChunkLast | kChunkEnd)) != 0)
        throw ProtocolError("malformed chunk: unknown flags " + n(flags));
    throw ProtocolError("malformed chunk: reserved bytes are not zero");
}

void encode_end_marker(std::byte* out) {
    ChunkHeader h;
    h.flags = kChunkEnd;
    encode_chunk_header(out, h);
}

ChunkSplitter::ChunkSplitter(FrameType type, std::span<const std::byte> payload,
                             std::size_t max_chunk)
    : type_(type), payload_(payload), capacity_(max_chunk > kChunkHeaderSize ? max_chunk - kChunkHeaderSize : 0) {
    if (capacity_ == 0)
        throw std::invalid_argument("queue messages of " + n(max_chunk) +
                                    " bytes leave no room for a chunk payload");
    if (payload.size() > kMaxWireLength)
        throw ProtocolError("message of " + n(payload.size()) +
                            " bytes does not fit a chunk header (4 GiB - 1 at most)");
}

std::size_t ChunkSplitter::count() const {
    return payload_.empty() ? 1 : (payload_.size() + capacity_ - 1) / capacity_;
}

std::size_t ChunkSplitter::next(std::span<std::byte> out) {
    if (done_) throw std::logic_error("ChunkSplitter::next after the last chunk");
    std::size_t piece = std::min(capacity_, payload_.size() - sent_);
    if (out.size() < kChunkHeaderSize + piece)
        throw std::invalid_argument("chunk buffer of " + n(out.size()) + " bytes is too small");
    ChunkHeader h;
    h.type = type_;
    h.flags = static_cast<std::uint8_t>((sent_ == 0 ? kChunkFirst : 0) |
                                        (sent_ + piece == payload_.size() ? kChunkLast : 0));
    h.total = static_cast<std::uint32_t>(payload_.size());
    h.offset = static_cast<std::uint32_t>(sent_);
    encode_chunk_header(out.data(), h);
    if (piece > 0) std::memcpy(out.data() + kChunkHeaderSize, payload_.data() + sent_, piece);
    sent_ += piece;
    done_ = sent_ == payload_.size();
    return kChunkHeaderSize + piece;
}

ChunkAssembler::Result ChunkAssembler::feed_any(std::span<const std::byte> chunk, Message& msg) {
    ChunkHeader h = decode_chunk_header(chunk);
    auto piece = chunk.subspan(kChunkHeaderSize);
    if ((h.flags & kChunkEnd) != 0) {
        if (h.flags != kChunkEnd || h.type != FrameType::data || h.total != 0 || h.offset != 0 ||
            !piece.empty())
            throw ProtocolError("malformed end-of-session marker");
        if (active_)
            throw ProtocolError("end of session after " + n(msg.payload.size()) + " of " +
                                n(total_) + " bytes of a message");
        return Result::end;
    }
    if (!active_) {
        if ((h.flags & kChunkFirst) == 0 || h.offset != 0)
            throw ProtocolError("malformed chunk: a message starts with a chunk at offset " +
                                n(h.offset) + (h.flags & kChunkFirst ? "" : " not flagged first"));
        if (h.total > max_message_)
            throw OversizeError("message of " + n(h.total) + " bytes exceeds the receiver's limit of " +
                                n(max_message_) + " bytes");
        msg.type = h.type;
        msg.payload.clear();
        msg.payload.reserve(h.total);
        type_ = h.type;
        total_ = h.total;
        active_ = true;
    } else {
        if ((h.flags & kChunkFirst) != 0)
            throw ProtocolError("malformed chunk: a new message starts after " +
                                n(msg.payload.size()) + " of " + n(total_) + " bytes");
        if (h.type != type_ || h.total != total_)
            throw ProtocolError("malformed chunk: type or total length changed mid-message");
        if (h.offset != msg.payload.size())
            throw ProtocolError("malformed chunk: offset " + n(h.offset) + " where " +
                                n(msg.payload.size()) + " was due (reordered or duplicated)");
    }
    std::size_t have = msg.payload.size();
    if (piece.size() > total_ - have)
        throw ProtocolError("malformed chunk: " + n(piece.size()) + " bytes at offset " + n(have) +
                            " overrun the " + n(total_) + "-byte message");
    bool completes = have + piece.size() == total_;
    bool last = (h.flags & kChunkLast) != 0;
    if (last != completes)
        throw ProtocolError(last ? "malformed chunk: last chunk leaves the message short at " +
                                       n(have + piece.size()) + " of " + n(total_) + " bytes"
                                 : "malformed chunk: the message is complete but the chunk is "
                                   "not flagged last");
    append_bytes(msg.payload, piece);
    if (!last) return Result::more;
    active_ = false;
    return Result::message;
}

std::array<std::byte, kHelloSize> encode_hello(const Hello& h) {
    std::array<std::byte, kHelloSize> out{};
    put_u32(out.data(), kHelloMagic);
    put_u32(out.data() + 4, kQueueProtocolVersion);
    put_u32(out.data() + 8, static_cast<std::uint32_t>(h.pid));
    put_u32(out.data() + 12, h.id_a);
    put_u32(out.data() + 16, h.id_b);
    return out;
}

namespace {

pid_t check_record(std::span<const std::byte> bytes, std::size_t size, std::uint32_t magic,
                   const char* what) {
    if (bytes.size() != size)
        throw ProtocolError(std::string("malformed ") + what + ": " + n(bytes.size()) +
                            " bytes instead of " + n(size));
    if (get_u32(bytes.data()) != magic)
        throw ProtocolError(std::string("malformed ") + what + ": bad magic");
    std::uint32_t version = get_u32(bytes.data() + 4);
    if (version != kQueueProtocolVersion)
        throw ProtocolError(std::string(what) + " of protocol version " + n(version) +
                            "; this build speaks version " + n(kQueueProtocolVersion));
    std::uint32_t pid = get_u32(bytes.data() + 8);
    if (pid == 0 || pid > 0x7fffffffu)
        throw ProtocolError(std::string("malformed ") + what + ": pid " + n(pid));
    return static_cast<pid_t>(pid);
}

}  // namespace

Hello decode_hello(std::span<const std::byte> bytes) {
    Hello h;
    h.pid = check_record(bytes, kHelloSize, kHelloMagic, "hello");
    h.id_a = get_u32(bytes.data() + 12);
    h.id_b = get_u32(bytes.data() + 16);
    return h;
}

std::array<std::byte, kWelcomeSize> encode_welcome(pid_t pid) {
    std::array<std::byte, kWelcomeSize> out{};
    put_u32(out.data(), kWelcomeMagic);
    put_u32(out.data() + 4, kQueueProtocolVersion);
    put_u32(out.data() + 8, static_cast<std::uint32_t>(pid));
    return out;
}

pid_t decode_welcome(std::span<const std::byte> bytes) {
    return check_record(bytes, kWelcomeSize, kWelcomeMagic, "welcome");
}

}  // namespace ipclab
