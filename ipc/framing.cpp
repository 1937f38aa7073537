#include "ipc/framing.hpp"

#include <cstdint>
#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

void throw_unframeable(std::size_t length) {
    throw ProtocolError("message of " + std::to_string(length) +
                        " bytes does not fit a frame (4 GiB - 1 at most)");
}

void throw_bad_header(std::uint8_t type, std::uint32_t length, std::size_t max_message) {
    if (type != static_cast<std::uint8_t>(FrameType::data) &&
        type != static_cast<std::uint8_t>(FrameType::error))
        throw ProtocolError("malformed frame: unknown type " + std::to_string(type));
    throw OversizeError("message of " + std::to_string(length) +
                        " bytes exceeds the receiver's limit of " + std::to_string(max_message) +
                        " bytes");
}

namespace {

// The same seven bytes start every version; the eighth is the version.
constexpr std::size_t kVersionAt = kOpeningSize - 1;

constexpr std::array<std::byte, kOpeningV2Size> opening_v2(SessionReply r) {
    std::array<std::byte, kOpeningV2Size> o{};
    for (std::size_t i = 0; i < kVersionAt; ++i) o[i] = kFramedOpening[i];
    o[kVersionAt] = std::byte{2};
    o[kOpeningSize] = static_cast<std::byte>(r);
    return o;
}

constexpr std::array<std::byte, kOpeningV2Size> kOpeningAck = opening_v2(SessionReply::ack);
constexpr std::array<std::byte, kOpeningV2Size> kOpeningEcho = opening_v2(SessionReply::echo);
constexpr std::array<std::byte, kOpeningV2Size> kOpeningSink = opening_v2(SessionReply::sink);

// The opening's first kVersionAt bytes as one number, little end first.
constexpr std::uint64_t magic_of(const std::byte* b) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < kVersionAt; ++i) v |= static_cast<std::uint64_t>(b[i]) << (8 * i);
    return v;
}

}  // namespace

IPCLAB_SESSION_PATH Opening parse_opening(std::span<const std::byte> bytes) {
    // Nothing is decided before the eight bytes every version has (as version
    // 1 always did), so a short or foreign opening meets one rule.
    if (bytes.size() < kOpeningSize) return {};
    // Against a constant in the code: reading kFramedOpening's bytes was a
    // page of .rodata that every fresh session child faulted in for this.
    constexpr std::uint64_t kMagic = magic_of(kFramedOpening.data());
    if (magic_of(bytes.data()) != kMagic)
        throw ProtocolError("malformed opening: not an ipclab framed session");
    auto version = static_cast<unsigned>(bytes[kVersionAt]);
    if (version == 1) return {kOpeningSize, SessionReply::server_default};
    if (version != 2)
        throw ProtocolError("malformed opening: version " + std::to_string(version) +
                            " (this side speaks versions 1 and 2)");
    if (bytes.size() < kOpeningV2Size) return {};
    auto mode = static_cast<unsigned>(bytes[kOpeningSize]);
    if (mode < 1 || mode > 3)
        throw ProtocolError("malformed opening: unknown reply mode " + std::to_string(mode) +
                            " (1 ack, 2 echo, 3 sink)");
    return {kOpeningV2Size, static_cast<SessionReply>(mode)};
}

std::span<const std::byte> opening_bytes(SessionReply reply) {
    switch (reply) {
        case SessionReply::ack: return kOpeningAck;
        case SessionReply::echo: return kOpeningEcho;
        case SessionReply::sink: return kOpeningSink;
        case SessionReply::server_default: break;
    }
    return kFramedOpening;
}

void throw_short_opening(std::size_t got) {
    throw ProtocolError("malformed opening: peer closed after " + std::to_string(got) + " bytes");
}

void check_text_line(std::size_t len, std::size_t max_message) {
    if (len > max_message + 1)
        throw OversizeError("line of more than " + std::to_string(max_message) +
                            " bytes exceeds the receiver's limit");
}

std::string text_error_line(std::span<const std::byte> text) {
    std::string line = "error: ";
    line.append(reinterpret_cast<const char*>(text.data()), text.size());
    line += '\n';
    return line;
}

}  // namespace ipclab
