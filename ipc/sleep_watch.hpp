// Futex sleeps without a kernel timer of their own.
//
// Every shm wait must end if its peer dies or its deadline passes, so each
// of its futex sleeps carried a timeout (a slice of kSliceMs): the kernel
// arms and cancels an hrtimer for each, and on the EPYC hosts (nested PVM
// guests, where the interrupt save and restore around both are costly) that
// was most of what block mode cost over the raw semaphore ping-pong (README,
// shared-memory section). Here one watchdog thread per process wakes every
// registered sleep that has lasted through one of its ticks (one timer per
// tick for the whole process), so the sleeper's own loop still looks at its
// peer and its deadline at least once a slice, as after a timed sleep.
//
// The watchdog starts once the process has asked for it kSleepsBeforeWatch
// times (a thread costs tens of µs: a short session never pays for one),
// never under ThreadSanitizer (whose runtime does not support threads
// started after a fork of a threaded process, as test children do), and
// not in a forked child until the child itself sleeps that often.
#pragma once

#include <atomic>
#include <cstdint>

namespace ipclab::sleep_watch {

// Sleeps a process takes, timed, before its watchdog starts.
inline constexpr std::uint64_t kSleepsBeforeWatch = 256;

// Whether this build can run the watchdog (not under ThreadSanitizer).
bool supported() noexcept;

// Whether a sleep may go without a timer now: the watchdog runs in this
// process. Each false answer counts toward starting it.
bool available() noexcept;

// One untimed sleep on `word` (a futex word that stays mapped until this
// ends), which the watchdog wakes (bumping the word, as a ringer does)
// within one slice (kSliceMs: it ticks twice a slice). Only after
// available() said true on this thread.
class Watched {
public:
    explicit Watched(const std::atomic<std::uint32_t>& word) noexcept;
    ~Watched();
    Watched(const Watched&) = delete;
    Watched& operator=(const Watched&) = delete;
};

}  // namespace ipclab::sleep_watch
