// Interference accounting: how long the client and the server were ready to
// run but waiting for a CPU (schedstat run_delay), how often they were
// preempted (involuntary context switches), and the host's steal time. These
// say whether a figure measured the transport or the machine's other work.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ipc/fd.hpp"

namespace ipclab::bench {

// ipc-bench's `disturbed` counter: set when the two processes together spent more than this
// share of its wall time runnable but not running, beyond what the same
// benchmark spends on a quiet machine. Why 5%: a round trip is serial (one
// side runs while the other waits), so queueing time adds straight to the
// measured time; 5% extra is half the ±10% within which two runs of a stable
// figure must agree. Waking a sleeping peer always costs some run delay (the
// wake-up's own latency: under 0.6 µs per message here when quiet), so the quiet share is subtracted
// through kWakeAllowanceNs per message before the share is taken.
// scripts/compare judges a repetition's runq_share (no allowance) against
// its benchmark's median repetition instead (benchjson.py:
// DISTURBED_EXCESS), since how much a benchmark queues by itself depends on
// where its processes are placed.
inline constexpr double kDisturbedShare = 0.05;
inline constexpr double kWakeAllowanceNs = 1000;
// A fork per session puts the new child and the listener on the runqueue
// together, by design: that queueing is the cost being measured, not
// interference. Per session it is allowed this much.
inline constexpr double kForkAllowanceNs = 150000;  // quiet: 78-138 µs per session
// A large message keeps both sides busy at once (one copies in while the
// other copies out); with the servers on one CPU the two then queue for it,
// by design. Allowed per KiB of message (quiet: tcp 1 MiB 173 µs per message).
inline constexpr double kPerKiBAllowanceNs = 200;

// The allowance for a message of `bytes`.
inline double message_allowance_ns(std::size_t bytes) {
    return kWakeAllowanceNs + kPerKiBAllowanceNs * static_cast<double>(bytes) / 1024.0;
}

// CPU time and run delay of one task, read with pread from a descriptor kept
// open on /proc/PID/schedstat (one system call per reading, so it can be
// read between short slices without disturbing them).
class SchedStat {
public:
    SchedStat() = default;
    explicit SchedStat(pid_t pid);  // pid 0: the calling thread
    struct Reading {
        std::uint64_t cpu_ns = 0;
        std::uint64_t runq_ns = 0;
    };
    // Zeros when the task is gone (or was never there).
    Reading read() const;

private:
    Fd fd_;
};

// Every process of a server: the listener and its session children as they
// are when this is built (a forking peer's later children are not seen).
class TreeSchedStat {
public:
    TreeSchedStat() = default;
    explicit TreeSchedStat(pid_t root);
    SchedStat::Reading read() const;

private:
    std::vector<SchedStat> tasks_;
};

// Involuntary context switches of a process ("nonvoluntary_ctxt_switches" in
// /proc/PID/status; pid 0: the calling thread). 0 when unreadable.
std::uint64_t involuntary_switches(pid_t pid);
std::uint64_t tree_involuntary_switches(pid_t root);
// Voluntary ones (the task blocked: each is a sleep and a later wake-up),
// of a task and of a process tree (its main threads) the same way.
std::uint64_t voluntary_switches(pid_t pid);
std::uint64_t tree_voluntary_switches(pid_t root);

// Host steal time so far (the hypervisor ran someone else on our vCPUs), ns.
std::uint64_t steal_ns();

// Start and stop marks of everything above for one measured run.
class Interference {
public:
    explicit Interference(pid_t server) : server_pid_(server) {}
    void start();
    void stop();
    std::uint64_t client_runq_ns() const { return client_.runq_ns; }
    std::uint64_t server_runq_ns() const { return server_.runq_ns; }
    std::uint64_t client_nivcsw() const { return client_nivcsw_; }
    std::uint64_t server_nivcsw() const { return server_nivcsw_; }
    std::uint64_t steal() const { return steal_; }
    std::uint64_t wall_ns() const { return wall_; }

private:
    pid_t server_pid_;
    SchedStat self_{0};
    TreeSchedStat tree_;
    SchedStat::Reading client_, server_{};
    std::uint64_t client_nivcsw_ = 0, server_nivcsw_ = 0, steal_ = 0, wall_ = 0;
};

// Run delay of both processes over the wall time it was read across, with
// no allowance (counter runq_share): what scripts/compare judges each
// repetition by, against its benchmark's other repetitions. The allowance
// below exceeds the whole time of a message in a stream or a small spinning
// round trip, so `interference` reads 0 there even beside a busy loop.
inline double runq_share(std::uint64_t runq_ns, std::uint64_t wall_ns) {
    return wall_ns == 0 ? 0 : static_cast<double>(runq_ns) / static_cast<double>(wall_ns);
}

// The share of wall time lost to waiting for a CPU, beyond the per-message
// allowance; compare with kDisturbedShare.
double interference_share(std::uint64_t runq_ns, std::uint64_t wall_ns, std::uint64_t messages,
                          double allowance_ns = kWakeAllowanceNs);

}  // namespace ipclab::bench
