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

// What a --stats run reports, as text or as one JSON object.
struct RunStats {
    LatencySummary latency;
    double seconds = 0;
    std::uint64_t bytes_out = 0, bytes_in = 0;
    std::size_t payload_size = 0;
};

std::string format_stats(const RunStats& r);

// One JSON object on one line. Its field names are part of the interface
// (README, "client --json"): add fields, never rename or drop one.
std::string format_stats_json(const RunStats& r, const std::string& transport, bool verified, bool interrupted,
                              const std::string& waits_json);

}  // namespace ipclab
