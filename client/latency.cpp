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

namespace {

double per_second(double amount, double seconds) { return seconds > 0 ? amount / seconds : 0; }

}  // namespace

std::string format_stats(const RunStats& r) {
    char buf[512];
    const LatencySummary& s = r.latency;
    std::snprintf(buf, sizeof buf,
                  "round trips: %llu of %zu bytes in %.3f s\n"
                  "latency (us): min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n"
                  "throughput: %.0f msg/s, %.2f MB/s sent, %.2f MB/s received\n",
                  static_cast<unsigned long long>(s.count), r.payload_size, r.seconds, s.min_us, s.p50_us,
                  s.p90_us, s.p99_us, s.max_us, per_second(static_cast<double>(s.count), r.seconds),
                  per_second(static_cast<double>(r.bytes_out), r.seconds) / 1e6,
                  per_second(static_cast<double>(r.bytes_in), r.seconds) / 1e6);
    return buf;
}

std::string format_stats_json(const RunStats& r, const std::string& transport, bool verified, bool interrupted,
                              const std::string& waits_json) {
    char buf[1024];
    const LatencySummary& s = r.latency;
    // transport comes from the registry's names: no characters to escape.
    std::snprintf(buf, sizeof buf,
                  "{\"transport\": \"%s\", \"round_trips\": %llu, \"payload_bytes\": %zu, \"seconds\": %.6f, "
                  "\"latency_us\": {\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
                  "\"p999\": %.3f, \"max\": %.3f}, \"round_trips_per_s\": %.1f, \"bytes_sent\": %llu, "
                  "\"bytes_received\": %llu, \"mb_per_s_sent\": %.3f, \"mb_per_s_received\": %.3f, "
                  "\"verified\": %s, \"interrupted\": %s, \"waits\": %s}\n",
                  transport.c_str(), static_cast<unsigned long long>(s.count), r.payload_size, r.seconds, s.min_us,
                  s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us,
                  per_second(static_cast<double>(s.count), r.seconds), static_cast<unsigned long long>(r.bytes_out),
                  static_cast<unsigned long long>(r.bytes_in),
                  per_second(static_cast<double>(r.bytes_out), r.seconds) / 1e6,
                  per_second(static_cast<double>(r.bytes_in), r.seconds) / 1e6, verified ? "true" : "false",
                  interrupted ? "true" : "false", waits_json.empty() ? "null" : waits_json.c_str());
    return buf;
}

}  // namespace ipclab
