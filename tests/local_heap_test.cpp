// LocalHeap: storage in a frame for a fork server's per-session objects.
#include "ipc/local_heap.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "ipc/channel.hpp"
#include "ipc/page_buffer.hpp"

namespace ipclab {
namespace {

using Use = LocalHeap::Use;

bool inside(const void* p, const std::byte* storage, std::size_t n) {
    auto at = reinterpret_cast<std::uintptr_t>(p);
    auto begin = reinterpret_cast<std::uintptr_t>(storage);
    return at >= begin && at < begin + n;
}

TEST(LocalHeap, NothingInstalledMeansTheHeap) {
    EXPECT_EQ(LocalHeap::take(16, Use::session), nullptr);
    int on_heap = 0;
    EXPECT_FALSE(LocalHeap::give_back(&on_heap));
}

TEST(LocalHeap, HandsOutAlignedStorageUntilFullThenReusesItOnceAllIsBack) {
    LocalHeapStorage<256> storage;
    LocalHeap heap(storage.bytes, Use::session);
    void* a = LocalHeap::take(1, Use::session);
    void* b = LocalHeap::take(100, Use::session);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(inside(a, storage.bytes, 256));
    EXPECT_TRUE(inside(b, storage.bytes, 256));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % alignof(std::max_align_t), 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % alignof(std::max_align_t), 0u);
    EXPECT_EQ(static_cast<std::byte*>(b) - static_cast<std::byte*>(a),
              static_cast<std::ptrdiff_t>(alignof(std::max_align_t)));
    EXPECT_EQ(LocalHeap::take(256, Use::session), nullptr) << "more than is left goes to the heap";
    EXPECT_EQ(LocalHeap::take(0, Use::session), nullptr);
    EXPECT_TRUE(LocalHeap::give_back(a));
    // One still out: the room behind it is not handed out again yet.
    void* c = LocalHeap::take(16, Use::session);
    ASSERT_NE(c, nullptr);
    EXPECT_NE(c, a);
    EXPECT_TRUE(LocalHeap::give_back(b));
    EXPECT_TRUE(LocalHeap::give_back(c));
    EXPECT_EQ(LocalHeap::take(256, Use::session), storage.bytes) << "everything back: the whole array again";
}

TEST(LocalHeap, EachUseFindsItsOwnHeapAndUninstallingRestoresTheOuter) {
    LocalHeapStorage<128> outer_storage;
    LocalHeap outer(outer_storage.bytes, Use::pending_sessions);
    void* pending = LocalHeap::take(32, Use::pending_sessions);
    EXPECT_TRUE(inside(pending, outer_storage.bytes, 128));
    EXPECT_EQ(LocalHeap::take(32, Use::session), nullptr) << "a session's objects never land in the loop's frame";
    {
        LocalHeapStorage<128> inner_storage;
        LocalHeap inner(inner_storage.bytes, Use::session);
        void* s = LocalHeap::take(32, Use::session);
        EXPECT_TRUE(inside(s, inner_storage.bytes, 128));
        void* p2 = LocalHeap::take(32, Use::pending_sessions);
        EXPECT_TRUE(inside(p2, outer_storage.bytes, 128)) << "the inner heap is for sessions only";
        EXPECT_TRUE(LocalHeap::give_back(s));
        EXPECT_TRUE(LocalHeap::give_back(p2));
    }
    EXPECT_EQ(LocalHeap::take(32, Use::session), nullptr);
    EXPECT_TRUE(LocalHeap::give_back(pending));
}

struct Small : LocalHeapAllocated<Use::session> {
    std::uint64_t value = 7;
};

TEST(LocalHeap, ClassAllocationUsesTheInstalledHeapElseTheHeap) {
    auto on_heap = std::make_unique<Small>();
    LocalHeapStorage<64> storage;
    {
        LocalHeap heap(storage.bytes, Use::session);
        auto here = std::make_unique<Small>();
        EXPECT_TRUE(inside(here.get(), storage.bytes, 64));
        EXPECT_EQ(here->value, 7u);
        auto spilled = std::make_unique<Small>();  // 16 of 64 bytes each: room for four
        auto more = std::make_unique<Small>();
        auto last = std::make_unique<Small>();
        auto beyond = std::make_unique<Small>();
        EXPECT_TRUE(inside(last.get(), storage.bytes, 64));
        EXPECT_FALSE(inside(beyond.get(), storage.bytes, 64)) << "a full heap falls back to operator new";
        // A heap object freed while a heap is installed still goes back to the heap.
        on_heap.reset();
    }
    EXPECT_FALSE(inside(std::make_unique<Small>().get(), storage.bytes, 64));
}

TEST(LocalHeap, ASessionsSmallMessageBufferLandsInItsHeapALargeOneDoesNot) {
    LocalHeapStorage<512> storage;
    LocalHeap heap(storage.bytes, Use::session);
    Bytes small(64);
    EXPECT_TRUE(inside(small.data(), storage.bytes, 512));
    Bytes large(kLargeBuffer);
    EXPECT_FALSE(inside(large.data(), storage.bytes, 512));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(large.data()) % kPageSize, kLargeBufferPageOffset);
    small.resize(1000);  // grows past the heap: the vector moves to operator new and gives the old back
    EXPECT_FALSE(inside(small.data(), storage.bytes, 512));
}

}  // namespace
}  // namespace ipclab
