// Many sessions at once (--clients N) and the open loop (--rate R): one
// thread per session, each with a channel of its own (every transport's
// client objects - socket, FIFO pair, queues, segment, tick timer - belong
// to the session that made them), merged into one report.
#pragma once

#include <iosfwd>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/options.hpp"
#include "client/session.hpp"

namespace ipclab {

// Sessions that failed: one line each, "client I of N: why" (1-based).
struct ClientFailures : std::runtime_error {
    explicit ClientFailures(std::vector<std::string> each)
        : std::runtime_error(each.empty() ? "no client failed" : each.front()), lines(std::move(each)) {}
    std::vector<std::string> lines;
};

// What a run's sessions add up to: merged histograms, summed counts, and
// each session's own rate (round trips over its own time), in order. The one
// place the client's report and ipc-bench's load benchmarks sum sessions.
struct SessionTotals {
    Histogram latency, wake_late;
    std::uint64_t round_trips = 0, bytes_out = 0, bytes_in = 0;
    std::uint64_t scheduled = 0, behind = 0, unsent = 0, max_behind_ns = 0, pacing_spin_ns = 0;
    std::size_t failed = 0;
    bool interrupted = false;
    std::vector<std::uint64_t> session_round_trips;
    std::vector<double> session_rates;
    void add(const SessionResult& r);
};

// The moments a gated run's sessions share, for a caller that measures
// around them (ipc-bench reads CPU and scheduler counters there). Each is
// called once, on one of the session threads, while the others wait: all_open
// when every session is open and none has sent, all_done when every session
// has had its last reply and none has closed. A session that fails leaves
// the gate, so it holds up no other.
class LoadMarks {
public:
    virtual ~LoadMarks() = default;
    virtual void all_open() noexcept = 0;
    virtual void all_done() noexcept = 0;
};

// Runs options.clients sessions, each on its own thread (the first opens
// alone, then the rest), and returns what each did; a session's failure is
// in its result, not thrown. A stop request (Ctrl-C) is passed on to every
// session's thread. With marks, the sessions start sending together and
// close together, around marks' calls.
std::vector<SessionResult> run_sessions(const Endpoint& ep, const ClientOptions& options,
                                        LoadMarks* marks = nullptr);

// Runs options.clients sessions, each on its own thread, with the payload
// of -m (text) or generated ones (--size). A stop request (Ctrl-C) is passed
// on to every session's thread. Prints the report (--stats, --json, or the
// counts), then throws ClientFailures when any session failed, else
// Interrupted after a stop request.
void run_load(const Endpoint& ep, const ClientOptions& options, std::ostream& out);

// What a run prints about its sessions' results: --stats as text or JSON,
// otherwise the messages and bytes sent.
void report(std::ostream& out, const Endpoint& ep, const ClientOptions& options,
            const std::vector<SessionResult>& results);

// "verified: all N replies equal ..." with --verify when every session got
// through; "" otherwise.
std::string verified_line(const ClientOptions& options, const std::vector<SessionResult>& results);

}  // namespace ipclab
