// The framed stream reader: open_stream_session (a server's first bytes on a
// socket: opening, then frames) and make_framed_channel over a pipe (the
// fifo transport, StreamReader polling before reads) or a socket.
//
//   input: mode (1 byte) | max_message selector (1 byte) | bytes on the wire
//
// Contract (ipc/channel.hpp, ipc/stream_channel.hpp): receive() returns whole
// messages of at most max_message bytes, false on a clean EOF between
// messages, or throws ProtocolError/OversizeError/PeerGone; open_stream_session
// throws ProtocolError for a bad opening. With every byte already written and
// the writer closed nothing may wait, so TimeoutError is a bug here too.
#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/stream_channel.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/stream_feed.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    unsigned mode = data[0] % 3;
    Limits limits;
    limits.max_message = fuzz::pick_max_message(data[1]);
    limits.timeout_ms = 2000;
    const std::uint8_t* wire = data + 2;
    std::size_t n = size - 2;

    bool socket = mode != 1;
    auto fd = fuzz::fed_descriptor(wire, n, socket);
    if (!fd) return -1;  // larger than the kernel buffer: not a useful input

    std::size_t consumed = 0;  // wire bytes accounted for by whole messages
    try {
        std::unique_ptr<Channel> ch;
        if (mode == 0) {
            bool framed = n > 0 && wire[0] == 0;
            ch = open_stream_session(std::move(*fd), limits);
            require(ch->is_text() == !framed, "framed/text choice does not follow the first byte");
            if (framed) {
                auto want = fuzz::expected_opening(wire, n);
                require(want.valid, "a bad opening accepted");
                require(static_cast<std::uint8_t>(ch->asked_reply()) == want.mode, "the reply mode read wrongly");
                consumed = want.size;
            }
        } else {
            ch = make_framed_channel(StreamFds{std::move(*fd), Fd{}, socket}, limits, false);
        }
        Message msg;
        for (std::size_t i = 0; i <= n; ++i) {
            if (!ch->receive(msg)) {
                require(consumed == n, "clean EOF reported with bytes left over");
                return 0;
            }
            if (ch->is_text()) {
                require(msg.payload.size() <= limits.max_message + 1, "text line above max_message");
                consumed += msg.payload.size();
            } else {
                require(msg.type == FrameType::data || msg.type == FrameType::error, "frame type");
                require(msg.payload.size() <= limits.max_message, "frame above max_message");
                consumed += kFrameHeaderSize + msg.payload.size();
            }
            require(consumed <= n, "more bytes received than were sent");
        }
        fuzz::contract_broken("receive() kept returning messages past the input");
    } catch (const ProtocolError&) {  // OversizeError included
    } catch (const PeerGone&) {
    }
    return 0;
}
