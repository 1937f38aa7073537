#include "ipc/local_heap.hpp"

#include <cstdint>

namespace ipclab {

namespace {
thread_local LocalHeap* t_innermost = nullptr;
constexpr std::size_t kAlign = alignof(std::max_align_t);
}  // namespace

LocalHeap::LocalHeap(std::span<std::byte> storage, Use use) noexcept
    : begin_(storage.data()), end_(storage.data() + storage.size()), next_(begin_), use_(use), outer_(t_innermost) {
    t_innermost = this;
}

LocalHeap::~LocalHeap() { t_innermost = outer_; }

void* LocalHeap::take(std::size_t size, Use use) noexcept {
    LocalHeap* h = t_innermost;
    while (h != nullptr && h->use_ != use) h = h->outer_;
    std::size_t rounded = (size + kAlign - 1) / kAlign * kAlign;
    if (h == nullptr || rounded == 0 || rounded > static_cast<std::size_t>(h->end_ - h->next_)) return nullptr;
    void* p = h->next_;
    h->next_ += rounded;
    ++h->live_;
    return p;
}

bool LocalHeap::give_back(void* p) noexcept {
    // Integers, not pointers: p is compared with arrays it may not be in.
    auto at = reinterpret_cast<std::uintptr_t>(p);
    for (LocalHeap* h = t_innermost; h != nullptr; h = h->outer_) {
        if (at < reinterpret_cast<std::uintptr_t>(h->begin_) || at >= reinterpret_cast<std::uintptr_t>(h->end_))
            continue;
        if (--h->live_ == 0) h->next_ = h->begin_;
        return true;
    }
    return false;
}

}  // namespace ipclab
