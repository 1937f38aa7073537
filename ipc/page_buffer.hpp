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
#include <memory>
#include <new>
#include <utility>

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
// (park_read_buffer); each session child's first StreamReader takes its
// copy (take_read_buffer) instead of allocating one, and parks it again as
// it ends (return_read_buffer). A 64 KiB allocation in
// a fresh child grew the heap (brk) and wrote malloc's bookkeeping, pages the
// child shares with the parent, so each write was a copy-on-write fault.
// The parked buffer's pages were never touched by the parent: the child
// faults in only those it reads into. Not for threads: one process, one slot.
namespace detail {
inline PageBuffer parked_read_buffer;
}
inline void park_read_buffer(std::size_t n) {
    if (detail::parked_read_buffer.size() < n) detail::parked_read_buffer = PageBuffer(n);
}
// taken: whether the parked buffer was the one returned; only its taker
// hands it back (return_read_buffer), so a process that never parked one
// (threads sharing it) never writes the slot.
inline PageBuffer take_read_buffer(std::size_t n, bool& taken) {
    taken = detail::parked_read_buffer.size() >= n;
    if (taken) return std::exchange(detail::parked_read_buffer, PageBuffer());
    return PageBuffer(n);
}
// Parks the taken buffer again rather than freeing it: freed at the top of
// a session child's heap, it made malloc trim the heap (brk) as the child ended.
inline void return_read_buffer(PageBuffer b) { detail::parked_read_buffer = std::move(b); }

// The offset in a page-aligned buffer at which to start a block whose data
// begins `header` bytes in, so that the data sits half a page (modulo 4096)
// from `other`, the other end of the copy; 0 when there is no other end yet
// (nullptr).
inline std::size_t half_a_page_from(const void* other, std::size_t header) {
    if (other == nullptr) return 0;
    auto at = reinterpret_cast<std::uintptr_t>(other) + kPageSize / 2 + kPageSize - header % kPageSize;
    return static_cast<std::size_t>(at % kPageSize);
}

}  // namespace ipclab
