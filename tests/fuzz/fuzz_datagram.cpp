// The udp transport's datagram codec, reassembly and credit window
// (ipc/datagram.hpp): a sequence of datagrams as one session's receiver
// takes them.
//
//   input: max_message selector (1 byte) | window selector (1 byte)
//          | records: length (u16 big-endian) | that many bytes (one datagram)
//
// Contract: decode_datagram_header throws ProtocolError only, and what it
// accepts re-encodes to the same header bytes. Data and end datagrams go to
// one DatagramAssembler, whose feed() returns more/message/end or throws
// ProtocolError (OversizeError included), after which it is not used; a
// message holds at most max_message bytes and its storage never grows past
// that; received() counts exactly the datagrams taken. Every ack goes to a
// SendWindow, which throws ProtocolError only.
#include <algorithm>
#include <vector>

#include "ipc/datagram.hpp"
#include "ipc/error.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t max_message = ipclab::fuzz::pick_max_message(data[0]);
    static constexpr std::uint32_t kWindows[] = {kMinWindow, kMinWindow + 1, 65536, 212992, kMaxWindow};
    const std::uint32_t window = kWindows[data[1] % (sizeof kWindows / sizeof kWindows[0])];
    const auto* bytes = reinterpret_cast<const std::byte*>(data);
    std::size_t at = 2;
    DatagramAssembler assembler(max_message, window);
    SendWindow sender(window);
    for (std::uint32_t i = 1; i <= 64 && sender.fits(1); ++i) sender.sent(i, 1);  // datagrams the peer may ack
    Message msg;
    std::uint32_t taken = 0;
    bool usable = true;
    while (at + 2 <= size) {
        std::size_t len = std::min<std::size_t>((data[at] << 8) | data[at + 1], size - at - 2);
        std::span<const std::byte> d(bytes + at + 2, len);
        at += 2 + len;
        DatagramHeader h;
        try {
            h = decode_datagram_header(d);
        } catch (const ProtocolError&) {
            continue;
        }
        auto again = encode_datagram_header(h);
        require(std::equal(again.begin(), again.end(), d.begin()), "header round trip");
        try {
            sender.acked(h.ack);
        } catch (const ProtocolError&) {
        }
        if (!usable || (h.kind != DatagramKind::data && h.kind != DatagramKind::end)) continue;
        try {
            auto r = assembler.feed(h, d.subspan(kDatagramHeaderSize), msg);
            ++taken;
            require(msg.payload.size() <= max_message, "message over max_message");
            require(msg.payload.capacity() <= max_message, "storage past the limit");
            require((r == DatagramAssembler::Result::more) != assembler.idle(), "idle() disagrees with the result");
            require(assembler.received() == taken, "received() differs from the datagrams taken");
        } catch (const ProtocolError&) {
            usable = false;
        }
    }
    return 0;
}
