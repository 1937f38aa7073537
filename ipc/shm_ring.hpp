// A single-producer/single-consumer byte ring in shared memory.
//
// RingShared lives in the mapping; RingWriter and RingReader are each side's
// private view. Indices are 64-bit byte counts that never wrap in practice
// (offset = index & mask), so full and empty need no spare slot. Each side
// keeps its own index privately and only reads the other side's, which it
// validates: a scribbling peer can make us throw ProtocolError, never make us
// read or write outside the data area. Bytes are staged (copied in or out)
// and then published with release stores and one fence; wake-ups go through
// the doorbells of ipc/shm_futex.hpp only when the peer sleeps.
//
// Frames carry a stamp: a frame starts on a kFrameAlign boundary with an
// 8-byte word the writer stores last (release), after the frame's bytes and
// the head index, to (frame's index) ^ key. A reader at a frame boundary
// polls that word, in the line it reads the frame from anyway, instead of the
// head index on a line of its own: a small message then costs the lines of its
// bytes and nothing more, as a flag beside a buffer does (each extra line
// costs ~25 ns per direction on the EPYC hosts). What lay there before is a
// stamp of another index or payload bytes; the key (random per segment, top
// bit set, so never 0 and never an index) keeps a payload from passing for a
// stamp but by a 2^-64 chance. The head index still covers every stamped byte
// (stored just before the stamp); the reader reads it only inside a frame
// whose payload streams in after its stamp.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "ipc/copy_inline.hpp"
#include "ipc/error.hpp"
#include "ipc/shm_futex.hpp"

namespace ipclab {

inline constexpr std::size_t kCacheLine = 64;

struct RingShared {
    // Each field on its own line: the producer's stores to head must not
    // invalidate the line the consumer stores tail into (false sharing).
    alignas(kCacheLine) std::atomic<std::uint64_t> head{0};  // bytes published; producer stores
    alignas(kCacheLine) std::atomic<std::uint64_t> tail{0};  // bytes consumed; consumer stores
    alignas(kCacheLine) Doorbell data;                       // the consumer sleeps here for bytes
    alignas(kCacheLine) Doorbell space;                      // the producer sleeps here for room
    alignas(kCacheLine) std::atomic<std::uint32_t> writer_closed{0};  // EOF after the last byte
    std::atomic<std::uint32_t> reader_closed{0};                      // nobody will read any more
    std::uint64_t stamp_key = 0;  // set by the segment's creator; each side reads it once
};

// Frames start on these boundaries, so a stamp is an aligned 8-byte word.
inline constexpr std::size_t kFrameAlign = 16;
inline constexpr std::size_t kStampBytes = 8;
// Set in every key: a stamp is then never 0 (a fresh ring) nor an index.
inline constexpr std::uint64_t kStampKeyBit = std::uint64_t{1} << 63;

constexpr std::uint64_t align_up(std::uint64_t n, std::uint64_t to) { return (n + to - 1) & ~(to - 1); }

// The stamp word of the frame at `at` (an offset in the data area, on a kFrameAlign boundary).
inline std::atomic_ref<std::uint64_t> stamp_word(std::byte* at) {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at));
}
static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= kFrameAlign);

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "indices shared between processes cannot use libatomic's process-local locks");
static_assert(sizeof(RingShared) % kCacheLine == 0, "keeps the data area line-aligned after it");
static_assert(std::is_standard_layout_v<RingShared>, "shared between separately compiled peers");

constexpr bool is_power_of_two(std::size_t n) { return n != 0 && (n & (n - 1)) == 0; }

// memcpy, but never glibc's `rep movsb` across a short distance. glibc copies
// large blocks with `rep movsb`, which on AMD Zen 3 (the EPYC hosts) runs 17x
// slower when the destination lies 1-63 bytes after the source modulo 4 KiB:
// 64 KiB took 22 us instead of 1.3 (glibc 2.36 steers around this on Intel
// only). A frame's payload sits 5 bytes into the ring, so a process whose
// buffer landed at such a distance copied at a fraction of the speed
// (Paired/shm/65536: the client's CPU per round trip 32 us against the raw
// ping-pong's 9, in about half the processes). Pieces of 2 KiB stay below
// glibc's rep-movsb threshold (2-8 KiB) and copy at full speed at any distance.
// Up to 64 bytes go as a few inline moves (copy_inline): a small message's
// copies are on its round trip's critical path, where the call into glibc
// (11 instructions there for 64 bytes) also made the caller save and restore
// registers around it: inline, a 64-byte receive took 109 instructions
// instead of 116 (counted by single-stepping the server).
// From 65 bytes to 2 KiB, and every piece, a real call into glibc's memcpy
// (copy_call): where gcc knows a memcpy's size is at most 2 KiB it expands
// it inline as `rep movsq`, which on the EPYC hosts (Zen 3) took 21 ns for
// 1 KiB against glibc's 10.5-12, 31 against 20 for 2 KiB, and 63-112 ns at
// a 5-16 byte distance (in-cache loop, `taskset -c 1`, best of 5) - so the
// pieces above were copied by exactly the slow path they exist to avoid.
[[gnu::noinline]] inline void copy_call(std::byte* dst, const std::byte* src, std::size_t n) {
    std::memcpy(dst, src, n);
}
[[gnu::always_inline]] inline void copy_bytes(std::byte* dst, const std::byte* src, std::size_t n) {
    constexpr std::size_t kPiece = 2048;
    if (n <= 64) return copy_inline(dst, src, n);
    if (n <= kPiece) return copy_call(dst, src, n);
    const auto distance =
        (reinterpret_cast<std::uintptr_t>(dst) - reinterpret_cast<std::uintptr_t>(src)) % 4096;
    if (distance == 0 || distance >= 64) {
        std::memcpy(dst, src, n);
        return;
    }
    for (std::size_t i = 0; i < n; i += kPiece) copy_call(dst + i, src + i, std::min(kPiece, n - i));
}

// copy_bytes for a payload the peer has just written, copied out of its lines
// into a message buffer: from 65 to 256 bytes as 16-byte moves in place
// instead of glibc's memcpy, whose AVX variant (32-byte moves) costs a
// spin-mode round trip 40-50 ns there. Measured, pinned 1,1, interleaved
// rounds against the build before (median per-round ratio of each run):
// Paired/shm-spin/128 0.81-0.94 and 256 B 0.84-0.93 (seven runs of 10-16
// rounds; p50 260-270 -> 220 ns at 128 B); the same moves on the sending side
// alone 1.03 and 1.00; glibc's memcpy called directly 1.00; message buffers
// aligned to 64 bytes, so that its 32-byte stores never split a line, 1.00 and
// 0.98 (not the destination, then); glibc made to pick its SSE2 memcpy for the
// whole process (GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX_Fast_Unaligned_Load)
// 0.80 and 0.85, while the raw ping-pong, whose copies go to page-aligned
// buffers, got slower with it (p50 161 -> 180 ns at 128 B); the moves up to
// 1 KiB 0.99 at 512 B and 1.11 at 1 KiB. Why the AVX moves cost this much here
// is not established (no PMU on these hosts). Block mode, where a wake costs
// microseconds: 1.01.
[[gnu::always_inline]] inline void copy_received(std::byte* dst, const std::byte* src, std::size_t n) {
    constexpr std::size_t kMovesUpTo = 256;
    if (n <= 64 || n > kMovesUpTo) return copy_bytes(dst, src, n);
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
    if (i < n) std::memcpy(dst + n - 16, src + n - 16, 16);
}

class RingWriter {
public:
    RingWriter() = default;
    // capacity is ours (a trusted constant), never a value read from the mapping.
    RingWriter(RingShared* shared, std::byte* data, std::size_t capacity)
        : s_(shared), data_(data), capacity_(capacity), mask_(capacity - 1) {
        if (!is_power_of_two(capacity) || capacity < kFrameAlign)
            throw std::invalid_argument("ring capacity must be 2^n, at least one frame boundary");
        key_ = s_->stamp_key | kStampKeyBit;
    }

    // Bytes that can be staged now. Re-reads the consumer's index (seq_cst, for
    // the doorbell protocol) only when the cached one shows less than `want`.
    std::size_t space(std::size_t want = 1) {
        std::size_t cached = static_cast<std::size_t>(capacity_ - (head_ - tail_cache_));
        if (cached >= want) return cached;
        std::uint64_t t = s_->tail.load(std::memory_order_seq_cst);
        // The consumer can neither go back nor pass what we published.
        if (t < tail_cache_ || t > published_)
            throw ProtocolError("shm ring: the reader's index is out of range (corrupt segment)");
        tail_cache_ = t;
        return capacity_ - (head_ - tail_cache_);
    }

    // Copies as much of src as fits; returns the count. Not yet visible.
    std::size_t stage(std::span<const std::byte> src) {
        std::size_t n = std::min(src.size(), space(src.size()));
        if (n == 0) return 0;
        std::size_t at = static_cast<std::size_t>(head_ & mask_);
        std::size_t first = std::min(n, capacity_ - at);
        copy_bytes(data_ + at, src.data(), first);
        if (n > first) copy_bytes(data_, src.data() + first, n - first);  // wrapped
        head_ += n;
        return n;
    }

    // The next n bytes of the data area, to be written in place, if that much
    // room is free without wrapping; nullptr otherwise (stage() copes with a
    // wrap). commit(n) then stages them. A small frame so goes in with one
    // copy of its payload, its header written where it lies.
    std::byte* reserve(std::size_t n) {
        std::size_t at = offset();
        if (n > capacity_ - at || space(n) < n) return nullptr;
        return data_ + at;
    }
    // After reserve(m) returned room, with n <= m.
    void commit(std::size_t n) { head_ += n; }

    // Bytes staged since the last publish (padding not counted: it costs no copy).
    std::size_t unpublished() const {
        return static_cast<std::size_t>(head_ - published_ - padding_);
    }

    // Where the next staged byte goes, as an offset into the data area.
    std::size_t offset() const { return static_cast<std::size_t>(head_ & mask_); }

    // Leaves the rest of the data area unwritten (padding the reader skips
    // with skip), so the next byte staged goes to offset 0. The caller
    // has checked space(n) >= n for n = capacity() - offset().
    void skip_to_end() { skip(capacity_ - offset()); }

    // Leaves the next n bytes unwritten (padding the reader skips with
    // skip(n)); they must lie before the ring's end and in the free space.
    void skip(std::size_t n) {
        if (n > capacity_ - offset() || space(n) < n)
            throw std::logic_error("shm ring: padding beyond the free space");
        head_ += n;
        padding_ += n;
        unrung_padding_ += n;
    }

    // The frame starting at head_ (on a kFrameAlign boundary: skip
    // frame_gap() first) gets its stamp at the next publish, after its bytes.
    // Two may be pending (a pad and the frame after it): the later frame is
    // stamped first, so a reader that sees the pad finds the frame behind it
    // complete instead of waiting (and counting a wait) a second time.
    void begin_frame() {
        if (head_ % kFrameAlign != 0 || pending_ == stamp_at_.size())
            throw std::logic_error("shm ring: a frame off its boundary, or too many stamps pending");
        stamp_at_[pending_++] = head_;
    }
    // Bytes from head_ to the next frame boundary.
    std::size_t frame_gap() const { return static_cast<std::size_t>(align_up(head_, kFrameAlign) - head_); }

    // Makes staged bytes visible. The store pairs, through the fence in
    // Doorbell::ring, with the consumer's seq_cst store to its doorbell. A
    // release store, not seq_cst: on x86 a seq_cst store (xchg) waits for
    // the staged bytes' lines, which the peer holds, before it even asks for
    // the index's line; a plain store's request goes out beside theirs, and
    // the fence's wait after it overlaps the wait for the reply. (perf: the
    // xchg held 9-10% of each side's time in RoundTrip/shm-spin/64; with
    // the prefetch below, 64-byte round trips between two threads took 226
    // ns instead of 250.) With wake false a sleeping
    // consumer is left asleep (a polling one sees the bytes anyway); the next
    // publish with wake rings for these bytes too, so a writer must publish
    // with wake before it waits and at a message's end. Returns true if a
    // wake system call was needed. A pending stamp goes last: whoever sees
    // it sees the frame's bytes and a head index that covers them.
    bool publish(bool wake = true) {
        if (head_ != published_) {
            s_->head.store(head_, kRingerStore);
            published_ = head_;
            padding_ = 0;
        }
        for (; pending_ > 0; --pending_) {
            std::uint64_t at = stamp_at_[pending_ - 1];
            stamp_word(data_ + (at & mask_)).store(at ^ key_, kRingerStore);
        }
        return wake && ring_for_published();
    }

    // The short way for the commonest frame: n bytes (its gap included) at
    // head_, a frame boundary, written in place in room reserve(n) gave,
    // with nothing else staged or pending: committed, stamped and published
    // with wake at once, as begin_frame(), commit(n) and publish() would
    // (their bookkeeping for pads and chunks is not needed here).
    bool publish_frame(std::size_t n) {
        if (!at_clean_boundary())
            throw std::logic_error("shm ring: a whole frame off its boundary, behind unpublished bytes or a pending stamp");
        return publish_whole(n);
    }

    // The index up to which frames may go the shortest way, written in place
    // at head_ (at_head()) and published by publish_whole(), with no check
    // of their own: before `limit` bytes into this pass over the ring (the
    // caller's restart point), before the ring's end, in the room the last
    // tail index read shows, and only at a frame boundary with nothing
    // staged or pending. A frame ending past it takes the longer ways. The
    // bound stays true while only those frames are sent: the tail index read
    // only grows.
    std::uint64_t whole_frames_until(std::size_t limit) const {
        if (!at_clean_boundary()) return 0;
        const std::uint64_t pass = head_ - offset();
        return std::min(pass + std::min<std::uint64_t>(limit, capacity_), tail_cache_ + capacity_);
    }
    std::uint64_t head() const { return head_; }
    std::byte* at_head() const { return data_ + offset(); }
    // publish_frame without its checks: n bytes at head_, ending within whole_frames_until().
    bool publish_whole(std::size_t n) {
        const std::uint64_t at = head_;
        head_ = published_ = at + n;
        padding_ = 0;
        s_->head.store(head_, kRingerStore);
        stamp_word(data_ + (at & mask_)).store(at ^ key_, kRingerStore);
        return ring_for_published();
    }

    // Bytes staged or published since the last publish with wake, padding
    // not counted: a restart's pad (up to the whole ring) is no data the
    // reader waits for, and counted it made the first chunk of the message
    // behind it wake a sleeping reader that then found the message
    // incomplete and slept again (two wakes and four context switches per
    // 64 KiB round trip on one CPU instead of one and two).
    std::size_t unrung() const { return static_cast<std::size_t>(head_ - rung_ - unrung_padding_); }

    bool reader_closed() const { return s_->reader_closed.load(std::memory_order_seq_cst) != 0; }

    // End of stream: the consumer drains what was published, then sees EOF.
    void close() {
        s_->writer_closed.store(1, std::memory_order_seq_cst);
        s_->data.ring_always();
    }

    // Wakes a consumer asleep on the data bell, for a store outside the ring
    // that its wait also looks at (the exchange slot's stamp, kRingerStore).
    bool wake_reader() { return s_->data.ring(); }

    // The index of every byte published so far.
    std::uint64_t published() const { return published_; }

    Doorbell& space_bell() { return s_->space; }
    std::size_t capacity() const { return capacity_; }

private:
    // Where a whole frame may start: a frame boundary, nothing staged, no stamp pending.
    bool at_clean_boundary() const { return head_ == published_ && head_ % kFrameAlign == 0 && pending_ == 0; }

    // The wake part of a publish: rings for what was published since the last ring.
    bool ring_for_published() {
        if (rung_ == published_) return false;
        rung_ = published_;
        unrung_padding_ = 0;
        return s_->data.ring();
    }

    RingShared* s_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::uint64_t mask_ = 0;
    std::uint64_t head_ = 0;        // staged up to here
    std::uint64_t published_ = 0;   // visible up to here
    std::uint64_t padding_ = 0;     // skipped since the last publish
    std::uint64_t unrung_padding_ = 0;  // skipped since the last publish with wake
    std::uint64_t rung_ = 0;        // published as of the last publish with wake
    std::uint64_t tail_cache_ = 0;  // last consumer index we read
    std::uint64_t key_ = 0;         // stamps are index ^ key_
    std::array<std::uint64_t, 2> stamp_at_{};  // frames whose stamps are pending
    std::size_t pending_ = 0;
};

class RingReader {
public:
    RingReader() = default;
    RingReader(RingShared* shared, std::byte* data, std::size_t capacity)
        : s_(shared), data_(data), capacity_(capacity), mask_(capacity - 1) {
        if (!is_power_of_two(capacity) || capacity < kFrameAlign)
            throw std::invalid_argument("ring capacity must be 2^n, at least one frame boundary");
        key_ = s_->stamp_key | kStampKeyBit;
    }

    // Bytes that can be taken now. Re-reads the producer's index (seq_cst)
    // only when the cached one shows less than `want`. The cached index may
    // lag behind tail_: frames read by their stamps pass it by.
    std::size_t readable(std::size_t want = 1) {
        if (head_cache_ >= tail_ && head_cache_ - tail_ >= want)
            return static_cast<std::size_t>(head_cache_ - tail_);
        std::uint64_t h = s_->head.load(std::memory_order_seq_cst);
        // The producer can neither go back nor overrun bytes we have not released.
        if (h < head_cache_ || h > released_ + capacity_)
            throw ProtocolError("shm ring: the writer's index is out of range (corrupt segment)");
        if (h > head_cache_ && h > tail_) prefetch(h);
        head_cache_ = h;
        return h > tail_ ? static_cast<std::size_t>(h - tail_) : 0;
    }

    // The frame starting at tail_ (a boundary: end_frame() after each one),
    // if its writer has stamped it; nullptr otherwise. Its bytes up to the
    // stamp's publish are then visible (the seq_cst load also serves the
    // doorbell protocol). The peer may still scribble: read each field once.
    std::byte* frame() {
        if (tail_ % kFrameAlign != 0) throw std::logic_error("shm ring: a frame looked for off its boundary");
        std::byte* at = data_ + offset();
        return stamp_word(at).load(std::memory_order_seq_cst) == (tail_ ^ key_) ? at : nullptr;
    }
    // After a frame: on to the next boundary.
    void end_frame() { tail_ = align_up(tail_, kFrameAlign); }

    // Copies up to dst.size() available bytes out; returns the count.
    std::size_t take(std::span<std::byte> dst) {
        std::size_t n = std::min(dst.size(), readable(dst.size()));
        if (n == 0) return 0;
        std::size_t at = static_cast<std::size_t>(tail_ & mask_);
        std::size_t first = std::min(n, capacity_ - at);
        copy_bytes(dst.data(), data_ + at, first);
        if (n > first) copy_bytes(dst.data() + first, data_, n - first);  // wrapped
        tail_ += n;
        return n;
    }

    // Takes n bytes that were read in place (a frame found by frame()).
    void advance(std::size_t n) { tail_ += n; }

    std::size_t unreleased() const { return static_cast<std::size_t>(tail_ - released_); }

    // Where the next byte is taken from, as an offset into the data area.
    std::size_t offset() const { return static_cast<std::size_t>(tail_ & mask_); }
    // The index of the next byte to take.
    std::uint64_t position() const { return tail_; }

    // Passes over the writer's padding, n published bytes that must end
    // exactly at the end of the data area, without reading them.
    void skip_to_end(std::size_t n) {
        if (n != capacity_ - offset())
            throw ProtocolError("shm ring: padding that does not end at the ring's end");
        skip(n);
    }

    // Passes over n published bytes of padding that end at the ring's end at
    // the latest, without reading them.
    void skip(std::size_t n) {
        if (n > capacity_ - offset())
            throw ProtocolError("shm ring: padding that runs past the ring's end");
        if (readable(n) < n)
            throw ProtocolError("shm ring: padding runs past the bytes the writer published");
        tail_ += n;
        unrung_padding_ += n;
    }

    // Hands taken bytes' room back to the producer; true if a wake was
    // needed. wake false leaves a sleeping producer asleep, as publish();
    // a release store for the same reason.
    bool release(bool wake = true) {
        if (tail_ != released_) {
            s_->tail.store(tail_, kRingerStore);
            released_ = tail_;
        }
        if (!wake || rung_ == released_) return false;
        rung_ = released_;
        unrung_padding_ = 0;
        return s_->space.ring();
    }

    // Rings for room released with wake false, when a fence has run since
    // (the writer's publish in the same thread): that fence already orders
    // the index store before the peek, so this one costs no second fence
    // (a locked instruction, about 10 ns, on every send of a ping-pong).
    bool ring_released_after_fence() {
        if (rung_ == released_) return false;
        rung_ = released_;
        unrung_padding_ = 0;
        return s_->space.ring_after_fence();
    }

    // Bytes taken or released since the last release with wake, padding not
    // counted (see RingWriter::unrung).
    std::size_t unrung() const { return static_cast<std::size_t>(tail_ - rung_ - unrung_padding_); }

    bool writer_closed() const { return s_->writer_closed.load(std::memory_order_seq_cst) != 0; }

    void close() {
        s_->reader_closed.store(1, std::memory_order_seq_cst);
        s_->space.ring_always();
    }

    Doorbell& data_bell() { return s_->data; }
    std::size_t capacity() const { return capacity_; }

private:
    // Asks for the first lines of bytes just published, up to h, at once: the
    // caller takes a frame's header first and learns only then how much
    // follows, so a 64-byte message (69 bytes with its header, two lines)
    // would otherwise fetch its second line from the writer's cache only
    // after the first had arrived. Past the first few lines the hardware
    // prefetcher follows the copy by itself.
    void prefetch(std::uint64_t h) const {
        constexpr std::uint64_t kLines = 4;
        std::uint64_t from = std::max(head_cache_, tail_);
        std::uint64_t end = std::min(h, (tail_ & ~std::uint64_t{kCacheLine - 1}) + kLines * kCacheLine);
        for (std::uint64_t i = from & ~std::uint64_t{kCacheLine - 1}; i < end; i += kCacheLine)
            __builtin_prefetch(data_ + (i & mask_));
    }

    RingShared* s_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::uint64_t mask_ = 0;
    std::uint64_t tail_ = 0;        // taken up to here
    std::uint64_t released_ = 0;    // visible to the producer up to here
    std::uint64_t rung_ = 0;        // released as of the last release with wake
    std::uint64_t unrung_padding_ = 0;  // skipped since the last release with wake
    std::uint64_t head_cache_ = 0;  // last producer index we read
    std::uint64_t key_ = 0;         // stamps are index ^ key_
};

}  // namespace ipclab
