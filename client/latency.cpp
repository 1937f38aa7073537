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

LatencySummary summarize(const Histogram& h) {
    LatencySummary s;
    if (h.count() == 0) return s;
    auto us = [](std::uint64_t v) { return static_cast<double>(v) / 1000.0; };
    s.count = h.count();
    s.min_us = us(h.min());
    s.p50_us = us(h.percentile(50));
    s.p90_us = us(h.percentile(90));
    s.p99_us = us(h.percentile(99));
    s.p999_us = us(h.percentile(99.9));
    s.max_us = us(h.max());
    return s;
}

double jain_index(const std::vector<double>& x) {
    double sum = 0, squares = 0;
    for (double v : x) {
        sum += v;
        squares += v * v;
    }
    if (x.empty() || squares <= 0) return 1;
    return sum * sum / (static_cast<double>(x.size()) * squares);
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
                  static_cast<unsigned long long>(r.round_trips), r.payload_size, r.seconds, s.min_us, s.p50_us,
                  s.p90_us, s.p99_us, s.max_us, per_second(static_cast<double>(r.round_trips), r.seconds),
                  per_second(static_cast<double>(r.bytes_out), r.seconds) / 1e6,
                  per_second(static_cast<double>(r.bytes_in), r.seconds) / 1e6);
    std::string text = buf;
    if (r.warmup > 0) {  // on the first line: "... in X s (after N warm-up round trips)"
        text.insert(text.find('\n'), " (after " + std::to_string(r.warmup) + " warm-up round trip" +
                                         (r.warmup == 1 ? "" : "s") + (r.clients > 1 ? " per client)" : ")"));
    }
    if (r.clients > 1) {
        // Every client's rate while there are few; the extremes and the mean beyond.
        text += "per client (msg/s):";
        if (r.client_rates.size() <= 16) {
            for (double v : r.client_rates) {
                std::snprintf(buf, sizeof buf, " %.0f", v);
                text += buf;
            }
        } else if (!r.client_rates.empty()) {
            double lo = r.client_rates[0], hi = lo, sum = 0;
            for (double v : r.client_rates) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
                sum += v;
            }
            std::snprintf(buf, sizeof buf, " min %.0f  mean %.0f  max %.0f (each in --json)", lo,
                          sum / static_cast<double>(r.client_rates.size()), hi);
            text += buf;
        }
        std::snprintf(buf, sizeof buf, "; fairness (Jain) %.4f over %zu clients\n", r.fairness, r.clients);
        text += buf;
    }
    if (r.failed > 0) {
        std::snprintf(buf, sizeof buf, "failed: %zu of %zu clients (each named on stderr)\n", r.failed, r.clients);
        text += buf;
    }
    if (r.open_loop) {
        std::snprintf(buf, sizeof buf,
                      "rate: %.1f req/s offered, %.1f achieved; %llu of %llu scheduled sent, %llu behind schedule "
                      "(at most %.1f ms late)",
                      r.offered_rate, per_second(static_cast<double>(r.round_trips), r.seconds),
                      static_cast<unsigned long long>(r.round_trips), static_cast<unsigned long long>(r.scheduled),
                      static_cast<unsigned long long>(r.behind), r.max_behind_us / 1000.0);
        text += buf;
        if (r.unsent > 0) {
            std::snprintf(buf, sizeof buf, ", %llu never sent (a client fell too far behind)",
                          static_cast<unsigned long long>(r.unsent));
            text += buf;
        }
        text += "\n";
        if (r.wake_late.count > 0) {
            std::snprintf(buf, sizeof buf,
                          "client's own wake-up for its slots (in every latency above): p50 %.1f  p99 %.1f us late\n",
                          r.wake_late.p50_us, r.wake_late.p99_us);
            text += buf;
        }
    }
    return text;
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
                  "\"verified\": %s, \"interrupted\": %s, \"waits\": %s, ",
                  transport.c_str(), static_cast<unsigned long long>(r.round_trips), r.payload_size, r.seconds,
                  s.min_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us,
                  per_second(static_cast<double>(r.round_trips), r.seconds),
                  static_cast<unsigned long long>(r.bytes_out), static_cast<unsigned long long>(r.bytes_in),
                  per_second(static_cast<double>(r.bytes_out), r.seconds) / 1e6,
                  per_second(static_cast<double>(r.bytes_in), r.seconds) / 1e6, verified ? "true" : "false",
                  interrupted ? "true" : "false", waits_json.empty() ? "null" : waits_json.c_str());
    std::string json = buf;
    std::snprintf(buf, sizeof buf,
                  "\"warmup_round_trips\": %zu, \"clients\": %zu, \"failed\": %zu, \"fairness\": %.6f, "
                  "\"per_client\": [",
                  r.warmup, r.clients, r.failed, r.fairness);
    json += buf;
    for (std::size_t i = 0; i < r.client_rates.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%s{\"round_trips\": %llu, \"round_trips_per_s\": %.1f}", i ? ", " : "",
                      static_cast<unsigned long long>(i < r.client_round_trips.size() ? r.client_round_trips[i] : 0),
                      r.client_rates[i]);
        json += buf;
    }
    json += "], \"rate\": ";
    if (r.open_loop) {
        std::snprintf(buf, sizeof buf,
                      "{\"offered_per_s\": %.3f, \"achieved_per_s\": %.3f, \"scheduled\": %llu, "
                      "\"behind\": %llu, \"max_behind_us\": %.3f, \"unsent\": %llu, "
                      "\"wake_late_us\": {\"p50\": %.3f, \"p99\": %.3f}}}\n",
                      r.offered_rate, per_second(static_cast<double>(r.round_trips), r.seconds),
                      static_cast<unsigned long long>(r.scheduled), static_cast<unsigned long long>(r.behind),
                      r.max_behind_us, static_cast<unsigned long long>(r.unsent), r.wake_late.p50_us,
                      r.wake_late.p99_us);
        json += buf;
    } else {
        json += "null}\n";
    }
    return json;
}

}  // namespace ipclab
