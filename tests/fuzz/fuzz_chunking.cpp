// The queue transports' chunk codec and rendezvous records (ipc/chunking.hpp):
// a sequence of queue messages fed to one ChunkAssembler, each also tried as
// a hello and a welcome, and a split/reassemble round trip.
//
//   input: max_message selector (1 byte) | max_chunk selector (1 byte)
//          | records: length (u16 big-endian) | that many bytes (one queue message)
//
// Contract: feed() returns more/message/end or throws ProtocolError (or
// OversizeError, a ProtocolError) after which the assembler is not used; a
// message holds at most max_message bytes; `end` and `message` leave it idle,
// `more` does not. decode_hello/decode_welcome throw ProtocolError only and
// what they accept re-encodes to the same bytes. Whatever ChunkSplitter cuts,
// ChunkAssembler puts back together unchanged.
#include <algorithm>
#include <cstring>
#include <vector>

#include "ipc/chunking.hpp"
#include "ipc/error.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

namespace {

void try_records(std::span<const std::byte> b) {
    try {
        Hello h = decode_hello(b);
        require(b.size() == kHelloSize && h.pid > 0, "hello accepted with a bad size or pid");
        auto again = encode_hello(h);
        require(std::equal(again.begin(), again.end(), b.begin()), "hello round trip");
    } catch (const ProtocolError&) {
    }
    try {
        pid_t pid = decode_welcome(b);
        require(b.size() == kWelcomeSize && pid > 0, "welcome accepted with a bad size or pid");
        auto again = encode_welcome(pid);
        require(std::equal(again.begin(), again.end(), b.begin()), "welcome round trip");
    } catch (const ProtocolError&) {
    }
}

void round_trip(std::span<const std::byte> payload, std::size_t max_chunk) {
    ChunkSplitter split(FrameType::error, payload, max_chunk);
    ChunkAssembler join(payload.size());
    std::vector<std::byte> buf(max_chunk);
    Message msg;
    std::size_t chunks = 0;
    ChunkAssembler::Result r = ChunkAssembler::Result::more;
    while (!split.done()) {
        std::size_t len = split.next(buf);
        require(len <= max_chunk, "chunk longer than max_chunk");
        require(r == ChunkAssembler::Result::more, "message complete before the last chunk");
        r = join.feed(std::span<const std::byte>(buf.data(), len), msg);
        ++chunks;
    }
    require(r == ChunkAssembler::Result::message && join.idle(), "split message not reassembled");
    require(chunks == split.count(), "count() differs from the chunks cut");
    require(msg.type == FrameType::error, "type lost");
    require(msg.payload.size() == payload.size() &&
                std::equal(payload.begin(), payload.end(), msg.payload.begin()),
            "payload changed on the way");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::size_t max_message = fuzz::pick_max_message(data[0]);
    std::size_t max_chunk = kChunkHeaderSize + 1 + std::size_t{data[1]} * 33;  // 13 .. 8428
    auto all = std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size);

    ChunkAssembler assembler(max_message);
    Message msg;
    bool broken = false;
    std::size_t at = 2;
    while (at + 2 <= size) {
        std::size_t len = std::size_t{data[at]} << 8 | data[at + 1];
        at += 2;
        len = std::min(len, size - at);
        auto chunk = all.subspan(at, len);
        at += len;
        try_records(chunk);
        if (broken) continue;
        try {
            switch (assembler.feed(chunk, msg)) {
            case ChunkAssembler::Result::more:
                require(!assembler.idle(), "more but idle");
                require(msg.payload.size() <= max_message, "partial message above max_message");
                break;
            case ChunkAssembler::Result::message:
                require(assembler.idle(), "message but not idle");
                require(msg.payload.size() <= max_message, "message above max_message");
                break;
            case ChunkAssembler::Result::end:
                require(assembler.idle(), "end but not idle");
                break;
            }
        } catch (const ProtocolError&) {  // OversizeError included
            broken = true;  // the session is unusable: no further feed
        }
    }
    round_trip(all.subspan(2), max_chunk);
    return 0;
}
