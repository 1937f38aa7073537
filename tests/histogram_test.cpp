// The latency histogram (client/histogram.hpp): its layout, its stated
// precision against the exact nearest-rank answer on known distributions,
// merging, exact min/max/count, the empty case and clamping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "client/histogram.hpp"
#include "client/latency.hpp"

namespace ipclab {
namespace {

constexpr double kPercentiles[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

Histogram histogram_of(const std::vector<std::uint64_t>& values) {
    Histogram h;
    for (auto v : values) h.record(v);
    return h;
}

// Every percentile within the stated bound of the exact nearest-rank sample
// (client/latency.hpp's percentile() over the sorted samples).
void expect_within_precision(const std::vector<std::uint64_t>& values, const char* what) {
    Histogram h = histogram_of(values);
    std::vector<std::uint64_t> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (double p : kPercentiles) {
        std::uint64_t exact = percentile(sorted, p);
        std::uint64_t got = h.percentile(p);
        double error = std::abs(static_cast<double>(got) - static_cast<double>(exact));
        EXPECT_LE(error, static_cast<double>(exact) / Histogram::kPrecisionDivisor)
            << what << ": p" << p << " exact " << exact << " reported " << got;
    }
    EXPECT_EQ(h.count(), values.size()) << what;
    EXPECT_EQ(h.min(), sorted.front()) << what;
    EXPECT_EQ(h.max(), sorted.back()) << what;
}

TEST(Histogram, LayoutIsContiguousAndEachBucketAtMostA128thOfItsValues) {
    // Every bucket starts where the previous ended, and is at most 1/128 of its lower bound wide.
    std::uint64_t next = 0;
    for (std::size_t i = 0; i < Histogram::bucket_count(); ++i) {
        ASSERT_EQ(Histogram::bucket_low(i), next) << i;
        if (Histogram::bucket_low(i) >= 256)
            ASSERT_LE(Histogram::bucket_width(i) * 128, Histogram::bucket_low(i)) << i;
        else
            ASSERT_EQ(Histogram::bucket_width(i), 1u) << i;
        next += Histogram::bucket_width(i);
    }
    EXPECT_EQ(next - 1, Histogram::kMaxValue);  // the last bucket ends at the range's end
    EXPECT_GE(Histogram::kMaxValue, std::uint64_t{3600} * 1000000000);  // an hour in ns, at least
    for (std::uint64_t v :
         std::initializer_list<std::uint64_t>{0, 1, 255, 256, 257, 1000, 123456789, Histogram::kMaxValue}) {
        std::size_t b = Histogram::bucket_of(v);
        EXPECT_LE(Histogram::bucket_low(b), v);
        EXPECT_LT(v, Histogram::bucket_low(b) + Histogram::bucket_width(b));
    }
    // Bounded memory: the bucket count does not depend on what is recorded.
    EXPECT_EQ(Histogram::bucket_count(), 4608u);
}

TEST(Histogram, UniformDistributionWithinPrecision) {
    std::mt19937_64 rng(17);
    std::uniform_int_distribution<std::uint64_t> d(1, 10'000'000);  // 1 ns .. 10 ms
    std::vector<std::uint64_t> v(100000);
    for (auto& x : v) x = d(rng);
    expect_within_precision(v, "uniform");
}

TEST(Histogram, ExponentialDistributionWithinPrecision) {
    std::mt19937_64 rng(42);
    std::exponential_distribution<double> d(1.0 / 50000.0);  // mean 50 us: a long right tail
    std::vector<std::uint64_t> v(100000);
    for (auto& x : v) x = 1 + static_cast<std::uint64_t>(d(rng));
    expect_within_precision(v, "exponential");
}

TEST(Histogram, WideRangeWithinPrecision) {
    // Log-uniform from 1 ns to an hour: every power of two populated.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> d(0, std::log(3600e9));
    std::vector<std::uint64_t> v(50000);
    for (auto& x : v) x = static_cast<std::uint64_t>(std::exp(d(rng)));
    expect_within_precision(v, "log-uniform");
}

TEST(Histogram, ConstantIsExact) {
    Histogram h;
    for (int i = 0; i < 1000; ++i) h.record(123457);
    for (double p : kPercentiles) EXPECT_EQ(h.percentile(p), 123457u) << p;
    EXPECT_EQ(h.min(), 123457u);
    EXPECT_EQ(h.max(), 123457u);
    EXPECT_EQ(h.count(), 1000u);
}

TEST(Histogram, SmallValuesAreExact) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t i = 0; i < 256; ++i) v.push_back(i);
    Histogram h = histogram_of(v);
    std::vector<std::uint64_t> sorted = v;
    for (double p : kPercentiles) EXPECT_EQ(h.percentile(p), percentile(sorted, p)) << p;
}

TEST(Histogram, MergeOfTwoEqualsTheHistogramOfTheUnion) {
    std::mt19937_64 rng(3);
    std::exponential_distribution<double> d(1e-5);
    std::vector<std::uint64_t> a(20000), b(5000);
    for (auto& x : a) x = static_cast<std::uint64_t>(d(rng));
    for (auto& x : b) x = 1000000 + static_cast<std::uint64_t>(d(rng));  // another range
    b.push_back(Histogram::kMaxValue + 5);                                  // and a clamped one
    std::vector<std::uint64_t> both = a;
    both.insert(both.end(), b.begin(), b.end());
    Histogram merged = histogram_of(a);
    merged.merge(histogram_of(b));
    EXPECT_TRUE(merged == histogram_of(both));
    EXPECT_EQ(merged.count(), both.size());
    EXPECT_EQ(merged.clamped(), 1u);
    // Merging an empty histogram changes nothing, either way round.
    Histogram empty;
    Histogram copy = merged;
    copy.merge(empty);
    EXPECT_TRUE(copy == merged);
    empty.merge(merged);
    EXPECT_TRUE(empty == merged);
}

TEST(Histogram, EmptyReportsZeros) {
    Histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.clamped(), 0u);
    for (double p : kPercentiles) EXPECT_EQ(h.percentile(p), 0u) << p;
}

TEST(Histogram, ValuesBeyondTheRangeAreClampedAndCounted) {
    Histogram h;
    h.record(10);
    h.record(Histogram::kMaxValue);
    h.record(Histogram::kMaxValue + 1);
    h.record(~std::uint64_t{0});
    EXPECT_EQ(h.count(), 4u);
    EXPECT_EQ(h.clamped(), 2u);  // kMaxValue itself is in range
    EXPECT_EQ(h.max(), Histogram::kMaxValue);
    EXPECT_EQ(h.percentile(100), Histogram::kMaxValue);
    EXPECT_EQ(h.min(), 10u);
}

}  // namespace
}  // namespace ipclab
