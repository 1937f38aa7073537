#include "ipc/framing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"

namespace ipclab {
namespace {

using Span5 = std::span<const std::byte, kFrameHeaderSize>;

TEST(Framing, HeaderRoundTripsZeroAndMaxLengths) {
    for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{8192}, kDefaultMaxMessage}) {
        HeaderBytes h = encode_header(FrameType::data, len);
        FrameHeader d = decode_header(Span5(h.data(), kFrameHeaderSize), kDefaultMaxMessage);
        EXPECT_EQ(d.type, FrameType::data);
        EXPECT_EQ(d.length, len);
    }
}

TEST(Framing, LengthIsBigEndian) {
    HeaderBytes h = encode_header(FrameType::error, 0x01020304);
    EXPECT_EQ(h[0], std::byte{2});
    EXPECT_EQ(h[1], std::byte{1});
    EXPECT_EQ(h[2], std::byte{2});
    EXPECT_EQ(h[3], std::byte{3});
    EXPECT_EQ(h[4], std::byte{4});
}

TEST(Framing, OversizedFrameIsRefusedWithTheNumbers) {
    HeaderBytes h = encode_header(FrameType::data, 1001);
    try {
        decode_header(Span5(h.data(), kFrameHeaderSize), 1000);
        FAIL() << "expected OversizeError";
    } catch (const OversizeError& e) {
        EXPECT_NE(std::string(e.what()).find("1001"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("1000"), std::string::npos);
    }
    EXPECT_NO_THROW(decode_header(Span5(h.data(), kFrameHeaderSize), 1001));
}

TEST(Framing, FourGibibyteAnnouncementIsOversize) {
    HeaderBytes h{std::byte{1}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
    EXPECT_THROW(decode_header(Span5(h.data(), kFrameHeaderSize), kDefaultMaxMessage),
                 OversizeError);
}

TEST(Framing, UnknownTypeIsMalformed) {
    for (int t : {0, 3, 0x7f, 0xff}) {
        HeaderBytes h{static_cast<std::byte>(t), std::byte{0}, std::byte{0}, std::byte{0},
                      std::byte{1}};
        EXPECT_THROW(decode_header(Span5(h.data(), kFrameHeaderSize), 10), ProtocolError) << t;
    }
}

TEST(Framing, LengthBeyond32BitsCannotBeEncoded) {
    EXPECT_THROW(encode_header(FrameType::data, std::size_t{1} << 32), ProtocolError);
}

std::span<const std::byte> first(std::span<const std::byte> bytes, std::size_t n) { return bytes.first(n); }

TEST(Framing, VersionOneOpeningLeavesTheRepliesToTheServer) {
    Opening o = parse_opening(kFramedOpening);
    EXPECT_EQ(o.size, kOpeningSize);
    EXPECT_EQ(o.reply, SessionReply::server_default);
    auto sent = opening_bytes(SessionReply::server_default);
    EXPECT_TRUE(std::equal(sent.begin(), sent.end(), kFramedOpening.begin(), kFramedOpening.end()));
}

TEST(Framing, VersionTwoOpeningCarriesTheReplyMode) {
    for (auto [reply, byte] : {std::pair{SessionReply::ack, 1}, {SessionReply::echo, 2}, {SessionReply::sink, 3}}) {
        auto bytes = opening_bytes(reply);
        ASSERT_EQ(bytes.size(), kOpeningV2Size);
        EXPECT_TRUE(std::equal(kFramedOpening.begin(), kFramedOpening.begin() + 7, bytes.begin()));
        EXPECT_EQ(bytes[7], std::byte{2});
        EXPECT_EQ(bytes[8], std::byte(byte));
        Opening o = parse_opening(bytes);
        EXPECT_EQ(o.size, kOpeningV2Size);
        EXPECT_EQ(o.reply, reply);
        // What follows the opening is not its business.
        ipclab::Bytes more(bytes.begin(), bytes.end());
        more.push_back(std::byte{1});
        EXPECT_EQ(parse_opening(more).size, kOpeningV2Size);
    }
}

TEST(Framing, OpeningWaitsForItsBytesThenDecides) {
    auto v2 = opening_bytes(SessionReply::echo);
    for (std::size_t n = 0; n < kOpeningV2Size; ++n) EXPECT_EQ(parse_opening(first(v2, n)).size, 0u) << n;
    for (std::size_t n = 0; n < kOpeningSize; ++n)
        EXPECT_EQ(parse_opening(first(kFramedOpening, n)).size, 0u) << n;
}

TEST(Framing, ForeignOrUnknownOpeningsAreRefused) {
    auto bad = kFramedOpening;
    bad[3] = std::byte{'x'};
    EXPECT_THROW(parse_opening(bad), ProtocolError);
    bad = kFramedOpening;
    bad[7] = std::byte{3};  // a future version is not ours
    EXPECT_THROW(parse_opening(bad), ProtocolError);
    for (int mode : {0, 4, 0xff}) {
        ipclab::Bytes v2(kFramedOpening.begin(), kFramedOpening.end());
        v2[7] = std::byte{2};
        v2.push_back(static_cast<std::byte>(mode));
        try {
            parse_opening(v2);
            ADD_FAILURE() << "mode " << mode << " accepted";
        } catch (const ProtocolError& e) {
            EXPECT_NE(std::string(e.what()).find("reply mode " + std::to_string(mode)), std::string::npos) << e.what();
        }
    }
}

TEST(Framing, FixedWidthFieldsRoundTrip) {
    std::byte buf[8];
    put_u64(buf, 0x0102030405060708ull);
    EXPECT_EQ(buf[0], std::byte{1});
    EXPECT_EQ(buf[7], std::byte{8});
    EXPECT_EQ(get_u64(buf), 0x0102030405060708ull);
    put_u32(buf, 0xdeadbeef);
    EXPECT_EQ(get_u32(buf), 0xdeadbeefu);
}

}  // namespace
}  // namespace ipclab
