// The chunk codec of the queue transports: splitting, reassembly and the
// validation that turns malformed chunk sequences into ProtocolError.
#include "ipc/chunking.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "ipc/error.hpp"

namespace ipclab {
namespace {

constexpr std::size_t kMaxChunk = 8192;
constexpr std::size_t kCapacity = kMaxChunk - kChunkHeaderSize;

using Chunk = ipclab::Bytes;

ipclab::Bytes pattern(std::size_t n) {
    ipclab::Bytes v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
    return v;
}

std::vector<Chunk> split(FrameType type, const ipclab::Bytes& payload,
                         std::size_t max_chunk = kMaxChunk) {
    ChunkSplitter s(type, payload, max_chunk);
    std::vector<Chunk> out;
    Chunk buf(max_chunk);
    while (!s.done()) {
        std::size_t n = s.next(buf);
        EXPECT_LE(n, max_chunk);
        out.emplace_back(buf.begin(), buf.begin() + static_cast<long>(n));
    }
    EXPECT_EQ(out.size(), s.count());
    return out;
}

// Feeds every chunk; returns the assembled message (expects exactly one).
Message assemble(const std::vector<Chunk>& chunks, std::size_t max_message = 16u << 20) {
    ChunkAssembler a(max_message);
    Message msg;
    int complete = 0;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        auto r = a.feed(chunks[i], msg);
        if (r == ChunkAssembler::Result::message) ++complete;
        EXPECT_EQ(r == ChunkAssembler::Result::message, i + 1 == chunks.size()) << "chunk " << i;
    }
    EXPECT_EQ(complete, 1);
    EXPECT_TRUE(a.idle());
    return msg;
}

void round_trip(std::size_t size, std::size_t expected_chunks) {
    auto payload = pattern(size);
    auto chunks = split(FrameType::data, payload);
    EXPECT_EQ(chunks.size(), expected_chunks) << size;
    Message msg = assemble(chunks);
    EXPECT_EQ(msg.type, FrameType::data);
    EXPECT_EQ(msg.payload, payload) << size;
}

TEST(Chunking, EmptyMessageIsOneHeaderOnlyChunk) {
    auto chunks = split(FrameType::data, {});
    ASSERT_EQ(chunks.size(), 1u);
    EXPECT_EQ(chunks[0].size(), kChunkHeaderSize);
    ChunkHeader h = decode_chunk_header(chunks[0]);
    EXPECT_EQ(h.flags, kChunkFirst | kChunkLast);
    EXPECT_EQ(h.total, 0u);
    round_trip(0, 1);
}

TEST(Chunking, SizesAroundTheChunkLimit) {
    round_trip(1, 1);
    round_trip(kCapacity - 1, 1);
    round_trip(kCapacity, 1);       // exactly one full chunk
    round_trip(kCapacity + 1, 2);   // one byte spills over
    round_trip(2 * kCapacity, 2);
    round_trip(2 * kCapacity + 1, 3);
}

TEST(Chunking, MultiChunkLargeMessage) {
    std::size_t size = (1u << 20) + 3;
    round_trip(size, (size + kCapacity - 1) / kCapacity);
}

TEST(Chunking, HeaderIsBigEndianFixedWidth) {
    auto chunks = split(FrameType::error, pattern(kCapacity + 5));
    ASSERT_EQ(chunks.size(), 2u);
    const Chunk& c = chunks[1];
    EXPECT_EQ(c[0], std::byte{2});
    EXPECT_EQ(c[1], std::byte{kChunkLast});
    EXPECT_EQ(c[2], std::byte{0});
    EXPECT_EQ(c[3], std::byte{0});
    EXPECT_EQ(get_u32(c.data() + 4), kCapacity + 5);
    EXPECT_EQ(get_u32(c.data() + 8), kCapacity);
    EXPECT_EQ(c.size(), kChunkHeaderSize + 5);
    EXPECT_EQ(assemble(chunks).type, FrameType::error);
}

TEST(Chunking, AssemblerReusesMessageAcrossMessages) {
    ChunkAssembler a(1 << 20);
    Message msg;
    for (std::size_t size : {3 * kCapacity, std::size_t{0}, std::size_t{17}}) {
        auto payload = pattern(size);
        ChunkAssembler::Result r = ChunkAssembler::Result::more;
        for (const auto& c : split(FrameType::data, payload)) r = a.feed(c, msg);
        EXPECT_EQ(r, ChunkAssembler::Result::message);
        EXPECT_EQ(msg.payload, payload);
    }
}

// The queue transports' send loop writes a message that fits one chunk
// itself (no splitter): the same bytes as the splitter's, and from one byte
// over on the splitter's chunks.
TEST(Chunking, SendChunkedWritesOneChunkAsTheSplitterDoes) {
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{64}, kCapacity, kCapacity + 1}) {
        auto payload = pattern(size);
        Chunk buf(kMaxChunk);
        std::vector<Chunk> sent;
        bool all = send_chunked(FrameType::error, payload, buf, [&](std::size_t len, bool) {
            sent.emplace_back(buf.begin(), buf.begin() + static_cast<long>(len));
            return true;
        });
        EXPECT_TRUE(all);
        EXPECT_EQ(sent, split(FrameType::error, payload)) << size;
    }
}

// A whole message in one chunk takes the assembler's short path: messages of
// changing sizes into one reused Message each come out whole, and a lone
// chunk whose header does not describe it exactly is refused as before.
TEST(Chunking, OneChunkMessagesOfChangingSizesAndLiesAboutThem) {
    ChunkAssembler a(kCapacity);
    Message msg;
    for (std::size_t size : {std::size_t{64}, std::size_t{10}, std::size_t{0}, std::size_t{64}, kCapacity, std::size_t{3}}) {
        auto payload = pattern(size);
        auto chunks = split(size % 2 ? FrameType::error : FrameType::data, payload);
        ASSERT_EQ(chunks.size(), 1u);
        EXPECT_EQ(a.feed(chunks[0], msg), ChunkAssembler::Result::message) << size;
        EXPECT_EQ(msg.type, size % 2 ? FrameType::error : FrameType::data);
        EXPECT_EQ(msg.payload, payload) << size;
        EXPECT_TRUE(a.idle());
    }
    auto one = split(FrameType::data, pattern(64))[0];
    auto lying = [&](std::uint32_t total) {
        Chunk c = one;
        put_u32(c.data() + 4, total);
        return c;
    };
    ChunkAssembler b(kCapacity);
    EXPECT_THROW(b.feed(lying(63), msg), ProtocolError) << "more bytes than its total";
    ChunkAssembler c(kCapacity);
    EXPECT_THROW(c.feed(lying(65), msg), ProtocolError) << "flagged last, the message short";
    ChunkAssembler d(63);
    EXPECT_THROW(d.feed(one, msg), OversizeError) << "over the receiver's limit";
}

TEST(Chunking, EndMarker) {
    std::byte marker[kChunkHeaderSize];
    encode_end_marker(marker);
    ChunkAssembler a(100);
    Message msg;
    EXPECT_EQ(a.feed(marker, msg), ChunkAssembler::Result::end);
    // ... but not in the middle of a message.
    auto chunks = split(FrameType::data, pattern(kCapacity * 2));
    ChunkAssembler b(1 << 20);
    b.feed(chunks[0], msg);
    EXPECT_THROW(b.feed(marker, msg), ProtocolError);
}

TEST(Chunking, TotalAboveMaxIsOversizeAtFirstChunk) {
    auto chunks = split(FrameType::data, pattern(kCapacity * 3));
    ChunkAssembler a(kCapacity * 3 - 1);
    Message msg;
    EXPECT_THROW(a.feed(chunks[0], msg), OversizeError);
    // The exact limit passes.
    EXPECT_EQ(assemble(chunks, kCapacity * 3).payload.size(), kCapacity * 3);
}

TEST(Chunking, TruncatedChunksAreRejected) {
    auto chunks = split(FrameType::data, pattern(kCapacity + 10));
    ChunkAssembler a(1 << 20);
    Message msg;
    // Shorter than a header.
    EXPECT_THROW(a.feed(std::span<const std::byte>(chunks[0].data(), kChunkHeaderSize - 1), msg),
                 ProtocolError);
    // The last chunk cut short: flagged last but the message is incomplete.
    ChunkAssembler b(1 << 20);
    b.feed(chunks[0], msg);
    Chunk cut(chunks[1].begin(), chunks[1].end() - 1);
    EXPECT_THROW(b.feed(cut, msg), ProtocolError);
    // A single-chunk message whose piece is shorter than its total.
    auto one = split(FrameType::data, pattern(100));
    Chunk short_one(one[0].begin(), one[0].end() - 1);
    ChunkAssembler c(1 << 20);
    EXPECT_THROW(c.feed(short_one, msg), ProtocolError);
}

TEST(Chunking, ReorderedChunksAreRejected) {
    auto chunks = split(FrameType::data, pattern(kCapacity * 3));
    ChunkAssembler a(1 << 20);
    Message msg;
    a.feed(chunks[0], msg);
    EXPECT_THROW(a.feed(chunks[2], msg), ProtocolError);
    // A message cannot start with a later chunk either.
    ChunkAssembler b(1 << 20);
    EXPECT_THROW(b.feed(chunks[1], msg), ProtocolError);
}

TEST(Chunking, DuplicatedChunksAreRejected) {
    auto chunks = split(FrameType::data, pattern(kCapacity * 3));
    ChunkAssembler a(1 << 20);
    Message msg;
    a.feed(chunks[0], msg);
    a.feed(chunks[1], msg);
    EXPECT_THROW(a.feed(chunks[1], msg), ProtocolError);
    ChunkAssembler b(1 << 20);
    b.feed(chunks[0], msg);
    EXPECT_THROW(b.feed(chunks[0], msg), ProtocolError);  // a new first mid-message
}

TEST(Chunking, NoChunkAfterTheLast) {
    auto chunks = split(FrameType::data, pattern(kCapacity * 2));
    ChunkAssembler a(1 << 20);
    Message msg;
    a.feed(chunks[0], msg);
    EXPECT_EQ(a.feed(chunks[1], msg), ChunkAssembler::Result::message);
    EXPECT_THROW(a.feed(chunks[1], msg), ProtocolError);
}

TEST(Chunking, InconsistentHeadersAreRejected) {
    auto chunks = split(FrameType::data, pattern(kCapacity * 2));
    Message msg;
    auto with = [&](std::size_t i, auto edit) {
        Chunk c = chunks[i];
        edit(c);
        return c;
    };
    {  // total changes mid-message
        ChunkAssembler a(1 << 20);
        a.feed(chunks[0], msg);
        EXPECT_THROW(a.feed(with(1, [](Chunk& c) { put_u32(c.data() + 4, kCapacity * 3); }), msg),
                     ProtocolError);
    }
    {  // type changes mid-message
        ChunkAssembler a(1 << 20);
        a.feed(chunks[0], msg);
        EXPECT_THROW(a.feed(with(1, [](Chunk& c) { c[0] = std::byte{2}; }), msg), ProtocolError);
    }
    {  // the message completes but the chunk is not flagged last
        ChunkAssembler a(1 << 20);
        a.feed(chunks[0], msg);
        EXPECT_THROW(a.feed(with(1, [](Chunk& c) { c[1] = std::byte{0}; }), msg), ProtocolError);
    }
    {  // flagged last too early
        ChunkAssembler a(1 << 20);
        EXPECT_THROW(a.feed(with(0, [](Chunk& c) { c[1] = std::byte{kChunkFirst | kChunkLast}; }), msg),
                     ProtocolError);
    }
    ChunkAssembler a(1 << 20);
    EXPECT_THROW(a.feed(with(0, [](Chunk& c) { c[0] = std::byte{9}; }), msg), ProtocolError);
    EXPECT_THROW(a.feed(with(0, [](Chunk& c) { c[1] = std::byte{0x80}; }), msg), ProtocolError);
    EXPECT_THROW(a.feed(with(0, [](Chunk& c) { c[3] = std::byte{1}; }), msg), ProtocolError);
    EXPECT_THROW(a.feed(with(0, [](Chunk& c) { put_u32(c.data() + 8, 1); }), msg), ProtocolError);
}

TEST(Chunking, SplitterRejectsChunksWithoutRoom) {
    ipclab::Bytes p(10);
    EXPECT_THROW(ChunkSplitter(FrameType::data, p, kChunkHeaderSize), std::invalid_argument);
    auto chunks = split(FrameType::data, pattern(100), kChunkHeaderSize + 1);
    EXPECT_EQ(chunks.size(), 100u);
    EXPECT_EQ(assemble(chunks).payload, pattern(100));
}

TEST(Chunking, HelloAndWelcome) {
    auto bytes = encode_hello(Hello{1234, 5, 6});
    Hello h = decode_hello(bytes);
    EXPECT_EQ(h.pid, 1234);
    EXPECT_EQ(h.id_a, 5u);
    EXPECT_EQ(h.id_b, 6u);
    EXPECT_EQ(decode_welcome(encode_welcome(77)), 77);
    // Wrong size, magic, version, pid.
    EXPECT_THROW(decode_hello(std::span<const std::byte>(bytes.data(), bytes.size() - 1)),
                 ProtocolError);
    auto bad = bytes;
    bad[0] = std::byte{0};
    EXPECT_THROW(decode_hello(bad), ProtocolError);
    bad = bytes;
    put_u32(bad.data() + 4, 99);
    EXPECT_THROW(decode_hello(bad), ProtocolError);
    bad = bytes;
    put_u32(bad.data() + 8, 0);
    EXPECT_THROW(decode_hello(bad), ProtocolError);
    EXPECT_THROW(decode_welcome(bytes), ProtocolError);
}

// A cheap deterministic fuzz: random bytes must never crash or hang the
// assembler; they are either accepted or rejected with ProtocolError.
TEST(Chunking, RandomInputOnlyThrowsProtocolError) {
    std::uint32_t seed = 12345;
    auto rnd = [&] {
        seed = seed * 1664525u + 1013904223u;
        return seed >> 8;
    };
    for (int round = 0; round < 2000; ++round) {
        ChunkAssembler a(4096);
        Message msg;
        for (int i = 0; i < 8; ++i) {
            Chunk c(rnd() % 40);
            for (auto& b : c) b = static_cast<std::byte>(rnd());
            if (c.size() >= 4 && rnd() % 2) {  // make the header plausible more often
                c[0] = std::byte{1};
                c[1] = static_cast<std::byte>(rnd() % 4);
                c[2] = c[3] = std::byte{0};
            }
            try {
                a.feed(c, msg);
            } catch (const ProtocolError&) {
                break;
            }
        }
    }
}

}  // namespace
}  // namespace ipclab
