// The text-line reader: TextChannel, reached through open_stream_session on a
// socket whose first byte is not NUL (plain line clients such as nc).
//
//   input: max_message selector (1 byte) | bytes on the wire (first one not NUL)
//
// Contract (ipc/stream_channel.cpp): a message is one line including its
// '\n' (a last line without one counts too), at most max_message bytes plus
// the terminator; a longer line is an OversizeError; receive() returns false
// at EOF between lines. So when the session ends cleanly the lines put back
// together are exactly the bytes sent.
#include <cstring>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/stream_channel.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/stream_feed.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2 || data[1] == 0) return 0;  // a NUL first byte selects the framed reader
    Limits limits;
    limits.max_message = fuzz::pick_max_message(data[0]);
    limits.timeout_ms = 2000;
    const std::uint8_t* wire = data + 1;
    std::size_t n = size - 1;

    auto fd = fuzz::fed_descriptor(wire, n, true);
    if (!fd) return -1;

    std::vector<std::uint8_t> seen;
    try {
        auto ch = open_stream_session(std::move(*fd), limits);
        require(ch->is_text(), "a line session was not given the text channel");
        Message msg;
        for (std::size_t i = 0; i <= n; ++i) {
            if (!ch->receive(msg)) {
                require(seen.size() == n && std::memcmp(seen.data(), wire, n) == 0,
                        "the lines do not add up to the bytes sent");
                return 0;
            }
            const auto& p = msg.payload;
            require(msg.type == FrameType::data, "text line not typed data");
            require(!p.empty(), "empty text message");
            require(p.size() <= limits.max_message + 1, "line above max_message");
            const void* nl = std::memchr(p.data(), '\n', p.size());
            require(nl == nullptr || nl == p.data() + p.size() - 1, "a line holds a '\\n' before its end");
            if (nl == nullptr) {
                require(seen.size() + p.size() == n, "an unterminated line that is not the last");
                // No terminator to discount: every byte is payload.
                require(p.size() <= limits.max_message, "unterminated last line above max_message");
            }
            auto b = reinterpret_cast<const std::uint8_t*>(p.data());
            seen.insert(seen.end(), b, b + p.size());
            require(seen.size() <= n, "more bytes received than were sent");
        }
        fuzz::contract_broken("receive() kept returning lines past the input");
    } catch (const OversizeError&) {
    } catch (const PeerGone&) {
    }
    return 0;
}
