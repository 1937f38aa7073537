#include <gtest/gtest.h>

#include "client/latency.hpp"
#include "client/options.hpp"
#include "client/payload.hpp"

namespace ipclab {
namespace {

TEST(Latency, NearestRankPercentiles) {
    std::vector<std::uint64_t> ns;
    for (std::uint64_t i = 1; i <= 1000; ++i) ns.push_back((1001 - i) * 1000);  // unsorted
    LatencySummary s = summarize(ns);
    EXPECT_EQ(s.count, 1000u);
    EXPECT_DOUBLE_EQ(s.min_us, 1);
    EXPECT_DOUBLE_EQ(s.p50_us, 500);
    EXPECT_DOUBLE_EQ(s.p90_us, 900);
    EXPECT_DOUBLE_EQ(s.p99_us, 990);
    EXPECT_DOUBLE_EQ(s.p999_us, 999);
    EXPECT_DOUBLE_EQ(s.max_us, 1000);
}

TEST(Latency, SingleSampleAndEmpty) {
    std::vector<std::uint64_t> one{42000};
    LatencySummary s = summarize(one);
    EXPECT_DOUBLE_EQ(s.p50_us, 42);
    EXPECT_DOUBLE_EQ(s.p99_us, 42);
    std::vector<std::uint64_t> none;
    EXPECT_EQ(summarize(none).count, 0u);
}

TEST(Payload, CarriesItsSequenceAndDiffersBetweenMessages) {
    std::vector<std::byte> a, b;
    fill_payload(a, 1, 64);
    fill_payload(b, 2, 64);
    EXPECT_EQ(get_u64(a.data()), 1u);
    EXPECT_NE(a, b);
    EXPECT_EQ(first_difference(a, b), std::optional<std::size_t>(7));
    EXPECT_EQ(first_difference(a, a), std::nullopt);
    std::vector<std::byte> shorter(a.begin(), a.end() - 1);
    EXPECT_EQ(first_difference(a, shorter), std::optional<std::size_t>(63));
    fill_payload(a, 9, 0);
    EXPECT_TRUE(a.empty());
}

TEST(ClientMode, LineModeOnlyForOnePlainMessageOverAStream) {
    Endpoint tcp;
    ClientOptions o;
    EXPECT_TRUE(uses_line_mode(tcp, o));
    o.count = 2;
    EXPECT_FALSE(uses_line_mode(tcp, o));
    o = {};
    o.size = 10;
    EXPECT_FALSE(uses_line_mode(tcp, o));
    o = {};
    o.mode = ClientMode::framed;
    EXPECT_FALSE(uses_line_mode(tcp, o));
    Endpoint fifo;
    fifo.transport = "fifo";
    EXPECT_FALSE(uses_line_mode(fifo, ClientOptions{}));
}

}  // namespace
}  // namespace ipclab
