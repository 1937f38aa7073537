// A log-linear latency histogram (HdrHistogram's layout): bounded memory,
// mergeable, with a stated precision, so percentiles over millions of round
// trips (and over many clients) need neither every sample nor a sort.
//
// Values are nanoseconds, 0 to kMaxValue (2^42 - 1 ns, 73 minutes); a larger
// value is recorded as kMaxValue and counted in clamped(). Values below 256
// have a bucket each (exact); above, each power of two [2^e, 2^(e+1)) is cut
// into 128 equal buckets, so a bucket is at most 1/128 of its lower bound
// wide. A percentile is the nearest-rank sample's bucket, reported at the
// bucket's middle: within 1/256 (0.39%) of the exact nearest-rank sample -
// better than HdrHistogram's 2 significant digits. min(), max() and count()
// are exact, and so are the 0th and 100th percentiles (min and max).
// 4608 buckets of 8 bytes: 36 KiB whatever the number of samples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ipclab {

class Histogram {
public:
    static constexpr int kSubBucketBits = 7;  // 128 buckets per power of two: width <= 1/128 of the value
    static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << 42) - 1;
    // The bound percentile() keeps to: |reported - exact| <= exact / kPrecisionDivisor.
    static constexpr std::uint64_t kPrecisionDivisor = 256;

    Histogram();

    void record(std::uint64_t ns) noexcept;
    // Adds other's samples: the result equals the histogram of both sample sets.
    void merge(const Histogram& other) noexcept;

    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t min() const noexcept { return count_ ? min_ : 0; }  // 0 when empty
    std::uint64_t max() const noexcept { return max_; }
    std::uint64_t clamped() const noexcept { return clamped_; }  // values above kMaxValue
    // Nearest-rank percentile, p in [0, 100] (0 when empty), within the bound above.
    std::uint64_t percentile(double p) const noexcept;

    bool operator==(const Histogram&) const = default;

    // The layout, for tests: a value's bucket and the values a bucket holds.
    static std::size_t bucket_of(std::uint64_t v) noexcept;
    static std::uint64_t bucket_low(std::size_t i) noexcept;
    static std::uint64_t bucket_width(std::size_t i) noexcept;
    static std::size_t bucket_count() noexcept;

private:
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::uint64_t min_ = kMaxValue;
    std::uint64_t max_ = 0;
    std::uint64_t clamped_ = 0;
};

}  // namespace ipclab
