// Cross-process sleeping on 32-bit words of a shared mapping, and the
// "doorbell" protocol that makes a wake-up cost a system call only when the
// other side really sleeps.
//
// std::atomic<T>::wait/notify use FUTEX_PRIVATE_FLAG in libstdc++ 12 and do
// not wake another process; these use the raw futex syscall without it.
//
// Doorbell protocol (one sleeper, one ringer):
//   sleeper:  s = seq; sleeping = 1 (seq_cst); if (!ready()) futex_wait(&seq, s); sleeping = 0
//   ringer:   <store that makes ready() true, release>; fence (seq_cst);
//             if (sleeping && sleeping.exchange(0)) { ++seq; futex_wake(&seq) }
// Dekker's store->load pairs: the sleeper's seq_cst store and load, the
// ringer's store, seq_cst fence, load. Whichever of the fence and the store
// to sleeping comes first in the single total order, one side sees the
// other's store ([atomics.order]), so either the sleeper sees ready() and
// does not sleep, or the ringer sees sleeping and wakes it. The fence rather
// than a seq_cst store: on x86 that store is an xchg, which waits for the
// message's bytes to reach the peer-shared lines before it even asks for the
// index's line; a plain store lets both requests go out together (see
// RingWriter::publish).
//
// In the rings the ringer's stores are the head index and then the frame
// stamps (ipc/shm_ring.hpp), all before the one fence of the publish that
// rings; the sleeper's ready() reads, with seq_cst loads, the stamp at its
// frame boundary (between messages) or the head index (inside a frame whose
// payload streams in). Either word was stored before the fence, so the pair
// above holds for whichever the sleeper reads. A publish without wake
// (chunks inside a message) skips the fence: the writer's next
// publish with wake, before it waits or at the message's end, fences after
// those stores too. RingReader::ring_released_after_fence relies on the
// same: the tail index it rings for was stored before the publish whose
// fence ran in between. futex_wait compares seq inside the kernel, so a bump between
// the sleeper's read of seq and its futex_wait makes the wait return at once
// instead of being lost. The ringer clears sleeping as it wakes: further
// rings before the woken sleeper has run (a large message publishes every
// chunk) then cost no second wake system call; a sleeper that finds its
// condition still false re-arms before it sleeps again.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/objects.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/sleep_watch.hpp"

namespace ipclab {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the futex word must be a plain lock-free 32-bit integer");

// Sleeps while *word == expected, at most timeout_ms (< 0: forever). Returns
// false on timeout, true otherwise (woken, value changed, spurious, or EINTR
// without a stop request); callers re-check their condition either way.
// Throws Interrupted on EINTR after a stop request, SystemError on failure.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, int timeout_ms);

// Wakes up to `count` sleepers on word (in any process mapping it).
void futex_wake(const std::atomic<std::uint32_t>& word, int count);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();  // tells the core we spin: saves power, frees the sibling hyperthread
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// The ringer's side of the protocol below. ThreadSanitizer models no fences
// (GCC refuses them under -fsanitize=thread): there the stores are seq_cst
// instead, which orders them before the peek just as well (an xchg on x86).
#if defined(__SANITIZE_THREAD__)
inline constexpr std::memory_order kRingerStore = std::memory_order_seq_cst;
inline void ringer_fence() noexcept {}
#else
inline constexpr std::memory_order kRingerStore = std::memory_order_release;
inline void ringer_fence() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif

struct Doorbell {
    std::atomic<std::uint32_t> seq{0};       // the futex word; bumped by the ringer
    std::atomic<std::uint32_t> sleeping{0};  // set by the sleeper around futex_wait

    // Ringer side, after the store (kRingerStore) that made the sleeper's
    // condition true: the fence orders it before the peek. Returns true
    // when it had to make the (costly) wake system call.
    bool ring() {
        ringer_fence();
        return ring_after_fence();
    }
    // The same when a fence has already run between that store and here.
    bool ring_after_fence() {
        if (sleeping.load(std::memory_order_seq_cst) == 0) return false;
        if (sleeping.exchange(0, std::memory_order_seq_cst) == 0) return false;
        seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(seq, 1);
        return true;
    }
    // Unconditional: for closing, where a wake must never be missed.
    void ring_always() {
        seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(seq, 1);
    }
};

// How one wait ended: the condition held at once, during the busy-poll (in
// block mode: the short poll of kBlockSpin), or only after sleeping on the
// futex at least once.
enum class WaitOutcome { immediate, spun, slept };

struct WaitCounts {
    std::uint64_t immediate = 0;
    std::uint64_t spun = 0;
    std::uint64_t slept = 0;
    void add(WaitOutcome o) {
        (o == WaitOutcome::immediate ? immediate : o == WaitOutcome::spun ? spun : slept) += 1;
    }
    // Waits counted, every outcome.
    std::uint64_t total() const { return immediate + spun + slept; }
};

struct WaitPolicy {
    WaitMode mode = WaitMode::block;
    // Spin mode only. Channels pass their own adaptive budget (at most
    // kSpinIterations, 8192); this default serves direct callers such as tests.
    int spin_iterations = 1024;
    int timeout_ms = 30000;  // <= 0: forever
    pid_t peer = 0;          // checked between sleep slices; 0: not checked
    const char* what = "the peer";
    // Block mode only: busy-poll this long before sleeping (0: sleep at
    // once). Channels pass kBlockSpin or 0, see ShmChannel::wait.
    std::chrono::nanoseconds block_spin{0};
};

// Bounded busy-poll before sleeping: at 30-50 ns per pause (measured on the
// 2-core EPYC hosts) this is 250-400 us. Shorter budgets (1024) ran out
// whenever the unpinned peer was briefly descheduled, and every such sleep
// costs a futex wake and a scheduler wake-up (tens of us) on the next
// message: RoundTrip/shm-spin/64 slept on 2.2% of waits with 1024 and on
// 0.01% with 8192. When the peer shares our core it cannot run while we
// spin, so the adaptive halving below keeps that case cheap.
inline constexpr int kSpinIterations = 8192;
// Channels halve their budget after each wait that had to sleep anyway (the
// peer had no core) down to this, and restore it after a successful spin:
// on a crowded host spin mode then costs about what block mode does.
inline constexpr int kMinSpinIterations = 32;
// Block mode's short poll before sleeping, for waits whose peer is known to
// be at work (see ShmChannel::wait): the rest of a message whose first bytes
// arrived, the next message of a stream the writer keeps fed. A stream's
// reader copies out faster than its writer copies in, so it catches up and
// waits about as long as the writer takes to publish its next chunk
// (kPublishChunk, 16 KiB: mostly under 1 us on the 2-core EPYC hosts); a
// futex sleep costs the sleeper a context switch and the writer a wake
// system call, each several microseconds. 5 us let 0.08-0.28 sleeps per
// message through in a 1 MiB stream under load, 10 us 0.005-0.008. The
// bound is time, not pause count (a pause is 10-150 cycles depending on the
// CPU), so it is what an idle peer can cost a block-mode waiter per wait.
inline constexpr std::chrono::microseconds kBlockSpin{10};
// Polls that ended asleep anyway, in a row, after which a channel stops
// polling (but for a probe every 64th wait) until one succeeds again.
inline constexpr int kMaxFailedPolls = 4;
// Sleep slices: a SIGKILLed peer (no closed flag ever comes) is noticed this soon.
inline constexpr int kSliceMs = 100;

// Spin mode's busy-poll: true as soon as ready(), false after `iterations`
// pauses. Inline, apart from wait_until's sleeping part, so that a caller
// whose peer answers within the poll (a spin-mode ping-pong, every message)
// goes on from the loop's exit at once: the few instructions between the
// peer's store and our reply are the round trip's critical path.
template <typename Ready>
inline bool spin_until(Ready ready, int iterations) {
    for (int i = 0; i < iterations; ++i) {
        cpu_relax();
        if (ready()) return true;
    }
    return false;
}

// Waits until ready() (which must read the other side's state with seq_cst
// loads, see above). Throws TimeoutError, PeerGone (policy.peer died),
// Interrupted (stop requested).
template <typename Ready>
WaitOutcome wait_until(Doorbell& bell, Ready ready, const WaitPolicy& policy) {
    if (ready()) return WaitOutcome::immediate;
    const bool polls = policy.mode == WaitMode::spin || policy.block_spin.count() > 0;
    if (policy.mode == WaitMode::spin) {
        if (spin_until(ready, policy.spin_iterations)) return WaitOutcome::spun;
    } else if (polls) {
        // The clock is read once per few pauses: a vDSO read costs about as much as one.
        const auto until = std::chrono::steady_clock::now() + policy.block_spin;
        do {
            for (int i = 0; i < 8; ++i) {
                cpu_relax();
                if (ready()) return WaitOutcome::spun;
            }
        } while (std::chrono::steady_clock::now() < until);
    }
    // No clock is read before the first sleep, nor after a wake that finds
    // the condition true (nearly every wake: the ringer bumps seq only after
    // its store). A block-mode round trip sleeps on each side, and the four
    // clock reads each such wait made (deadline, liveness slice, time left,
    // the wake's time) held 5.3% of RoundTrip/shm/64's perf samples on one
    // CPU against the semaphore ping-pong's 1.7% (EPYC host); without them
    // Paired/shm/64 and /4096 read about 1% lower. So the deadline starts at
    // the first wake that finds nothing, as LazyDeadline's do: the timeout
    // may end one slice late, unless a WaitCap bounds this wait (then it
    // starts at once).
    LazyDeadline deadline(policy.timeout_ms);
    const bool capped = WaitCap::active();
    if (capped) deadline.get();
    std::chrono::steady_clock::time_point next_check{};  // the first unready wake checks the peer
    struct Disarm {
        Doorbell& b;
        ~Disarm() { b.sleeping.store(0, std::memory_order_relaxed); }
    };
    // Ready before any futex_wait: no sleep happened, but a poll did if one ran.
    WaitOutcome done = polls ? WaitOutcome::spun : WaitOutcome::immediate;
    for (;;) {
        if (stop_requested()) throw Interrupted();
        const int left = deadline.remaining_ms();
        if (left == 0) {
            if (ready()) return done;
            throw TimeoutError("timed out after " + std::to_string(policy.timeout_ms) +
                               " ms waiting for " + policy.what);
        }
        {
            std::uint32_t seq = bell.seq.load(std::memory_order_acquire);
            bell.sleeping.store(1, std::memory_order_seq_cst);
            Disarm disarm{bell};
            if (ready()) return done;
            // A sleep with more than two slices to go needs no timer of its
            // own while the process's watchdog wakes it within a slice
            // (ipc/sleep_watch.hpp); near its deadline, or under a WaitCap,
            // it keeps one, so that it ends on time.
            if ((left < 0 || left > 2 * kSliceMs) && !capped && sleep_watch::available()) {
                sleep_watch::Watched watched(bell.seq);
                futex_wait(bell.seq, seq, -1);
            } else {
                futex_wait(bell.seq, seq, left < 0 ? kSliceMs : std::min(left, kSliceMs));
            }
            done = WaitOutcome::slept;
        }
        if (ready()) return done;
        deadline.get();  // from here on time counts
        // Liveness costs a system call, so only once per slice, not per wake-up.
        auto now = std::chrono::steady_clock::now();
        if (policy.peer > 0 && now >= next_check) {
            next_check = now + std::chrono::milliseconds(kSliceMs);
            if (!process_alive(policy.peer)) {
                if (ready()) return done;
                throw PeerGone(std::string(policy.what) + " (pid " + std::to_string(policy.peer) +
                               ") is gone");
            }
        }
    }
}

}  // namespace ipclab
