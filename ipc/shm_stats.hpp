// How the shm transport's waits ended, for benchmarks and --stats: at once,
// while busy-polling (--wait spin), or after sleeping on a futex.
#pragma once

#include <optional>

#include "ipc/channel.hpp"
#include "ipc/shm_futex.hpp"

namespace ipclab {

// Totals of every shm channel this process has closed (both directions).
WaitCounts shm_wait_totals() noexcept;

struct ShmSessionCounts {
    WaitCounts local;  // this side's waits so far
    WaitCounts peer;   // the other side's, as it mirrors them into the segment
};

// Live counts of an open shm session; nullopt when channel is another transport.
std::optional<ShmSessionCounts> shm_session_counts(const Channel& channel);

}  // namespace ipclab
