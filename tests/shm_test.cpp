// The shm transport end to end: the real server loop in a forked child,
// clients through ipclab::connect, in both wait modes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <span>
#include <sstream>
#include <thread>
#include <utility>

#include "client/session.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/shm_layout.hpp"
#include "ipc/shm_mapping.hpp"
#include "ipc/shm_ring.hpp"
#include "ipc/registry.hpp"
#include "ipc/shm_stats.hpp"
#include "ipc/transports.hpp"
#include "server/options.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab {
namespace {

using test::eventually;
using test::ServerProcess;
using Clock = std::chrono::steady_clock;

ipclab::Bytes payload_of(std::size_t n, unsigned seed = 1) {
    ipclab::Bytes v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) ^ (i >> 8));
    return v;
}

ServerOptions echo_options() {
    ServerOptions o;
    o.reply = ReplyMode::echo;
    o.quiet = true;
    return o;
}

std::string diff(const std::set<std::string>& a, const std::set<std::string>& b) {
    std::ostringstream out;
    for (const auto& s : a)
        if (!b.count(s)) out << " -" << s;
    for (const auto& s : b)
        if (!a.count(s)) out << " +" << s;
    return out.str();
}

std::vector<std::string> segments_named(const std::string& name) {
    std::vector<std::string> out;
    for (const auto& o : list_shm_objects()) {
        auto e = shm::parse_segment_entry(o.what.substr(o.what.rfind('/') + 1));
        if (e && e->name == name) out.push_back(o.what);
    }
    return out;
}

// The header of a session's segment, mapped read-only (to watch the rings).
class SegmentView {
public:
    explicit SegmentView(const std::string& what) {
        Fd fd(::shm_open(what.substr(what.rfind('/')).c_str(), O_RDONLY, 0));
        if (!fd) return;
        void* p = ::mmap(nullptr, shm::kHeaderBytes, PROT_READ, MAP_SHARED, fd.get(), 0);
        if (p != MAP_FAILED) h_ = static_cast<const shm::SegmentHeader*>(p);
    }
    ~SegmentView() {
        if (h_) ::munmap(const_cast<shm::SegmentHeader*>(h_), shm::kHeaderBytes);
    }
    SegmentView() = default;
    SegmentView(SegmentView&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    SegmentView(const SegmentView&) = delete;
    SegmentView& operator=(const SegmentView&) = delete;
    const shm::SegmentHeader* operator->() const { return h_; }
    explicit operator bool() const { return h_ != nullptr; }

private:
    const shm::SegmentHeader* h_ = nullptr;
};

class ShmTest : public ::testing::TestWithParam<WaitMode> {
protected:
    void SetUp() override {
        before_ = test::ipc_object_snapshot();
        std::string n = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::replace_if(n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '-');
        name_ = "shmt-" + n + "-" + std::to_string(::getpid());
    }

    void TearDown() override {
        server_.reset();
        EXPECT_TRUE(eventually([] { return test::zombie_children_of(::getpid()).empty(); }));
        EXPECT_TRUE(test::children_of(::getpid()).empty());
        std::set<std::string> after;
        EXPECT_TRUE(eventually([&] { return (after = test::ipc_object_snapshot()) == before_; }))
            << diff(before_, after);
    }

    Endpoint endpoint() const {
        Endpoint ep;
        ep.transport = "shm";
        ep.name = name_;
        ep.wait = GetParam();
        return ep;
    }

    void start(const ServerOptions& options = echo_options()) {
        server_ = std::make_unique<ServerProcess>(endpoint(), options);
    }

    // The header of the session's one segment; an empty view, the failure
    // said, when there is not exactly one or it cannot be mapped.
    SegmentView session_segment() const {
        auto segments = segments_named(name_);
        if (segments.size() != 1) {
            ADD_FAILURE() << segments.size() << " segments named " << name_;
            return SegmentView();
        }
        SegmentView h(segments[0]);
        if (!h) ADD_FAILURE() << "cannot map " << segments[0];
        return h;
    }

    // Where this wait mode's ping-pongs go back to the ring's start.
    static std::size_t restart_after() { return shm::restart_after(GetParam() == WaitMode::spin); }

    // A size below the exchange slot's (ipc/shm_slot.hpp): through the ring
    // in both wait modes, a payload line of its own after the stamp's.
    static constexpr std::size_t kRingSize = kSlotMinPayload - 1;
    static_assert(kRingSize >= kCacheLine);

    void expect_echo(Channel& ch, std::size_t size, unsigned seed = 1) {
        auto sent = payload_of(size, seed);
        ch.send(FrameType::data, sent);
        Message reply;
        ASSERT_TRUE(ch.receive(reply));
        ASSERT_EQ(reply.type, FrameType::data);
        ASSERT_EQ(reply.payload.size(), size);
        EXPECT_TRUE(reply.payload == sent) << "echo of " << size << " bytes differs";
    }

    // A stream larger than the ring from a forked writer (message i:
    // payload_of(size_of(i), i)) that this process starts to read only once
    // the writer sleeps on the full ring, when full(view) runs: every message
    // must then arrive byte-exact and the writer's close as a clean end;
    // at_end(the server's channel, view) runs last.
    void stream_through_a_full_ring(std::size_t count, const std::function<std::size_t(std::size_t)>& size_of,
                                    const std::function<void(const SegmentView&)>& full,
                                    const std::function<void(Channel&, const SegmentView&)>& at_end) {
        auto listener = listen(endpoint(), Limits{});
        pid_t writer = test::test_fork();
        ASSERT_GE(writer, 0);
        if (writer == 0) {
            int rc = 1;
            try {
                auto ch = connect(endpoint(), Limits{});
                for (std::size_t i = 0; i < count; ++i)
                    ch->send(FrameType::data, payload_of(size_of(i), static_cast<unsigned>(i)));
                rc = 0;
            } catch (...) {
            }
            ::_exit(rc);
        }
        std::unique_ptr<PendingSession> pending;
        for (int i = 0; i < 100 && !pending; ++i) pending = listener->accept(-1);
        ASSERT_TRUE(pending);
        auto ch = pending->open(Limits{});
        SegmentView view = session_segment();
        ASSERT_TRUE(view);
        EXPECT_TRUE(eventually([&] { return view->to_server.space.sleeping.load() == 1; }, 20000))
            << "the writer never slept on the full ring";
        full(view);
        for (std::size_t i = 0; i < count; ++i) {
            Message m;
            ASSERT_TRUE(ch->receive(m)) << "message " << i;
            ASSERT_EQ(m.payload.size(), size_of(i)) << "message " << i;
            ASSERT_TRUE(m.payload == payload_of(size_of(i), static_cast<unsigned>(i))) << "message " << i;
        }
        Message end;
        EXPECT_FALSE(ch->receive(end)) << "the writer's close is a clean end";
        int status = test::wait_or_kill(writer, 20000);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
        at_end(*ch, view);
    }

    std::set<std::string> before_;
    std::string name_;
    std::unique_ptr<ServerProcess> server_;
};

TEST_P(ShmTest, EchoesEverySizeByteExact) {
    start();
    auto ch = connect(endpoint(), Limits{});
    // Each of these goes in one publish: a block-mode ping-pong never polls.
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{8192}, std::size_t{8193},
                             shm::kPublishChunk - kFrameHeaderSize})
        expect_echo(*ch, size, static_cast<unsigned>(size));
    auto counts = shm_session_counts(*ch);
    ASSERT_TRUE(counts.has_value());
    const auto& c = counts->local;
    EXPECT_GT(c.total(), 0u);
    if (GetParam() == WaitMode::block) {
        EXPECT_EQ(c.spun + counts->peer.spun, 0u);
    }
    // Around the publish chunk and the short tail that rides with the chunk
    // before it, then through and around the ring.
    const std::size_t chunk = shm::kPublishChunk, tail = shm::kMinTail, h = kFrameHeaderSize;
    for (std::size_t size : {chunk - h + 1, chunk + tail - h - 1, chunk + tail - h, 4 * chunk - h,
                             std::size_t{64} << 10, (std::size_t{64} << 10) + 1, std::size_t{1} << 20,
                             (std::size_t{3} << 20) + 7, std::size_t{16} << 20})
        expect_echo(*ch, size, static_cast<unsigned>(size));
}

// A stream larger than the ring, written while its reader (this process)
// does not read: the writer fills the ring and goes to sleep on it, in
// either wait mode (a spinning writer's budget is bounded too); then every
// message arrives byte-exact, wrapping the ring with messages of all sizes.
TEST_P(ShmTest, AStreamThroughAFullRingArrivesByteExact) {
    const std::vector<std::size_t> sizes = {1, 16379, 16380, 20474, 20475, 65536, 65541, 100000,
                                            std::size_t{1} << 20, (std::size_t{3} << 20) + 7, 5, 0, 70000};
    stream_through_a_full_ring(
        sizes.size(), [&](std::size_t i) { return sizes[i]; }, [](const SegmentView&) {},
        [](Channel& ch, const SegmentView&) {
            EXPECT_GE(shm_session_counts(ch)->peer.slept, 1u) << "the writer's room wait ended asleep";
        });
}

// Small frames (a line's payload at most) go the short way (send_small in
// ipc/shm.cpp) within a bound set after each longer send: a writer far
// ahead of its reader must still stop at the reader's index and sleep for
// room, lose and reorder nothing across the ring's end, and carry on the
// short way once room comes back. Sizes in the stamp's line (up to 48 B) and
// on the next; more than the ring holds.
TEST_P(ShmTest, SmallFramesFillTheRingAndWaitForTheReader) {
    const std::vector<std::size_t> sizes = {0, 1, 17, 48, 49, 64};
    const std::size_t count = 3 * shm::kRingCapacity / (2 * kCacheLine);  // frames of at most two lines
    stream_through_a_full_ring(
        count, [&](std::size_t i) { return sizes[i % sizes.size()]; },
        [](const SegmentView& view) {
            EXPECT_LE(view->to_server.head.load(), shm::kRingCapacity) << "wrote past the unread bytes";
        },
        [](Channel&, const SegmentView& view) {
            EXPECT_GT(view->to_server.head.load(), shm::kRingCapacity) << "never went on past the ring's end";
        });
}

// A stream's reader in block mode polls briefly for the next message while
// the writer keeps it fed; once the writer goes quiet it must end up asleep
// on the futex, not spinning (in spin mode too: its budget is bounded).
TEST_P(ShmTest, AnIdleStreamReaderEndsAsleep) {
    ServerOptions sink = echo_options();
    sink.reply = ReplyMode::sink;
    start(sink);
    auto ch = connect(endpoint(), Limits{});
    auto payload = payload_of(4096);
    for (int i = 0; i < 200; ++i) ch->send(FrameType::data, payload);
    SegmentView view = session_segment();
    ASSERT_TRUE(view);
    EXPECT_TRUE(eventually([&] { return view->to_server.data.sleeping.load() == 1; }, 20000))
        << "the idle reader never armed its futex sleep";
    std::uint64_t slept = shm_session_counts(*ch)->peer.slept;
    ch->send(FrameType::data, {});  // the sink acknowledges an empty message
    Message ack;
    ASSERT_TRUE(ch->receive(ack));
    EXPECT_EQ(ack.type, FrameType::data);
    EXPECT_GT(shm_session_counts(*ch)->peer.slept, slept) << "the reader's wait ended asleep";
}

TEST_P(ShmTest, AcksByDefault) {
    ServerOptions o;
    o.quiet = true;
    start(o);
    auto ch = connect(endpoint(), Limits{});
    ch->send(FrameType::data, as_bytes("hello"));
    Message reply;
    ASSERT_TRUE(ch->receive(reply));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size()),
              kAckText);
}

TEST_P(ShmTest, ServesManySmallMessagesOnOneSession) {
    start();
    auto ch = connect(endpoint(), Limits{});
    for (unsigned i = 0; i < 2000; ++i) expect_echo(*ch, 1 + i % 300, i);
    auto counts = shm_session_counts(*ch);
    EXPECT_EQ(counts->local.total(), 2000u) << "one wait per reply";
    // The server counts the wait for each request before its reply goes
    // out (spin mode's inline poll as much as the sleeping wait).
    EXPECT_EQ(counts->peer.total(), 2000u) << "one wait per request";
}

// A ping-pong goes back to the ring's start at its wait mode's point: a
// blocking pair after 16 KiB (one CPU: a small cycle stays in cache), a
// spinning pair after 512 KiB (two CPUs: lines the peer has just read are
// slow to write again). The restart comes at the first send that starts at
// or past that point, so the index before it lies within one frame past it.
TEST_P(ShmTest, PingPongsRestartAtTheirWaitModesPoint) {
    start();
    auto ch = connect(endpoint(), Limits{});
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    const std::size_t size = kRingSize;
    std::uint64_t before_restart = 0;
    unsigned seed = 0;
    for (std::size_t i = 0; i < restart_after() / size + 8; ++i) {
        expect_echo(*ch, size, ++seed);
        std::uint64_t head = h->to_server.head.load();
        if (head >= shm::kRingCapacity) break;  // the pad took the index to the ring's end
        before_restart = head;
    }
    EXPECT_GE(h->to_server.head.load(), shm::kRingCapacity) << "never went back to the ring's start";
    EXPECT_GE(before_restart, restart_after()) << "went back before its point";
    EXPECT_LT(before_restart, restart_after() + size + 2 * kCacheLine) << "went back late";
    // A message behind a pad is still one wait on each side: the wait that
    // found the pad and the frame behind it count once.
    auto counts = shm_session_counts(*ch);
    EXPECT_EQ(counts->local.total(), seed) << "one wait per reply";
    EXPECT_EQ(counts->peer.total(), seed) << "one wait per request";
}

// Small messages restart at the ring's start (pad frames, see kRestartAfter)
// and must still arrive byte-exact when mixed with ones larger than the ring.
TEST_P(ShmTest, PadsBackToTheRingStartLosingNoBytes) {
    start();
    auto ch = connect(endpoint(), Limits{});
    unsigned seed = 0;
    // The next frame starts exactly one header before the ring's end: too
    // close to pad (a pad of zero bytes would end at offset 0, not at the end).
    expect_echo(*ch, shm::kRingCapacity - 2 * kFrameHeaderSize, ++seed);
    for (unsigned i = 0; i < 600; ++i) expect_echo(*ch, 1 + i % 120, ++seed);  // ~40 KiB
    expect_echo(*ch, (std::size_t{3} << 20) + 7, ++seed);  // wraps the 2 MiB ring
    for (unsigned i = 0; i < 600; ++i) expect_echo(*ch, 1 + i % 120, ++seed);
    expect_echo(*ch, restart_after() - 3, ++seed);  // lands just before the restart point
    for (unsigned i = 0; i < 50; ++i) expect_echo(*ch, 1 + i, ++seed);

    // Both rings jumped over padding: their indices ran far ahead of the bytes sent.
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    EXPECT_GT(h->to_server.head.load(), 2 * shm::kRingCapacity);
    EXPECT_GT(h->to_client.head.load(), 2 * shm::kRingCapacity);
}

// Pins the calling thread (and what it forks) to one CPU, the first it may
// run on now; the old mask comes back at the end of the scope.
class PinnedToOneCpu {
public:
    PinnedToOneCpu() {
        CPU_ZERO(&old_);
        if (::sched_getaffinity(0, sizeof old_, &old_) != 0) throw std::runtime_error("sched_getaffinity");
        while (!CPU_ISSET(cpu_, &old_)) ++cpu_;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu_, &one);
        if (::sched_setaffinity(0, sizeof one, &one) != 0) throw std::runtime_error("sched_setaffinity");
    }
    ~PinnedToOneCpu() { ::sched_setaffinity(0, sizeof old_, &old_); }
    PinnedToOneCpu(const PinnedToOneCpu&) = delete;
    PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;
    int cpu() const { return cpu_; }

private:
    cpu_set_t old_;
    int cpu_ = 0;
};

// Both sides on one CPU, in block mode: a 64 KiB message (published in
// chunks, after a restart's pad every time) wakes its sleeping reader only
// once it is whole, so each side waits once per message. A wake inside the
// message would let the reader preempt the writer, find the message
// incomplete and wait a second time (the old code: 78-79 server waits per
// 40 messages). No timing: counts of waits. A sleeper also wakes by itself
// every 100 ms slice to check its peer's pid (ipc/shm_futex.hpp); where a
// message takes that long to write (under ThreadSanitizer, once in 40) that
// wake-up may find it half written, so a tenth more waits are allowed.
TEST_P(ShmTest, OneCpuWakesOnlyForAWholeMessage) {
    if (GetParam() != WaitMode::block) GTEST_SKIP() << "a spinning reader needs no wake";
    PinnedToOneCpu pin;
    start();
    auto ch = connect(endpoint(), Limits{});
    expect_echo(*ch, 64);
    auto before = shm_session_counts(*ch);
    ASSERT_TRUE(before.has_value());
    constexpr unsigned kMessages = 40;
    for (unsigned i = 0; i < kMessages; ++i) expect_echo(*ch, std::size_t{64} << 10, i);
    auto after = shm_session_counts(*ch);
    constexpr unsigned kSliceWakes = kMessages / 10;
    EXPECT_GE(after->peer.total() - before->peer.total(), kMessages);
    EXPECT_LE(after->peer.total() - before->peer.total(), kMessages + kSliceWakes) << "the server waited inside messages";
    EXPECT_GE(after->local.total() - before->local.total(), kMessages);
    EXPECT_LE(after->local.total() - before->local.total(), kMessages + kSliceWakes) << "the client waited inside replies";

    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->client_counts.only_cpu.load(), pin.cpu() + 1) << "each side says where it may run";
    EXPECT_EQ(h->server_counts.only_cpu.load(), pin.cpu() + 1);
}

// Frames start on 16-byte boundaries (stamp, header, 3 zero bytes, then the
// payload); a payload that does not fit the rest of that cache line starts
// on the next one. The head index covers every frame.
TEST_P(ShmTest, PayloadsThatDoNotFitThePrefixLineStartOnTheNext) {
    start();
    auto ch = connect(endpoint(), Limits{});
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    struct Step {
        std::size_t size;
        std::uint64_t head;  // after the frame, on the next 16-byte boundary
    };
    const std::initializer_list<Step> block_steps{
        {64, 128},     // prefix at 0, payload on the line at 64
        {448, 640},    // prefix at 128, payload at 192
        {447, 1152},   // prefix at 640, payload at 704
        {1, 1184},     // fits the prefix's line: packed
        {48, 1264},    // prefix at 1184: 32 bytes of its line left, payload at 1216
        {16, 1296},    // prefix at 1264, the line's last 16 bytes: payload at 1280
        {32, 1344}};   // prefix at 1296: fits exactly
    // Spin mode's ping-pongs of more than a line go through the exchange
    // slot (ipc/shm_slot.hpp): the ring's frames are then a line or two.
    const std::initializer_list<Step> spin_steps{
        {64, 128},    // prefix at 0, payload on the line at 64
        {1, 160},     // prefix at 128: packed
        {48, 240},    // prefix at 160: 16 bytes of its line left, payload at 192
        {16, 272},    // prefix at 240, the line's last 16 bytes: payload at 256
        {32, 320}};   // prefix at 272: fits exactly
    for (const Step& step : GetParam() == WaitMode::spin ? spin_steps : block_steps) {
        expect_echo(*ch, step.size, static_cast<unsigned>(step.size));
        EXPECT_EQ(h->to_server.head.load(), step.head) << step.size;
        EXPECT_EQ(h->to_client.head.load(), step.head) << step.size << ", the echo alike";
    }
}

// A large payload starts as far into its line as a large message buffer
// starts into its own (kLargeBufferPageOffset): ring and buffer then copy
// line for line. 64 KiB + 16 goes by the ring in both modes (the exchange
// slot ends at 64 KiB).
TEST_P(ShmTest, LargePayloadsLineUpWithMessageBuffers) {
    start();
    auto ch = connect(endpoint(), Limits{});
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    const std::size_t n = kLargeBuffer + 16;
    const std::size_t payload_at = kCacheLine + kLargeBufferPageOffset % kCacheLine;  // prefix at 0
    static_assert(kLargeBufferPageOffset % kCacheLine == 5, "the figures below");
    expect_echo(*ch, n, 3);
    EXPECT_EQ(h->to_server.head.load(), align_up(payload_at + n, kFrameAlign));  // 65632
    EXPECT_EQ(h->to_client.head.load(), align_up(payload_at + n, kFrameAlign)) << "the echo alike";
    // Below kLargeBuffer the payload stays on the line (the slot takes it in spin mode).
    if (GetParam() == WaitMode::block) {
        const std::uint64_t before = h->to_server.head.load();
        expect_echo(*ch, kLargeBuffer - 16, 4);
        // After the restart pad: the frame at offset 0, its payload on the line at 64.
        EXPECT_EQ(h->to_server.head.load() % shm::kRingCapacity, align_up(kCacheLine + kLargeBuffer - 16, kFrameAlign))
            << "from " << before;
    }
}

// Every path a frame can take, byte-exact, in both wait modes: in place
// packed and aligned, the long way (larger than a publish chunk, or
// wrapping the ring's end while the reader is behind), after a restart at
// the ring's start, and with the reader's room handed back late.
TEST_P(ShmTest, FramesInPlaceAndTheLongWayMixAndWrapByteExact) {
    start();
    Limits limits;
    limits.timeout_ms = 10000;
    auto ch = connect(endpoint(), limits);
    unsigned seed = 0;
    // Around one line with the 16-byte prefix, two lines, and the largest
    // in-place payload: 16 KiB less the prefix and up to 48 bytes before the
    // payload's line, by offset.
    const std::size_t edge = shm::kPublishChunk - shm::kFramePrefix;
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16},
                             std::size_t{47}, std::size_t{48}, std::size_t{49}, std::size_t{63},
                             std::size_t{64}, std::size_t{65}, std::size_t{111}, std::size_t{112},
                             std::size_t{113}, std::size_t{1023}, std::size_t{1024},
                             std::size_t{1025}, std::size_t{4096}, shm::kPublishChunk - kCacheLine - 1,
                             shm::kPublishChunk - kCacheLine, shm::kPublishChunk - kCacheLine + 1,
                             edge - 1, edge, edge + 1, shm::kPublishChunk})
        for (int i = 0; i < 3; ++i) expect_echo(*ch, size, ++seed);
    // Ping-pongs restart at the ring's start after restart_after().
    const int to_restart = static_cast<int>(restart_after() / kRingSize) + 20;
    for (int i = 0; i < to_restart; ++i) expect_echo(*ch, kRingSize, ++seed);
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    EXPECT_GT(h->to_server.head.load(), shm::kRingCapacity) << "restarted at offset 0";

    // A burst runs up to the ring's end while the server is stopped, then
    // more while it catches up: a frame meets the end with the reader
    // behind and wraps (the long way). In flight stays below what both
    // rings hold with the server blocked on replies, so nothing deadlocks.
    std::vector<pid_t> sessions;
    ASSERT_TRUE(eventually([&] { return (sessions = test::children_of(server_->pid())).size() == 1; }));
    const std::size_t size = 4096;
    // Just past a restart: a pad to the ring's end, taken while the reader
    // is stopped, would hold the whole ring until it skips it.
    auto offset = [&] { return h->to_server.head.load() & (shm::kRingCapacity - 1); };
    for (int i = 0; i < to_restart && offset() >= 2 * size; ++i) expect_echo(*ch, kRingSize, ++seed);
    ASSERT_LT(offset(), 2 * size);
    // Frames of 4096-4098 bytes take 4160-4288 bytes of ring aligned.
    const std::size_t burst = (shm::kRingCapacity - 2 * size) / (size + 3 * kCacheLine);
    std::vector<unsigned> seeds;
    ASSERT_EQ(::kill(sessions[0], SIGSTOP), 0);
    for (std::size_t i = 0; i < burst; ++i) {
        seeds.push_back(++seed);
        ch->send(FrameType::data, payload_of(size + i % 3, seed));
    }
    ASSERT_EQ(::kill(sessions[0], SIGCONT), 0);
    for (std::size_t i = burst; i < burst + 40; ++i) {
        seeds.push_back(++seed);
        ch->send(FrameType::data, payload_of(size + i % 3, seed));
    }
    for (std::size_t i = 0; i < seeds.size(); ++i) {
        Message reply;
        ASSERT_TRUE(ch->receive(reply)) << "reply " << i;
        ASSERT_TRUE(reply.payload == payload_of(size + i % 3, seeds[i])) << "reply " << i << " differs";
    }
    for (int i = 0; i < 50; ++i) expect_echo(*ch, 1 + i * 97 % 5000, ++seed);
}

// A stream runs ahead through the whole ring while its reader is behind:
// with the server's session child stopped, messages larger than
// kRestartAfter keep going in until the ring is full, instead of each one
// going back to offset 0 and waiting there for the reader to free the last.
TEST_P(ShmTest, AStreamFillsTheRingWhileTheReaderIsBehind) {
    ServerOptions sink = echo_options();
    sink.reply = ReplyMode::sink;
    start(sink);
    Limits limits;
    limits.timeout_ms = 3000;  // a send that had to wait for the stopped reader would fail
    auto ch = connect(endpoint(), limits);
    std::vector<pid_t> sessions;
    ASSERT_TRUE(eventually([&] { return (sessions = test::children_of(server_->pid())).size() == 1; }));
    ASSERT_EQ(::kill(sessions[0], SIGSTOP), 0);
    struct Resume {
        pid_t pid;
        ~Resume() { ::kill(pid, SIGCONT); }
    } resume{sessions[0]};
    const std::size_t size = 64 * 1024;
    const std::size_t fit = shm::kRingCapacity / (size + kFrameHeaderSize);  // 31 whole messages
    for (std::size_t i = 0; i < fit; ++i)
        EXPECT_NO_THROW(ch->send(FrameType::data, payload_of(size, static_cast<unsigned>(i)))) << "message " << i;
    ::kill(sessions[0], SIGCONT);
    // Everything arrived: the sink acknowledges the empty message that follows.
    ch->send(FrameType::data, {});
    Message ack;
    ASSERT_TRUE(ch->receive(ack));
    EXPECT_EQ(ack.type, FrameType::data);
}

// Both ends of one session in this process: the server's channel opened by
// a thread (the listener validates and claims the segment as a server
// does), and the segment mapped read-write to scribble on as a hostile
// peer could.
struct LocalSession {
    std::unique_ptr<Listener> listener;
    std::unique_ptr<Channel> server;
    std::unique_ptr<Channel> client;
    Mapping segment;
    shm::SegmentHeader* header() { return reinterpret_cast<shm::SegmentHeader*>(segment.get()); }
    std::byte* to_client() { return segment.get() + shm::kHeaderBytes + shm::kRingCapacity; }
    SlotShared* slot() { return reinterpret_cast<SlotShared*>(segment.get() + shm::kSlotOffset); }
};

std::unique_ptr<LocalSession> local_session(const Endpoint& ep, const Limits& limits) {
    auto s = std::make_unique<LocalSession>();
    s->listener = listen(ep, limits);
    std::exception_ptr failed;
    std::thread accepter([&] {
        try {
            auto pending = s->listener->accept(-1);
            if (pending) s->server = pending->open(limits);
        } catch (...) {
            failed = std::current_exception();
        }
    });
    s->client = connect(ep, limits);
    accepter.join();
    if (failed) std::rethrow_exception(failed);
    auto segments = segments_named(ep.name);
    if (segments.size() != 1 || !s->server) throw std::runtime_error("no local session");
    Fd fd(::shm_open(segments[0].substr(segments[0].rfind('/')).c_str(), O_RDWR, 0));
    if (!fd) throw std::runtime_error("shm_open " + segments[0]);
    s->segment = map_shared(fd.get(), shm::kSegmentSize, "test segment");
    return s;
}

// Writes a frame at the start of the to_client ring as a hostile server
// could: stamp (right or wrong), type, big-endian length.
void forge_frame(LocalSession& s, std::uint64_t stamp, std::uint8_t type, std::uint32_t length) {
    std::byte* at = s.to_client();
    at[kStampBytes] = std::byte{type};
    put_u32(at + kStampBytes + 1, length);
    stamp_word(at).store(stamp, std::memory_order_release);
}

// What a reader facing a scribbling peer must get, and soon: a
// ProtocolError, or a TimeoutError for what is no message at all.
void expect_refused(Channel& reader, bool times_out) {
    Message m;
    auto t0 = Clock::now();
    if (times_out)
        EXPECT_THROW(reader.receive(m), TimeoutError);
    else
        EXPECT_THROW(reader.receive(m), ProtocolError);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

// A peer that scribbles on a frame's stamp or header gets the reader a
// ProtocolError, or (a stamp that is not this frame's) nothing at all
// until the wait times out: never a crash, a wild copy or a hang.
TEST_P(ShmTest, AHostileWriterGetsAProtocolErrorNeverAHang) {
    Limits limits;
    limits.timeout_ms = 300;
    auto right = [](LocalSession& s) { return 0 ^ (s.header()->to_client.stamp_key | kStampKeyBit); };
    const std::uint8_t data = static_cast<std::uint8_t>(FrameType::data);
    struct Case {
        const char* what;
        std::function<void(LocalSession&)> scribble;
        bool times_out;
    };
    const std::vector<Case> cases = {
        {"an unknown frame type", [&](LocalSession& s) { forge_frame(s, right(s), 7, 4); }, false},
        {"a length over --max-message",
         [&](LocalSession& s) { forge_frame(s, right(s), data, static_cast<std::uint32_t>(limits.max_message + 1)); },
         false},
        {"a pad frame short of the ring's end", [&](LocalSession& s) { forge_frame(s, right(s), shm::kPadFrame, 5); },
         false},
        {"a pad frame past the ring's end",
         [&](LocalSession& s) { forge_frame(s, right(s), shm::kPadFrame, 0xFFFFFFFFu); }, false},
        {"a streamed payload behind a head index beyond the ring",
         [&](LocalSession& s) {
             s.header()->to_client.head.store(3 * shm::kRingCapacity);
             forge_frame(s, right(s), data, 100000);
         },
         false},
        {"a streamed payload that never comes", [&](LocalSession& s) { forge_frame(s, right(s), data, 100000); }, true},
        {"the stamp of the same offset a lap on",
         [&](LocalSession& s) {
             forge_frame(s, shm::kRingCapacity ^ (s.header()->to_client.stamp_key | kStampKeyBit), data, 4);
         },
         true},
        {"a stamp of all ones", [&](LocalSession& s) { forge_frame(s, ~std::uint64_t{0}, data, 4); }, true},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto s = local_session(endpoint(), limits);
        c.scribble(*s);
        expect_refused(*s->client, c.times_out);
    }
}

// A reader asleep on the futex at a frame boundary (in block mode at once,
// in spin mode after its budget) is woken by the stamp of the next frame.
TEST_P(ShmTest, ASleepingReaderIsWokenByAStampedFrame) {
    Limits limits;
    limits.timeout_ms = 20000;
    auto s = local_session(endpoint(), limits);
    for (std::size_t size : {std::size_t{0}, std::size_t{64}, std::size_t{4096}, std::size_t{100000}}) {
        SCOPED_TRACE(size);
        // A message of the slot's sizes hands the server the slot's turn, so
        // in spin mode its 4 KiB goes through the slot and must wake us too.
        s->client->send(FrameType::data, payload_of(1024, 3));
        Message got;
        ASSERT_TRUE(s->server->receive(got));
        bool received = false;
        std::thread reader([&] { received = s->client->receive(got); });
        bool slept = eventually([&] { return s->header()->to_client.data.sleeping.load() == 1; }, 10000);
        auto sent = payload_of(size, static_cast<unsigned>(size));
        s->server->send(FrameType::data, sent);
        reader.join();
        EXPECT_TRUE(slept) << "the reader never went to sleep";
        ASSERT_TRUE(received);
        EXPECT_TRUE(got.payload == sent);
    }
    auto counts = shm_session_counts(*s->client);
    ASSERT_TRUE(counts.has_value());
    EXPECT_GE(counts->local.slept, 4u);
}

// Spin-mode ping-pongs of the exchange slot's sizes go through the slot, the
// reply over the request (ipc/shm_slot.hpp): the rings stay untouched, one
// wait per message. Block mode keeps the rings (where messages above 16 KiB
// stream in chunks, a wait per chunk at most). Either way byte-exact.
TEST_P(ShmTest, SlotSizedPingPongsSkipTheRings) {
    start();
    auto ch = connect(endpoint(), Limits{});
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    unsigned seed = 0;
    for (std::size_t size : {kSlotMinPayload, std::size_t{1024}, std::size_t{4096}, std::size_t{4097},
                             kSlotMaxPayload - 1, kSlotMaxPayload, kSlotMinPayload})
        for (int i = 0; i < 3; ++i) expect_echo(*ch, size, ++seed);
    auto counts = shm_session_counts(*ch);
    ASSERT_TRUE(counts.has_value());
    if (GetParam() == WaitMode::spin) {
        EXPECT_EQ(h->to_server.head.load(), 0u) << "a request went through the ring";
        EXPECT_EQ(h->to_client.head.load(), 0u) << "a reply went through the ring";
        EXPECT_EQ(counts->local.total(), seed) << "one wait per reply";
        EXPECT_EQ(counts->peer.total(), seed) << "one wait per request";
    } else {
        EXPECT_GT(h->to_server.head.load(), 0u);
        EXPECT_GT(h->to_client.head.load(), 0u);
        EXPECT_GE(counts->local.total(), seed);
    }
    // Just outside the sizes: the ring.
    expect_echo(*ch, kSlotMaxPayload + 1, ++seed);
    const std::uint64_t after_large = h->to_server.head.load();
    EXPECT_GT(after_large, kSlotMaxPayload);
    expect_echo(*ch, kSlotMinPayload - 1, ++seed);
    EXPECT_GT(h->to_server.head.load(), after_large);
}

// Messages sent without waiting for replies, through the slot and the ring
// in turn (the slot taken by one side while the other has sent more behind
// it, marked ring frames, pads), arrive in the order sent, byte-exact, on
// both sides; with the server stopped for a while so the marked frames are
// there before the slot's message is taken.
TEST_P(ShmTest, SlotAndRingMessagesKeepTheirOrder) {
    start();
    Limits limits;
    limits.timeout_ms = 10000;
    auto ch = connect(endpoint(), limits);
    std::vector<pid_t> sessions;
    ASSERT_TRUE(eventually([&] { return (sessions = test::children_of(server_->pid())).size() == 1; }));
    const std::vector<std::size_t> sizes = {4096, 64, 8192, 100000, 1024, 0, 600, kSlotMaxPayload, 511, 2048};
    // A burst's first frame, sent with the ring empty past the restart
    // point, goes back to the ring's start behind a pad to its end. With the
    // reader stopped, that pad holds the ring until the reader skips it, and
    // a burst larger than the room left before it would wait for the reader
    // that the test resumes only after the burst (block mode under ASan: 4
    // runs in 40 timed out). So a burst starts where no such pad can come, or
    // where the room before one takes the whole burst: moved there by echoes
    // through the ring (in both wait modes): a small one goes back to the
    // start when it may, a large one walks on while a restart is blocked.
    std::size_t burst_room = 0;
    for (std::size_t size : sizes) burst_room += size + 2 * kCacheLine;  // prefix, alignment
    SegmentView h = session_segment();
    ASSERT_TRUE(h);
    auto burst_fits = [&] {
        const std::size_t offset = h->to_server.head.load() & (shm::kRingCapacity - 1);
        return offset < restart_after() || offset >= burst_room;
    };
    unsigned seed = 0;
    for (int round = 0; round < 40; ++round) {
        SCOPED_TRACE(round);
        const bool stop = round % 4 == 1;
        if (stop) {
            for (int i = 0; i < 64 && !burst_fits(); ++i)
                expect_echo(*ch, i % 2 == 0 ? kRingSize : kSlotMaxPayload + 1, ++seed);
            ASSERT_TRUE(burst_fits());
            ASSERT_EQ(::kill(sessions[0], SIGSTOP), 0);
        }
        std::vector<std::pair<std::size_t, unsigned>> sent;
        // A different mix each round, and a ping-pong first every other one
        // (so either side may hold the slot's turn when the burst starts).
        if (round % 2 == 0) expect_echo(*ch, sizes[round % sizes.size()], ++seed);
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            std::size_t size = sizes[(i + static_cast<std::size_t>(round)) % sizes.size()];
            sent.emplace_back(size, ++seed);
            ch->send(FrameType::data, payload_of(size, seed));
        }
        if (stop) {
            ASSERT_EQ(::kill(sessions[0], SIGCONT), 0);
        }
        for (std::size_t i = 0; i < sent.size(); ++i) {
            Message reply;
            ASSERT_TRUE(ch->receive(reply)) << "reply " << i;
            ASSERT_EQ(reply.payload.size(), sent[i].first) << "reply " << i << " out of order";
            ASSERT_TRUE(reply.payload == payload_of(sent[i].first, sent[i].second)) << "reply " << i << " differs";
        }
    }
    // Through a restart at the ring's start with the slot in play.
    for (std::size_t i = 0; i < restart_after() / kRingSize + 8; ++i) {
        ch->send(FrameType::data, payload_of(4096, ++seed));
        ch->send(FrameType::data, payload_of(kRingSize, ++seed));
        Message reply;
        ASSERT_TRUE(ch->receive(reply));
        ASSERT_TRUE(reply.payload == payload_of(4096, seed - 1));
        ASSERT_TRUE(ch->receive(reply));
        ASSERT_TRUE(reply.payload == payload_of(kRingSize, seed));
    }
    EXPECT_GT(h->to_server.head.load(), shm::kRingCapacity) << "never restarted at offset 0";
}

// A client of the other wait mode: a spinning client's slot messages wake a
// blocking server (whose replies keep to the ring, so the client's later
// messages go there too, marked until it sees the first one taken); a
// blocking client never hands a spinning server the slot's turn.
TEST_P(ShmTest, AClientOfTheOtherWaitModeIsServedByteExact) {
    start();
    Endpoint other = endpoint();
    other.wait = GetParam() == WaitMode::spin ? WaitMode::block : WaitMode::spin;
    auto ch = connect(other, Limits{});
    unsigned seed = 0;
    for (std::size_t size : {std::size_t{64}, std::size_t{4096}, kSlotMaxPayload, std::size_t{100000}})
        for (int i = 0; i < 3; ++i) expect_echo(*ch, size, ++seed);
}

// A message left in the slot before the writer closes arrives before the end.
TEST_P(ShmTest, TheSlotsLastMessageArrivesBeforeTheEnd) {
    Limits limits;
    limits.timeout_ms = 10000;
    auto s = local_session(endpoint(), limits);
    auto sent = payload_of(4096, 9);
    s->client->send(FrameType::data, sent);
    s->client.reset();
    Message got;
    ASSERT_TRUE(s->server->receive(got));
    EXPECT_TRUE(got.payload == sent);
    EXPECT_FALSE(s->server->receive(got));
}

// Payloads for the large-frame tests: `size` bytes of one shared pattern,
// from an offset that `seed` picks (built once: byte loops per message made
// a debug build's test take seconds).
std::span<const std::byte> pattern_payload(std::size_t size, unsigned seed) {
    static const ipclab::Bytes pattern = payload_of((std::size_t{1} << 20) + 8192, 5);
    const std::size_t from = seed * 61u % 4096u;
    if (from + size > pattern.size()) throw std::logic_error("pattern_payload: too large");
    return std::span<const std::byte>(pattern).subspan(from, size);
}

// The client's ring head walked to `target` (an offset below the ring's end,
// on a frame boundary, with nothing read yet, so no restart intervenes) by
// frames that keep to the ring in both wait modes: none of the slot's sizes.
// Returns the sizes sent, pattern_payload(size, seed 0).
std::vector<std::size_t> walk_head_to(LocalSession& s, std::size_t target) {
    std::vector<std::size_t> sent;
    for (;;) {
        const std::size_t offset = s.header()->to_server.head.load() % shm::kRingCapacity;
        if (offset > target) throw std::logic_error("the walk went past its target");
        const std::size_t left = target - offset;
        if (left == 0) return sent;
        // A large payload leaves 940-1008 bytes (its prefix and alignment
        // take 16-84); 64-byte ones 112-128 each; empty frames 16.
        std::size_t size = 0;
        if (left > kSlotMaxPayload + 1024)
            size = std::min<std::size_t>(left - 1024, std::size_t{1} << 20);
        else if (left >= 256)
            size = kSlotMinPayload - 1;
        s.client->send(FrameType::data, pattern_payload(size, 0));
        sent.push_back(size);
    }
}

// Large payloads (kLargeBuffer and more start 5 bytes into their line,
// except where the prefix's line is the ring's last: ipc/shm_layout.hpp)
// stream across the ring's end while the reader is behind: one frame
// starting in each of the ring's last lines, with the ring full, then a
// stream of odd sizes that wraps wherever it falls. A prefix that asked
// for room past the ring's end hung exactly there (reverted as 1306ed6).
TEST_P(ShmTest, LargeFramesWrapWithTheReaderBehind) {
    Limits limits;
    // A wait that never ends fails as a timeout. (The layout this guards
    // against looped in begin_frame without waiting: ctest's --timeout ends
    // that.)
    limits.timeout_ms = 10000;
    for (std::size_t from_end : {16, 32, 48, 64, 80, 112, 128, 144}) {
        // 1 MiB from one offset in the last line, 64 KiB and a bit from every one.
        const std::size_t first = from_end == 32 ? (std::size_t{1} << 20) + 1 : kLargeBuffer + 3;
        SCOPED_TRACE(testing::Message() << first << " bytes from " << from_end << " before the ring's end");
        auto s = local_session(endpoint(), limits);
        std::vector<std::pair<std::size_t, unsigned>> expected;
        for (std::size_t size : walk_head_to(*s, shm::kRingCapacity - from_end)) expected.emplace_back(size, 0);
        const std::size_t walked = expected.size();
        expected.emplace_back(first, 1);
        for (unsigned i = 0; i < 24; ++i) expected.emplace_back(kLargeBuffer + 1 + i * 4093, i + 2);
        // The reader starts once the writer sleeps on the full ring.
        std::string failure;
        std::thread reader([&] {
            try {
                if (!eventually([&] { return s->header()->to_server.space.sleeping.load() == 1; }, 10000))
                    failure = "the writer never slept on the full ring; ";
                Message m;
                for (std::size_t i = 0; i < expected.size(); ++i) {
                    const auto want = pattern_payload(expected[i].first, expected[i].second);
                    if (!s->server->receive(m) || m.payload.size() != want.size() ||
                        std::memcmp(m.payload.data(), want.data(), want.size()) != 0) {
                        failure += "message " + std::to_string(i) + " of " + std::to_string(want.size()) +
                                   " bytes did not arrive byte-exact";
                        return;
                    }
                }
            } catch (const std::exception& e) {
                failure += std::string("reader: ") + e.what();
            }
        });
        try {
            for (std::size_t i = walked; i < expected.size(); ++i)
                s->client->send(FrameType::data, pattern_payload(expected[i].first, expected[i].second));
        } catch (const std::exception& e) {
            ADD_FAILURE() << "writer: " << e.what();
        }
        reader.join();
        EXPECT_EQ(failure, "");
        if (HasFailure()) return;
    }
}

// What a hostile client can put in the slot gets the server a
// ProtocolError (or, a stamp that is not the next turn's, nothing until the
// wait times out): never a crash, a wild copy or a hang.
TEST_P(ShmTest, AHostileSlotWriterGetsAProtocolErrorNeverAHang) {
    Limits limits;
    limits.timeout_ms = 300;
    // Above the slot's size, so a length beyond the slot meets the slot's
    // own check, not --max-message's.
    limits.max_message = 2 * kSlotMaxPayload;
    struct Case {
        const char* what;
        std::uint64_t stamp;
        std::uint8_t type;
        std::uint32_t length;
        std::uint64_t after;  // the ring index it claims to follow (the server has taken 32 bytes)
        bool times_out;
    };
    const std::uint8_t data = static_cast<std::uint8_t>(FrameType::data);
    const std::vector<Case> cases = {
        {"an unknown type", 1, 7, 4096, 32, false},
        {"a length over --max-message", 1, data, static_cast<std::uint32_t>(2 * kSlotMaxPayload + 1), 32, false},
        {"a length beyond the slot", 1, data, static_cast<std::uint32_t>(kSlotMaxPayload + 1), 32, false},
        {"a place before ring frames taken", 1, data, 4096, 16, false},
        {"a place behind ring frames never sent", 1, data, 4096, 4096, false},
        {"a stamp of a later turn", 2, data, 4096, 32, true},
        {"a stamp of all ones", ~std::uint64_t{0}, data, 4096, 32, true},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto s = local_session(endpoint(), limits);
        s->client->send(FrameType::data, payload_of(16, 1));  // a frame of 32 bytes of ring
        Message m;
        ASSERT_TRUE(s->server->receive(m));
        SlotShared* slot = s->slot();
        slot->header[0] = std::byte{c.type};
        put_u32(slot->header.data() + 1, c.length);
        slot->after.store(c.after);
        slot->stamp.store(c.stamp, std::memory_order_release);
        expect_refused(*s->server, c.times_out);
    }
}

TEST_P(ShmTest, ServesSequentialSessions) {
    start();
    for (int i = 0; i < 20; ++i) {
        auto ch = connect(endpoint(), Limits{});
        expect_echo(*ch, 100, static_cast<unsigned>(i));
    }
    EXPECT_TRUE(eventually([&] { return test::children_of(server_->pid()).empty(); }));
}

TEST_P(ShmTest, ServesConcurrentSessions) {
    start();
    std::vector<pid_t> kids;
    for (int k = 0; k < 8; ++k) {
        pid_t pid = test::test_fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int rc = 1;
            try {
                auto ch = connect(endpoint(), Limits{});
                bool ok = true;
                Message reply;
                for (unsigned i = 0; i < 200 && ok; ++i) {
                    auto sent = payload_of(1 + (i * 97 + static_cast<unsigned>(k)) % 20000, i);
                    ch->send(FrameType::data, sent);
                    ok = ch->receive(reply) && reply.payload == sent;
                }
                rc = ok ? 0 : 1;
            } catch (...) {
                rc = 2;
            }
            ::_exit(rc);
        }
        kids.push_back(pid);
    }
    for (pid_t pid : kids) {
        int status = test::wait_or_kill(pid, 30000);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "client " << pid << ": " << status;
    }
}

TEST_P(ShmTest, RefusesAnOversizedMessageAndKeepsServing) {
    ServerOptions o = echo_options();
    o.limits.max_message = 4096;
    start(o);
    ClientOptions copt;
    copt.size = 8192;
    std::istringstream in;
    std::ostringstream out;
    EXPECT_THROW(run_client(endpoint(), copt, in, out), RemoteError);
    // Far larger than the ring: the client is still streaming when the server refuses.
    {
        auto ch = connect(endpoint(), Limits{});
        auto big = payload_of(3 << 20);
        EXPECT_NO_THROW(ch->send(FrameType::data, big));
        Message reply;
        ASSERT_TRUE(ch->receive(reply));
        EXPECT_EQ(reply.type, FrameType::error);
        EXPECT_THROW(ch->send(FrameType::data, big), PeerGone);
    }
    auto ch = connect(endpoint(), Limits{});
    expect_echo(*ch, 4096);
    EXPECT_NE(server_->stderr_text().find("refused"), std::string::npos);
}

TEST_P(ShmTest, RejectsForgedHellosAndKeepsServing) {
    start();
    std::string fifo = shm::fifo_path(name_);
    Fd bell(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(bell);
    auto rejected = [&](std::size_t n) {
        return eventually([&] {
            std::string err = server_->stderr_text();
            std::size_t count = 0;
            for (auto at = err.find("rejected"); at != std::string::npos; at = err.find("rejected", at + 1))
                ++count;
            return count >= n;
        });
    };
    auto send_bytes = [&](const fifo::HelloBytes& b) {
        ASSERT_EQ(::write(bell.get(), b.data(), b.size()), static_cast<ssize_t>(b.size()));
    };
    auto send_hello = [&](const fifo::Hello& h) { send_bytes(fifo::encode_hello(h)); };
    fifo::HelloBytes bad_magic = fifo::encode_hello({static_cast<std::uint32_t>(::getpid()), 1});
    put_u32(bad_magic.data(), 0xdeadbeef);
    send_bytes(bad_magic);
    ASSERT_TRUE(rejected(1));
    ASSERT_EQ(::write(bell.get(), "short", 5), 5);
    ASSERT_TRUE(rejected(2));
    send_hello({static_cast<std::uint32_t>(::getpid()), 999999});  // no such segment
    ASSERT_TRUE(rejected(3));
    // Segments that exist under the right name but are not acceptable.
    auto forge = [&](std::uint32_t session, mode_t mode, std::size_t size, bool header) {
        std::string seg = shm::segment_name(name_, ::getpid(), session);
        Fd fd(::shm_open(seg.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
        EXPECT_TRUE(fd);
        ShmName owned(seg);
        EXPECT_EQ(::fchmod(fd.get(), mode), 0);
        EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
        if (header) {
            Mapping m = map_shared(fd.get(), size, "forged");
            auto* h = new (m.get()) shm::SegmentHeader();
            h->client_pid = ::getpid();
            h->session = session;
            h->ring_capacity = 1u << 30;  // a lie the server must not believe
            h->magic.store(shm::kSegmentMagic);
        }
        return owned;
    };
    std::uint32_t n = 4;
    for (auto [mode, size, header] : {std::tuple{mode_t{0644}, shm::kSegmentSize, false},
                                      std::tuple{mode_t{0600}, std::size_t{4096}, false},
                                      std::tuple{mode_t{0600}, shm::kSegmentSize, true}}) {
        std::uint32_t session = 1000000 + n;
        ShmName owned = forge(session, mode, size, header);
        send_hello({static_cast<std::uint32_t>(::getpid()), session});
        ASSERT_TRUE(rejected(n)) << "forgery " << n;
        ++n;
    }
    auto ch = connect(endpoint(), Limits{});
    expect_echo(*ch, 777);
    EXPECT_TRUE(test::children_of(server_->pid()).size() <= 1u);
}

TEST_P(ShmTest, KilledClientEndsItsSessionQuickly) {
    start();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    Fd ready_read(p[0]), ready_write(p[1]);
    pid_t pid = test::test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        try {
            auto ch = connect(endpoint(), Limits{});
            auto sent = payload_of(100);
            ch->send(FrameType::data, sent);
            Message reply;
            ch->receive(reply);
            [[maybe_unused]] ssize_t n = ::write(ready_write.get(), "r", 1);
            ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    ready_write.reset();
    char c;
    ASSERT_EQ(::read(ready_read.get(), &c, 1), 1);
    ASSERT_EQ(segments_named(name_).size(), 1u);
    ASSERT_EQ(test::children_of(server_->pid()).size(), 1u);
    ::kill(pid, SIGKILL);
    auto t0 = Clock::now();
    test::wait_or_kill(pid, 5000);
    EXPECT_TRUE(eventually([&] { return test::children_of(server_->pid()).empty(); }, 3000));
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
    EXPECT_TRUE(segments_named(name_).empty()) << "the server child removes a dead client's segment";
    EXPECT_TRUE(eventually([&] { return server_->stderr_text().find("peer vanished") != std::string::npos; }))
        << server_->stderr_text();
}

// A server that takes one message and never replies, then is SIGKILLed.
TEST_P(ShmTest, KilledServerGivesTheWaitingClientPeerGone) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    Fd from_server(p[0]), to_test(p[1]);
    pid_t pid = test::test_fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        from_server.reset();
        try {
            auto listener = listen_shm(endpoint(), Limits{});
            [[maybe_unused]] ssize_t n = ::write(to_test.get(), "l", 1);
            std::unique_ptr<PendingSession> pending;
            while (!pending) pending = listener->accept(-1);
            auto ch = pending->open(Limits{});
            Message m;
            ch->receive(m);
            n = ::write(to_test.get(), "g", 1);
            for (;;) ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    to_test.reset();
    char c;
    ASSERT_EQ(::read(from_server.get(), &c, 1), 1);
    ASSERT_EQ(c, 'l');
    Limits limits;
    limits.timeout_ms = 20000;
    auto ch = connect(endpoint(), limits);
    ch->send(FrameType::data, as_bytes("anyone there?"));
    ASSERT_EQ(::read(from_server.get(), &c, 1), 1);
    ASSERT_EQ(c, 'g');
    Clock::time_point killed;
    std::thread killer([&] {
        // Long enough for the client below to be asleep in receive().
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        killed = Clock::now();
        ::kill(pid, SIGKILL);
        test::wait_or_kill(pid, 5000);
    });
    Message reply;
    EXPECT_THROW(ch->receive(reply), PeerGone);
    auto noticed = Clock::now();
    killer.join();
    EXPECT_LT(noticed - killed, std::chrono::milliseconds(1000));
    ch.reset();
    // The dead server left its doorbell and lock file: a new server reclaims them.
    EXPECT_NE(before_, test::ipc_object_snapshot());
    start();
    auto again = connect(endpoint(), Limits{});
    expect_echo(*again, 10);
}

TEST_P(ShmTest, SecondServerOnTheSameNameIsAlreadyRunning) {
    start();
    EXPECT_THROW(listen(endpoint(), Limits{}), AlreadyRunning);
    auto ch = connect(endpoint(), Limits{});
    expect_echo(*ch, 5);
}

TEST_P(ShmTest, RestartReclaimsObjectsOfAKilledServer) {
    start();
    {
        auto ch = connect(endpoint(), Limits{});
        expect_echo(*ch, 5);
    }
    server_->stop(SIGKILL, 5000);
    // A segment of a client that died too (a reaped child's pid is dead).
    pid_t dead = test::test_fork();
    ASSERT_GE(dead, 0);
    if (dead == 0) ::_exit(0);
    test::wait_or_kill(dead, 5000);
    std::string seg = shm::segment_name(name_, dead, 0);
    {
        Fd fd(::shm_open(seg.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
        ASSERT_TRUE(fd);
    }
    auto objects = list_shm_objects();
    bool saw_stale_fifo = false, saw_stale_segment = false;
    for (const auto& o : objects) {
        if (o.what == shm::fifo_path(name_)) saw_stale_fifo = o.stale;
        if (o.what == "/dev/shm" + seg) saw_stale_segment = o.stale && o.owner == dead;
    }
    EXPECT_TRUE(saw_stale_fifo);
    EXPECT_TRUE(saw_stale_segment);
    start();
    EXPECT_TRUE(segments_named(name_).empty());
    auto ch = connect(endpoint(), Limits{});
    expect_echo(*ch, 1000);
}

TEST_P(ShmTest, ListsLiveObjectsWithOwners) {
    start();
    auto ch = connect(endpoint(), Limits{});
    bool fifo = false, segment = false;
    for (const auto& o : list_shm_objects()) {
        if (o.what == shm::fifo_path(name_)) fifo = o.owner == server_->pid() && !o.stale;
        auto e = shm::parse_segment_entry(o.what.substr(o.what.rfind('/') + 1));
        if (e && e->name == name_) segment = o.owner == ::getpid() && !o.stale;
    }
    EXPECT_TRUE(fifo);
    EXPECT_TRUE(segment);
}

TEST_P(ShmTest, NoServerIsAClearError) {
    try {
        connect(endpoint(), Limits{});
        ADD_FAILURE() << "connected to nothing";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("no shm server"), std::string::npos) << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Wait, ShmTest, ::testing::Values(WaitMode::block, WaitMode::spin),
                         [](const auto& param_info) {
                             return param_info.param == WaitMode::block ? "block" : "spin";
                         });

}  // namespace
}  // namespace ipclab
