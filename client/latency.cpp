#include "client/latency.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ipclab {

std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p) {
    if (sorted.empty()) return 0;
    // The epsilon keeps 99.9% of 1000 at rank 999 despite binary fractions.
    auto rank = static_cast<std::size_t>(
        std::ceil(p / 100.0 * static_cast<double>(sorted.size()) - 1e-9));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

LatencySummary summarize(std::vector<std::uint64_t>& ns) {
    LatencySummary s;
    if (ns.empty()) return s;
    std::sort(ns.begin(), ns.end());
    auto us = [](std::uint64_t v) { return static_cast<double>(v) / 1000.0; };
    s.count = ns.size();
    s.min_us = us(ns.front());
    s.p50_us = us(percentile(ns, 50));
    s.p90_us = us(percentile(ns, 90));
    s.p99_us = us(percentile(ns, 99));
    s.p999_us = us(percentile(ns, 99.9));
    s.max_us = us(ns.back());
    return s;
}

std::string format_stats(const LatencySummary& s, double seconds, std::uint64_t bytes_out,
                         std::uint64_t bytes_in, std::size_t payload_size) {
    char buf[512];
    double rate = seconds > 0 ? static_cast<double>(s.count) / seconds : 0;
    double mb_out = seconds > 0 ? static_cast<double>(bytes_out) / seconds / 1e6 : 0;
    double mb_in = seconds > 0 ? static_cast<double>(bytes_in) / seconds / 1e6 : 0;
    std::snprintf(buf, sizeof buf,
                  "round trips: %llu of %zu bytes in %.3f s\n"
                  "latency (us): min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n"
                  "throughput: %.0f msg/s, %.2f MB/s sent, %.2f MB/s received\n",
                  static_cast<unsigned long long>(s.count), payload_size, seconds, s.min_us,
                  s.p50_us, s.p90_us, s.p99_us, s.max_us, rate, mb_out, mb_in);
    return buf;
}

}  // namespace ipclab
