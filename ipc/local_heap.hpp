// Storage in a caller's own frame for the few objects a fork-per-session
// server makes per session.
//
// After a fork, every page the parent and the child share is copy-on-write:
// the first write to one, on either side, is a page fault and a page copied.
// On the heap, the parent's pending session (made by accept, destroyed right
// after the fork) and a child's channel, stream reader and first message
// buffer wrote malloc's free lists and bookkeeping, pages of their own, and
// each child also faulted in the code of operator new and malloc: together
// 2 faults per session in the parent and 5 in the child. A LocalHeap hands
// out storage from an array in a stack frame, which the process writes
// after the fork anyway. The server loop installs one for its pending
// sessions (fork design only) and each session child one for its session;
// elsewhere none is installed and these objects live on the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>

namespace ipclab {

class LocalHeap {
public:
    // What a heap holds: the server loop's, pending sessions only (nothing
    // else the parent makes may land in its frame and outlive it); a
    // session child's, the session's channel, reader and message buffers.
    enum class Use { pending_sessions, session };

    // Installs it for this thread, inside any installed before. Storage must
    // be aligned for any object (LocalHeapStorage).
    LocalHeap(std::span<std::byte> storage, Use use) noexcept;
    // Uninstalls it. What it handed out must have been given back by then,
    // or the process must be ending with _exit (a session child).
    ~LocalHeap();
    LocalHeap(const LocalHeap&) = delete;
    LocalHeap& operator=(const LocalHeap&) = delete;

    // size bytes, aligned for any object, from the innermost heap installed
    // in this thread for `use`; nullptr when none is, or it is full (use the heap).
    static void* take(std::size_t size, Use use) noexcept;
    // True if p came from a heap installed in this thread, which takes it
    // back (its room is reused once everything taken is back).
    static bool give_back(void* p) noexcept;

private:
    std::byte* begin_;
    std::byte* end_;
    std::byte* next_;
    std::size_t live_ = 0;
    Use use_;
    LocalHeap* outer_;
};

namespace detail {
inline thread_local LocalHeap* innermost_local_heap = nullptr;
}  // namespace detail

// Inline, so a session child runs them where its other code is: in a file
// of their own they were one more page of code it faulted in.
inline LocalHeap::LocalHeap(std::span<std::byte> storage, Use use) noexcept
    : begin_(storage.data()),
      end_(storage.data() + storage.size()),
      next_(begin_),
      use_(use),
      outer_(detail::innermost_local_heap) {
    detail::innermost_local_heap = this;
}

inline LocalHeap::~LocalHeap() { detail::innermost_local_heap = outer_; }

inline void* LocalHeap::take(std::size_t size, Use use) noexcept {
    LocalHeap* h = detail::innermost_local_heap;
    while (h != nullptr && h->use_ != use) h = h->outer_;
    constexpr std::size_t kAlign = alignof(std::max_align_t);
    std::size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
    if (h == nullptr || rounded == 0 || rounded > static_cast<std::size_t>(h->end_ - h->next_)) return nullptr;
    void* p = h->next_;
    h->next_ += rounded;
    ++h->live_;
    return p;
}

inline bool LocalHeap::give_back(void* p) noexcept {
    // Integers, not pointers: p is compared with arrays it may not be in.
    auto at = reinterpret_cast<std::uintptr_t>(p);
    for (LocalHeap* h = detail::innermost_local_heap; h != nullptr; h = h->outer_) {
        if (at < reinterpret_cast<std::uintptr_t>(h->begin_) || at >= reinterpret_cast<std::uintptr_t>(h->end_))
            continue;
        if (--h->live_ == 0) h->next_ = h->begin_;
        return true;
    }
    return false;
}

template <std::size_t N>
struct LocalHeapStorage {
    alignas(alignof(std::max_align_t)) std::byte bytes[N];
};

// A base whose allocation functions use the LocalHeap installed for `use`,
// else the heap (PendingSession, Channel, StreamReader). Objects must be
// destroyed in the thread that made them while a heap is installed there.
template <LocalHeap::Use use>
struct LocalHeapAllocated {
    static void* operator new(std::size_t size) {
        if (void* p = LocalHeap::take(size, use)) return p;
        return ::operator new(size);
    }
    static void operator delete(void* p) noexcept {
        if (p == nullptr || LocalHeap::give_back(p)) return;
        ::operator delete(p);
    }
};

}  // namespace ipclab
