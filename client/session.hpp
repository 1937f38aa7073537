// The client side of a session: the seed's one-line exchange, and the
// framed loop that sends --count messages and times each round trip.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "client/histogram.hpp"
#include "client/options.hpp"
#include "ipc/fd.hpp"
#include "ipc/shm_futex.hpp"

namespace ipclab {

// Sends one text line (terminator included) over a connected stream socket and
// returns the reply: everything until the server closes, a newline, the
// whole ack text, or a short quiet spell after the first bytes. The whole
// exchange ends within limits.timeout_ms (TimeoutError) and the reply holds
// at most limits.max_message bytes plus its newline (OversizeError).
std::string line_exchange(const Fd& fd, const std::string& line, const Limits& limits);

// Runs the session the options describe; prints replies or statistics to out.
// Throws on failure (the caller prints one line and exits 1). Interrupted
// (Ctrl-C) with --stats: the statistics of the round trips done are
// printed first, then Interrupted is thrown.
void run_client(const Endpoint& ep, const ClientOptions& options, std::istream& in,
                std::ostream& out);

// One session of a run: client `index` of `clients` (0-based).
struct SessionPlan {
    std::size_t index = 0;
    std::size_t clients = 1;
};

// What one session did. Times are steady_clock's.
struct SessionResult {
    Histogram latency;  // ns: closed loop from send, open loop from the scheduled time
    std::uint64_t round_trips = 0, bytes_out = 0, bytes_in = 0;
    bool started = false;  // connected; start and end are set
    std::chrono::steady_clock::time_point start, end;  // first send (open loop: first slot) and last reply
    // Open loop (--rate): this session's slots, those sent late because the
    // previous reply came after their time, the worst such lateness, and
    // those never sent (still unsent --duration after the schedule's end).
    std::uint64_t scheduled = 0, behind = 0, max_behind_ns = 0, unsent = 0;
    // Open loop: how late the client itself woke for the requests it waited
    // for (its own timer: part of every latency it records), and the time it
    // spent spinning to a slot too near to sleep for (see kSleepPacingNs).
    Histogram wake_late;
    std::uint64_t pacing_spin_ns = 0;
    bool shm_waits = false;              // shm: how each side waited
    WaitCounts local_waits, peer_waits;
    bool interrupted = false;            // Ctrl-C ended it
    std::string error;                   // why it failed ("" when it did not)
};

// Connects within limits.timeout_ms, saying so when that is what failed.
std::unique_ptr<Channel> open_session(const Endpoint& ep, const Limits& limits);

// Runs the plan's share of the exchange over an open channel: --count
// messages or --duration seconds back to back (closed loop), or with --rate
// the slots of the schedule that are this session's. payload holds the
// text to send, or is overwritten with generated payloads (--size); reply
// keeps the last reply. Records into result; a stop request ends it with
// result.interrupted; a failure throws (result keeps what was done).
void drive_session(Channel& channel, const ClientOptions& options, const SessionPlan& plan,
                   Bytes& payload, Message& reply, SessionResult& result);

// An open-loop client sleeps until a request's time when that is further
// off than this, and spins to it when nearer: a sleep wakes 6-18 us late on
// the project's VM (clock_nanosleep, timer slack 1 ns), so at rates above
// ~50k/s sleeping could not keep any schedule.
inline constexpr std::int64_t kSleepPacingNs = 20000;

// Requests a --rate schedule holds in all: R x S rounded, at least one.
std::uint64_t scheduled_requests(double rate, double duration_s);

}  // namespace ipclab
