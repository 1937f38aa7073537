// Helpers shared by the two message-queue transports (posix-mq, sysv-mq):
// run-time kernel limits, marker files that track queues by name, absolute
// timeouts.
#pragma once

#include <time.h>

#include <string>

namespace ipclab {

// How often a blocked queue call wakes to check the deadline and whether the
// peer still lives: a dead peer is noticed within one slice.
inline constexpr int kQueueSliceMs = 100;

// A number from a /proc/sys file, or fallback when it cannot be read.
long read_proc_long(const char* path, long fallback);

// Creates an empty 0600 marker file (truncating a stale one).
void create_marker(const std::string& path);

// CLOCK_REALTIME now + ms (for mq_timedsend/mq_timedreceive).
struct timespec realtime_after(int ms);

}  // namespace ipclab
