// A page-aligned byte buffer, and where in a page to put a copy's
// destination (or source) so that the copy is never 4K-aliased.
//
// Where a buffer sits within its page changes what a copy costs: when a
// copy's source and destination are a few bytes apart modulo 4096, each load
// waits on the store before it (4K aliasing). The heap places buffers
// differently in every process, so without this a transport's cost moved
// from one process to the next (issue 11: the unix 4 KiB round trip at 1.15x
// the raw floor in one process, 1.31x in the next).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "ipc/local_heap.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

inline constexpr std::size_t kPageSize = 4096;

class PageBuffer {
public:
    PageBuffer() = default;
    // Not zero-filled: no page is touched before it is used.
    explicit PageBuffer(std::size_t n) : n_(n) {
        void* p = std::aligned_alloc(kPageSize, (n + kPageSize - 1) / kPageSize * kPageSize + (n == 0 ? kPageSize : 0));
        if (p == nullptr) throw std::bad_alloc();
        p_.reset(static_cast<std::byte*>(p));
    }
    std::byte* data() { return p_.get(); }
    const std::byte* data() const { return p_.get(); }
    std::size_t size() const { return n_; }

private:
    struct Free {
        void operator()(std::byte* p) const noexcept { std::free(p); }
    };
    std::size_t n_ = 0;
    std::unique_ptr<std::byte, Free> p_;
};

// A fork-per-session server parks a stream read buffer before it forks
// (park_read_buffer); each session child's StreamReader borrows it
// (ReadBuffer) instead of allocating one. A 64 KiB allocation in a fresh
// child grew the heap (brk) and wrote malloc's bookkeeping, pages the child
// shares with the parent, so each write was a copy-on-write fault; the
// parked buffer's pages were never touched by the parent, so the child
// faults in only those it reads into. Lending it writes nothing but two
// thread-local flags, in the page of thread-local storage every forked child
// has already written (taking it out of the global was one more page copied
// per session). Only the thread that parked it, and the children forked
// from that thread (their one thread is its copy), may borrow it, one
// reader at a time: another thread of the parent's process never does.
namespace detail {
inline PageBuffer parked_read_buffer;
inline thread_local bool parked_here = false;  // this thread (or the one it was forked from) parked it
inline thread_local bool parked_lent = false;
}  // namespace detail
inline void park_read_buffer(std::size_t n) {
    if (detail::parked_read_buffer.size() < n) detail::parked_read_buffer = PageBuffer(n);
    detail::parked_here = true;
}

// A stream reader's buffer: the parked one when this thread may borrow it
// and it is big enough and free, else one of its own.
class ReadBuffer {
public:
    explicit ReadBuffer(std::size_t n) {
        if (detail::parked_here && !detail::parked_lent && detail::parked_read_buffer.size() >= n) {
            detail::parked_lent = true;
            lent_ = true;
            data_ = detail::parked_read_buffer.data();
            size_ = detail::parked_read_buffer.size();
        } else {
            own(PageBuffer(n));
        }
    }
    ~ReadBuffer() {
        if (lent_) detail::parked_lent = false;
    }
    ReadBuffer(const ReadBuffer&) = delete;
    ReadBuffer& operator=(const ReadBuffer&) = delete;
    std::byte* data() { return data_; }
    const std::byte* data() const { return data_; }
    std::size_t size() const { return size_; }
    bool lent() const { return lent_; }
    // From now on this storage (a grown buffer); a lent one is given back.
    void own(PageBuffer b) {
        if (lent_) detail::parked_lent = false;
        lent_ = false;
        owned_ = std::move(b);
        data_ = owned_.data();
        size_ = owned_.size();
    }

private:
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    bool lent_ = false;
    PageBuffer owned_;
};

// The offset in the first half of a page-aligned buffer at which to start a
// block whose data begins `header` bytes in, so that the data sits a quarter
// page (1024 or 3072 bytes, modulo 4096) from `other`, the other end of the
// copy; 0 when there is no other end yet (nullptr). Never a few bytes apart
// (4K aliasing, above), and a small block stays clear of its page's last
// lines: on the Intel Xeon hosts a 69-byte frame read to 3990-4027 bytes
// into a buffer's first page, whose next page nothing had touched, made
// `Paired/fifo/64` 1.07-1.12x the raw floor against 1.02-1.05x anywhere up to
// 3950 (or across into the next page); with that page touched, 1.05-1.07.
// The rule before (half a page from `other`, anywhere in the page) put it
// there whenever malloc had put a small payload 1.9-2.0 KiB into its page.
inline std::size_t quarter_page_from(const void* other, std::size_t header) {
    if (other == nullptr) return 0;
    constexpr std::size_t kHalf = kPageSize / 2;
    auto at = reinterpret_cast<std::uintptr_t>(other) + kPageSize / 4 + kHalf - header % kHalf;
    return static_cast<std::size_t>(at % kHalf);
}

// Where a large message buffer starts within its page. A message's payload
// lands 5 bytes (its frame header) into a page of a pipe and of the shm ring
// (a ping-pong's every message starts a fresh pipe page or the ring's start),
// and about half a page in for a UNIX stream socket's skb pages; a buffer at
// page offset 5 or 2048 + 5 makes the kernel's copy into it 4K-aliased. Left
// to the heap, where a 64 KiB or 1 MiB buffer sat depended on the order of
// earlier allocations, so each process measured its own level (Paired ratios
// at 1 MiB: fifo 0.99 in some ipc-bench processes, 1.57 in others; tcp 1.07
// or 1.95; shm-spin 0.8 or 3.4). A quarter page (plus the header) is far
// from both: measured alike with three quarters, every process at one level.
inline constexpr std::size_t kLargeBuffer = 64 * 1024;
inline constexpr std::size_t kLargeBufferPageOffset = kPageSize / 4 + 5;

// The allocator of message buffers: a buffer of kLargeBuffer bytes or more
// starts kLargeBufferPageOffset into a page; smaller ones come from the heap
// as usual (they fit the stream reader's buffer, which places them itself).
template <class T>
struct PlacedAllocator {
    static_assert(alignof(T) == 1, "the page offset is odd: bytes only");
    using value_type = T;
    PlacedAllocator() = default;
    template <class U>
    PlacedAllocator(const PlacedAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        if (n < kLargeBuffer) {
            // In a session child, its first message buffers (ipc/local_heap.hpp).
            if (void* p = LocalHeap::take(n, LocalHeap::Use::session)) return static_cast<T*>(p);
            return static_cast<T*>(::operator new(n));
        }
        std::size_t bytes = (n + kLargeBufferPageOffset + kPageSize - 1) / kPageSize * kPageSize;
        void* base = std::aligned_alloc(kPageSize, bytes);
        if (base == nullptr) throw std::bad_alloc();
        return static_cast<T*>(static_cast<void*>(static_cast<std::byte*>(base) + kLargeBufferPageOffset));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n < kLargeBuffer) {
            if (!LocalHeap::give_back(p)) ::operator delete(p);
            return;
        }
        std::free(reinterpret_cast<std::byte*>(p) - kLargeBufferPageOffset);
    }
    // Bytes(n) and resize() leave new bytes uninitialised: every caller
    // overwrites them (a received message's bytes, a generated payload), and
    // zero-filling a 1 MiB message first is a second pass over it.
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    friend bool operator==(const PlacedAllocator&, const PlacedAllocator&) { return true; }
};

// A message's bytes: a std::vector whose large storage is placed as above.
// Fill it with assign_bytes/append_bytes: with an allocator other than
// std::allocator, libstdc++'s insert() and assign() copy byte by byte
// (measured: the posix-mq 4 KiB round trip 10.7 -> 15.2 us), memcpy does not.
using Bytes = std::vector<std::byte, PlacedAllocator<std::byte>>;

inline void append_bytes(Bytes& to, std::span<const std::byte> from) {
    std::size_t have = to.size();
    to.resize(have + from.size());
    if (!from.empty()) std::memcpy(to.data() + have, from.data(), from.size());
}

// resize() for a received frame: vector's own is out of line, wherever the
// linker put that template's code; this copy, flattened, lies with the
// session path that calls it (ipc/session_path.hpp).
IPCLAB_SESSION_PATH [[gnu::flatten, gnu::noinline]] inline void resize_bytes(Bytes& b, std::size_t n) { b.resize(n); }
// Sizes a received message's buffer to n. A ping-pong's keeps its size, so
// the usual case is one compare and no call (an out-of-line resize to the
// same size was 25 of a 64-byte shm receive's ~130 instructions).
inline void size_received(Bytes& b, std::size_t n) {
    if (b.size() != n) resize_bytes(b, n);
}

inline void assign_bytes(Bytes& to, std::span<const std::byte> from) {
    to.clear();
    append_bytes(to, from);
}

}  // namespace ipclab
