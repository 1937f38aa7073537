// The server's table of live children: inline first, a vector beyond.
#include "server/live_children.hpp"

#include <gtest/gtest.h>

#include <set>

namespace ipclab {
namespace {

std::set<pid_t> contents(const LiveChildren& live) {
    std::set<pid_t> s;
    live.for_each([&](pid_t pid) { s.insert(pid); });
    return s;
}

TEST(LiveChildren, AddsAndRemovesWithinTheInlineTable) {
    LiveChildren live;
    live.add(10);
    live.add(11);
    live.add(12);
    EXPECT_EQ(live.size(), 3u);
    live.remove(11);
    live.remove(99);  // not there: nothing changes
    EXPECT_EQ(contents(live), (std::set<pid_t>{10, 12}));
    live.remove(10);
    live.remove(12);
    EXPECT_EQ(live.size(), 0u);
    EXPECT_TRUE(contents(live).empty());
}

TEST(LiveChildren, BeyondTheInlineTableEveryPidIsKeptAndEachRemoveFindsIt) {
    const pid_t n = static_cast<pid_t>(LiveChildren::kInline) * 3 + 5;
    LiveChildren live;
    live.reserve(static_cast<std::size_t>(n));
    std::set<pid_t> expected;
    for (pid_t p = 100; p < 100 + n; ++p) {
        live.add(p);
        expected.insert(p);
    }
    EXPECT_EQ(live.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(contents(live), expected);
    // Remove from the inline part (refilled from the vector) and from the vector, alternately.
    for (pid_t p = 100; p < 100 + n; p += 3) {
        live.remove(p);
        expected.erase(p);
        live.remove(100 + n - 1 - (p - 100));
        expected.erase(100 + n - 1 - (p - 100));
        ASSERT_EQ(live.size(), expected.size());
        ASSERT_EQ(contents(live), expected);
    }
    for (pid_t p : std::set<pid_t>(expected)) {
        live.remove(p);
        expected.erase(p);
    }
    EXPECT_EQ(live.size(), 0u);
    live.add(7);  // usable again
    EXPECT_EQ(contents(live), (std::set<pid_t>{7}));
}

}  // namespace
}  // namespace ipclab
