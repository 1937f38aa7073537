// Placement probe: what moving one cache line between the client's CPU and
// its server's CPU costs at the moment a benchmark runs.
//
// On a virtual machine the hypervisor places the vCPUs on physical cores and
// moves them: on the 2-vCPU EPYC hosts this probe, taken 300 times over 6 s,
// fell into three levels, 54-70, 92-131 and 349-441 ns, each lasting from a tenth
// of a second to at least 15 s, with no run delay or steal time to show
// for it. A spinning transport's client and server sit on different CPUs and
// its round trips follow that cost, so a repetition measured in another
// placement than the rest measured the machine, not the transport. The
// counter xcpu_rtt_ns makes that visible; scripts/compare turns it into a
// disturbed flag (benchjson.py: PLACEMENT_SLACK).
#pragma once

#include <optional>

#include <benchmark/benchmark.h>

namespace ipclab::bench {

// The median of a few batches of one cache line's round trips between a
// thread pinned to cpu_a and one pinned to cpu_b, in ns; nullopt when either
// cannot be pinned there or the probe ran out of its 100 ms (the CPUs were
// given to others that long).
std::optional<double> cross_cpu_round_trip_ns(int cpu_a, int cpu_b);

// The one CPU the calling thread is pinned to, or -1 (not pinned to one CPU).
int pinned_cpu();

// Sets xcpu_rtt_ns to cross_cpu_round_trip_ns(calling thread's CPU,
// server_cpu) when both are single CPUs and differ; nothing otherwise (one CPU
// for both, or unpinned: then no line travels between fixed CPUs). Called at
// a run's start, before its channel exists, so no session of the run spins on
// the server's CPU against the probe.
void report_placement(benchmark::State& state, int server_cpu);

}  // namespace ipclab::bench
