// Round-trip latency summaries (min, percentiles, max) and what --stats and
// --json print about a run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/histogram.hpp"

namespace ipclab {

struct LatencySummary {
    std::uint64_t count = 0;
    double min_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

// Nearest-rank percentile of sorted samples (p in [0, 100]): exact, for the
// small bounded sets it is used on (a paired slice's median, a warm-up's;
// the histograms' tests check against it). Whole runs use Histogram.
std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p);

// A histogram of nanosecond samples, summarised in microseconds (within
// the histogram's stated precision; min and max exact).
LatencySummary summarize(const Histogram& ns);

// What a --stats run reports, as text or as one JSON object.
struct RunStats {
    LatencySummary latency;
    double seconds = 0;  // first session's start to last session's last reply
    std::uint64_t round_trips = 0, bytes_out = 0, bytes_in = 0;
    std::size_t payload_size = 0;
    std::size_t warmup = 0;  // round trips per session before the measured ones
    // --clients: each session's round trips and msg/s (over its own time),
    // and Jain's fairness index of those rates.
    std::size_t clients = 1;
    std::vector<std::uint64_t> client_round_trips;
    std::vector<double> client_rates;
    double fairness = 1;
    std::size_t failed = 0;  // sessions that failed
    // --rate: the offered rate and how the schedule went (see SessionResult).
    bool open_loop = false;
    double offered_rate = 0;
    std::uint64_t scheduled = 0, behind = 0, unsent = 0;
    double max_behind_us = 0;
    LatencySummary wake_late;  // how late the client woke for its slots (SessionResult::wake_late)
};

// Lines of text: round trips, latency, throughput (the original three), then
// with several clients their throughput and fairness, with --rate the schedule.
std::string format_stats(const RunStats& r);

// One JSON object on one line. Its field names are part of the interface
// (README, "client --json"): add fields, never rename or drop one.
std::string format_stats_json(const RunStats& r, const std::string& transport, bool verified, bool interrupted,
                              const std::string& waits_json);

// Jain's fairness index of per-client throughputs, (sum x)^2 / (n sum x^2):
// 1 when all are equal, 1/n when one client got everything; 1 for no
// clients or when none got anything.
double jain_index(const std::vector<double>& x);

}  // namespace ipclab
