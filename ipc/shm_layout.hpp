// The shm transport's shared segment and rendezvous record.
//
// Segment "/ipclab-UID-TAG-NAME.PID.N" (PID: the client that creates it, N: a
// random session number), mode 0600, kSegmentSize bytes:
//   [0, 4096)                        SegmentHeader (below)
//   [4096, 4096 + kRingCapacity)     client -> server ring data
//   [.., + kRingCapacity)            server -> client ring data
//   [.., + kSlotBytes)               the exchange slot (ipc/shm_slot.hpp)
// Messages in each ring, one frame each, every frame starting on a
// kFrameAlign (16-byte) boundary: the ring's stamp (8 bytes, see
// ipc/shm_ring.hpp), the frame header of ipc/framing.hpp (type, u32
// big-endian length), 3 zero bytes, then the payload: at kFramePrefix when
// the whole frame fits the rest of that cache line, else on the next line
// (see payload_offset). A frame
// whose payload ends before the ring's end within kPublishChunk bytes of its
// start is stamped whole; any other streams its payload (wrapping) in chunks
// behind the head index once the header is stamped. A pad frame (type
// kPadFrame, length = bytes after its 16 up to the ring's end) sends the
// reader to the ring's start (see kRestartAfter).
//
// Rendezvous: the server owns a FIFO, private_dir()/NAME.shm; a client writes
// one hello (ipc/fifo_hello.hpp: its pid and N) naming its segment, then
// sleeps on SegmentHeader::attach until the server's session child has attached.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "ipc/framing.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/shm_ring.hpp"
#include "ipc/shm_slot.hpp"

namespace ipclab::shm {

inline constexpr std::uint32_t kSegmentMagic = 0x49504353;  // "IPCS"
// 2: pad frames; 3: pads anywhere, not only to the end; 4: stamped frames on
// 16-byte boundaries; 5: the exchange slot; 6: the slot holds up to 64 KiB;
// 7: the slot's ack on a line of its own
inline constexpr std::uint32_t kVersion = 7;

// 2 MiB per direction: a 1 MiB message and its header fit whole, so a 1 MiB
// round trip never waits for room; larger ones stream through in chunks.
// Pages are touched only as far as the data reaches (tmpfs allocates lazily).
inline constexpr std::size_t kRingCapacity = std::size_t{2} << 20;
inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kSlotOffset = kHeaderBytes + 2 * kRingCapacity;
inline constexpr std::size_t kSlotBytes = align_up(sizeof(SlotShared), 4096);
inline constexpr std::size_t kSegmentSize = kSlotOffset + kSlotBytes;
// Indices are published (and room handed back) at least this often inside a
// large message, so the peer copies out while we copy in. A reader that
// keeps up waits for each chunk about as long as the writer takes to copy it
// in, and in block mode polls only kBlockSpin (10 us) before sleeping: with
// 64 KiB chunks those waits took 2-10 us on the 2-core EPYC hosts and 1-2%
// of them outlasted the poll (Stream/shm/1048576: 0.15-0.38 sleeps per
// message); with 16 KiB most take under 1 us (0.005-0.016 sleeps).
inline constexpr std::size_t kPublishChunk = 16 * 1024;
// A message's last piece shorter than this is published with the chunk
// before it rather than alone (see ShmChannel::put).
// A peer asleep is woken only for this much inside a message (or at its end,
// or before we wait ourselves) when we cannot tell whether it runs beside us:
// a wake costs a system call and two context switches, and a woken peer that
// shares our CPU preempts us. Waking it for every 16 KiB chunk made
// Stream/shm/1048576 with both sides on one CPU 6x slower (39 sleeps per
// message instead of 2) and a 64 KiB round trip there 2.4x slower; a peer
// that polls sees every chunk without any wake. A message's first chunk
// wakes it too (it copies out while we copy in), and nothing inside a
// message does when both sides are pinned to one CPU (SideCounts::only_cpu,
// ShmChannel::wake_inside_message).
inline constexpr std::size_t kWakeChunk = 64 * 1024;
inline constexpr std::size_t kMinTail = kPublishChunk / 4;

// A writer that finds itself this far into its ring with every byte read
// pads to the end, so the next message starts at offset 0. Small messages then
// cycle through the first few pages instead of walking all 512 pages of the
// ring: every newly touched page costs a TLB miss, and on a virtual machine
// with shadow page tables a page walk of tens of microseconds (measured:
// RoundTrip/shm-spin/64 had a 55-65 us stall every 59 messages, i.e. every
// 4 KiB of ring, p99 65 us; a 16 KiB ring had p99 1.6 us).
inline constexpr std::size_t kRestartAfter = 16 * 1024;
// The same for spinning sides, which run on two CPUs: reusing lines the peer
// has just read makes each of the writer's stores wait on the peer's cache
// (measured on an Intel Xeon VM, Paired/shm-spin pinned 1,1, 4 interleaved
// rounds of 3 repetitions, restart point 16 KiB -> 256 KiB: 4 KiB 1.71 ->
// 1.48, 64 KiB 1.28 -> 0.97, 64 B 1.10 -> 1.06 with p99 0.71 -> 0.66 us;
// 8 KiB made 4 KiB worse, 1.89; 1 MiB less good, 1.57). On the AMD EPYC
// hosts (Zen 3, 512 KiB of L2 per core) 512 KiB did better again at 64 KiB:
// Paired/shm-spin/65536 1.108 [1.044, 1.923] -> 0.955 [0.917, 0.973] over 16
// processes each (per round 0.863 [0.498, 0.909], PairedDuplex 0.864), 4 KiB
// 0.98, 64 B, 1 KiB, 1 MiB and the spin streams unchanged (pinned 1,1, 8-16
// interleaved rounds). 128 pages, still far from the whole ring's 512 of
// the stalls above. Blocking sides
// keep 16 KiB: on one CPU the larger cycle only costs cache (shm 4 KiB 1.22
// -> 1.28, 64 KiB 1.08 at both; on two CPUs 1.01 -> 1.02 and 0.98 -> 1.00).
inline constexpr std::size_t kSpinRestartAfter = 512 * 1024;
constexpr std::size_t restart_after(bool spinning) { return spinning ? kSpinRestartAfter : kRestartAfter; }
// Stamp, frame header, zeros: where a smaller payload starts in its frame.
inline constexpr std::size_t kFramePrefix = 16;
static_assert(kStampBytes + kFrameHeaderSize <= kFramePrefix && kFramePrefix % kFrameAlign == 0);
static_assert(kRingCapacity % kCacheLine == 0 && kPublishChunk < kRingCapacity);

// Where the payload of `length` bytes starts, from its frame's start at
// `offset` (both sides compute it: it is not in the frame): right after the
// prefix when the frame fits the rest of the prefix's cache line, else on
// the next line, so the stamp's line holds no payload and the payload
// starts on a line. A 64 B round trip between two processes took 40-70 ns
// more than the raw flag and buffer with the payload right after the prefix
// (straddling two lines), 10 ns more with it on a line of its own (scratch
// loops over two bare rings, alternating with the raw ping-pong in one
// program, 3 runs each).
// A payload of kLargeBuffer bytes or more starts that line plus as far into
// it as a message buffer of that size starts into its own
// (kLargeBufferPageOffset, 5 bytes): every copy between the ring and a
// sender's or receiver's Bytes then has source and destination equally far
// into their lines, and `rep movsb` copies such pairs faster on the EPYC
// hosts. Line-aligned, each of a 64 KiB block-mode ping-pong's four calls
// took 1.58-1.78 us against 1.45-1.53 (one thread driving both ends, every
// copy in its caches, `taskset -c 1`, 6 rounds of 5,000; the raw floor's
// four copies 5.64-5.95 us in all, ipclab 6.45-6.90 -> 5.94-6.03);
// Paired/shm/65536 pinned 0.956 [0.924, 0.994] per round, 1 MiB 0.989 (12
// rounds). Smaller buffers come from the heap, at no offset we know: their
// payloads stay on the line.
// The part below kLargeBuffer, all a frame in place can need (it is at most
// kPublishChunk): the hot paths take only this (the shift for large
// payloads, computed in each of them, cost 16 of the 600 instructions of a
// one-thread 64 B spin round trip).
constexpr std::size_t small_payload_offset(std::size_t offset, std::uint64_t length) {
    const std::size_t used = offset % kCacheLine + kFramePrefix;  // <= kCacheLine: offsets are 16-aligned
    return length <= kCacheLine - used ? kFramePrefix
                                       : static_cast<std::size_t>(align_up(offset + kFramePrefix, kCacheLine) - offset);
}
// A frame's prefix is reserved whole, before the ring's end (capacity, a
// multiple of a line): where the line-aligned one reaches that end, the
// payload starts at the ring's start, on a line, without the 5 bytes. (With
// them, a frame starting in the ring's last line asked for room past the
// end, which no wait can give: spin streams of 64 KiB hung there.)
constexpr std::size_t payload_offset(std::size_t offset, std::uint64_t length, std::size_t capacity) {
    const std::size_t on_line = small_payload_offset(offset, length);
    return length >= kLargeBuffer && on_line < capacity - offset ? on_line + kLargeBufferPageOffset % kCacheLine
                                                                 : on_line;
}
// Whether that frame is stamped whole (its payload already there when the
// stamp is), read where it lies; otherwise its payload streams in after it.
// A frame in place starts its payload at small_payload_offset.
constexpr bool frame_in_place(std::size_t offset, std::uint64_t length, std::size_t capacity) {
    static_assert(kPublishChunk < kLargeBuffer, "large payloads never go in place");
    const std::uint64_t end = small_payload_offset(offset, length) + length;
    return end <= kPublishChunk && end <= capacity - offset;
}
inline constexpr std::uint8_t kPadFrame = 0xFF;  // not a FrameType: never leaves the ring
static_assert((kPadFrame & kAfterSlotBit) != 0, "a reader checks the exchange slot at every pad");
static_assert(kPadFrame != static_cast<std::uint8_t>(FrameType::data) &&
              kPadFrame != static_cast<std::uint8_t>(FrameType::error));

// attach, the client's futex word while it waits for the server.
inline constexpr std::uint32_t kWaiting = 0;   // client wrote its hello
inline constexpr std::uint32_t kClaimed = 1;   // server parent validated it (one claim only)
inline constexpr std::uint32_t kAttached = 2;  // session child runs; server_pid is set

// Wait outcomes of one side, mirrored here so the peer (e.g. a benchmark
// client) can report how the server waited, and where that side may run.
// Only that side stores.
struct SideCounts {
    std::atomic<std::uint64_t> immediate{0};
    std::atomic<std::uint64_t> spun{0};
    std::atomic<std::uint64_t> slept{0};
    // 1 + the one CPU this side's affinity allows, 0 when several or unknown
    // (so the zeros of a peer that never stores it read as unknown).
    std::atomic<std::int32_t> only_cpu{0};
};

struct SegmentHeader {
    std::atomic<std::uint32_t> magic{0};  // stored last (release) by the creator
    std::uint32_t version = kVersion;
    std::uint64_t header_bytes = kHeaderBytes;
    std::uint64_t ring_capacity = kRingCapacity;
    std::uint64_t segment_size = kSegmentSize;
    std::int32_t client_pid = 0;
    std::uint32_t session = 0;
    std::atomic<std::int32_t> server_pid{0};  // the session child, stored before kAttached
    std::atomic<std::uint32_t> attach{kWaiting};
    alignas(kCacheLine) SideCounts client_counts;
    alignas(kCacheLine) SideCounts server_counts;
    alignas(kCacheLine) RingShared to_server;
    alignas(kCacheLine) RingShared to_client;
};

static_assert(sizeof(SegmentHeader) <= kHeaderBytes, "header must fit before the ring data");
static_assert(std::atomic<std::int32_t>::is_always_lock_free);
static_assert(kHeaderBytes % kCacheLine == 0 && is_power_of_two(kRingCapacity));

inline std::string segment_name(const std::string& name, pid_t pid, std::uint32_t session) {
    return "/" + global_prefix(name) + "." + std::to_string(pid) + "." + std::to_string(session);
}

// Both ends build it; the listener's InstanceLock has created the directory.
inline std::string fifo_path(const std::string& name) {
    return existing_private_dir() + "/" + name + ".shm";
}

// A /dev/shm entry of our uid, taken apart: "ipclab-UID-TAG-NAME.PID.N".
struct SegmentEntry {
    std::string tag;   // the private directory's (dir_tag()): ours, or another IPCLAB_DIR's
    std::string name;
    pid_t pid = 0;
    std::uint32_t session = 0;
};

std::optional<SegmentEntry> parse_segment_entry(const std::string& entry);

// What a server checks in a client's segment header before it attaches: our
// magic, version and sizes, the client's own pid and session, rings never
// used; then it claims the segment (kWaiting -> kClaimed, once). Throws
// ProtocolError starting with `who` otherwise.
void claim_segment(SegmentHeader& s, pid_t pid, std::uint32_t session, const std::string& who);

}  // namespace ipclab::shm
