#include "client/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ipclab {

namespace {

constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << Histogram::kSubBucketBits;  // 128
// Below 2 * kSubBuckets (256) every value has a bucket of its own.
constexpr int kExactBits = Histogram::kSubBucketBits + 1;

// How far a value is shifted to land in [128, 256): 0 for values below 256.
int shift_of(std::uint64_t v) noexcept { return std::max(0, static_cast<int>(std::bit_width(v)) - kExactBits); }

}  // namespace

Histogram::Histogram() : counts_(bucket_count(), 0) {}

// Bucket index = shift * 128 + (v >> shift): for v < 256 that is v itself;
// each further power of two adds 128 buckets, the top bit of (v >> shift)
// already counting the first 128 of them.
std::size_t Histogram::bucket_of(std::uint64_t v) noexcept {
    v = std::min(v, kMaxValue);
    int shift = shift_of(v);
    return static_cast<std::size_t>(static_cast<std::uint64_t>(shift) * kSubBuckets + (v >> shift));
}

std::uint64_t Histogram::bucket_low(std::size_t i) noexcept {
    std::uint64_t shift = i < 2 * kSubBuckets ? 0 : i / kSubBuckets - 1;
    return (i - shift * kSubBuckets) << shift;
}

std::uint64_t Histogram::bucket_width(std::size_t i) noexcept {
    std::uint64_t shift = i < 2 * kSubBuckets ? 0 : i / kSubBuckets - 1;
    return std::uint64_t{1} << shift;
}

std::size_t Histogram::bucket_count() noexcept { return bucket_of(kMaxValue) + 1; }

void Histogram::record(std::uint64_t ns) noexcept {
    if (ns > kMaxValue) {
        ++clamped_;
        ns = kMaxValue;
    }
    ++counts_[bucket_of(ns)];
    ++count_;
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
}

void Histogram::merge(const Histogram& other) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    clamped_ += other.clamped_;
}

std::uint64_t Histogram::percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    // Nearest rank, as client/latency.hpp's percentile(): the epsilon keeps
    // 99.9% of 1000 at rank 999 despite binary fractions.
    double wanted = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(count_) - 1e-9);
    auto rank = static_cast<std::uint64_t>(std::max(1.0, wanted));
    if (rank >= count_) return max_;
    if (rank == 1) return min_;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            // The middle of the bucket is within half its width of any value
            // in it; the exact samples bound every answer.
            std::uint64_t mid = bucket_low(i) + (bucket_width(i) - 1) / 2;
            return std::clamp(mid, min_, max_);
        }
    }
    return max_;  // not reached: the counts add up to count_
}

}  // namespace ipclab
