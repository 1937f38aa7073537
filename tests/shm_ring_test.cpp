// The SPSC byte ring and its futex doorbells, in one process, across
// threads (for ThreadSanitizer) and across a fork (for the futex).
#include "ipc/shm_ring.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "ipc/shm_futex.hpp"
#include "ipc/shm_layout.hpp"
#include "ipc/shm_mapping.hpp"
#include "ipc/sleep_watch.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab {
namespace {

std::byte pattern(std::uint64_t i) { return static_cast<std::byte>((i * 131) ^ (i >> 9)); }

// A ring in anonymous shared memory, so a forked child shares it.
struct TestRing {
    explicit TestRing(std::size_t cap)
        : capacity(cap), map(map_anonymous_shared(sizeof(RingShared) + cap)) {
        shared = new (map.get()) RingShared();
        data = map.get() + sizeof(RingShared);
    }
    RingWriter writer() { return RingWriter(shared, data, capacity); }
    RingReader reader() { return RingReader(shared, data, capacity); }

    std::size_t capacity;
    Mapping map;
    RingShared* shared;
    std::byte* data;
};

ipclab::Bytes bytes_from(std::uint64_t start, std::size_t n) {
    ipclab::Bytes v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = pattern(start + i);
    return v;
}

// A frame's prefix is reserved whole before the ring's end: the payload's
// offset must never reach past it, whatever the frame's place and size
// (a large payload's 5-byte shift once did, in the ring's last line, and
// the writer waited forever for room no reader could give). Where it fits,
// a large payload starts 5 bytes into a line, as a message buffer does.
TEST(ShmLayout, APayloadOffsetNeverReachesPastTheRingsEnd) {
    using namespace shm;
    for (std::size_t capacity : {std::size_t{4096}, kRingCapacity})
        for (std::size_t offset = capacity - 6 * kCacheLine; offset < capacity; offset += kFrameAlign)
            for (std::uint64_t length : {std::uint64_t{1}, std::uint64_t{48}, std::uint64_t{64}, std::uint64_t{4096},
                                         std::uint64_t{kLargeBuffer - 1}, std::uint64_t{kLargeBuffer},
                                         std::uint64_t{kLargeBuffer + 16}, std::uint64_t{1} << 20}) {
                const std::size_t at = payload_offset(offset, length, capacity);
                EXPECT_GE(at, kFramePrefix) << offset << " " << length;
                EXPECT_LE(at, capacity - offset) << "past the end: offset " << offset << ", length " << length;
                if (length < kLargeBuffer) {
                    EXPECT_EQ(at, small_payload_offset(offset, length)) << offset << " " << length;
                } else if (at < capacity - offset) {
                    EXPECT_EQ((offset + at) % kCacheLine, kLargeBufferPageOffset % kCacheLine) << offset;
                }
            }
}

TEST(ShmRing, WrapsAroundKeepingBytesInOrder) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    std::uint64_t sent = 0, received = 0;
    for (std::size_t k : {40u, 50u, 63u, 1u, 64u, 17u, 33u}) {
        auto src = bytes_from(sent, k);
        ASSERT_EQ(w.stage(src), k);
        sent += k;
        w.publish();
        ipclab::Bytes dst(k);
        ASSERT_EQ(rd.take(dst), k);
        EXPECT_EQ(dst, bytes_from(received, k)) << "chunk of " << k;
        received += k;
        rd.release();
    }
    EXPECT_EQ(r.shared->head.load(), sent);
    EXPECT_EQ(r.shared->tail.load(), sent);
}

TEST(ShmRing, ExactCapacityFillsThenEmpties) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    auto src = bytes_from(0, 100);
    EXPECT_EQ(w.stage(src), 64u);  // only what fits
    EXPECT_EQ(w.space(), 0u);
    EXPECT_EQ(w.stage(src), 0u);
    EXPECT_EQ(rd.readable(), 0u) << "staged bytes are invisible until published";
    w.publish();
    EXPECT_EQ(rd.readable(), 64u);
    ipclab::Bytes dst(64);
    EXPECT_EQ(rd.take(dst), 64u);
    EXPECT_EQ(dst, bytes_from(0, 64));
    EXPECT_EQ(w.space(), 0u) << "room comes back only when released";
    rd.release();
    EXPECT_EQ(w.space(), 64u);
}

TEST(ShmRing, ZeroBytesAreANoOp) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    EXPECT_EQ(w.stage({}), 0u);
    EXPECT_FALSE(w.publish());
    EXPECT_EQ(r.shared->head.load(), 0u);
    EXPECT_EQ(rd.readable(), 0u);
    ipclab::Bytes none;
    EXPECT_EQ(rd.take(none), 0u);
    EXPECT_FALSE(rd.release());
}

TEST(ShmRing, PaddingToTheEndRestartsAtOffsetZero) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    ipclab::Bytes first(10), second(8);
    ASSERT_EQ(w.stage(bytes_from(0, 10)), 10u);
    w.publish();
    ASSERT_EQ(rd.take(first), 10u);
    EXPECT_EQ(first, bytes_from(0, 10));
    rd.release();

    w.skip_to_end();  // 54 bytes nobody writes or reads
    EXPECT_EQ(w.offset(), 0u);
    EXPECT_EQ(w.space(), 10u) << "the padding takes room like data";
    ASSERT_EQ(w.stage(bytes_from(100, 8)), 8u);
    w.publish();

    EXPECT_EQ(rd.offset(), 10u);
    rd.skip_to_end(54);
    EXPECT_EQ(rd.offset(), 0u);
    ASSERT_EQ(rd.take(second), 8u);
    EXPECT_EQ(second, bytes_from(100, 8));
    rd.release();
    EXPECT_EQ(w.space(64), 64u) << "skipped bytes are released with the rest";
}

TEST(ShmRing, RejectsPaddingThatDoesNotEndAtTheRingsEnd) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    ASSERT_EQ(w.stage(bytes_from(0, 10)), 10u);
    w.publish();
    ipclab::Bytes dst(4);
    ASSERT_EQ(rd.take(dst), 4u);
    EXPECT_THROW(rd.skip_to_end(59), ProtocolError) << "one byte too long";
    EXPECT_THROW(rd.skip_to_end(0xFFFFFFFFu), ProtocolError);
    EXPECT_THROW(rd.skip_to_end(60), ProtocolError) << "the right length, but never published";
    EXPECT_EQ(rd.offset(), 4u) << "a refused skip moves nothing";

    TestRing full(64);
    auto fw = full.writer();
    ASSERT_EQ(fw.stage(bytes_from(0, 64)), 64u);
    fw.publish();
    ipclab::Bytes some(10);
    ASSERT_EQ(full.reader().take(some), 10u);  // taken, not released: no room yet
    EXPECT_THROW(fw.skip_to_end(), std::logic_error);
}

TEST(ShmRing, PaddingInsideTheRingIsSkippedAndValidated) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    ASSERT_EQ(w.stage(bytes_from(0, 5)), 5u);
    w.skip(11);  // the next byte staged goes to offset 16
    EXPECT_EQ(w.offset(), 16u);
    EXPECT_EQ(w.unpublished(), 5u) << "padding costs no copy";
    ASSERT_EQ(w.stage(bytes_from(100, 8)), 8u);
    w.publish();

    ipclab::Bytes head(5), rest(8);
    ASSERT_EQ(rd.take(head), 5u);
    EXPECT_THROW(rd.skip(60), ProtocolError) << "past the ring's end";
    EXPECT_THROW(rd.skip(0xFFFFFFFFu), ProtocolError);
    EXPECT_THROW(rd.skip(20), ProtocolError) << "past the bytes published";
    EXPECT_EQ(rd.offset(), 5u) << "a refused skip moves nothing";
    rd.skip(11);
    ASSERT_EQ(rd.take(rest), 8u);
    EXPECT_EQ(rest, bytes_from(100, 8));
    rd.release();
    EXPECT_EQ(w.space(64), 64u) << "skipped bytes are released with the rest";

    EXPECT_THROW(w.skip(41), std::logic_error) << "past the ring's end";
    EXPECT_EQ(w.offset(), 24u) << "a refused skip moves nothing";
}

TEST(ShmRing, ReserveHandsOutOnlyContiguousRoom) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    std::byte* at = w.reserve(40);
    ASSERT_EQ(at, r.data);
    std::memcpy(at, bytes_from(0, 40).data(), 40);
    w.commit(40);
    EXPECT_EQ(rd.readable(), 0u) << "committed bytes are invisible until published";
    w.publish();
    EXPECT_EQ(rd.readable(41), 40u) << "exactly what was published";
    EXPECT_EQ(w.reserve(25), nullptr) << "24 bytes before the end: a frame that would wrap";
    ASSERT_EQ(w.reserve(24), r.data + 40);
    std::memcpy(r.data + 40, bytes_from(40, 24).data(), 24);
    w.commit(24);
    EXPECT_EQ(w.reserve(1), nullptr) << "the ring is full until the reader releases";
    ipclab::Bytes first(40);
    ASSERT_EQ(rd.take(first), 40u);
    EXPECT_EQ(first, bytes_from(0, 40));
    EXPECT_EQ(w.reserve(1), nullptr) << "taken is not yet released";
    rd.release();
    ASSERT_EQ(w.reserve(16), r.data);
    ASSERT_EQ(w.stage(bytes_from(64, 16)), 16u);  // at offset 0, after the 24 at the end
    w.publish();
    ipclab::Bytes dst(40);
    ASSERT_EQ(rd.take(dst), 40u);
    EXPECT_EQ(dst, bytes_from(40, 40));
}

TEST(ShmRing, RejectsAPeerScribblingOnTheIndices) {
    {
        TestRing r(64);
        auto rd = r.reader();
        r.shared->head.store(65);  // more than the ring holds
        EXPECT_THROW(rd.readable(), ProtocolError);
    }
    {
        TestRing r(64);
        auto w = r.writer();
        auto src = bytes_from(0, 64);
        ASSERT_EQ(w.stage(src), 64u);
        w.publish();
        r.shared->tail.store(1000);  // past what was ever published
        EXPECT_THROW(w.space(), ProtocolError);
    }
    EXPECT_THROW(RingWriter(nullptr, nullptr, 48), std::invalid_argument);
}

// A frame is seen by its stamp only once published, only at its own index:
// not in a fresh ring's zeros (whatever the key, even 0), not in the stamp
// a lap ago at the same offset. The head index still covers every frame,
// and a reader that passed it by stamps reads nothing from it.
TEST(ShmRing, StampedFramesAreSeenWholeAndOnlyAtTheirIndex) {
    for (std::uint64_t key : {std::uint64_t{0}, std::uint64_t{0x0123456789abcdef}}) {
        TestRing r(256);
        r.shared->stamp_key = key;
        auto w = r.writer();
        auto rd = r.reader();
        EXPECT_EQ(rd.frame(), nullptr) << "a fresh ring's zeros are no stamp";
        for (std::uint64_t i = 0; i < 8; ++i) {  // one lap of 32-byte frames
            std::byte* at = w.reserve(32);
            ASSERT_NE(at, nullptr);
            w.begin_frame();
            std::memset(at + kStampBytes, static_cast<int>(i), 32 - kStampBytes);
            w.commit(32);
            EXPECT_EQ(rd.frame(), nullptr) << "not before its publish";
            w.publish();
            EXPECT_EQ(r.shared->head.load(), (i + 1) * 32) << "the head index covers it";
            std::byte* f = rd.frame();
            ASSERT_EQ(f, r.data + i * 32);
            EXPECT_EQ(f[kStampBytes + 5], static_cast<std::byte>(i));
            rd.advance(32);
            rd.end_frame();
            EXPECT_EQ(rd.readable(), 0u) << "the head index is no further than the frames";
        }
        rd.release();
        EXPECT_EQ(rd.frame(), nullptr) << "offset 0 holds the stamp of index 0, not 256";
        std::byte* at = w.reserve(16);
        ASSERT_EQ(at, r.data);
        w.begin_frame();
        w.commit(16);
        w.publish();
        EXPECT_EQ(rd.frame(), r.data);
    }
}

// publish_frame, the short way for a whole frame: the same index and stamp
// as begin_frame, commit and publish, and the same wake for a sleeper; only
// when nothing else is staged or pending.
TEST(ShmRing, PublishFrameStampsAWholeFrameAtOnce) {
    TestRing r(256);
    r.shared->stamp_key = 0x0123456789abcdef;
    auto w = r.writer();
    auto rd = r.reader();
    for (std::uint64_t i = 0; i < 12; ++i) {  // past the ring's end, the reader keeping up
        std::byte* at = w.reserve(32);
        ASSERT_NE(at, nullptr) << "frame " << i;
        ASSERT_EQ(at, r.data + (i * 32) % 256);
        std::memset(at + kStampBytes, static_cast<int>(i), 32 - kStampBytes);
        EXPECT_EQ(rd.frame(), nullptr) << "not before its publish";
        EXPECT_FALSE(w.publish_frame(32)) << "nobody sleeps: no wake";
        EXPECT_EQ(r.shared->head.load(), (i + 1) * 32) << "the head index covers it";
        std::byte* f = rd.frame();
        ASSERT_EQ(f, at);
        EXPECT_EQ(f[kStampBytes + 5], static_cast<std::byte>(i));
        rd.advance(32);
        rd.end_frame();
        rd.release(false);
    }
    r.shared->data.sleeping.store(1);
    std::uint32_t seq = r.shared->data.seq.load();
    ASSERT_NE(w.reserve(16), nullptr);
    EXPECT_TRUE(w.publish_frame(16)) << "a sleeping reader is woken";
    EXPECT_EQ(r.shared->data.seq.load(), seq + 1);

    auto src = bytes_from(0, 5);
    ASSERT_EQ(w.stage(src), 5u);
    EXPECT_THROW(w.publish_frame(16), std::logic_error) << "bytes staged before it, unpublished";
    w.skip(w.frame_gap());
    w.publish();
    ASSERT_NE(w.reserve(32), nullptr);
    w.begin_frame();  // its stamp pending, nothing staged yet
    EXPECT_THROW(w.publish_frame(16), std::logic_error) << "another stamp pending";
}

TEST(ShmRing, FramesStartOnlyOnTheirBoundaries) {
    TestRing r(256);
    auto w = r.writer();
    auto rd = r.reader();
    auto src = bytes_from(0, 5);
    ASSERT_EQ(w.stage(src), 5u);
    EXPECT_EQ(w.frame_gap(), 11u);
    EXPECT_THROW(w.begin_frame(), std::logic_error);
    w.skip(w.frame_gap());
    EXPECT_EQ(w.frame_gap(), 0u);
    w.begin_frame();
    w.commit(16);
    w.begin_frame();  // a pad and its frame
    w.commit(16);
    EXPECT_THROW(w.begin_frame(), std::logic_error) << "two stamps already pending";
    w.publish();
    ipclab::Bytes dst(5);
    ASSERT_EQ(rd.take(dst), 5u);
    EXPECT_THROW(rd.frame(), std::logic_error);
    rd.end_frame();
    EXPECT_EQ(rd.offset(), 16u);
    EXPECT_EQ(rd.frame(), r.data + 16);
    rd.advance(16);
    EXPECT_EQ(rd.frame(), r.data + 32);
}

// A writer's head index may lag behind a reader that passed frames by their
// stamps; anything beyond the room it was given is still refused.
TEST(ShmRing, AHeadIndexBehindTheReaderReadsAsNothing) {
    TestRing r(256);
    auto rd = r.reader();
    rd.advance(64);  // as after frames read by their stamps
    r.shared->head.store(32);
    EXPECT_EQ(rd.readable(), 0u);
    r.shared->head.store(80);
    EXPECT_EQ(rd.readable(), 16u);
    r.shared->head.store(40);
    EXPECT_THROW(rd.readable(17), ProtocolError) << "the writer went back";
    r.shared->head.store(64 + 256 + 1);
    EXPECT_THROW(rd.readable(17), ProtocolError) << "more than the ring holds";
}

TEST(ShmRing, DoorbellCallsWakeOnlyForASleeper) {
    TestRing r(64);
    auto w = r.writer();
    auto src = bytes_from(0, 8);
    w.stage(std::span(src).first(4));
    EXPECT_FALSE(w.publish()) << "nobody sleeps: no system call";
    std::uint32_t seq = r.shared->data.seq.load();
    r.shared->data.sleeping.store(1);
    w.stage(std::span(src).subspan(4));
    EXPECT_TRUE(w.publish());
    EXPECT_EQ(r.shared->data.seq.load(), seq + 1);
}

// copy_bytes splits copies across a short distance into pieces: every byte
// still lands where memcpy would put it, at every distance and length.
TEST(ShmRing, CopyBytesIsMemcpyAtEveryDistance) {
    const auto src = bytes_from(0, 9000);
    std::vector<std::byte> dst(4096 + 9100);
    for (std::size_t distance : {0, 1, 5, 63, 64, 100, 4095}) {
        for (std::size_t n : {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 2047, 2048, 2049,
                              4096, 6145, 9000}) {
            std::fill(dst.begin(), dst.end(), std::byte{0xEE});
            // The destination `distance` bytes after the source, modulo 4 KiB.
            auto off = (reinterpret_cast<std::uintptr_t>(src.data()) + distance -
                        reinterpret_cast<std::uintptr_t>(dst.data())) % 4096;
            copy_bytes(dst.data() + off, src.data(), n);
            EXPECT_TRUE(std::equal(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(n),
                                   dst.begin() + static_cast<std::ptrdiff_t>(off)))
                << "distance " << distance << ", " << n << " bytes";
            EXPECT_EQ(dst[off + n], std::byte{0xEE}) << "wrote past the end";
            if (off > 0) {
                EXPECT_EQ(dst[off - 1], std::byte{0xEE}) << "wrote before the start";
            }
        }
    }
}

// The ringer claims the sleeper's flag: a second ring before the woken
// sleeper has run (the next chunk of a large message) makes no system call.
TEST(ShmRing, DoorbellWakesASleeperOnce) {
    TestRing r(64);
    auto w = r.writer();
    auto src = bytes_from(0, 8);
    std::uint32_t seq = r.shared->data.seq.load();
    r.shared->data.sleeping.store(1);
    w.stage(std::span(src).first(4));
    EXPECT_TRUE(w.publish());
    EXPECT_EQ(r.shared->data.sleeping.load(), 0u);
    w.stage(std::span(src).subspan(4));
    EXPECT_FALSE(w.publish()) << "the sleeper was already woken";
    EXPECT_EQ(r.shared->data.seq.load(), seq + 1);
}

// Inside a large message a sleeping peer is left asleep (publish or release
// with wake false); the next one with wake rings for those bytes even when
// nothing new came since, so a side about to wait never leaves it asleep.
TEST(ShmRing, AWakeLeftOutIsOwedToTheNextOne) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    auto src = bytes_from(0, 8);
    r.shared->data.sleeping.store(1);
    w.stage(src);
    EXPECT_FALSE(w.publish(false));
    EXPECT_EQ(r.shared->data.sleeping.load(), 1u) << "left asleep";
    EXPECT_EQ(w.unrung(), 8u);
    EXPECT_TRUE(w.publish()) << "owed a wake for the bytes already published";
    EXPECT_EQ(w.unrung(), 0u);
    EXPECT_FALSE(w.publish()) << "nothing owed any more";

    std::vector<std::byte> dst(8);
    ASSERT_EQ(rd.take(dst), 8u);
    r.shared->space.sleeping.store(1);
    EXPECT_FALSE(rd.release(false));
    EXPECT_EQ(r.shared->tail.load(), 8u) << "the room is visible all the same";
    EXPECT_TRUE(rd.release());
    EXPECT_FALSE(rd.release());
}

// A restart's pad is no data a sleeper waits for: the bytes after it alone
// decide when a chunked writer (or reader) owes the other side a wake.
TEST(ShmRing, PaddingIsNotCountedAsUnrungBytes) {
    TestRing r(64);
    auto w = r.writer();
    auto rd = r.reader();
    ipclab::Bytes got(16);
    ASSERT_EQ(w.stage(bytes_from(0, 16)), 16u);
    EXPECT_FALSE(w.publish());
    ASSERT_EQ(rd.take(got), 16u);
    EXPECT_FALSE(rd.release());

    w.skip_to_end();  // 48 bytes of pad
    ASSERT_EQ(w.stage(bytes_from(16, 8)), 8u);
    EXPECT_EQ(w.unrung(), 8u) << "the pad is not owed a wake";
    w.publish(false);
    EXPECT_EQ(w.unrung(), 8u);
    w.publish();
    EXPECT_EQ(w.unrung(), 0u);

    rd.skip_to_end(48);
    ipclab::Bytes second(8);
    ASSERT_EQ(rd.take(second), 8u);
    EXPECT_EQ(second, bytes_from(16, 8));
    EXPECT_EQ(rd.unrung(), 8u) << "nor is the reader's pass over it";
    rd.release(false);
    EXPECT_EQ(rd.unrung(), 8u);
    rd.release();
    EXPECT_EQ(rd.unrung(), 0u);
}

WaitPolicy block_poll_policy(int timeout_ms) {
    WaitPolicy p{WaitMode::block, kSpinIterations, timeout_ms, 0, "test data"};
    p.block_spin = kBlockSpin;
    return p;
}

// Honest outcomes: a block-mode wait whose condition turned true during its
// short poll counts as spun, one that was true at once as immediate.
TEST(ShmRing, ABlockWaitSatisfiedWhilePollingCountsAsSpun) {
    Doorbell bell;
    int calls = 0;
    EXPECT_EQ(wait_until(bell, [&] { return ++calls >= 3; }, block_poll_policy(10000)), WaitOutcome::spun);
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(wait_until(bell, [] { return true; }, block_poll_policy(10000)), WaitOutcome::immediate);
    EXPECT_EQ(bell.sleeping.load(), 0u);
}

// A block-mode waiter whose peer stays idle stops polling and sleeps on the
// futex (the ringer sees its flag) instead of spinning on; it is woken by the
// ring and reports that it slept.
TEST(ShmRing, AnIdleBlockWaiterPollsBrieflyThenSleeps) {
    Doorbell bell;
    std::atomic<bool> flag{false};
    WaitOutcome outcome = WaitOutcome::immediate;
    std::thread waiter([&] {
        outcome = wait_until(bell, [&] { return flag.load(std::memory_order_seq_cst); }, block_poll_policy(20000));
    });
    bool slept = test::eventually([&] { return bell.sleeping.load(std::memory_order_seq_cst) == 1; }, 10000);
    flag.store(true, std::memory_order_seq_cst);
    bool woke = bell.ring();
    waiter.join();
    EXPECT_TRUE(slept) << "the waiter never armed its futex sleep";
    EXPECT_TRUE(woke) << "the ring found no sleeper";
    EXPECT_EQ(outcome, WaitOutcome::slept);
}

TEST(ShmRing, WaitTimesOutOnASilentRing) {
    TestRing r(64);
    auto rd = r.reader();
    WaitPolicy p{WaitMode::block, kSpinIterations, 150, 0, "test data"};
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(wait_until(rd.data_bell(), [&] { return rd.readable() > 0; }, p), TimeoutError);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 140);
    EXPECT_LT(ms, 1500);
}

// The wait starts its own deadline lazily (at the first wake that finds
// nothing), but a client's WaitCap is a bound on the whole exchange: under
// one the wait must end by the cap, not a slice or a policy timeout later.
TEST(ShmRing, WaitEndsByTheThreadsWaitCap) {
    TestRing r(64);
    auto rd = r.reader();
    WaitPolicy p{WaitMode::block, kSpinIterations, 20000, 0, "test data"};
    auto t0 = std::chrono::steady_clock::now();
    {
        WaitCap cap(30);
        EXPECT_THROW(wait_until(rd.data_bell(), [&] { return rd.readable() > 0; }, p), TimeoutError);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 25);
    EXPECT_LT(ms, 90) << "the wait outlasted its cap: its first slice (" << kSliceMs << " ms) ran out first";
}

// A wait on a silent ring whose peer has died ends with PeerGone, soon.
void expect_a_dead_peer_noticed(RingReader& rd) {
    pid_t pid = test::test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(0);
    test::wait_or_kill(pid, 5000);
    WaitPolicy p{WaitMode::block, kSpinIterations, 10000, pid, "the dead peer"};
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(wait_until(rd.data_bell(), [&] { return rd.readable() > 0; }, p), PeerGone);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
}

TEST(ShmRing, WaitNoticesADeadPeerWithinASlice) {
    TestRing r(64);
    auto rd = r.reader();
    expect_a_dead_peer_noticed(rd);
}

// Starts this process's sleep watchdog (ipc/sleep_watch.hpp), as that many
// sleeps would.
bool start_sleep_watch() {
    for (std::uint64_t i = 0; i <= sleep_watch::kSleepsBeforeWatch; ++i)
        if (sleep_watch::available()) return true;
    return sleep_watch::available();
}

// A sleep registered with the watchdog has no timer, yet ends within a
// slice: only the watchdog's bump of its word can end it here.
TEST(SleepWatch, WakesAnUntimedSleepWithinASlice) {
    if (!sleep_watch::supported()) GTEST_SKIP() << "no watchdog under ThreadSanitizer";
    ASSERT_TRUE(start_sleep_watch());
    std::atomic<std::uint32_t> word{0};
    const auto t0 = std::chrono::steady_clock::now();
    {
        sleep_watch::Watched watched(word);
        // Bounded all the same: a watchdog that never came would fail, not hang, the test.
        while (word.load() == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
            futex_wait(word, 0, 1000);
    }
    EXPECT_NE(word.load(), 0u) << "the watchdog never woke the sleep";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

// With the watchdog running, a wait's long sleeps go untimed: a dead peer is
// still noticed within a slice or so, and a timeout still ends the wait.
TEST(SleepWatch, AnUntimedWaitStillNoticesADeadPeerAndTimesOut) {
    if (!sleep_watch::supported()) GTEST_SKIP() << "no watchdog under ThreadSanitizer";
    ASSERT_TRUE(start_sleep_watch());
    TestRing r(64);
    auto rd = r.reader();
    expect_a_dead_peer_noticed(rd);

    // Longer than two slices, so that its first sleeps have no timer.
    WaitPolicy silent{WaitMode::block, kSpinIterations, 600, 0, "test data"};
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(wait_until(rd.data_bell(), [&] { return rd.readable() > 0; }, silent), TimeoutError);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 590);
    EXPECT_LT(ms, 3000);
}

// A forked child has no watchdog (only the forking thread survives a fork):
// its sleeps keep their timers, so a dead peer is still noticed, until it
// has slept enough to start its own.
TEST(SleepWatch, AForkedChildSleepsTimedUntilItStartsItsOwn) {
    if (!sleep_watch::supported()) GTEST_SKIP() << "no watchdog under ThreadSanitizer";
    ASSERT_TRUE(start_sleep_watch());
    pid_t pid = test::test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int code = 0;
        try {
            if (sleep_watch::available()) code |= 1;  // inherited as running: wrong
            TestRing r(64);
            auto rd = r.reader();
            pid_t gone = ::fork();  // a peer that has died, as in the tests above
            if (gone == 0) ::_exit(0);
            if (gone < 0 || ::waitpid(gone, nullptr, 0) != gone) ::_exit(32);
            WaitPolicy dead{WaitMode::block, kSpinIterations, 10000, gone, "the dead peer"};
            auto t0 = std::chrono::steady_clock::now();
            try {
                wait_until(rd.data_bell(), [&] { return rd.readable() > 0; }, dead);
                code |= 2;
            } catch (const PeerGone&) {
            }
            if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(2)) code |= 4;
            if (!start_sleep_watch()) code |= 8;
        } catch (...) {
            code |= 16;
        }
        ::_exit(code);
    }
    int status = test::wait_or_kill(pid, 20000);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: inherited a watchdog, 2: the wait ended without PeerGone, "
                                         "4: it took over 2 s, 8: could not start its own, 16: threw, "
                                         "32: no dead peer to wait for";
}

// Streams total bytes of pattern() through the ring, waiting for room.
void produce(RingWriter& w, std::uint64_t total, const WaitPolicy& p) {
    std::uint64_t sent = 0;
    ipclab::Bytes chunk;
    while (sent < total) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(total - sent, 1 + sent % 5000));
        chunk = bytes_from(sent, want);
        std::span<const std::byte> left(chunk);
        while (!left.empty()) {
            std::size_t n = w.stage(left);
            left = left.subspan(n);
            sent += n;
            w.publish();
            if (n == 0) wait_until(w.space_bell(), [&] { return w.space() > 0; }, p);
        }
    }
    w.close();
}

// Reads until the writer closes; returns how many bytes differ from pattern().
std::uint64_t consume(RingReader& rd, std::uint64_t* received, const WaitPolicy& p) {
    std::uint64_t bad = 0;
    ipclab::Bytes buf(3001);
    for (;;) {
        std::size_t n = rd.take(buf);
        for (std::size_t i = 0; i < n; ++i)
            if (buf[i] != pattern(*received + i)) ++bad;
        *received += n;
        rd.release();
        if (n > 0) continue;
        wait_until(rd.data_bell(), [&] { return rd.readable() > 0 || rd.writer_closed(); }, p);
        if (rd.readable() == 0) return bad;  // closed and drained
    }
}

class ShmRingModes : public ::testing::TestWithParam<WaitMode> {};

TEST_P(ShmRingModes, StreamsMoreThanCapacityToAForkedConsumer) {
    constexpr std::uint64_t kTotal = (3u << 20) + 7;  // 768 ring-fulls, odd tail
    TestRing r(4096);
    pid_t parent = ::getpid();
    pid_t pid = test::test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int rc = 3;
        try {
            auto rd = r.reader();
            std::uint64_t received = 0;
            std::uint64_t bad = consume(rd, &received, {GetParam(), kSpinIterations, 10000, parent, "producer"});
            rc = bad == 0 && received == kTotal ? 0 : 1;
        } catch (...) {
            rc = 2;
        }
        ::_exit(rc);
    }
    auto w = r.writer();
    EXPECT_NO_THROW(produce(w, kTotal, {GetParam(), kSpinIterations, 10000, pid, "consumer"}));
    int status = test::wait_or_kill(pid, 20000);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: bytes differ, 2: the consumer threw";
}

// Threads rather than processes, so ThreadSanitizer sees both sides.
void expect_stream_between_threads(const WaitPolicy& p) {
    constexpr std::uint64_t kTotal = 2u << 20;
    TestRing r(1024);
    std::uint64_t received = 0, bad = 0;
    std::thread consumer([&] {
        auto rd = r.reader();
        bad = consume(rd, &received, p);
    });
    auto w = r.writer();
    produce(w, kTotal, p);
    consumer.join();
    EXPECT_EQ(received, kTotal);
    EXPECT_EQ(bad, 0u);
}

TEST_P(ShmRingModes, StreamsBetweenThreads) {
    expect_stream_between_threads({GetParam(), kSpinIterations, 10000, 0, "the other thread"});
}

// Block mode with its short poll (what channels use while the peer works):
// every outcome path, byte-exact through a small ring.
TEST(ShmRing, StreamsBetweenThreadsWithTheBlockPoll) {
    expect_stream_between_threads(block_poll_policy(10000));
}

INSTANTIATE_TEST_SUITE_P(Wait, ShmRingModes, ::testing::Values(WaitMode::block, WaitMode::spin),
                         [](const auto& param_info) {
                             return param_info.param == WaitMode::block ? "block" : "spin";
                         });

// copy_received (a received payload out of the peer's lines): every length
// through its three ways (copy_bytes up to 64 bytes, 16-byte moves with an
// overlapping last one to 256, copy_bytes beyond) at several alignments of
// source and destination: exactly the n bytes, nothing around them.
TEST(CopyReceived, CopiesExactlyTheBytesAskedForAtAnyLengthAndAlignment) {
    constexpr std::size_t kMax = 300, kGuard = 16;
    std::vector<std::byte> src(kMax + 16), dst(kMax + 2 * kGuard + 16);
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>(i * 7 + 1);
    for (std::size_t n = 0; n <= kMax; ++n) {
        for (std::size_t s = 0; s < 16; s += 3) {
            for (std::size_t d = 0; d < 16; d += 5) {
                std::fill(dst.begin(), dst.end(), std::byte{0xee});
                copy_received(dst.data() + kGuard + d, src.data() + s, n);
                for (std::size_t i = 0; i < dst.size(); ++i) {
                    bool inside = i >= kGuard + d && i < kGuard + d + n;
                    std::byte want = inside ? src[s + i - kGuard - d] : std::byte{0xee};
                    ASSERT_EQ(dst[i], want) << "n=" << n << " src+" << s << " dst+" << d << " at " << i;
                }
            }
        }
    }
}

}  // namespace
}  // namespace ipclab
