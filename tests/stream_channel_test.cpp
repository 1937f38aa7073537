// The framed and text channels over a socketpair, including a peer that
// delivers one byte at a time (short reads must never be errors).
#include "ipc/stream_channel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/page_buffer.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab {
namespace {

struct Pair {
    Fd a, b;
    Pair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
        a.reset(sv[0]);
        b.reset(sv[1]);
    }
};

Limits limits(std::size_t max = kDefaultMaxMessage, int timeout_ms = 5000) {
    Limits l;
    l.max_message = max;
    l.timeout_ms = timeout_ms;
    return l;
}

// Writes bytes one per write(2) from a forked child, so the reader sees
// every possible split of header and payload.
pid_t trickle(Fd& fd, ipclab::Bytes bytes) {
    pid_t pid = test::test_fork();
    if (pid == 0) {
        for (std::byte b : bytes) {
            if (::write(fd.get(), &b, 1) != 1) ::_exit(1);
            if (bytes.size() < 64) ::usleep(200);
        }
        ::_exit(0);
    }
    fd.reset();
    return pid;
}

ipclab::Bytes framed_bytes(std::span<const std::byte> payload, bool opening) {
    ipclab::Bytes out;
    if (opening) out.assign(kFramedOpening.begin(), kFramedOpening.end());
    HeaderBytes h = encode_header(FrameType::data, payload.size());
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

// A session's bytes: the opening, then a frame of each size (payloads[i]
// gets frame i's payload).
ipclab::Bytes framed_stream(std::span<const std::size_t> sizes, std::vector<ipclab::Bytes>& payloads) {
    ipclab::Bytes stream;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        payloads.emplace_back();
        fill_payload(payloads.back(), i, sizes[i]);
        auto frame = framed_bytes(payloads.back(), i == 0);
        stream.insert(stream.end(), frame.begin(), frame.end());
    }
    return stream;
}

// Writes `bytes` into fd from a thread, then closes fd; joined when it goes
// out of scope (also after a failed ASSERT). A reader that stops early makes
// the write time out, which only ends the thread.
class BackgroundWriter {
public:
    BackgroundWriter(Fd& fd, const ipclab::Bytes& bytes)
        : t_([&fd, &bytes] {
              try {
                  write_all(fd.get(), bytes, true, 10000, "test");
              } catch (const std::exception&) {
              }
              fd.reset();
          }) {}
    BackgroundWriter(const BackgroundWriter&) = delete;
    BackgroundWriter& operator=(const BackgroundWriter&) = delete;
    ~BackgroundWriter() { t_.join(); }

private:
    std::thread t_;
};

TEST(ReadWrite, ShortReadsAreReassembled) {
    Pair p;
    ipclab::Bytes data(300);
    std::iota(reinterpret_cast<unsigned char*>(data.data()),
              reinterpret_cast<unsigned char*>(data.data()) + data.size(), 0);
    pid_t pid = trickle(p.b, data);
    ipclab::Bytes got(300);
    EXPECT_TRUE(StreamReader(p.a.get(), 5000).read_exact(got, "test"));
    EXPECT_EQ(got, data);
    EXPECT_EQ(test::wait_or_kill(pid, 5000), 0);
}

// fill(n, at) on an empty reader reads to that page offset of its buffer
// (FramedChannel places payloads so that copying them out is not
// 4K-aliased); bytes already buffered are never moved by it, and a line
// longer than the whole buffer still grows it.
TEST(ReadWrite, FillPlacesTheNextBytesAtTheAskedPageOffset) {
    Pair p;
    ipclab::Bytes data(6000);
    std::iota(reinterpret_cast<unsigned char*>(data.data()),
              reinterpret_cast<unsigned char*>(data.data()) + data.size(), 0);
    ASSERT_EQ(::write(p.b.get(), data.data(), 3000), 3000);
    StreamReader r(p.a.get(), 5000);
    ASSERT_TRUE(r.fill(5, 2043));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r.data()) % 4096, 2043u);
    ASSERT_EQ(r.buffered(), 3000u);
    r.consume(1000);
    ASSERT_TRUE(r.fill(100, 7));  // 2000 still buffered: they stay where they are
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r.data()) % 4096, (2043u + 1000u) % 4096);
    EXPECT_EQ(static_cast<unsigned char>(r.data()[0]), static_cast<unsigned char>(1000 % 256));
    r.consume(2000);
    ASSERT_EQ(::write(p.b.get(), data.data() + 3000, 3000), 3000);
    p.b.reset();
    ASSERT_TRUE(r.fill(3000, 4095));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(r.data()) % 4096, 4095u);
    EXPECT_TRUE(std::equal(data.begin() + 3000, data.end(), r.data()));
    r.consume(3000);
    EXPECT_FALSE(r.fill(70000, 100)) << "EOF: a request beyond the buffer grows it, then meets the end";
}

// Where a copy's block goes (ipc/page_buffer.hpp): in the first half of its
// page, its data a quarter page from the other end modulo 4096 (never a few
// bytes apart), wherever the other end sits and whatever the header; a
// small frame so ends well before its page's last lines.
TEST(ReadWrite, CopyBlocksSitAQuarterPageFromTheOtherEndInTheirPagesFirstHalf) {
    EXPECT_EQ(ipclab::quarter_page_from(nullptr, kFrameHeaderSize), 0u);
    alignas(4096) static std::byte page[3 * 4096];
    for (std::size_t other = 0; other < 2 * 4096; other += 7) {
        for (std::size_t header : {std::size_t{5}, std::size_t{12}, std::size_t{20}}) {
            std::size_t at = ipclab::quarter_page_from(page + other, header);
            ASSERT_LT(at, 2048u) << other << " " << header;
            std::size_t distance = (at + header + 4096 - other % 4096) % 4096;
            ASSERT_TRUE(distance == 1024 || distance == 3072) << other << " " << header << ": " << distance;
        }
    }
}

// Message buffers of kLargeBuffer bytes and more start kLargeBufferPageOffset
// into a page, whatever the heap did before (ipc/page_buffer.hpp says why);
// filling them with append_bytes/assign_bytes copies exactly.
TEST(ReadWrite, LargeMessageBuffersStartAtTheirPageOffset) {
    auto offset = [](const ipclab::Bytes& b) { return reinterpret_cast<std::uintptr_t>(b.data()) % 4096; };
    std::vector<std::unique_ptr<char[]>> clutter;  // an irregular heap first
    for (std::size_t n : {17u, 70001u, 333u, 131075u}) clutter.emplace_back(new char[n]);
    for (std::size_t n : {std::size_t{ipclab::kLargeBuffer}, std::size_t{1} << 20, (std::size_t{1} << 20) + 3}) {
        ipclab::Bytes b(n);
        EXPECT_EQ(offset(b), ipclab::kLargeBufferPageOffset) << n;
    }
    ipclab::Bytes grown;
    ipclab::Bytes part(40000);
    std::iota(reinterpret_cast<unsigned char*>(part.data()), reinterpret_cast<unsigned char*>(part.data()) + part.size(),
              0);
    ipclab::append_bytes(grown, part);
    ipclab::append_bytes(grown, part);  // 80000 bytes: moved into large storage
    EXPECT_EQ(offset(grown), ipclab::kLargeBufferPageOffset);
    ASSERT_EQ(grown.size(), 80000u);
    EXPECT_TRUE(std::equal(part.begin(), part.end(), grown.begin()));
    EXPECT_TRUE(std::equal(part.begin(), part.end(), grown.begin() + 40000));
    ipclab::assign_bytes(grown, std::span<const std::byte>(part).first(3));
    EXPECT_EQ(grown.size(), 3u);
    EXPECT_EQ(grown[2], part[2]);
    ipclab::assign_bytes(grown, {});
    EXPECT_TRUE(grown.empty());

    // A received message's storage too: the payload is read straight into it.
    Pair p;
    StreamFds client{std::move(p.a), Fd{}, true};
    auto c = make_framed_channel(std::move(client), limits(), true);
    ipclab::Bytes big;
    fill_payload(big, 3, 1 << 20);
    std::thread t([&] { c->send(FrameType::data, big); });
    auto s = open_stream_session(std::move(p.b), limits());
    Message m;
    ASSERT_TRUE(s->receive(m));
    t.join();
    EXPECT_EQ(offset(m.payload), ipclab::kLargeBufferPageOffset);
    EXPECT_EQ(m.payload, big);
}

TEST(ReadWrite, EofBeforeAndInsideAMessage) {
    Pair p;
    std::byte buf[4];
    p.b.reset();
    EXPECT_FALSE(StreamReader(p.a.get(), 1000).read_exact(buf, "test"));
    Pair q;
    std::byte two[2]{};
    write_all(q.b.get(), two, true, 1000, "test");
    q.b.reset();
    EXPECT_THROW(StreamReader(q.a.get(), 1000).read_exact(buf, "test"), PeerGone);
}

TEST(ReadWrite, ReadTimesOut) {
    Pair p;
    std::byte buf[1];
    EXPECT_THROW(StreamReader(p.a.get(), 50).read_exact(buf, "test"), TimeoutError);
}

TEST(ReadWrite, WritingToAClosedPeerIsPeerGoneNotSigpipe) {
    Pair p;
    p.b.reset();
    ipclab::Bytes data(1 << 20);
    EXPECT_THROW(write_all(p.a.get(), data, true, 1000, "test"), PeerGone);
}

TEST(FramedChannel, RoundTripsEverySizeOverATrickle) {
    for (std::size_t size : {0u, 1u, 5u, 70000u}) {
        Pair p;
        ipclab::Bytes payload;
        fill_payload(payload, size, size);
        pid_t pid = trickle(p.b, framed_bytes(payload, true));
        auto ch = open_stream_session(std::move(p.a), limits());
        ASSERT_FALSE(ch->is_text());
        Message m;
        ASSERT_TRUE(ch->receive(m)) << size;
        EXPECT_EQ(m.payload, payload) << size;
        EXPECT_FALSE(ch->receive(m)) << "clean end after the last frame";
        EXPECT_EQ(test::wait_or_kill(pid, 10000), 0);
    }
}

// A receive into a reused large Message reads header and payload in one
// readv, straight into the message (kSplitFrom). Frames of every size, written
// back to back, make that read run into the next frame's header or payload
// (handed back to the buffer, past its 64 KiB for a 1 MiB frame) or stop
// inside a header; each frame still arrives whole and byte-exact.
TEST(FramedChannel, AReusedLargeMessageGetsFramesOfEverySizeInAnyOrder) {
    const std::size_t sizes[] = {70000, 10, 0, 1u << 20, 3, 1u << 20, 70000, 4096, 5, 4095, 65531, 1};
    std::vector<ipclab::Bytes> payloads;
    ipclab::Bytes stream = framed_stream(sizes, payloads);
    Pair p;
    BackgroundWriter writer(p.b, stream);
    auto ch = open_stream_session(std::move(p.a), limits());
    Message m;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        ASSERT_TRUE(ch->receive(m)) << i;
        EXPECT_EQ(m.type, FrameType::data);
        ASSERT_EQ(m.payload.size(), sizes[i]) << i;
        EXPECT_TRUE(m.payload == payloads[i]) << "frame " << i << " of " << sizes[i] << " bytes";
    }
    EXPECT_FALSE(ch->receive(m)) << "clean end after the last frame";
    EXPECT_TRUE(m.payload.empty()) << "a clean end leaves no bytes in the message";
}

// The same path with one byte per read: the split read ends inside the header.
TEST(FramedChannel, AReusedLargeMessageSurvivesATrickle) {
    ipclab::Bytes first, second, stream;
    fill_payload(first, 1, 70000);
    fill_payload(second, 2, 66000);
    for (auto* pl : {&first, &second}) {
        auto frame = framed_bytes(*pl, pl == &first);
        stream.insert(stream.end(), frame.begin(), frame.end());
    }
    Pair p;
    pid_t pid = trickle(p.b, stream);
    auto ch = open_stream_session(std::move(p.a), limits());
    Message m;
    ASSERT_TRUE(ch->receive(m));
    EXPECT_TRUE(m.payload == first);
    ASSERT_TRUE(ch->receive(m));
    EXPECT_TRUE(m.payload == second);
    EXPECT_FALSE(ch->receive(m));
    EXPECT_EQ(test::wait_or_kill(pid, 30000), 0);
}

// A peer that ends inside the header or the payload of a frame read the split
// way is PeerGone, as through the buffer.
TEST(FramedChannel, AReusedLargeMessageSeesATruncatedFrameAsPeerGone) {
    for (std::size_t cut : {3u, 4000u}) {
        ipclab::Bytes first, second, stream;
        fill_payload(first, 1, 70000);
        fill_payload(second, 2, 70000);
        stream = framed_bytes(first, true);
        auto frame = framed_bytes(second, false);
        stream.insert(stream.end(), frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(cut));
        Pair p;
        BackgroundWriter writer(p.b, stream);
        auto ch = open_stream_session(std::move(p.a), limits());
        Message m;
        ASSERT_TRUE(ch->receive(m));
        EXPECT_TRUE(m.payload == first);
        EXPECT_THROW(ch->receive(m), PeerGone) << "cut after " << cut << " bytes";
    }
}

// A FIFO session's write end is non-blocking (a full pipe is waited on in
// poll, bounded by the timeout). Without a timeout (0: forever) a full pipe
// is waited on as long as the reader takes; it once timed out at once
// (`client --timeout 0` with 1 MiB over fifo: "no complete reply ... within 0 ms").
TEST(FramedChannel, AFullPipeWithoutATimeoutIsWaitedOnNotATimeout) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    Fd read_end(p[0]), write_end(p[1]);
    StreamFds fds{Fd{}, std::move(write_end), false};
    auto writer = make_framed_channel(std::move(fds), limits(kDefaultMaxMessage, 0), false);
    ipclab::Bytes big;
    fill_payload(big, 3, std::size_t{1} << 20);
    std::thread reader([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the pipe fills meanwhile
        try {
            StreamReader r(read_end.get(), 0);
            ipclab::Bytes got(big.size() + kFrameHeaderSize);
            EXPECT_TRUE(r.read_exact(got, "test"));
        } catch (const std::exception& e) {
            ADD_FAILURE() << "the reader: " << e.what();
        }
    });
    EXPECT_NO_THROW(writer->send(FrameType::data, big));
    writer.reset();  // the reader sees the end of the pipe even when the send failed
    reader.join();
}

TEST(FramedChannel, ClientAndServerSidesTalk) {
    Pair p;
    StreamFds client{std::move(p.a), Fd{}, true};
    auto c = make_framed_channel(std::move(client), limits(), true);
    ipclab::Bytes big(1 << 20, std::byte{7});
    std::thread t([&] { c->send(FrameType::data, big); });
    auto s = open_stream_session(std::move(p.b), limits());
    Message m;
    ASSERT_TRUE(s->receive(m));
    t.join();
    EXPECT_EQ(m.payload, big);
    s->send(FrameType::error, as_bytes("nope"));
    ASSERT_TRUE(c->receive(m));
    EXPECT_EQ(m.type, FrameType::error);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(m.payload.data()), m.payload.size()), "nope");
}

// One Message reused for frames of changing sizes, as a session does: a small
// frame is written out in one piece (send_small) and taken whole from the
// reader's buffer (several frames per read, the payload's size changing or
// not), the largest frame built in send()'s own 256-byte array (251) and the
// first built out of line (252) alike, and the largest small frame and the
// first that is not meet the other paths. Each arrives byte-exact, with the
// size it was sent with.
TEST(FramedChannel, OneMessageTakesFramesOfChangingSizesWhole) {
    const std::size_t sizes[] = {64, 64, 10, 0, 64, 251, 252, 2043, 2044, 1, 251, 2043, 0, 0, 5, 64};
    Pair p;
    StreamFds client{std::move(p.a), Fd{}, true};
    auto c = make_framed_channel(std::move(client), limits(), true);
    std::vector<ipclab::Bytes> payloads;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        payloads.emplace_back();
        fill_payload(payloads.back(), i, sizes[i]);
        c->send(i % 3 == 2 ? FrameType::error : FrameType::data, payloads.back());  // all buffered before any read
    }
    auto s = open_stream_session(std::move(p.b), limits());
    Message m;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        ASSERT_TRUE(s->receive(m)) << i;
        EXPECT_EQ(m.type, i % 3 == 2 ? FrameType::error : FrameType::data) << i;
        ASSERT_EQ(m.payload.size(), sizes[i]) << i;
        EXPECT_TRUE(m.payload == payloads[i]) << "frame " << i << " of " << sizes[i] << " bytes";
    }
    c.reset();
    EXPECT_FALSE(s->receive(m)) << "clean end after the last frame";
}

// The same frames one byte per read: a small frame's header and payload
// come in every split, and the payload's size changes from frame to frame.
TEST(FramedChannel, OneMessageTakesFramesOfChangingSizesOverATrickle) {
    const std::size_t sizes[] = {64, 3, 64, 0, 7};
    std::vector<ipclab::Bytes> payloads;
    ipclab::Bytes stream = framed_stream(sizes, payloads);
    Pair p;
    pid_t pid = trickle(p.b, stream);
    auto ch = open_stream_session(std::move(p.a), limits());
    Message m;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        ASSERT_TRUE(ch->receive(m)) << i;
        ASSERT_EQ(m.payload.size(), sizes[i]) << i;
        EXPECT_TRUE(m.payload == payloads[i]) << i;
    }
    EXPECT_FALSE(ch->receive(m));
    EXPECT_EQ(test::wait_or_kill(pid, 30000), 0);
}

// Fills a pipe whose write end is non-blocking; returns the bytes it took.
std::size_t fill_pipe(int fd) {
    static const std::byte chunk[4096] = {};
    std::size_t total = 0;
    for (int i = 0; i < 4096; ++i) {  // bounded: pipes hold 1 MiB at most here
        ssize_t n = ::write(fd, chunk, sizeof chunk);
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
    }
    return total;
}

// A small frame sent into a full pipe (its write end non-blocking, as a FIFO
// session's) is not lost in the first write's EAGAIN: it waits for room,
// then goes whole; with nobody reading it is a timeout, not a hang.
TEST(FramedChannel, ASmallFrameIntoAFullPipeWaitsForRoomOrTimesOut) {
    for (bool drained : {true, false}) {
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        Fd read_end(fds[0]), write_end(fds[1]);
        int w = write_end.get();
        auto writer = make_framed_channel(StreamFds{Fd{}, std::move(write_end), false}, limits(kDefaultMaxMessage, 300),
                                          false);
        std::size_t filled = fill_pipe(w);
        ASSERT_GT(filled, 0u);
        ipclab::Bytes payload;
        fill_payload(payload, 9, 64);
        if (!drained) {
            EXPECT_THROW(writer->send(FrameType::data, payload), TimeoutError);
            continue;
        }
        ipclab::Bytes got;
        std::thread reader([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the send meets a full pipe
            std::byte buf[8192];
            while (got.size() < filled + kFrameHeaderSize + payload.size()) {
                ssize_t n = ::read(read_end.get(), buf, sizeof buf);
                if (n <= 0) break;
                got.insert(got.end(), buf, buf + n);
            }
        });
        EXPECT_NO_THROW(writer->send(FrameType::data, payload));
        reader.join();
        ASSERT_EQ(got.size(), filled + kFrameHeaderSize + payload.size());
        EXPECT_EQ(got[filled], static_cast<std::byte>(FrameType::data));
        EXPECT_EQ(get_u32(got.data() + filled + 1), payload.size());
        EXPECT_TRUE(std::equal(payload.begin(), payload.end(), got.begin() + static_cast<std::ptrdiff_t>(filled + 5)));
    }
}

// A connected TCP pair on loopback (large frames go out corked: the header
// with MSG_MORE, then the payload).
struct TcpPair {
    Fd a, b;
    TcpPair() {
        Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        struct sockaddr_in sa {};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        auto* addr = reinterpret_cast<sockaddr*>(&sa);
        if (!listener || ::bind(listener.get(), addr, len) != 0 || ::listen(listener.get(), 1) != 0 ||
            ::getsockname(listener.get(), addr, &len) != 0)
            throw std::runtime_error("loopback listener");
        a.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!a || ::connect(a.get(), addr, len) != 0) throw std::runtime_error("connect");
        b.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!b) throw std::runtime_error("accept");
    }
};

TEST(FramedChannel, LargeTcpFramesArriveWholeInOrderAndNothingWaitsBehindThem) {
    TcpPair p;
    auto c = make_framed_channel(StreamFds{std::move(p.a), Fd{}, true}, limits(), true);
    // Around the size from which the header goes ahead with MSG_MORE; the
    // opening rides with the first frame; a small frame after each large
    // one must not wait behind a corked header.
    const std::vector<std::size_t> sizes{256 * 1024 - 1, 256 * 1024, 1 << 20, 3, 300 * 1024, 1};
    std::vector<ipclab::Bytes> sent;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        sent.emplace_back(sizes[i]);
        fill_payload(sent.back(), static_cast<unsigned>(i), sizes[i]);
    }
    // The server side echoes each frame, through its own corked path.
    std::thread server([&] {
        try {
            auto s = open_stream_session(std::move(p.b), limits());
            Message m;
            while (s->receive(m)) s->send(FrameType::data, m.payload);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "the server side: " << e.what();
        }
    });
    try {
        Message m;
        for (const auto& b : sent) {
            c->send(FrameType::data, b);
            if (!c->receive(m)) {
                ADD_FAILURE() << "no echo of a frame of " << b.size() << " bytes";
                break;
            }
            EXPECT_EQ(m.payload, b) << "echo of a frame of " << b.size() << " bytes";
        }
    } catch (const std::exception& e) {  // a frame left waiting would time out here
        ADD_FAILURE() << "the client side: " << e.what();
    }
    c.reset();  // the server side sees the end and returns
    server.join();
}

TEST(FramedChannel, OversizedFrameIsRefusedBeforeItsPayload) {
    Pair p;
    ipclab::Bytes payload(101);
    auto bytes = framed_bytes(payload, true);
    write_all(p.b.get(), bytes, true, 1000, "test");
    auto ch = open_stream_session(std::move(p.a), limits(100));
    Message m;
    EXPECT_THROW(ch->receive(m), OversizeError);
}

TEST(FramedChannel, TruncatedFrameIsPeerGone) {
    Pair p;
    ipclab::Bytes payload(50);
    auto bytes = framed_bytes(payload, true);
    bytes.resize(bytes.size() - 10);
    write_all(p.b.get(), bytes, true, 1000, "test");
    p.b.reset();
    auto ch = open_stream_session(std::move(p.a), limits());
    Message m;
    EXPECT_THROW(ch->receive(m), PeerGone);
}

TEST(FramedChannel, BadOpeningIsAProtocolError) {
    Pair p;
    std::byte bad[8] = {std::byte{0}, std::byte{'X'}};
    write_all(p.b.get(), bad, true, 1000, "test");
    EXPECT_THROW(open_stream_session(std::move(p.a), limits()), ProtocolError);
}

TEST(TextChannel, LinesIncludeTheirTerminatorAndTheLastMayLackIt) {
    Pair p;
    std::string text = "hello\nsecond line\r\nlast";
    ipclab::Bytes bytes(as_bytes(text).begin(), as_bytes(text).end());
    pid_t pid = trickle(p.b, bytes);
    auto ch = open_stream_session(std::move(p.a), limits());
    ASSERT_TRUE(ch->is_text());
    Message m;
    auto str = [&] { return std::string(reinterpret_cast<char*>(m.payload.data()), m.payload.size()); };
    ASSERT_TRUE(ch->receive(m));
    EXPECT_EQ(str(), "hello\n");
    ASSERT_TRUE(ch->receive(m));
    EXPECT_EQ(str(), "second line\r\n");
    ASSERT_TRUE(ch->receive(m));
    EXPECT_EQ(str(), "last");
    EXPECT_FALSE(ch->receive(m));
    EXPECT_EQ(test::wait_or_kill(pid, 5000), 0);
}

TEST(TextChannel, OverlongLineIsRefused) {
    Pair p;
    std::string line(200, 'a');
    write_all(p.b.get(), as_bytes(line), true, 1000, "test");
    auto ch = open_stream_session(std::move(p.a), limits(100, 200));
    Message m;
    EXPECT_THROW(ch->receive(m), OversizeError);
}

TEST(TextChannel, RepliesAreRawBytesAndErrorsALine) {
    Pair p;
    write_all(p.b.get(), as_bytes("x\n"), true, 1000, "test");
    auto ch = open_stream_session(std::move(p.a), limits());
    ch->send(FrameType::data, as_bytes("I got your message"));
    ch->send(FrameType::error, as_bytes("too big"));
    char buf[64] = {};
    std::size_t n = 0;
    while (n < 18 + 15) n += read_some(p.b.get(), buf + n, sizeof buf - n, "test");
    EXPECT_EQ(std::string(buf, n), "I got your messageerror: too big\n");
}

// The buffer a fork server parks before forking (ipc/page_buffer.hpp): a
// session's reader borrows it, one reader at a time, and only in the thread
// that parked it (a forked child's one thread is that thread's copy).
TEST(ParkedReadBuffer, OneReaderAtATimeBorrowsItInTheParkingThreadOnly) {
    std::thread([] {  // a thread of its own: parking marks the thread for good
        park_read_buffer(kReadBuffer);
        const std::byte* parked = detail::parked_read_buffer.data();
        ASSERT_NE(parked, nullptr);
        Pair p;
        {
            StreamReader reader(p.a.get(), 5000);
            EXPECT_EQ(reader.data(), parked);  // nothing buffered yet: the buffer's start
            ASSERT_EQ(::write(p.b.get(), "abc", 3), 3);
            ASSERT_TRUE(reader.fill(3));
            EXPECT_EQ(std::memcmp(reader.data(), "abc", 3), 0);
            // A second reader meanwhile gets a buffer of its own.
            StreamReader other(p.b.get(), 5000);
            EXPECT_NE(other.data(), parked);
            // Another thread of this process never borrows it, even while it is free.
            std::thread([&] {
                ReadBuffer elsewhere(kReadBuffer);
                EXPECT_FALSE(elsewhere.lent());
                EXPECT_NE(elsewhere.data(), parked);
            }).join();
        }
        ReadBuffer again(kReadBuffer);  // given back as the reader ended
        EXPECT_TRUE(again.lent());
        EXPECT_EQ(again.data(), parked);
        EXPECT_GE(again.size(), kReadBuffer);
        ReadBuffer bigger(kReadBuffer * 2);  // more than is parked: its own
        EXPECT_FALSE(bigger.lent());
        again.own(PageBuffer(kReadBuffer * 2));  // grown: the parked one is free again
        ReadBuffer after(kReadBuffer);
        EXPECT_TRUE(after.lent());
    }).join();
}

// A session opened on a socket whose send timeout came from its listener
// (timeouts_set) and that has no receive timeout still ends a silent peer's
// session at the timeout: the reader's tick bounds the read.
TEST(StreamSession, InheritedTimeoutsStillEndASilentSession) {
    Pair p;
    set_send_timeout(p.a.get(), 100);
    EXPECT_THROW(open_stream_session(std::move(p.a), limits(kDefaultMaxMessage, 100), true), TimeoutError);
}

// The same for a socket that came with a receive timeout of its own (a
// caller's): its EAGAIN is waited on in poll, up to the session's timeout.
TEST(StreamSession, ASocketsOwnReceiveTimeoutStillEndsASilentSession) {
    Pair p;
    set_socket_timeouts(p.a.get(), 50);
    EXPECT_THROW(open_stream_session(std::move(p.a), limits(kDefaultMaxMessage, 100), true), TimeoutError);
}

// A framed socket channel in mid-session: the peer goes silent after one
// message, and the next receive ends with TimeoutError, not a hang.
TEST(StreamSession, ASilentPeerMidSessionTimesOut) {
    Pair p;
    auto ours = make_framed_channel({std::move(p.a), Fd{}, true}, limits(kDefaultMaxMessage, 100), false);
    auto theirs = make_framed_channel({std::move(p.b), Fd{}, true}, limits(kDefaultMaxMessage, 5000), false);
    std::byte one[1]{std::byte{7}};
    theirs->send(FrameType::data, one);
    Message m;
    ASSERT_TRUE(ours->receive(m));
    EXPECT_EQ(m.payload.size(), 1u);
    EXPECT_THROW(ours->receive(m), TimeoutError);
}

}  // namespace
}  // namespace ipclab
