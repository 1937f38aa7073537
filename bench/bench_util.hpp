// What every ipc-bench benchmark shares: the run's configuration, child
// processes (forked, pinned, stopped and reaped), CPU accounting of both
// sides, per-message samples turned into counters, and the stop request a
// SIGINT/SIGTERM makes.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/histogram.hpp"
#include "ipc/error.hpp"
#include "ipc/page_buffer.hpp"

namespace ipclab::bench {

class Interference;

// The bench's own flags, parsed before Google Benchmark sees argv.
struct Config {
    std::vector<std::string> transports;  // tcp ... shm, shm-spin
    std::vector<std::size_t> sizes;       // message sizes in bytes
    int client_cpu = -1;                  // --pin: -1 = not pinned
    int server_cpu = -1;
    double load_seconds = 0.3;            // --load-seconds: each Concurrent/OpenLoop run
    std::string remote;                   // --remote HOST:PORT ("": none; bench/remote_bench.hpp)
};

inline constexpr std::size_t kMaxBenchMessage = 16u << 20;

// The buffer a benchmark sends its `size`-byte messages from (round trips
// and streams, ipclab's and the raw baselines'): its storage starts a
// quarter page plus 5 bytes into a page at every size, as ipclab's message
// buffers of 64 KiB and more do (ipc/page_buffer.hpp). From the heap a
// smaller one sat wherever earlier allocations left it, and a few bytes
// before the raw shm baselines' buffer (page offset 256) glibc's `rep movsb`
// (2112 bytes and up here) copies 17x slower: a raw floor that flattered
// ipclab in whichever process drew that place.
Bytes request_buffer(std::size_t size);

// Where the servers of a transport run: Config::server_cpu, except that a
// spinning transport never shares its client's CPU (a spinner waiting for a
// peer that cannot run until it stops is no measurement): with client and
// server pinned to one CPU, shm-spin's servers go to the next CPU.
int server_cpu_for(const Config& c, const std::string& transport);

// "64", "4k", "1M" (KiB and MiB). Throws std::invalid_argument.
std::size_t parse_size(const std::string& text);

// Pins the calling process to cpu (no-op for cpu < 0). Throws SystemError.
void pin_to_cpu(int cpu);

// SIGINT/SIGTERM: set the stop flag (ipclab's request_stop, so blocked
// ipclab calls throw Interrupted) and nothing else. No SA_RESTART, so raw
// blocking calls return EINTR and the benchmarks unwind.
void install_stop_handlers();
bool interrupted() noexcept;

// The handler's flag, read by stop_if_signalled.
extern volatile sig_atomic_t g_stop_signal;

// Once per timed-loop iteration (or per 64 MiB of copies): a stop that lands
// while no call is blocked interrupts nothing - a stream's writes seldom
// block, a client computes between its calls - and the loop then ran to its
// repetition's end (seen: compare stopping 5-15 s after SIGTERM at
// --min-time 5, and timeout's SIGKILL taking it down). Inline: one load of
// a flag next to a system call. Throws Interrupted.
inline void stop_if_signalled() {
    if (g_stop_signal != 0) throw Interrupted();
}

// Google Benchmark 1.7 aborts the whole program when the repetitions of one
// benchmark report different iteration counts (ComputeStats' check), and a
// repetition that fails before its timed loop reports 0 iterations. So every
// benchmark starts with begin_run(), enters its loop through timed(), and
// fails through fail(), which still enters the loop once when it has not.
bool begin_run(benchmark::State& state);  // false (and failed) when interrupted
benchmark::State& timed(benchmark::State& state);
void fail(benchmark::State& state, const std::string& message);

// Forks a child that pins itself, resets the stop signals and runs body;
// the child never returns into the harness (_exit). Returns the pid.
pid_t fork_child(int cpu, const std::function<int()>& body);

// Waits up to timeout_ms for pid to exit, then SIGKILLs and reaps it.
// Returns the wait status, or -1 when it had to be killed.
int wait_or_kill(pid_t pid, int timeout_ms);

// A forked child that is stopped (SIGTERM, bounded wait, SIGKILL) and reaped
// when its owner goes.
class Child {
public:
    Child() = default;
    explicit Child(pid_t pid) : pid_(pid) {}
    Child(Child&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
    Child& operator=(Child&& o) noexcept;
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() { stop(); }
    pid_t pid() const { return pid_; }
    // Returns the wait status (-1: killed after the timeout, or no child).
    int stop(int signo = SIGTERM, int timeout_ms = 5000);

private:
    pid_t pid_ = -1;
};

// Reaps every exited child (orphans that came to us as subreaper included).
void reap_exited_children() noexcept;

// CPU time of this process (getrusage RUSAGE_SELF), nanoseconds.
std::uint64_t self_cpu_ns();
// CPU time of a process tree as seen from /proc: pid itself, its reaped
// children (cutime+cstime) and its live children. Per-process figures come
// from /proc/PID/schedstat (ns) when present, else utime+stime (ticks).
std::uint64_t tree_cpu_ns(pid_t pid);
// Minor page faults the same way: pid's own, its reaped children's
// (cminflt) and its live children's. A forked child's copy-on-write breaks
// and first touches are most of what a fork per session costs.
std::uint64_t tree_minor_faults(pid_t pid);
// This process's minor page faults (getrusage RUSAGE_SELF).
std::uint64_t self_minor_faults();
std::vector<pid_t> children_of(pid_t pid);

using Clock = std::chrono::steady_clock;
inline std::uint64_t elapsed_ns(Clock::time_point a, Clock::time_point b) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// Samples of one benchmark run and the CPU marks around its timed loop.
class Meter {
public:
    // peer: the process (tree) serving this run, for server CPU. settle: the
    // peer forks a child per message (Connect); start() and stop() first wait
    // (bounded) for those children to be reaped, so their CPU time is counted
    // once, in the peer's cutime+cstime (kernel ns sums, printed in ticks).
    Meter(benchmark::State& state, pid_t peer, bool settle = false);
    ~Meter();
    Meter(const Meter&) = delete;
    Meter& operator=(const Meter&) = delete;
    void start();  // just before the timed loop
    void stop();   // just after it, before the peer is told to end
    void add(std::uint64_t ns) noexcept { samples_.record(ns); }
    void add(const Histogram& ns) noexcept { samples_.merge(ns); }
    // Sets bytes_per_second, p50/p99/p999/max_ns, client/server_cpu_ns_per_msg,
    // client/server_faults_per_msg (minor page faults).
    // messages: how many messages the CPU counters divide by.
    void report(std::int64_t bytes_per_iteration, std::uint64_t messages);

private:
    benchmark::State& state_;
    pid_t peer_;
    bool settle_;
    Histogram samples_;  // bounded memory however long the run: no per-sample storage or sort
    std::uint64_t client0_ = 0, client1_ = 0, server0_ = 0, server1_ = 0;
    std::uint64_t client_faults0_ = 0, client_faults1_ = 0, server_faults0_ = 0, server_faults1_ = 0;
    std::unique_ptr<Interference> interference_;
};

// Sets p50_ns, p99_ns, p999_ns and max_ns (prefix "raw_": raw_p50_ns ...)
// from a histogram of per-message nanoseconds; nothing when it is empty.
void put_percentiles(benchmark::State& state, const Histogram& ns, const std::string& prefix = "");

// Sets the interference counters of one measured run (see interference.hpp):
// client/server_runq_ns_per_msg, client/server_nivcsw_per_msg,
// steal_ns_per_msg, interference (share of wall time) and disturbed (0 or 1).
void report_interference(benchmark::State& state, const Interference& i, std::uint64_t messages,
                         double allowance_ns);

// The Connect-style timed loop (ipclab's Connect and Baseline/connect-fork):
// each iteration is one exchange() -> bool (open, one message, close),
// timed on its own; a false exchange fails the benchmark with `failure`.
// The peer forks per connection, so the meter settles its children.
template <typename Exchange>
void measure_exchanges(benchmark::State& state, pid_t peer, Exchange exchange,
                       const char* failure) {
    Meter meter(state, peer, true);
    std::uint64_t n = 0;
    meter.start();
    for (auto _ : timed(state)) {
        stop_if_signalled();
        auto t0 = Clock::now();
        bool ok = exchange();
        meter.add(elapsed_ns(t0, Clock::now()));
        if (!ok) {
            state.SkipWithError(failure);
            break;
        }
        ++n;
    }
    meter.stop();
    if (!state.error_occurred()) meter.report(0, n);
}


// Plain blocking I/O for the raw baselines (UNP's writen/readn), one place
// for how a raw call's failure reads: EINTR retried unless a stop was
// requested (Interrupted), a socket timeout (EAGAIN) a TimeoutError, a
// reset or closed peer PeerGone, anything else a SystemError naming `call`.
// raw_io_failed is that rule for a call that returned -1: it returns only
// for EINTR, when the caller retries.
void raw_io_failed(const char* call);
void writen(int fd, const void* p, std::size_t n);
// Reads exactly n bytes; false on EOF before the first one (PeerGone after).
bool readn(int fd, void* p, std::size_t n);

// Reads a small /proc or /sys file (first line, trimmed); "" if unreadable.
std::string read_first_line(const std::string& path);
long read_long(const std::string& path, long fallback);

// The host facts and kernel limits for the JSON context block.
void add_context(const Config& config);

// The raw baselines read and reply through page-aligned buffers, so they
// sit at the same page offset in every process (ipc/page_buffer.hpp).
using ipclab::PageBuffer;

}  // namespace ipclab::bench
