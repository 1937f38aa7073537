#include "ipc/sleep_watch.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <climits>
#include <mutex>

#include "ipc/shm_futex.hpp"

namespace ipclab::sleep_watch {

namespace {

// One thread's sleep, as the watchdog sees it. word is the futex word slept
// on (0: none), with its low bit set while the watchdog wakes it: the
// sleeper waits for that to clear before it ends the sleep, so the word's
// mapping cannot go away under the watchdog's store.
struct Slot {
    std::atomic<std::uintptr_t> word{0};
    std::atomic<std::uint64_t> tick{0};  // the watchdog's tick when the sleep began
    Slot* next = nullptr;                // the registry's list, under its mutex
};

struct Registry {
    std::mutex mutex;  // the list; held by the watchdog while it wakes
    Slot* head = nullptr;
    std::atomic<std::uint64_t> tick{0};
    std::atomic<bool> running{false};
    std::atomic<bool> tried{false};  // one start per process (and per forked child)
    std::atomic<std::uint64_t> asked{0};
};

// Never destroyed: the watchdog runs until the process ends, past static
// destructors.
Registry& registry() {
    static Registry* r = new Registry;
    return *r;
}

struct ThreadSlot {
    Slot slot;
    bool linked = false;
    ~ThreadSlot() {
        if (!linked) return;
        Registry& r = registry();
        std::lock_guard<std::mutex> lock(r.mutex);
        for (Slot** p = &r.head; *p != nullptr; p = &(*p)->next) {
            if (*p == &slot) {
                *p = slot.next;
                break;
            }
        }
    }
};

thread_local ThreadSlot t_slot;

Slot& my_slot() {
    if (!t_slot.linked) {
        Registry& r = registry();
        std::lock_guard<std::mutex> lock(r.mutex);
        t_slot.slot.next = r.head;
        r.head = &t_slot.slot;
        t_slot.linked = true;
    }
    return t_slot.slot;
}

// Half a slice: a sleep that begins just after a tick still ends within one.
constexpr int kTickMs = kSliceMs / 2;

void sleep_one_tick() {
    timespec ts{kTickMs / 1000, static_cast<long>(kTickMs % 1000) * 1000000L};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// Wakes every registered sleep that began before the last tick: each after
// one to two ticks, within a slice (a sleep that ends sooner, as nearly
// every one does, is never woken by it).
void watch() {
    Registry& r = registry();
    for (;;) {
        sleep_one_tick();
        const std::uint64_t now = r.tick.fetch_add(1, std::memory_order_relaxed) + 1;
        std::lock_guard<std::mutex> lock(r.mutex);
        for (Slot* s = r.head; s != nullptr; s = s->next) {
            std::uintptr_t w = s->word.load(std::memory_order_acquire);
            if (w == 0 || (w & 1) != 0 || s->tick.load(std::memory_order_relaxed) + 2 > now) continue;
            if (!s->word.compare_exchange_strong(w, w | 1, std::memory_order_acq_rel)) continue;
            auto* word = reinterpret_cast<std::atomic<std::uint32_t>*>(w);
            word->fetch_add(1, std::memory_order_seq_cst);
            try {
                futex_wake(*word, INT_MAX);
            } catch (const std::exception&) {
                // A word of a live mapping: FUTEX_WAKE cannot fail there.
            }
            s->word.store(w, std::memory_order_release);
        }
    }
}

void* watch_thread(void*) {
    // Its own name, not its creator's: a server's session threads are
    // counted by theirs.
    ::pthread_setname_np(::pthread_self(), "ipclab-watch");  // a name only: failing is harmless
    watch();
    return nullptr;
}

// A forked child has only the forking thread: its registry holds that
// thread's slot alone, and no watchdog until it starts its own.
void before_fork() { registry().mutex.lock(); }
void after_fork_parent() { registry().mutex.unlock(); }
void after_fork_child() {
    Registry& r = registry();
    r.head = nullptr;
    if (t_slot.linked) {
        t_slot.slot.word.store(0, std::memory_order_relaxed);
        t_slot.slot.next = nullptr;
        r.head = &t_slot.slot;
    }
    r.running.store(false, std::memory_order_relaxed);
    r.tried.store(false, std::memory_order_relaxed);
    r.asked.store(0, std::memory_order_relaxed);
    r.mutex.unlock();
}

void start() {
    Registry& r = registry();
    if (r.tried.exchange(true)) return;
    static std::once_flag atfork;
    std::call_once(atfork, [] { ::pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
    // Every signal blocked in the watchdog: the process's handlers (SIGCHLD,
    // the stop signals) keep running on the threads that expect them.
    sigset_t all, old;
    ::sigfillset(&all);
    if (::pthread_sigmask(SIG_SETMASK, &all, &old) != 0) return;
    pthread_attr_t attr;
    bool made = false;
    if (::pthread_attr_init(&attr) == 0) {
        ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ::pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_t thread;
        made = ::pthread_create(&thread, &attr, watch_thread, nullptr) == 0;
        ::pthread_attr_destroy(&attr);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // Without a watchdog every sleep keeps its timer, as before.
    if (made) r.running.store(true, std::memory_order_release);
}

}  // namespace

bool supported() noexcept {
#if defined(__SANITIZE_THREAD__)
    return false;
#else
    return true;
#endif
}

bool available() noexcept {
    if (!supported()) return false;
    Registry& r = registry();
    try {
        if (r.running.load(std::memory_order_acquire)) {
            my_slot();  // registered here, so that Watched cannot fail
            return true;
        }
        if (r.asked.fetch_add(1, std::memory_order_relaxed) + 1 >= kSleepsBeforeWatch) start();
    } catch (const std::exception&) {
        // The registry's mutex or std::call_once failed: this sleep keeps its timer.
    }
    return false;
}

Watched::Watched(const std::atomic<std::uint32_t>& word) noexcept {
    Slot& s = t_slot.slot;  // linked by available()
    s.tick.store(registry().tick.load(std::memory_order_relaxed), std::memory_order_relaxed);
    s.word.store(reinterpret_cast<std::uintptr_t>(&word), std::memory_order_release);
}

Watched::~Watched() {
    if (!t_slot.linked) return;
    Slot& s = t_slot.slot;
    std::uintptr_t w = s.word.load(std::memory_order_relaxed) & ~std::uintptr_t{1};
    // The watchdog may be waking this sleep: wait out its store (a system
    // call long), yielding soon, since it inherited our CPU affinity and may
    // be waiting for this very CPU.
    for (int tries = 0;; ++tries) {
        std::uintptr_t expected = w;
        if (s.word.compare_exchange_weak(expected, 0, std::memory_order_acq_rel)) return;
        if (tries < 64)
            cpu_relax();
        else
            ::sched_yield();
    }
}

}  // namespace ipclab::sleep_watch
