// Frame header decoder and opening check (ipc/framing.hpp).
//
// Contract: decode_header throws ProtocolError for an unknown type and
// OversizeError when length > max_message, nothing else; what it returns
// re-encodes to the same five bytes. parse_opening takes a whole opening of
// either version (and what it takes is opening_bytes of what it says), asks
// for more bytes only while a valid opening could still follow, and throws
// ProtocolError for anything else.
#include <algorithm>
#include <cstring>

#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t max_message = fuzz::pick_max_message(data[0]);
    // Byte 0 also chooses an unbounded limit now and then: the 4 GiB - 1 edge.
    if (data[0] >= 0xF0) max_message = kMaxWireLength;
    auto bytes = reinterpret_cast<const std::byte*>(data + 1);
    std::size_t n = size - 1;

    if (n >= kFrameHeaderSize) {
        std::span<const std::byte, kFrameHeaderSize> hb(bytes, kFrameHeaderSize);
        try {
            FrameHeader h = decode_header(hb, max_message);
            require(h.type == FrameType::data || h.type == FrameType::error, "type out of range");
            require(h.length <= max_message, "length above max_message accepted");
            HeaderBytes again = encode_header(h.type, h.length);
            require(std::equal(again.begin(), again.end(), hb.begin()), "header round trip");
        } catch (const OversizeError&) {
            require(get_u32(bytes + 1) > max_message, "OversizeError for a length within the limit");
        } catch (const ProtocolError&) {
            auto t = static_cast<std::uint8_t>(bytes[0]);
            require(t != 1 && t != 2, "ProtocolError for a known type");
        }
    }
    if (n > 0 && bytes[0] == std::byte{0}) {
        auto want = fuzz::expected_opening(data + 1, n);
        try {
            Opening o = parse_opening({bytes, n});
            if (o.size == 0) {
                require(!want.valid && (n < kOpeningSize || (n == kOpeningSize && data[8] == 2)),
                        "more bytes asked for where the opening is decided");
            } else {
                require(want.valid && o.size == want.size, "an opening accepted or sized wrongly");
                require(static_cast<std::uint8_t>(o.reply) == want.mode, "the reply mode read wrongly");
                auto again = opening_bytes(o.reply);
                require(again.size() == o.size && std::equal(again.begin(), again.end(), bytes),
                        "opening round trip");
            }
        } catch (const ProtocolError&) {
            require(!want.valid, "our opening refused");
        }
    }
    if (n >= 8) {
        std::byte out[8];
        put_u64(out, get_u64(bytes));
        require(std::memcmp(out, bytes, 8) == 0, "u64 round trip");
    }
    return 0;
}
