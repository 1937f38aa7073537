// The exchange slot: one message's room in the shm segment that the two
// sides take turns with, so a spin-mode ping-pong writes each reply over the
// lines its request was read from, as the raw in-place ping-pong does.
//
// Why: the rings give each direction memory of its own, so a reply always
// goes to lines the peer's CPU last held (reused in place) or to lines fetched
// from L3 (walking). A line a CPU has just read and then writes costs it no
// second trip across; a line the other CPU read last does. Measured with bare
// loops (2 processes pinned to CPUs 1 and 0, 8 interleaved rounds of 50,000
// round trips, AMD EPYC Zen 3 VM, ratio to the raw in-place ping-pong):
// 1 KiB: walking ring 1.75, one frame reused in each ring 1.31, one slot for
// both 1.07; 4 KiB: 1.45, 1.34, 1.04; 16 KiB: 1.73, 1.91, 1.03; 64 KiB:
// 2.18, 2.49, 1.02; 512 B: 1.37, 1.29, 1.24. At 64 B the slot was the
// slowest (1.43 against walking 1.36): small messages keep the ring.
//
// The turn: a side may put one message in the slot when it holds the turn;
// putting one hands the turn to the peer, taking one hands it back. The
// client holds it first. Each message carries the turn number (its stamp,
// stored last) and the sender's ring index at the time: the reader delivers
// it once it has taken every ring frame before that index, and before any
// ring frame after it. The sender marks the ring frames it sends while its
// slot message may be unread (kAfterSlotBit in the type byte), so a reader
// looks at the slot only when it has reason to: at a marked frame, or while
// it waits for a frame and the peer holds the turn.
//
// Untrusted like the rings: the peer may scribble anywhere, so each field is
// read once and checked (length against the slot and --max-message, type,
// ring index against the reader's), and a bad one is a ProtocolError.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/shm_futex.hpp"
#include "ipc/shm_ring.hpp"

namespace ipclab {

// The slot's sizes: every payload that does not fit one line, 65 B up to
// 64 KiB. It started at 1 KiB while 512 B read 1.08x slower through it
// (Paired/shm-spin pinned, 6 interleaved rounds); since the ack left the
// stamp's line (below) the sizes under 1 KiB gain too (20 short interleaved
// rounds, pinned, slot/ring per round: 96 B 0.939, 256 B 0.927, 512 B 0.932,
// 768 B 0.893, 14-20 of 20 rounds below 1; PairedDuplex 96 B-768 B
// 0.87-0.98). 64 B and less stay in the ring, where a frame is its stamp's
// line and one payload line: through the slot 64 B read 1.006 and 1.055 of
// the ring per round (8 of 16 and 6 of 16 below 1), and the bare loops above
// put it behind the walking ring; against the ring's short way (send_small)
// 1.133 at 64 B and 1.237 at 16 B (16 rounds, 1 and 0 below 1). Through the
// ring a 64 KiB message streams in chunks, copied out while copied in, and
// read 0.87-0.97 of the raw ping-pong in some ipc-bench processes but
// 1.3-2.1 in others (7 of 16 in one run of 16 interleaved rounds, the two
// modes even within one process; the raw loop unaffected; an untested guess:
// its 512 KiB walk per direction is more than an L2 holds). Through the slot
// it read 0.78-1.05 in every repetition of the same rounds (per-round median
// 1.05x the ring's good mode). Larger messages keep the ring, where copying
// out while copying in wins (1 MiB 0.78 of raw).
inline constexpr std::size_t kSlotMinPayload = 65;
inline constexpr std::size_t kSlotMaxPayload = 64 * 1024;

// In a ring frame's type byte: this frame was sent while the sender's slot
// message may still have been unread (see above). No FrameType has it; the
// pad frame's type (ipc/shm_layout.hpp) has it always, so a reader checks
// the slot at every pad (one per pass over the ring).
inline constexpr std::uint8_t kAfterSlotBit = 0x80;
static_assert((static_cast<std::uint8_t>(FrameType::data) & kAfterSlotBit) == 0 &&
              (static_cast<std::uint8_t>(FrameType::error) & kAfterSlotBit) == 0);

struct SlotShared {
    // Turn number of the message in the slot; its writer stores it last.
    alignas(kCacheLine) std::atomic<std::uint64_t> stamp{0};
    // The writer's ring index when it wrote the message.
    std::atomic<std::uint64_t> after{0};
    HeaderBytes header{};  // the frame header of ipc/framing.hpp
    // The turn number its reader took last (the writer's ack, see
    // ExchangeSlot::unread). On a line of its own: stored into the stamp's
    // line, the ack took that line from the peer polling it for the reply,
    // which then had to take it back for the reply's stamp, a second trip
    // across per message. Read here only while a stream is in doubt, it
    // stays with the reader. Bare loops (64 B through a shared payload, two
    // processes pinned 1/0, 120 rounds of 20,000 round trips): the ack in
    // the polled line 1.31 of raw against 1.10-1.16 without; in the channel
    // (short interleaved rounds, pinned, new/old per round, 16 rounds each):
    // Paired/shm-spin/1024 0.877 and 0.900 (14 of 16 below 1 both times),
    // 2 KiB 0.936, 4 KiB 0.992 and 0.978, 16 and 64 KiB 0.999-1.013.
    alignas(kCacheLine) std::atomic<std::uint64_t> taken{0};
    alignas(kCacheLine) std::byte payload[kSlotMaxPayload];
};
static_assert(sizeof(SlotShared) == 2 * kCacheLine + kSlotMaxPayload);
static_assert(offsetof(SlotShared, taken) / kCacheLine != offsetof(SlotShared, stamp) / kCacheLine,
              "the ack must not share the polled stamp's line");
static_assert(std::is_standard_layout_v<SlotShared>, "shared between separately compiled peers");

// One side's view of the slot.
class ExchangeSlot {
public:
    ExchangeSlot() = default;
    ExchangeSlot(SlotShared* shared, bool holds_turn) : s_(shared), mine_(holds_turn) {}

    // Whether a payload of n bytes may go in now.
    bool can_put(std::size_t n) const { return mine_ && n >= kSlotMinPayload && n <= kSlotMaxPayload; }

    // Writes the message and stamps it (kRingerStore: the caller's doorbell
    // ring fences after it). ring_index: every ring byte we published before it.
    void put(FrameType type, std::span<const std::byte> payload, std::uint64_t ring_index) {
        if (!can_put(payload.size())) throw std::logic_error("shm slot: put without the turn or off its sizes");
        copy_bytes(s_->payload, payload.data(), payload.size());
        s_->header = encode_header(type, payload.size());
        s_->after.store(ring_index, std::memory_order_relaxed);
        s_->stamp.store(++turn_, kRingerStore);
        mine_ = false;
        unread_ = turn_;
    }

    // Whether our last message may still be unread: ring frames we send now
    // must then carry kAfterSlotBit. Reads the peer's ack only while in doubt.
    bool unread() {
        if (unread_ != 0 && s_->taken.load(std::memory_order_acquire) >= unread_) unread_ = 0;
        return unread_ != 0;
    }
    // The same, without reading the ack: false only when surely read.
    bool maybe_unread() const { return unread_ != 0; }

    // Whether the peer's next message is in the slot (a seq_cst load: it
    // serves the doorbell protocol as a ring's stamp does). Only a peer with
    // the turn (or about to get it, taking ours) can put one there.
    bool stamped() const { return !mine_ && s_->stamp.load(std::memory_order_seq_cst) == turn_ + 1; }

    // The ring index the stamped message follows.
    std::uint64_t after() const { return s_->after.load(std::memory_order_relaxed); }

    // Takes the stamped message into msg and hands the turn to us.
    void take(Message& msg, std::size_t max_message) {
        const HeaderBytes hb = s_->header;
        const FrameHeader h = decode_header(hb, max_message);
        if (h.length > kSlotMaxPayload) throw ProtocolError("shm slot: a length beyond the slot");
        msg.type = h.type;
        size_received(msg.payload, h.length);
        copy_received(msg.payload.data(), s_->payload, h.length);
        s_->taken.store(++turn_, std::memory_order_release);
        mine_ = true;
        unread_ = 0;  // the peer held the turn: it had taken ours
    }

private:
    SlotShared* s_ = nullptr;
    std::uint64_t turn_ = 0;    // messages through the slot so far, both ways
    bool mine_ = false;         // we hold the turn (else the peer does, or will once it takes ours)
    std::uint64_t unread_ = 0;  // our message's turn number while it may be unread
};

}  // namespace ipclab
