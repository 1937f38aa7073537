#include "ipc/fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace ipclab {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(Fd, ClosesInDestructor) {
    int raw;
    {
        int p[2];
        ASSERT_EQ(::pipe(p), 0);
        Fd a(p[0]), b(p[1]);
        raw = a.get();
        EXPECT_TRUE(is_open(raw));
    }
    EXPECT_FALSE(is_open(raw));
}

TEST(Fd, MoveTransfersOwnership) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd a(p[0]);
    Fd keep(p[1]);
    Fd b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
    EXPECT_EQ(b.get(), p[0]);
    Fd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), p[0]);
    EXPECT_TRUE(is_open(p[0]));
}

TEST(Fd, ResetClosesOldAndReleaseDoesNot) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd a(p[0]);
    a.reset(p[1]);
    EXPECT_FALSE(is_open(p[0]));
    int raw = a.release();
    EXPECT_EQ(raw, p[1]);
    EXPECT_FALSE(a);
    EXPECT_TRUE(is_open(raw));
    ::close(raw);
}

}  // namespace
}  // namespace ipclab
