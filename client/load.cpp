#include "client/load.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>

#include "client/latency.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"

namespace ipclab {

namespace {

// How often the coordinating thread looks at the stop flag while sessions run.
constexpr auto kStopCheck = std::chrono::milliseconds(100);

// The completion step of a gated run's barrier: its first phase ends when
// every session is open, its second when every session is done.
struct GateStep {
    LoadMarks* marks = nullptr;
    int* phase = nullptr;
    void operator()() noexcept {
        if ((*phase)++ == 0)
            marks->all_open();
        else
            marks->all_done();
    }
};
using Gate = std::barrier<GateStep>;

// Runs one session on this thread; opened() is called once, when the
// session is open or has failed to open. With a gate, the session waits there
// once open and once done; leaving early (a failure) drops it from the gate.
void run_one(const Endpoint& ep, const ClientOptions& options, const SessionPlan& plan, SessionResult& r,
             const std::function<void()>& opened, Gate* gate) noexcept {
    bool told = false;
    auto tell = [&] {
        if (!told) opened();
        told = true;
    };
    int passed = 0;  // gate phases this session went through
    try {
        // An open loop sleeps until each request's time: without timer slack
        // (50 us by default) the wake-up is not late by that much, and every
        // latency, counted from the scheduled time, is not inflated by it.
        if (options.rate > 0) check(::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL), "prctl(PR_SET_TIMERSLACK)");
        auto channel = open_session(ep, options.limits);
        tell();
        Bytes payload;
        if (!options.size && options.message) {
            auto text = as_bytes(*options.message);
            assign_bytes(payload, text);
        }
        Message reply;
        if (gate) {
            gate->arrive_and_wait();
            ++passed;
        }
        drive_session(*channel, options, plan, payload, reply, r);
        if (gate) {
            gate->arrive_and_wait();  // before the channel closes
            ++passed;
        }
    } catch (const Interrupted&) {
        r.interrupted = true;
    } catch (const OversizeError& e) {
        r.error = std::string(e.what()) + "; --max-message raises it";
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    if (gate && passed < 2) gate->arrive_and_drop();
    tell();
}

std::string waits_line(const char* who, const WaitCounts& w) {
    return std::string(who) + " waits: " + std::to_string(w.immediate) + " immediate, " + std::to_string(w.spun) +
           " spun, " + std::to_string(w.slept) + " slept\n";
}

std::string waits_json(const char* who, const WaitCounts& w) {
    return std::string("\"") + who + "\": {\"immediate\": " + std::to_string(w.immediate) +
           ", \"spun\": " + std::to_string(w.spun) + ", \"slept\": " + std::to_string(w.slept) + "}";
}

void add(WaitCounts& to, const WaitCounts& w) {
    to.immediate += w.immediate;
    to.spun += w.spun;
    to.slept += w.slept;
}

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::max(0.0, std::chrono::duration<double>(b - a).count());
}

}  // namespace

void SessionTotals::add(const SessionResult& r) {
    latency.merge(r.latency);
    wake_late.merge(r.wake_late);
    round_trips += r.round_trips;
    bytes_out += r.bytes_out;
    bytes_in += r.bytes_in;
    scheduled += r.scheduled;
    behind += r.behind;
    unsent += r.unsent;
    max_behind_ns = std::max(max_behind_ns, r.max_behind_ns);
    pacing_spin_ns += r.pacing_spin_ns;
    if (!r.error.empty()) ++failed;
    interrupted = interrupted || r.interrupted;
    double own = r.started ? seconds_between(r.start, r.end) : 0;
    session_round_trips.push_back(r.round_trips);
    session_rates.push_back(own > 0 ? static_cast<double>(r.round_trips) / own : 0);
}

std::string verified_line(const ClientOptions& options, const std::vector<SessionResult>& results) {
    if (!options.verify) return "";
    std::uint64_t replies = 0, bytes = 0;
    for (const auto& r : results) {
        if (!r.error.empty()) return "";
        replies += r.round_trips;
        bytes += r.bytes_in;
    }
    return "verified: all " + std::to_string(replies) + " replies equal their payloads byte for byte (" +
           std::to_string(bytes) + " bytes)\n";
}

void report(std::ostream& out, const Endpoint& ep, const ClientOptions& options,
            const std::vector<SessionResult>& results) {
    RunStats run;
    SessionTotals sum;
    WaitCounts local, peer;
    bool shm_waits = false;
    std::chrono::steady_clock::time_point first{}, last{};
    bool any = false;
    run.clients = results.size();
    for (const auto& r : results) {
        sum.add(r);
        if (r.shm_waits) {
            shm_waits = true;
            add(local, r.local_waits);
            add(peer, r.peer_waits);
        }
        if (r.started) {
            first = any ? std::min(first, r.start) : r.start;
            last = any ? std::max(last, r.end) : r.end;
            any = true;
        }
    }
    const bool interrupted = sum.interrupted;
    run.round_trips = sum.round_trips;
    run.bytes_out = sum.bytes_out;
    run.bytes_in = sum.bytes_in;
    run.scheduled = sum.scheduled;
    run.behind = sum.behind;
    run.unsent = sum.unsent;
    run.max_behind_us = static_cast<double>(sum.max_behind_ns) / 1000.0;
    run.failed = sum.failed;
    run.client_round_trips = sum.session_round_trips;
    run.client_rates = sum.session_rates;
    run.seconds = any ? seconds_between(first, last) : 0;
    run.latency = summarize(sum.latency);
    run.wake_late = summarize(sum.wake_late);
    run.fairness = jain_index(run.client_rates);
    run.open_loop = options.rate > 0;
    run.warmup = options.warmup;
    run.offered_rate = options.rate;
    run.payload_size = options.size ? *options.size : options.message ? options.message->size() : 0;
    if (!options.size && results.size() == 1 && results[0].round_trips > 0)
        run.payload_size = static_cast<std::size_t>(results[0].bytes_out / results[0].round_trips);

    std::string verified = verified_line(options, results);
    if (!options.stats) {
        out << run.round_trips << " messages sent (" << run.bytes_out << " bytes), " << run.round_trips
            << " replies received (" << run.bytes_in << " bytes)\n"
            << verified;
        return;
    }
    if (options.json) {
        std::string js = shm_waits ? "{" + waits_json("client", local) + ", " + waits_json("server", peer) + "}" : "";
        out << format_stats_json(run, ep.transport, !verified.empty(), interrupted, js);
    } else {
        out << format_stats(run);
        if (shm_waits) out << waits_line("client", local) << waits_line("server", peer);
        out << verified;
    }
}

std::vector<SessionResult> run_sessions(const Endpoint& ep, const ClientOptions& options, LoadMarks* marks) {
    const std::size_t n = options.clients;
    int phase = 0;
    std::optional<Gate> gate;
    if (marks) gate.emplace(static_cast<std::ptrdiff_t>(n), GateStep{marks, &phase});
    // Declared before the threads, so they outlive them whatever happens.
    std::vector<SessionResult> results(n);
    std::mutex mu;
    std::condition_variable changed;
    std::vector<char> finished(n, 0);
    std::size_t running = 0;
    bool first_open = false;
    {
        std::vector<std::jthread> threads(n);  // joined on every way out of this block
        auto start = [&](std::size_t c) {
            {
                std::lock_guard lock(mu);
                ++running;
            }
            try {
                threads[c] = std::jthread([&, c] {
                    run_one(ep, options, SessionPlan{c, n}, results[c], [&, c] {
                        std::lock_guard lock(mu);
                        if (c == 0) first_open = true;
                        changed.notify_one();
                    }, gate ? &*gate : nullptr);
                    std::lock_guard lock(mu);
                    finished[c] = 1;
                    --running;
                    changed.notify_one();
                });
            } catch (const std::system_error& e) {
                if (gate) gate->arrive_and_drop();  // a session that never runs holds up no other
                std::lock_guard lock(mu);
                results[c].error = std::string("cannot start its thread: ") + e.what();
                finished[c] = 1;
                --running;
            }
        };
        // Waits until done() holds. Bounded: every session ends within its
        // --count or --duration (open loop: --duration + max(--duration, 1 s)),
        // plus one --timeout per wait.
        auto wait_until = [&](auto done) {
            std::unique_lock lock(mu);
            while (!done()) {
                changed.wait_for(lock, kStopCheck);
                if (!stop_requested()) continue;
                // Ctrl-C reached one thread (or this one): every session's
                // blocked call must return EINTR to see it. Sent again each
                // round, as a session may have been between its check and its
                // next call.
                for (std::size_t c = 0; c < n; ++c) {
                    if (finished[c] || !threads[c].joinable()) continue;
                    int rc = ::pthread_kill(threads[c].native_handle(), SIGINT);
                    if (rc != 0 && rc != ESRCH) throw_errno("pthread_kill", rc);
                }
            }
        };
        // The first session opens alone, so a transport's one-time set-up in
        // its connect (posix-mq raising RLIMIT_MSGQUEUE, once per process)
        // is done before the others start, and a transport that cannot be
        // reached fails one session, not N at once.
        start(0);
        wait_until([&] { return first_open || finished[0]; });
        for (std::size_t c = 1; c < n; ++c) start(c);
        wait_until([&] { return running == 0; });
    }
    return results;
}

void run_load(const Endpoint& ep, const ClientOptions& options, std::ostream& out) {
    const std::size_t n = options.clients;
    std::vector<SessionResult> results = run_sessions(ep, options);
    bool interrupted = false;
    std::vector<std::string> failures;
    for (std::size_t c = 0; c < n; ++c) {
        interrupted = interrupted || results[c].interrupted;
        if (!results[c].error.empty())
            failures.push_back("client " + std::to_string(c + 1) + " of " + std::to_string(n) + ": " +
                               results[c].error);
    }
    if (options.stats || (!interrupted && failures.empty())) report(out, ep, options, results);
    if (!failures.empty()) throw ClientFailures(std::move(failures));
    if (interrupted) throw Interrupted();
}

}  // namespace ipclab
