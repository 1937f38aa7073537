// POSIX shared memory: two SPSC byte rings in a segment the client creates,
// a well-known FIFO for the rendezvous (ipc/fifo_rendezvous.hpp, shared with
// the fifo transport), futex rendezvouss for waiting (see ipc/shm_layout.hpp
// for the layout, ipc/shm_futex.hpp for the protocol).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "ipc/error.hpp"
#include "ipc/fifo_rendezvous.hpp"
#include "ipc/io.hpp"
#include "ipc/objects.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/random.hpp"
#include "ipc/shm_futex.hpp"
#include "ipc/shm_layout.hpp"
#include "ipc/shm_mapping.hpp"
#include "ipc/shm_ring.hpp"
#include "ipc/shm_slot.hpp"
#include "ipc/shm_stats.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace shm {

std::optional<SegmentEntry> parse_segment_entry(const std::string& full) {
    auto global = parse_global_name(full);
    if (!global) return std::nullopt;
    const std::string& entry = global->rest;
    auto last = entry.rfind('.');
    if (last == std::string::npos || last == 0) return std::nullopt;
    auto second = entry.rfind('.', last - 1);
    if (second == std::string::npos || second == 0) return std::nullopt;
    auto digits = [](const std::string& s) {
        return !s.empty() && s.size() <= 10 && s.find_first_not_of("0123456789") == std::string::npos;
    };
    std::string pid = entry.substr(second + 1, last - second - 1);
    std::string session = entry.substr(last + 1);
    if (!digits(pid) || !digits(session)) return std::nullopt;
    // Ten digits may exceed a pid or a u32: such a name is not one we made.
    unsigned long long pid_value = std::strtoull(pid.c_str(), nullptr, 10);
    unsigned long long session_value = std::strtoull(session.c_str(), nullptr, 10);
    if (pid_value == 0 || pid_value > 0x7fffffffull || session_value > 0xffffffffull)
        return std::nullopt;
    SegmentEntry e;
    e.tag = global->tag;
    e.name = entry.substr(0, second);
    e.pid = static_cast<pid_t>(pid_value);
    e.session = static_cast<std::uint32_t>(session_value);
    return e;
}

void claim_segment(SegmentHeader& s, pid_t pid, std::uint32_t session, const std::string& who) {
    if (s.magic.load(std::memory_order_acquire) != kSegmentMagic || s.version != kVersion ||
        s.header_bytes != kHeaderBytes || s.ring_capacity != kRingCapacity ||
        s.segment_size != kSegmentSize)
        throw ProtocolError(who + "bad segment header (magic, version or sizes)");
    if (s.client_pid != pid || s.session != session)
        throw ProtocolError(who + "the segment names another client");
    for (const RingShared* r : {&s.to_server, &s.to_client})
        if (r->head.load() != 0 || r->tail.load() != 0 || r->writer_closed.load() != 0 ||
            r->reader_closed.load() != 0)
            throw ProtocolError(who + "the segment is not fresh");
    // One claim per segment: a replayed hello must not put a second reader on a ring.
    std::uint32_t expected = kWaiting;
    if (!s.attach.compare_exchange_strong(expected, kClaimed))
        throw ProtocolError(who + "the segment was already taken");
}

}  // namespace shm

namespace {

using namespace shm;

constexpr const char* kTransport = "shm";

std::atomic<std::uint64_t> g_total_immediate{0}, g_total_spun{0}, g_total_slept{0};

// send_small's payloads: up to a line, so never the exchange slot's sizes.
constexpr std::size_t kSmallPayload = kCacheLine;
static_assert(kSmallPayload < kSlotMinPayload, "a payload the slot would take never goes the short way");

// Thrown inside send() when the server stopped reading but left a reply
// (its error frame) for us: the send is abandoned and receive() reports it.
struct SendAbandoned {};

// 1 + the one CPU the calling thread may run on, 0 when it may run on
// several (or the mask does not fit a cpu_set_t: unknown is the safe answer).
std::int32_t only_cpu_of_this_thread() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set)) return cpu + 1;
    return 0;
}

class ShmChannel final : public Channel {
public:
    ShmChannel(Mapping map, ShmName owned, std::string segment, bool is_client, pid_t peer,
               const Limits& limits, WaitMode mode)
        : map_(std::move(map)),
          owned_(std::move(owned)),
          segment_(std::move(segment)),
          is_client_(is_client),
          peer_(peer),
          limits_(limits),
          mode_(mode) {
        auto* h = header();
        std::byte* to_server = map_.get() + kHeaderBytes;
        std::byte* to_client = to_server + kRingCapacity;
        if (is_client_) {
            tx_ = RingWriter(&h->to_server, to_server, kRingCapacity);
            rx_ = RingReader(&h->to_client, to_client, kRingCapacity);
            mine_ = &h->client_counts;
            theirs_ = &h->server_counts;
        } else {
            tx_ = RingWriter(&h->to_client, to_client, kRingCapacity);
            rx_ = RingReader(&h->to_server, to_server, kRingCapacity);
            mine_ = &h->server_counts;
            theirs_ = &h->client_counts;
        }
        slot_ = ExchangeSlot(reinterpret_cast<SlotShared*>(map_.get() + kSlotOffset), is_client_);
        // Read once: a channel lives in the thread (and placement) that made it.
        only_cpu_ = only_cpu_of_this_thread();
        mine_->only_cpu.store(only_cpu_, std::memory_order_relaxed);
    }

    ShmChannel(const ShmChannel&) = delete;
    ShmChannel& operator=(const ShmChannel&) = delete;

    ~ShmChannel() override {
        try {
            tx_.close();
            rx_.close();
        } catch (const std::exception&) {
            // futex_wake cannot fail on a valid mapping; the peer's slices cover it anyway.
        }
        // The creator (client) unlinks through owned_; a server whose client died
        // removes the orphan, since nobody else will.
        if (!is_client_ && !process_alive(peer_)) remove_quietly(remove_shm_name, segment_);
        g_total_immediate.fetch_add(local_.immediate, std::memory_order_relaxed);
        g_total_spun.fetch_add(local_.spun, std::memory_order_relaxed);
        g_total_slept.fetch_add(local_.slept, std::memory_order_relaxed);
    }

    void send(FrameType type, std::span<const std::byte> payload) override {
        if (payload.size() <= kSmallPayload && send_small(type, payload)) return;
        send_other(type, payload);
    }

    // Counts one wait outcome per message (immediate when its first bytes were
    // already there), plus one per further wait inside a large message.
    bool receive(Message& msg) override {
        waited_ = false;
        for (;;) {
            std::byte* at = rx_.frame();
            if (at == nullptr) {
                if ((at = await_frame()) == nullptr) {
                    count_first_wait();
                    return false;
                }
                if (at == in_slot()) return take_from_slot(msg);
            }
            // Each field read once: the peer may scribble on them meanwhile.
            HeaderBytes hb;
            std::memcpy(hb.data(), at + kStampBytes, hb.size());
            if (const auto t = std::to_integer<std::uint8_t>(hb[0]); (t & kAfterSlotBit) != 0) [[unlikely]] {
                // A marked frame, or a pad: the slot's message may come first.
                if (slot_due()) return take_from_slot(msg);
                if (t != kPadFrame) hb[0] = std::byte{static_cast<std::uint8_t>(t & ~kAfterSlotBit)};
            }
            if (hb[0] != std::byte{kPadFrame}) [[likely]] {
                count_first_wait();
                take_frame(at, hb, msg);
                last_was_receive_ = true;
                return true;
            }
            // A pad: its length must take us exactly to the ring's end (the
            // ring checks that, and that the writer published it).
            rx_.skip_to_end(kFramePrefix + std::size_t{get_u32(hb.data() + 1)});
        }
    }

    ShmSessionCounts counts() const {
        ShmSessionCounts c;
        c.local = local_;
        c.peer.immediate = theirs_->immediate.load(std::memory_order_relaxed);
        c.peer.spun = theirs_->spun.load(std::memory_order_relaxed);
        c.peer.slept = theirs_->slept.load(std::memory_order_relaxed);
        return c;
    }

private:
    SegmentHeader* header() const { return reinterpret_cast<SegmentHeader*>(map_.get()); }

    // The next wait's spin budget. Every 64th wait probes with the full
    // budget, so a host that got quieter is noticed again.
    int spin_budget() const { return waits() % 64 == 0 ? kSpinIterations : spin_budget_; }

    // Waits counted so far, every outcome.
    std::uint64_t waits() const { return local_.total(); }

    // Waits for ready() on bell and counts how. Spin mode polls here, inline
    // (see spin_until): a peer that answers within the poll, as in every
    // spin-mode ping-pong, costs nothing more; only a wait that outlasts it
    // goes on to sleep_wait.
    template <typename Ready>
    void wait(Doorbell& bell, Ready ready, const char* what, bool peer_active) {
        if (mode_ == WaitMode::spin) {
            if (ready()) return count(WaitOutcome::immediate);
            if (spin_until(ready, spin_budget())) return count(WaitOutcome::spun);
        }
        sleep_wait(bell, ready, what, peer_active);
    }

    // The rest of a wait, through wait_until. In block mode a wait polls
    // for up to kBlockSpin first when the peer is at work (peer_active, the
    // caller's knowledge) and polling has not failed kMaxFailedPolls times
    // in a row (the peer lacks a core, or has gone quiet); after that only
    // every 64th wait tries again. An idle peer so costs a block-mode waiter
    // at most kBlockSpin of CPU per wait, and after a few waits almost none.
    template <typename Ready>
    [[gnu::noinline]] void sleep_wait(Doorbell& bell, Ready ready, const char* what, bool peer_active) {
        WaitPolicy p{mode_, 0, limits_.timeout_ms, peer_, what};
        if (mode_ == WaitMode::spin) {
            // wait() has spun already: what is ready at once was ready after a poll.
            WaitOutcome o = wait_until(bell, ready, p);
            return count(o == WaitOutcome::immediate ? WaitOutcome::spun : o);
        }
        bool poll = peer_active && (failed_polls_ < kMaxFailedPolls || waits() % 64 == 0);
        if (poll) p.block_spin = kBlockSpin;
        WaitOutcome o = wait_until(bell, ready, p);
        if (poll) failed_polls_ = o == WaitOutcome::slept ? failed_polls_ + 1 : 0;
        count(o);
    }

    void count(WaitOutcome o) {
        // Single writer: a plain store of the one counter that moved, no
        // locked read-modify-write.
        switch (o) {
            case WaitOutcome::immediate:
                mine_->immediate.store(++local_.immediate, std::memory_order_relaxed);
                break;
            case WaitOutcome::spun:
                mine_->spun.store(++local_.spun, std::memory_order_relaxed);
                spin_budget_ = kSpinIterations;
                break;
            case WaitOutcome::slept:
                mine_->slept.store(++local_.slept, std::memory_order_relaxed);
                spin_budget_ = std::max(spin_budget_ / 2, kMinSpinIterations);
                break;
        }
    }

    // See kRestartAfter and kSpinRestartAfter (ipc/shm_layout.hpp). Only
    // once the reader has caught up (the ring is empty): a ping-pong then
    // cycles through the ring's first pages, while a stream whose reader is
    // behind keeps the whole ring to run ahead in.
    // (Restarting whenever the pad merely fitted made every message above
    // kRestartAfter wait at offset 0 for the reader to free the previous one:
    // a 2 MiB ring one 64 KiB message deep, writer and reader each sleeping
    // once per message.) When the reader is behind, one try per pass over
    // the ring: a busy ring costs no extra reads of its index.
    void restart_at_ring_start() {
        std::size_t at = tx_.offset();
        if (at < restart_after_) {
            restart_blocked_ = false;
            return;
        }
        if (restart_blocked_) return;
        if (tx_.space(tx_.capacity()) < tx_.capacity()) {
            restart_blocked_ = true;
            return;
        }
        // A frame of its own, stamped with the message that follows at
        // offset 0 (after it: see RingWriter::begin_frame).
        std::size_t to_end = tx_.capacity() - at;
        std::byte* pad = begin_frame(kFramePrefix);
        pad[kStampBytes] = std::byte{kPadFrame};  // has kAfterSlotBit: readers check every pad
        put_u32(pad + kStampBytes + 1, static_cast<std::uint32_t>(to_end - kFramePrefix));
        tx_.commit(kFramePrefix);
        tx_.skip_to_end();
    }

    // Room for n bytes at head_, the frame boundary, marked as a frame's start.
    std::byte* begin_frame(std::size_t n) {
        std::byte* at;
        while ((at = tx_.reserve(n)) == nullptr) await_room(n);
        tx_.begin_frame();
        return at;
    }

    // The stamp's word is the ring's; the rest of the frame's prefix is ours.
    // mark: 0 or kAfterSlotBit (see ipc/shm_slot.hpp).
    static void write_frame_header(std::byte* at, FrameType type, std::size_t length, std::uint8_t mark = 0) {
        at[kStampBytes] = static_cast<std::byte>(static_cast<std::uint8_t>(type) | mark);
        put_u32(at + kStampBytes + 1, static_cast<std::uint32_t>(length));
        std::memset(at + kStampBytes + kFrameHeaderSize, 0, kFramePrefix - kStampBytes - kFrameHeaderSize);
    }
    // A payload of up to a line (never the slot's sizes) in a frame that ends
    // within small_until_: written whole in place and published with no check
    // of its own, as send_whole would (the bound holds its checks). A send
    // then takes 95 instructions instead of 135 (callgrind, 64 B), about 40 of
    // them before the payload's stores instead of about 70. Why that matters:
    // what runs from receive()'s poll to the reply's stores is on a spin-mode
    // round trip's critical path (25 cycles of dependent adds put before
    // send_whole's stores made Paired/shm-spin/64 1.15x slower per interleaved
    // round, 12 rounds). Measured, pinned 1,1, against the build before, per
    // interleaved round: Paired/shm-spin/64 0.965 [0.781, 1.358] (30 rounds,
    // 18 below 1), and 0.949, 0.998, 0.933, 0.907 in four runs of 10-16;
    // PairedDuplex 0.999 (30 rounds), 1.013, 0.997, 1.004: a few percent at
    // best, under a process's own swing. false: nothing done.
    [[gnu::always_inline]] bool send_small(FrameType type, std::span<const std::byte> payload) {
        const std::uint64_t at = tx_.head();
        const std::size_t prefix = small_payload_offset(tx_.offset(), payload.size());
        const std::size_t frame = align_up(prefix + payload.size(), kFrameAlign);
        if (at + frame > small_until_) return false;
        last_was_receive_ = false;
        rx_.release(false);  // as in send_other
        fill_whole(tx_.at_head(), prefix, type, payload);
        tx_.publish_whole(frame);
        rx_.ring_released_after_fence();
        return true;
    }

    // Every other send, and the frames past small_until_.
    [[gnu::noinline]] void send_other(FrameType type, std::span<const std::byte> payload) {
        small_until_ = 0;  // until this send completes: a throw below leaves the short way shut
        if (send_broken_) throw PeerGone("the peer stopped reading this session");
        last_was_receive_ = false;
        // The room of what we received since our last wait goes back now
        // (see receive()): stored before our frame's stamp, so a peer that
        // sees the frame sees the room too (its restart_at_ring_start needs
        // it), and rung after the publish, behind the fence that costs us
        // nothing there: we wait for the reply next anyway.
        rx_.release(false);
        if (mode_ == WaitMode::spin && type == FrameType::data && slot_.can_put(payload.size()))
            send_in_slot(payload);
        else if (!send_whole(type, payload))
            send_general(type, payload);
        // Every path above published a frame (16 bytes at least) or the
        // slot's message with wake, so a fence ran after the release(false)
        // store at the top (or await_room's release() rang for it before
        // SendAbandoned).
        rx_.ring_released_after_fence();
        bound_small_frames();
    }

    // How far send_small may go from here: within send_whole's conditions
    // (a ring before its restart point, no slot message maybe unread) and the
    // ring's (whole_frames_until). A ring before its restart point also
    // clears restart_blocked_, as send_whole and restart_at_ring_start do
    // for a frame sent there.
    void bound_small_frames() {
        small_until_ = 0;
        if (send_broken_ || slot_.maybe_unread() || tx_.offset() >= restart_after_) return;
        restart_blocked_ = false;
        small_until_ = tx_.whole_frames_until(restart_after_);
    }

    // The common frame, on a short path: every small round trip's critical
    // path runs through here, receive's inline poll and take_frame, so they
    // do only what such a frame needs (the instructions from the stamp seen
    // to the reply's stamp stored are what a spin-mode round trip costs over
    // the raw ping-pong). A frame before the restart point (no pad due),
    // stamped whole, whose room is free. false: nothing done, a case for
    // send_general.
    bool send_whole(FrameType type, std::span<const std::byte> payload) {
        if (slot_.maybe_unread()) return false;
        const std::size_t offset = tx_.offset();
        if (offset >= restart_after_) return false;
        if (!frame_in_place(offset, payload.size(), tx_.capacity())) return false;
        const std::size_t prefix = small_payload_offset(offset, payload.size());
        const std::size_t frame = align_up(prefix + payload.size(), kFrameAlign);
        std::byte* at = tx_.reserve(frame);
        if (at == nullptr) return false;
        restart_blocked_ = false;  // as restart_at_ring_start, for a ring back at its start
        fill_whole(at, prefix, type, payload);
        tx_.publish_frame(frame);
        return true;
    }

    // Any other frame: after a pad back to the ring's start, or a wait for
    // room, or with a payload that streams in chunks.
    [[gnu::noinline]] void send_general(FrameType type, std::span<const std::byte> payload) {
        try {
            const std::uint8_t mark = slot_.unread() ? kAfterSlotBit : 0;
            restart_at_ring_start();
            const std::size_t prefix = payload_offset(tx_.offset(), payload.size(), tx_.capacity());
            if (frame_in_place(tx_.offset(), payload.size(), tx_.capacity())) {
                const std::size_t frame = align_up(prefix + payload.size(), kFrameAlign);
                fill_whole(begin_frame(frame), prefix, type, payload, mark);
                tx_.commit(frame);
                tx_.publish();
            } else {
                std::byte* at = begin_frame(prefix);
                write_frame_header(at, type, payload.size(), mark);
                tx_.commit(prefix);
                put(payload);  // its first publish stamps the frame
                // On to the next boundary (at most 15 bytes, never past the
                // ring's end: that is a boundary too), as the reader does
                // after the frame: its index may then reach ours.
                if (std::size_t gap = tx_.frame_gap()) {
                    await_room(gap);
                    tx_.skip(gap);
                }
                tx_.publish();
            }
        } catch (const SendAbandoned&) {
            send_broken_ = true;
        }
    }

    // A frame stamped whole (of one publish chunk at most, before the ring's
    // end), its room at `at` reserved, filled in place: one copy of the
    // payload; the caller publishes it, once. A payload that does not fit
    // the rest of the prefix's line starts on the next (payload_offset): a
    // 64-byte payload then takes one line and the stamp another, as the raw
    // ping-pong's buffer and flag do, and copies move whole lines. The line
    // the reader polls (the stamp's) goes last, in one burst of stores:
    // payload bytes in it (the whole payload, or none: payload_offset),
    // header, then the stamp at the publish. Stored before the rest, its
    // first bytes would land in that line while the rest waited for the next
    // line, and the polling reader would take the line back in between, so
    // that it crossed over twice.
    // Inline: its out-of-line clone's call, prologue and epilogue were 20 of
    // a send's 150 instructions.
    [[gnu::always_inline]] void fill_whole(std::byte* at, std::size_t prefix, FrameType type,
                                           std::span<const std::byte> payload, std::uint8_t mark = 0) {
        copy_bytes(at + prefix, payload.data(), payload.size());  // none for n = 0 (src may be null)
        write_frame_header(at, type, payload.size(), mark);
    }

    // A spin-mode message of the slot's sizes while we hold its turn: into
    // the exchange slot (ipc/shm_slot.hpp), behind every ring byte we sent.
    [[gnu::noinline]] void send_in_slot(std::span<const std::byte> payload) {
        slot_.put(FrameType::data, payload, tx_.published());
        tx_.wake_reader();  // its fence also orders send()'s release(false) before the ring there
    }

    // Not a frame: await_frame's answer when the next message is the slot's.
    static std::byte* in_slot() {
        static std::byte tag;
        return &tag;
    }

    // Whether the peer's slot message is the next message: stamped, and every
    // ring frame its writer sent before it taken. Throws for a message that
    // claims to come before ring frames we have taken already.
    bool slot_due() {
        if (!slot_.stamped()) return false;
        const std::uint64_t after = slot_.after();
        if (after < rx_.position())
            throw ProtocolError("shm slot: a message placed before ring frames already taken");
        return after == rx_.position();
    }

    [[gnu::noinline]] bool take_from_slot(Message& msg) {
        slot_.take(msg, limits_.max_message);
        count_first_wait();
        last_was_receive_ = true;
        return true;
    }

    // The frame at `at`, a data or error frame whose header hb was read
    // from it, into msg.
    void take_frame(std::byte* at, const HeaderBytes& hb, Message& msg) {
        const std::size_t offset = rx_.offset();
        const FrameHeader h = decode_header(hb, limits_.max_message);
        msg.type = h.type;
        size_received(msg.payload, h.length);
        if (!frame_in_place(offset, h.length, rx_.capacity()))
            return take_streamed(payload_offset(offset, h.length, rx_.capacity()), msg);
        const std::size_t prefix = small_payload_offset(offset, h.length);
        copy_received(msg.payload.data(), at + prefix, h.length);
        rx_.advance(prefix + h.length);
        rx_.end_frame();
        // The room goes back at our next send or wait, or here every
        // kPublishChunk: a release here would cost a fence (Dekker, for a
        // writer asleep on a full ring) between the bytes' arrival and our
        // reply (perf: 5-10 ns of each receive).
        if (rx_.unreleased() >= kPublishChunk) rx_.release(wake_inside_message(rx_.unrung(), false));
    }

    // A payload that streams in behind its frame's stamp, `prefix` bytes in.
    [[gnu::noinline]] void take_streamed(std::size_t prefix, Message& msg) {
        rx_.advance(prefix);
        get(msg.payload);
        rx_.end_frame();
        rx_.release();
    }

    // Stages src, publishing every kPublishChunk bytes so the reader copies
    // out while we copy in, except that a tail shorter than kMinTail goes out
    // with the chunk before it: published alone it would wake the reader for
    // the chunk and then make it wait (or sleep) for the tail. A reader
    // asleep is woken as wake_inside_message says and at the end (send()).
    void put(std::span<const std::byte> src) {
        bool first = true;
        while (!src.empty()) {
            std::size_t piece = kPublishChunk - std::min(tx_.unpublished(), kPublishChunk);
            if (src.size() < piece + kMinTail) piece = src.size();
            std::size_t n = tx_.stage(src.first(piece));
            src = src.subspan(n);
            if (n == 0 && piece > 0) {
                await_room(1);
            } else if (!src.empty() && tx_.unpublished() >= kPublishChunk) {
                tx_.publish(wake_inside_message(tx_.unrung(), first));
                first = false;
            }
        }
    }

    // Whether a peer asleep is woken now, inside a message, for `unrung`
    // bytes (a first chunk of data, or room we freed): never when it is
    // pinned to our one CPU, where it would only preempt us and find the
    // message incomplete (Paired/shm/65536 on one CPU: 1.38 with a wake
    // inside each message, 1.08 without); otherwise at a message's first
    // chunk, so it copies out while we copy in (unpinned, 64 KiB: 0.99 of the
    // raw ping-pong against 1.07 without), and then every kWakeChunk, which
    // bounds what a peer the scheduler put on our CPU costs us. Called once
    // per chunk: the peer's line is read no more often.
    bool wake_inside_message(std::size_t unrung, bool first_chunk) const {
        if (only_cpu_ != 0 && theirs_->only_cpu.load(std::memory_order_relaxed) == only_cpu_) return false;
        return first_chunk || unrung >= kWakeChunk;
    }

    // Waits for room for n bytes (a receiving reader frees a chunk within
    // microseconds, so the wait may poll, see wait()); publishes first: the
    // reader must see what we have before we wait on it.
    void await_room(std::size_t n) {
        if (tx_.space(n) >= n) return;
        tx_.publish();
        rx_.release();  // the peer may be waiting for room too, to send what frees ours
        wait(
            tx_.space_bell(), [&] { return tx_.reader_closed() || tx_.space(n) >= n; },
            is_client_ ? "the server to read" : "the client to read", true);
        if (!tx_.reader_closed()) return;
        // The server ends a session it refuses (e.g. oversized) after an error
        // frame; let the caller's receive() see that frame rather than EPIPE.
        if (is_client_ && rx_.frame() != nullptr) throw SendAbandoned{};
        throw PeerGone(is_client_ ? "the server ended the session" : "the client ended the session");
    }

    // Fills dst from the ring: a payload that streams in behind its frame's stamp.
    void get(std::span<std::byte> dst) {
        std::size_t got = 0;
        while (got < dst.size()) {
            std::size_t n = rx_.take(dst.subspan(got, std::min(dst.size() - got, kPublishChunk)));
            got += n;
            if (rx_.unreleased() >= kPublishChunk) rx_.release(wake_inside_message(rx_.unrung(), false));
            if (got == dst.size()) break;
            if (n == 0) await_bytes();
        }
    }

    // Waits for the next frame's stamp; returns the frame, nullptr on a
    // clean end there. The writer is at work when it streams to us (our last
    // call was a receive too). A reply to what we sent, or a session's first
    // message, needs the peer to wake or do its work first: that wait sleeps
    // at once, as a semaphore ping-pong does.
    std::byte* await_frame() {
        rx_.release();  // the writer may be waiting for exactly this room
        waited_ = true;
        std::byte* at = nullptr;
        wait(
            rx_.data_bell(),
            [&] { return (at = rx_.frame()) != nullptr || slot_.stamped() || rx_.writer_closed(); },
            is_client_ ? "the server's reply" : "the client", last_was_receive_);
        // A frame stamped before the slot's stamp or the close flag is
        // visible once that is (seq_cst).
        if (at != nullptr || (at = rx_.frame()) != nullptr) return at;
        if (slot_due()) return in_slot();
        if (slot_.stamped())
            throw ProtocolError("shm slot: a message behind ring frames that were never published");
        return nullptr;
    }

    // Waits for more of a payload that streams in: the writer is at work.
    void await_bytes() {
        rx_.release();
        waited_ = true;
        wait(
            rx_.data_bell(), [&] { return rx_.readable() > 0 || rx_.writer_closed(); },
            is_client_ ? "the server's reply" : "the client", true);
        if (rx_.readable() == 0) throw PeerGone("the peer closed in the middle of a message");
    }

    // One wait outcome per message: immediate when its first bytes were
    // already there (receive's waits count themselves).
    void count_first_wait() {
        if (!waited_) count(WaitOutcome::immediate);
    }

    Mapping map_;
    ShmName owned_;
    std::string segment_;
    bool is_client_;
    pid_t peer_;
    Limits limits_;
    WaitMode mode_;
    RingWriter tx_;
    RingReader rx_;
    ExchangeSlot slot_;
    SideCounts* mine_ = nullptr;
    const SideCounts* theirs_ = nullptr;
    WaitCounts local_;
    bool send_broken_ = false;
    bool waited_ = false;
    bool restart_blocked_ = false;
    std::uint64_t small_until_ = 0;  // send_small's bound (bound_small_frames)
    bool last_was_receive_ = false;  // no send since the last message received
    int spin_budget_ = kSpinIterations;
    int failed_polls_ = 0;  // block mode: polls in a row that ended asleep anyway
    std::int32_t only_cpu_ = 0;  // as SideCounts::only_cpu, for this side
    const std::size_t restart_after_ = restart_after(mode_ == WaitMode::spin);
};

// Removes a segment whose creator is dead, if it is really ours.
void remove_orphan(const std::string& segment) {
    Fd fd(::shm_open(segment.c_str(), O_RDONLY, 0));
    if (!fd) return;
    struct stat st {};
    if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid())
        remove_quietly(remove_shm_name, segment);
}

class ShmPending final : public PendingSession {
public:
    ShmPending(Mapping map, std::string segment, pid_t client, WaitMode mode)
        : map_(std::move(map)), segment_(std::move(segment)), client_(client), mode_(mode) {}

    std::string peer() const override { return "pid " + std::to_string(client_); }

    std::unique_ptr<Channel> open(const Limits& limits) override {
        auto* h = reinterpret_cast<SegmentHeader*>(map_.get());
        // The channel exists before the client is told, so from here on its
        // destructor closes the rings (and removes the segment of a dead client).
        auto channel = std::make_unique<ShmChannel>(std::move(map_), ShmName{}, segment_, false,
                                                    client_, limits, mode_);
        h->server_pid.store(::getpid(), std::memory_order_release);
        h->attach.store(kAttached, std::memory_order_seq_cst);
        futex_wake(h->attach, 1);
        return channel;
    }

private:
    Mapping map_;
    std::string segment_;
    pid_t client_;
    WaitMode mode_;
};

class ShmListener final : public HelloListener {
public:
    ShmListener(const std::string& name, WaitMode mode)
        : HelloListener(kTransport, name, fifo_path(name)), mode_(mode) {}

private:
    // Validates the client's segment and claims it.
    std::unique_ptr<PendingSession> session(const fifo::Hello& h) override {
        auto pid = static_cast<pid_t>(h.pid);
        if (pid <= 0 || h.pid > 0x7fffffffu)
            throw ProtocolError("shm hello names an impossible pid " + std::to_string(h.pid));
        std::string segment = segment_name(name(), pid, h.serial);
        std::string who = "shm hello from pid " + std::to_string(pid) + " (" + segment + "): ";
        if (!process_alive(pid)) {
            remove_orphan(segment);
            throw ProtocolError(who + "that process is not running");
        }
        Fd fd(::shm_open(segment.c_str(), O_RDWR, 0));
        if (!fd) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) throw_errno("shm_open " + segment);
            throw ProtocolError(who + "shm_open: " + std::strerror(errno));
        }
        struct stat st {};
        check(::fstat(fd.get(), &st), "fstat shm segment");
        if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 07777) != 0600)
            throw ProtocolError(who + "not a 0600 segment of ours");
        if (static_cast<std::uint64_t>(st.st_size) != kSegmentSize)
            throw ProtocolError(who + "size " + std::to_string(st.st_size) + ", expected " +
                                std::to_string(kSegmentSize));
        Mapping map = map_shared(fd.get(), kSegmentSize, "shm segment");
        claim_segment(*reinterpret_cast<SegmentHeader*>(map.get()), pid, h.serial, who);
        return std::make_unique<ShmPending>(std::move(map), std::move(segment), pid, mode_);
    }

    WaitMode mode_;
};

// Waits for the server's session child to attach to our segment.
pid_t wait_attached(SegmentHeader* h, int fifo_fd, int timeout_ms, const std::string& name) {
    Deadline deadline(timeout_ms > 0 ? timeout_ms : -1);
    for (;;) {
        std::uint32_t v = h->attach.load(std::memory_order_seq_cst);
        if (v == kAttached) break;
        if (stop_requested()) throw Interrupted();
        int left = deadline.remaining_ms();
        if (left == 0)
            throw TimeoutError("shm server '" + name + "' did not take the session within " +
                               std::to_string(timeout_ms) + " ms");
        if (futex_wait(h->attach, v, left < 0 ? kSliceMs : std::min(left, kSliceMs)) ||
            h->attach.load() != kWaiting)
            continue;
        // Nobody reads the rendezvous FIFO any more: the server is gone before taking us.
        struct pollfd p {fifo_fd, POLLOUT, 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & POLLERR))
            throw PeerGone("shm server '" + name + "' went away before taking the session");
    }
    pid_t server = h->server_pid.load(std::memory_order_acquire);
    if (server <= 0) throw ProtocolError("shm server attached without naming its pid");
    return server;
}

}  // namespace

std::unique_ptr<Listener> listen_shm(const Endpoint& ep, const Limits&) {
    check_name(ep.name);
    return std::make_unique<ShmListener>(ep.name, ep.wait);
}

std::unique_ptr<Channel> connect_shm(const Endpoint& ep, const Limits& limits) {
    check_name(ep.name);
    std::string path = fifo_path(ep.name);
    Fd rendezvous = open_hello_fifo(path, kTransport, ep.name);
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);

    const pid_t self = ::getpid();
    // The session number is random: a name another user can predict could
    // be created first. A taken name (a squatter, or a dead process's leftover
    // under our reused pid) is never retried: the next attempt draws afresh.
    std::uint32_t session = 0;
    std::string segment;
    Fd fd;
    for (int attempt = 0; attempt < kNameAttempts && !fd; ++attempt) {
        session = static_cast<std::uint32_t>(random_u64());
        segment = segment_name(ep.name, self, session);
        fd.reset(::shm_open(segment.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
        if (!fd && errno != EEXIST) throw_errno("shm_open " + segment);
    }
    if (!fd)
        throw std::runtime_error("shm_open: " + std::to_string(kNameAttempts) +
                                 " fresh random segment names were all taken; someone is "
                                 "squatting /dev/shm/" + global_prefix(ep.name) + ".*");
    ShmName owned(segment);
    check(::fchmod(fd.get(), 0600), "fchmod shm segment");
    check(::ftruncate(fd.get(), static_cast<off_t>(kSegmentSize)), "ftruncate shm segment");
    Mapping map = map_shared(fd.get(), kSegmentSize, "shm segment");
    fd.reset();  // the mapping keeps the object alive

    auto* h = new (map.get()) SegmentHeader();
    h->client_pid = self;
    h->session = session;
    h->to_server.stamp_key = random_u64();
    h->to_client.stamp_key = random_u64();
    h->magic.store(kSegmentMagic, std::memory_order_release);

    fifo::Hello hello{static_cast<std::uint32_t>(self), session};
    send_hello(rendezvous, path, kTransport, ep.name, hello, deadline);
    pid_t server;
    try {
        server = wait_attached(h, rendezvous.get(), limits.timeout_ms, ep.name);
    } catch (...) {
        // A server child that attaches after we gave up sees EOF at once
        // instead of waiting out its idle timeout on a segment nobody uses.
        h->to_server.writer_closed.store(1, std::memory_order_seq_cst);
        h->to_client.reader_closed.store(1, std::memory_order_seq_cst);
        throw;
    }
    return std::make_unique<ShmChannel>(std::move(map), std::move(owned), segment, true, server,
                                        limits, ep.wait);
}

std::vector<ObjectInfo> list_shm_objects() {
    std::vector<ObjectInfo> out;
    for (const auto& entry : directory_entries("/dev/shm")) {
        auto e = parse_segment_entry(entry);
        if (!e) continue;
        std::string what = "/dev/shm/" + entry;
        auto remove = [name = "/" + entry] { remove_shm_name(name); };
        out.push_back(e->tag == dir_tag()
                          ? session_object(kTransport, e->name, what, e->pid, remove)
                          : foreign_object(kTransport, e->name, what, true, e->pid, remove));
    }
    std::string dir = existing_private_dir();
    for (const auto& name : stems_with_suffix(dir, ".shm")) {
        std::string path = dir + "/" + name + ".shm";
        if (is_fifo(path)) out.push_back(server_object(kTransport, name, path, file_remover(path)));
    }
    return out;
}

WaitCounts shm_wait_totals() noexcept {
    WaitCounts c;
    c.immediate = g_total_immediate.load(std::memory_order_relaxed);
    c.spun = g_total_spun.load(std::memory_order_relaxed);
    c.slept = g_total_slept.load(std::memory_order_relaxed);
    return c;
}

std::optional<ShmSessionCounts> shm_session_counts(const Channel& channel) {
    if (const auto* shm = dynamic_cast<const ShmChannel*>(&channel)) return shm->counts();
    return std::nullopt;
}

}  // namespace ipclab
