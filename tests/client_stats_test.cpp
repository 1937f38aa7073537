#include <gtest/gtest.h>

#include "client/histogram.hpp"
#include "client/latency.hpp"
#include "client/options.hpp"
#include "client/payload.hpp"

namespace ipclab {
namespace {

TEST(Latency, NearestRankPercentilesOfSortedSamples) {
    // The sorted-vector form ipc-bench uses.
    std::vector<std::uint64_t> ns;
    for (std::uint64_t i = 1; i <= 1000; ++i) ns.push_back(i * 1000);
    EXPECT_EQ(percentile(ns, 50), 500000u);
    EXPECT_EQ(percentile(ns, 90), 900000u);
    EXPECT_EQ(percentile(ns, 99.9), 999000u);
    EXPECT_EQ(percentile(ns, 100), 1000000u);
    EXPECT_EQ(percentile({}, 50), 0u);
}

TEST(Latency, SummaryOfAHistogramIsWithinItsPrecision) {
    Histogram h;
    for (std::uint64_t i = 1000; i >= 1; --i) h.record(i * 1000);  // any order
    LatencySummary s = summarize(h);
    EXPECT_EQ(s.count, 1000u);
    EXPECT_DOUBLE_EQ(s.min_us, 1);
    EXPECT_DOUBLE_EQ(s.max_us, 1000);
    for (auto [got, exact] : {std::pair{s.p50_us, 500.0}, {s.p90_us, 900.0}, {s.p99_us, 990.0}, {s.p999_us, 999.0}})
        EXPECT_NEAR(got, exact, exact / 256) << exact;
}

TEST(Latency, SingleSampleAndEmpty) {
    Histogram one;
    one.record(42123);
    LatencySummary s = summarize(one);
    EXPECT_DOUBLE_EQ(s.p50_us, 42.123);  // one sample: every percentile is it, exactly
    EXPECT_DOUBLE_EQ(s.p99_us, 42.123);
    EXPECT_EQ(summarize(Histogram{}).count, 0u);
}

TEST(Fairness, JainsIndexFromEqualToOneTakingAll) {
    EXPECT_DOUBLE_EQ(jain_index({5, 5, 5, 5}), 1);
    EXPECT_DOUBLE_EQ(jain_index({8, 0, 0, 0}), 0.25);  // 1/n: one client got everything
    EXPECT_NEAR(jain_index({1, 2}), 0.9, 1e-12);        // (3^2) / (2 * 5)
    EXPECT_DOUBLE_EQ(jain_index({}), 1);
    EXPECT_DOUBLE_EQ(jain_index({0, 0}), 1);
}

TEST(StatsText, KeepsTheLatencyLineAndAddsClientsAndSchedule) {
    RunStats r;
    r.round_trips = 4000;
    r.seconds = 2;
    r.payload_size = 64;
    EXPECT_EQ(format_stats(r).find("per client"), std::string::npos);
    EXPECT_EQ(format_stats(r).find("rate:"), std::string::npos);
    r.clients = 2;
    r.client_rates = {1000, 1000};
    r.client_round_trips = {2000, 2000};
    r.open_loop = true;
    r.offered_rate = 2000;
    r.scheduled = 4000;
    r.behind = 12;
    r.max_behind_us = 301200;
    std::string text = format_stats(r);
    EXPECT_NE(text.find("\nlatency (us): min 0.0  p50 0.0  p90 0.0  p99 0.0  max 0.0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("per client (msg/s): 1000 1000; fairness (Jain) 1.0000 over 2 clients\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("rate: 2000.0 req/s offered, 2000.0 achieved; 4000 of 4000 scheduled sent, 12 behind "
                        "schedule (at most 301.2 ms late)\n"),
              std::string::npos)
        << text;
}

TEST(Payload, CarriesItsSequenceAndDiffersBetweenMessages) {
    ipclab::Bytes a, b;
    fill_payload(a, 1, 64);
    fill_payload(b, 2, 64);
    EXPECT_EQ(get_u64(a.data()), 1u);
    EXPECT_NE(a, b);
    EXPECT_EQ(first_difference(a, b), std::optional<std::size_t>(7));
    EXPECT_EQ(first_difference(a, a), std::nullopt);
    ipclab::Bytes shorter(a.begin(), a.end() - 1);
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
