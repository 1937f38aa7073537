#include "ipc/framing.hpp"

#include <gtest/gtest.h>

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

TEST(Framing, OpeningMustMatchExactly) {
    EXPECT_NO_THROW(check_opening(kFramedOpening));
    auto bad = kFramedOpening;
    bad[7] = std::byte{2};  // a future version is not ours
    EXPECT_THROW(check_opening(bad), ProtocolError);
    bad = kFramedOpening;
    bad[3] = std::byte{'x'};
    EXPECT_THROW(check_opening(bad), ProtocolError);
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
