// The shm transport's untrusted inputs (ipc/shm_layout.hpp, ipc/shm_ring.hpp):
// the hello record read from the doorbell FIFO, the /dev/shm entry names the
// listing parses, the segment header a client wrote, and above all the ring
// indices and the exchange slot's fields (ipc/shm_slot.hpp) a scribbling
// peer can store into the mapping at any time.
//
//   input: hello (16) | segment header fields (48) | name length (1) | name
//          | ops: opcode (1) | argument (8, big-endian)...
//
// The mapping is modelled on the heap: a SegmentHeader constructed in place
// and two ring data areas of exactly kRing bytes each in their own
// allocations, so ASan sees any access outside a ring. The ring code takes
// its capacity as a trusted constant; a small one makes wrap-around common.
//
// Contract: RingReader/RingWriter throw ProtocolError for an index out of
// range and never touch bytes outside their data area (frame() included,
// whatever the stamps hold); readable() and space() stay within the
// capacity; take()/stage() move at most what was asked; a frame within
// whole_frames_until() lies in the data area and in the room the reader's
// index leaves. ExchangeSlot::take throws ProtocolError for a bad header and
// never delivers more than the slot holds. decode_hello refuses a wrong
// magic or version and is lossless otherwise. parse_segment_entry never
// throws.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/shm_layout.hpp"
#include "ipc/shm_ring.hpp"
#include "ipc/shm_slot.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using namespace ipclab::shm;
using ipclab::fuzz::require;

namespace {

constexpr std::size_t kRing = 256;
constexpr std::size_t kHeaderFields = 48;

// The server's checks before it attaches (shm::claim_segment).
bool segment_header_valid(SegmentHeader& s, pid_t pid, std::uint32_t session) {
    try {
        claim_segment(s, pid, session, "");
        return true;
    } catch (const ProtocolError&) {
        return false;
    }
}

struct Input {
    const std::uint8_t* p;
    std::size_t left;
    // Zero-padded, so every input decodes to something.
    void take(void* out, std::size_t n) {
        std::size_t k = std::min(n, left);
        std::memcpy(out, p, k);
        std::memset(static_cast<char*>(out) + k, 0, n - k);
        p += k;
        left -= k;
    }
};

struct AlignedFree {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{kCacheLine}); }
};
using Block = std::unique_ptr<std::byte[], AlignedFree>;
Block block(std::size_t n) {
    return Block(static_cast<std::byte*>(::operator new[](n, std::align_val_t{kCacheLine})));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input in{data, size};

    // shm shares fifo's hello (ipc/fifo_hello.hpp): a malformed one is refused, a valid one round-trips.
    fifo::HelloBytes hb;
    in.take(hb.data(), hb.size());
    fifo::Hello hello;
    try {
        hello = fifo::decode_hello(hb);
        require(fifo::encode_hello(hello) == hb, "hello round trip");
    } catch (const ProtocolError&) {
        hello = fifo::Hello{get_u32(hb.data() + 8), get_u32(hb.data() + 12)};  // the segment check still runs
    }

    std::uint8_t name_len = 0;
    std::byte fields[kHeaderFields];
    in.take(fields, sizeof fields);
    in.take(&name_len, 1);
    std::string entry(name_len, '\0');
    in.take(entry.data(), entry.size());
    // Odd lengths get our prefix, so the fuzzer spends its time past it.
    if (name_len % 2 == 1) entry = "ipclab-" + std::to_string(::getuid()) + "-" + entry;
    if (auto e = parse_segment_entry(entry)) require(!e->name.empty(), "segment entry without a name");

    // The segment: a real SegmentHeader, its leading fields overwritten as a
    // client (or anyone with the segment open) could write them.
    Block header_block = block(kHeaderBytes);
    auto* seg = new (header_block.get()) SegmentHeader{};
    static_assert(kHeaderFields <= offsetof(SegmentHeader, client_counts));
    std::memcpy(static_cast<void*>(seg), fields, sizeof fields);
    (void)segment_header_valid(*seg, static_cast<pid_t>(hello.pid), hello.serial);

    // After validation the peer can still scribble: ring indices are never trusted.
    Block to_server = block(kRing), to_client = block(kRing);
    seg->to_server.head.store(0);
    seg->to_server.tail.store(0);
    seg->to_client.head.store(0);
    seg->to_client.tail.store(0);
    seg->to_server.data.sleeping.store(0);
    seg->to_client.space.sleeping.store(0);
    RingReader reader(&seg->to_server, to_server.get(), kRing);  // the server reads to_server
    RingWriter writer(&seg->to_client, to_client.get(), kRing);  // and writes to_client
    bool reader_ok = true, writer_ok = true;
    std::vector<std::byte> scratch(2 * kRing, std::byte{0x5a});
    // The slot, in an allocation of its own; the server's view (the client holds the first turn).
    Block slot_block = block(sizeof(SlotShared));
    auto* shared_slot = new (slot_block.get()) SlotShared{};
    ExchangeSlot slot(shared_slot, false);
    bool slot_ok = true;
    std::vector<std::byte> slot_payload(kSlotMaxPayload, std::byte{0x3c});

    while (in.left > 0 && (reader_ok || writer_ok || slot_ok)) {
        std::uint8_t op = 0;
        std::byte argb[8];
        in.take(&op, 1);
        in.take(argb, sizeof argb);
        std::uint64_t arg = get_u64(argb);
        std::size_t small = static_cast<std::size_t>(arg % (2 * kRing + 2));
        const int o = op % 19;
        try {
            switch (o) {
            case 0: seg->to_server.head.store(arg); break;  // the peer's producer index, any value
            case 1: seg->to_server.head.fetch_add(arg % (kRing + 2)); break;  // a plausible one
            case 2: seg->to_client.tail.store(arg); break;  // the peer's consumer index, any value
            case 3: seg->to_client.tail.fetch_add(arg % (kRing + 2)); break;
            case 4:
                if (reader_ok) {
                    std::size_t n = reader.take(std::span<std::byte>(scratch.data(), small));
                    require(n <= small && n <= kRing, "take() moved more than asked");
                }
                break;
            case 5:
                if (reader_ok) {
                    reader.release();
                    require(reader.unreleased() == 0, "release() left bytes unreleased");
                }
                break;
            case 6:
                if (writer_ok) {
                    std::size_t n = writer.stage(std::span<const std::byte>(scratch.data(), small));
                    require(n <= small && writer.unpublished() <= kRing, "stage() overfilled the ring");
                }
                break;
            case 7:
                if (writer_ok) writer.publish();
                break;
            case 8:
                if (reader_ok) require(reader.readable(small) <= kRing, "readable() above capacity");
                break;
            case 9:
                if (writer_ok) require(writer.space(small) <= kRing, "space() above capacity");
                break;
            case 10:  // a pad frame's length, as the peer wrote it
                if (reader_ok) {
                    reader.skip_to_end(static_cast<std::uint32_t>(arg));
                    require(reader.offset() == 0, "skip_to_end() did not end at offset 0");
                }
                break;
            case 12:  // a frame's stamp, where the reader looks for the next frame
                stamp_word(to_server.get() + static_cast<std::size_t>(arg % kRing) / kFrameAlign * kFrameAlign)
                    .store(get_u64(argb) ^ (arg >> 8));
                break;
            case 13:
                if (reader_ok) {
                    reader.end_frame();
                    std::byte* f = reader.frame();
                    require(f == nullptr || (f >= to_server.get() && f + kFrameAlign <= to_server.get() + kRing),
                            "frame() outside the data area");
                }
                break;
            case 14:  // the slot's frame header, as the peer wrote it
                std::memcpy(shared_slot->header.data(), argb, shared_slot->header.size());
                break;
            case 15:  // its stamp (often the next turn's) and ring index
                shared_slot->after.store(arg >> 8);
                shared_slot->stamp.store(arg % 4);
                break;
            case 16:
                if (slot_ok && slot.stamped()) {
                    Message m;
                    slot.take(m, static_cast<std::size_t>(arg % (2 * kSlotMaxPayload)));
                    require(m.payload.size() <= kSlotMaxPayload, "take() delivered more than the slot holds");
                }
                break;
            case 17:
                if (slot_ok && slot.can_put(kSlotMinPayload + small)) {
                    slot.put(FrameType::data, std::span<const std::byte>(slot_payload.data(), kSlotMinPayload + small),
                             writer.published());
                    require(!slot.can_put(kSlotMinPayload), "put() kept the turn");
                }
                break;
            case 18:  // a whole frame the short way (send_small), within the bound for a restart point
                if (writer_ok) {
                    const std::size_t frame = kFrameAlign * (1 + small % 8);
                    if (writer.head() + frame <= writer.whole_frames_until(small)) {
                        require(writer.offset() + frame <= kRing, "whole_frames_until() past the ring's end");
                        std::memset(writer.at_head(), 0x77, frame);
                        writer.publish_whole(frame);
                        require(writer.space(0) <= kRing, "whole_frames_until() past the reader's index");
                    }
                }
                break;
            case 11:
                if (writer_ok && writer.space(kRing - writer.offset()) >= kRing - writer.offset()) {
                    writer.skip_to_end();
                    require(writer.offset() == 0 && writer.unpublished() <= kRing,
                            "skip_to_end() overfilled the ring");
                }
                break;
            }
        } catch (const ProtocolError&) {
            // The session is over for that side (or the slot); the other may still run.
            (o >= 14 && o <= 17 ? slot_ok : o == 4 || o == 5 || o == 8 || o == 10 || o == 13 ? reader_ok : writer_ok) =
                false;
        }
    }
    shared_slot->~SlotShared();
    seg->~SegmentHeader();
    return 0;
}
