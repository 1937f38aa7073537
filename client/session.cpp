#include "client/session.hpp"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <istream>
#include <ostream>
#include <vector>

#include "client/load.hpp"
#include "client/payload.hpp"
#include "client/printable.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/shm_stats.hpp"
#include "ipc/registry.hpp"

namespace ipclab {

namespace {

// After the first reply bytes, this much silence means the reply is complete
// (the seed's server neither frames nor terminates its reply).
constexpr int kReplySettleMs = 200;
// A line reply's first allocation: enough for any ordinary reply.
constexpr std::size_t kFirstReplyRoom = 64 * 1024;

std::string read_message_line(const ClientOptions& options, std::istream& in, std::ostream& out) {
    if (options.message) return *options.message;
    out << "Please enter the message: " << std::flush;
    std::string line;
    if (!std::getline(in, line)) throw std::runtime_error("no message on standard input");
    return line;
}

// A reply prints as itself when it is plain text, else as its size: the
// server is not trusted to send the terminal anything but text. Written
// from the reply's own bytes: no copy of a reply of up to --max-message.
void print_reply(std::ostream& out, std::span<const std::byte> reply) {
    std::string_view s(reinterpret_cast<const char*>(reply.data()), reply.size());
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    if (is_plain_text(s))
        out << s << "\n";
    else
        out << "[" << reply.size() << " bytes]\n";
}

void check_reply(const Message& reply, std::span<const std::byte> sent, std::size_t index) {
    if (reply.type == FrameType::error)
        throw RemoteError("server refused message " + std::to_string(index) + ": " +
                          escaped_text(std::string_view(
                              reinterpret_cast<const char*>(reply.payload.data()),
                              reply.payload.size())));
    auto diff = first_difference(reply.payload, sent);
    if (!diff) return;
    if (first_difference(reply.payload, as_bytes(kAckText)) == std::nullopt)
        throw std::runtime_error(
            "--verify: the server acknowledged instead of echoing; start it with --reply echo");
    throw std::runtime_error("--verify: reply " + std::to_string(index) + " (" +
                             std::to_string(reply.payload.size()) + " bytes) differs from the " +
                             std::to_string(sent.size()) + "-byte payload at byte " +
                             std::to_string(*diff));
}

}  // namespace

std::string line_exchange(const Fd& fd, const std::string& line, const Limits& limits) {
    // One deadline for the whole exchange: bytes trickling in never extend it.
    WaitCap cap(limits.timeout_ms);
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    write_all(fd.get(), as_bytes(line), true, limits.timeout_ms, "message");
    std::string reply;
    // The reply is one line: max_message bytes and its terminator at most.
    const std::size_t limit = limits.max_message + 1;
    char buf[4096];
    for (;;) {
        int left = deadline.remaining_ms();
        int wait = reply.empty() || left == 0 ? left
                   : left < 0                 ? kReplySettleMs
                                              : std::min(left, kReplySettleMs);
        if (!wait_fd(fd.get(), POLLIN, wait, "reply")) {
            if (reply.empty()) throw TimeoutError("no reply within the timeout");
            if (deadline.expired())
                throw TimeoutError("the reply was not complete within the timeout (" +
                                   std::to_string(reply.size()) + " bytes so far)");
            return reply;
        }
        std::size_t n = read_some(fd.get(), buf, std::min(sizeof buf, limit + 1 - reply.size()), "reply");
        if (n == 0) {
            if (reply.empty()) throw PeerGone("the server closed the connection without replying");
            return reply;
        }
        // Past the first 64 KiB, room for the whole limit at once: pages are
        // touched only as bytes arrive, and no reallocation ever holds the
        // reply twice, so a flood costs --max-message plus a constant.
        if (reply.size() + n > reply.capacity())
            reply.reserve(reply.size() + n <= kFirstReplyRoom ? std::min(limit + 1, kFirstReplyRoom)
                                                              : limit + 1);
        reply.append(buf, n);
        if (reply.size() > limit)
            throw OversizeError("the reply exceeds --max-message (" +
                                std::to_string(limits.max_message) + " bytes)");
        if (reply.back() == '\n' || reply == kAckText) return reply;
    }
}

namespace {

// The client's reply deadline, reported as such (the transport's own
// message would name a single wait).
void round_trip(Channel& channel, std::span<const std::byte> payload, Message& reply,
                std::size_t index, const ClientOptions& options) {
    WaitCap cap(options.limits.timeout_ms);
    try {
        channel.send(FrameType::data, payload);
        if (!channel.receive(reply))
            throw PeerGone("the server ended the session after " + std::to_string(index) +
                           (options.duration_s > 0 ? std::string() : " of " + std::to_string(options.count)) +
                           " messages");
    } catch (const TimeoutError&) {
        throw TimeoutError("no complete reply to message " + std::to_string(index) + " within " +
                           std::to_string(options.limits.timeout_ms) + " ms");
    }
}

void line_session(const Endpoint& ep, const ClientOptions& options, std::istream& in, std::ostream& out) {
    // As the seed does: connect first, so a missing server is said before
    // anyone types a message.
    Fd fd = connect_stream(ep, options.limits.timeout_ms);
    std::string line = read_message_line(options, in, out);
    std::string reply = line_exchange(fd, line + "\n", options.limits);
    // An ipclab server refuses a line with "error: TEXT\n" (its text
    // channel's error frame): a failure, reported like a framed one.
    constexpr std::string_view kRefusal = "error: ";
    if (std::string_view(reply).substr(0, kRefusal.size()) == kRefusal) {
        std::string_view text = std::string_view(reply).substr(kRefusal.size());
        if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
        throw RemoteError("server refused the message: " + escaped_text(text));
    }
    print_reply(out, as_bytes(reply));
}

}  // namespace

std::unique_ptr<Channel> open_session(const Endpoint& ep, const Limits& limits) {
    WaitCap cap(limits.timeout_ms);
    try {
        return connect(ep, limits);
    } catch (const TimeoutError& e) {
        throw TimeoutError(std::string(e.what()) + " (connect took longer than " +
                           std::to_string(limits.timeout_ms) + " ms)");
    }
}

std::uint64_t scheduled_requests(double rate, double duration_s) {
    return static_cast<std::uint64_t>(std::max(1.0, std::round(rate * duration_s)));
}

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration from_seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::uint64_t to_ns(Clock::duration d) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

// Sleeps until t. steady_clock is CLOCK_MONOTONIC in libstdc++, so an
// absolute sleep on that clock wakes at t whatever the signals meanwhile;
// a stop request ends it (Interrupted).
void sleep_until(Clock::time_point t) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    // Bounded in time: each pass ends at t or after one signal.
    for (;;) {
        int rc = ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
        if (rc == 0) return;
        if (rc != EINTR) throw_errno("clock_nanosleep", rc);
        on_eintr();
    }
}

}  // namespace

void drive_session(Channel& channel, const ClientOptions& options, const SessionPlan& plan,
                   Bytes& payload, Message& reply, SessionResult& r) {
    // Round trips that warm the path (caches, the peer's pages, both sides'
    // buffers) before any is timed; their replies are checked all the same.
    for (std::size_t w = 0; w < options.warmup; ++w) {
        const std::uint64_t seq = ~static_cast<std::uint64_t>(w);  // never a measured message's number
        try {
            if (options.size) fill_payload(payload, seq, *options.size);
            if (stop_requested()) throw Interrupted();
            round_trip(channel, payload, reply, w, options);
        } catch (const Interrupted&) {
            r.interrupted = true;
            return;
        }
        if (reply.type == FrameType::error || options.verify) check_reply(reply, payload, w);
    }
    const bool open_loop = options.rate > 0;
    const std::uint64_t clients = plan.clients;
    const Clock::time_point opened = Clock::now();
    // Open loop: the run's request g is due g / R seconds into the schedule
    // and belongs to session g mod clients (the sessions take turns). A
    // session's schedule starts when it is open, so sessions opened together
    // interleave evenly, and a session waiting to be served (the server's
    // --max-clients, the queue budget) does not count that wait as lateness.
    const std::uint64_t total = open_loop ? scheduled_requests(options.rate, options.duration_s) : 0;
    const double ns_per_slot = open_loop ? 1e9 / options.rate : 0;
    auto due = [&](std::uint64_t g) {
        // g < R x S <= 1e9, so g / R is at most --duration (86400 s): no overflow.
        return opened + std::chrono::nanoseconds(std::llround(static_cast<double>(g) * ns_per_slot));
    };
    // A session further behind than this gives up the rest of its schedule
    // (counted as never sent): an overloaded server cannot stretch a run
    // past --duration + max(--duration, 1 s) plus one reply's --timeout.
    const Clock::duration give_up = from_seconds(std::max(options.duration_s, 1.0));
    const Clock::time_point until = opened + from_seconds(options.duration_s);
    if (open_loop)
        r.scheduled = total > plan.index ? std::min<std::uint64_t>((total - plan.index + clients - 1) / clients,
                                                                   options.count)
                                         : 0;
    r.started = true;
    // (A session with no slot at all - more clients than requests - starts and ends at once.)
    r.start = open_loop && r.scheduled > 0 ? due(plan.index) : opened;
    r.end = r.start;
    for (std::uint64_t k = 0; k < options.count; ++k) {
        // The run's message number: every session sends payloads of its own.
        const std::uint64_t seq = k * clients + plan.index;
        Clock::time_point t0;
        try {
            // The payload is made before its send time is taken (closed
            // loop) or reached (open loop): generating 64 KiB is not a
            // round trip's latency.
            if (open_loop) {
                if (seq >= total) break;
                if (options.size) fill_payload(payload, seq, *options.size);
                t0 = due(seq);
                auto now = Clock::now();
                if (now < t0) {
                    if (t0 - now > std::chrono::nanoseconds(kSleepPacingNs)) {
                        sleep_until(t0);
                    } else {
                        while (Clock::now() < t0) {
                        }
                        r.pacing_spin_ns += to_ns(Clock::now() - now);
                    }
                    r.wake_late.record(to_ns(Clock::now() - t0));
                } else if (k > 0) {
                    // Due while the previous request still waited for its reply.
                    if (now - t0 > give_up) {
                        r.unsent = r.scheduled - k;
                        break;
                    }
                    ++r.behind;
                    r.max_behind_ns = std::max(r.max_behind_ns, to_ns(now - t0));
                }
            } else {
                if (options.duration_s > 0 && Clock::now() >= until) break;
                if (options.size) fill_payload(payload, seq, *options.size);
                t0 = Clock::now();
            }
            if (stop_requested()) throw Interrupted();
            round_trip(channel, payload, reply, k, options);
        } catch (const Interrupted&) {
            // Ctrl-C on a long run: what was measured so far is still reported.
            r.interrupted = true;
            break;
        }
        auto t1 = Clock::now();
        r.end = t1;
        if (reply.type == FrameType::error || options.verify) check_reply(reply, payload, k);
        r.latency.record(to_ns(t1 - t0));
        r.bytes_out += payload.size();
        r.bytes_in += reply.payload.size();
        ++r.round_trips;
    }
    if (!open_loop) r.end = Clock::now();
    // How each side waited, so a spinning run says whether it really spun.
    if (auto counts = shm_session_counts(channel)) {
        r.shm_waits = true;
        r.local_waits = counts->local;
        r.peer_waits = counts->peer;
    }
}

void run_client(const Endpoint& ep, const ClientOptions& options, std::istream& in,
                std::ostream& out) {
    if (uses_line_mode(ep, options)) return line_session(ep, options, in, out);
    if (options.clients > 1 || options.rate > 0) return run_load(ep, options, out);

    auto channel = open_session(ep, options.limits);
    Bytes payload;
    if (!options.size) {
        std::string text = read_message_line(options, in, out);
        assign_bytes(payload, as_bytes(text));
    }
    std::vector<SessionResult> results(1);
    Message reply;
    drive_session(*channel, options, SessionPlan{}, payload, reply, results[0]);
    if (results[0].interrupted && !options.stats) throw Interrupted();
    channel.reset();  // end the session (and remove our objects) before reporting
    if (!options.stats && results[0].round_trips == 1 && options.duration_s <= 0) {
        print_reply(out, reply.payload);
        out << verified_line(options, results);
    } else {
        report(out, ep, options, results);
    }
    if (results[0].interrupted) throw Interrupted();
}

bool uses_line_mode(const Endpoint& ep, const ClientOptions& o) {
    if (!transport_info(ep.transport).connect_stream) return false;
    if (o.mode != ClientMode::automatic) return o.mode == ClientMode::line;
    return o.count == 1 && !o.size && !o.verify && !o.stats && o.warmup == 0 && o.duration_s <= 0 && o.clients == 1 &&
           o.rate <= 0;
}

}  // namespace ipclab
