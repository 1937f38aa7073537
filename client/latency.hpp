// Round-trip samples and their summary (min, percentiles, max, throughput).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipclab {

struct LatencySummary {
    std::uint64_t count = 0;
    double min_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

// Nearest-rank percentile of sorted samples (p in [0, 100]).
std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p);

// Sorts the nanosecond samples in place and summarises them.
LatencySummary summarize(std::vector<std::uint64_t>& samples_ns);

std::string format_stats(const LatencySummary& s, double seconds, std::uint64_t bytes_out,
                         std::uint64_t bytes_in, std::size_t payload_size);

}  // namespace ipclab
