// copy_inline: short copies as inline moves (ipc/copy_inline.hpp).
#include "ipc/copy_inline.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>

namespace ipclab {
namespace {

// Every length through each of its size classes (1-3, 4-7, 8-15, 16-32,
// 33-64, then memcpy) and every alignment of source and destination: exactly
// the n bytes are copied, and nothing before or after them is written.
TEST(CopyInline, CopiesExactlyTheBytesAskedForAtAnyLengthAndAlignment) {
    constexpr std::size_t kMax = 130, kGuard = 16;
    std::array<std::byte, kMax + 2 * kGuard + 16> src{}, dst{};
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>(i * 7 + 1);
    for (std::size_t n = 0; n <= kMax; ++n) {
        for (std::size_t s = 0; s < 16; ++s) {
            for (std::size_t d = 0; d < 16; d += 5) {
                dst.fill(std::byte{0xee});
                copy_inline(dst.data() + kGuard + d, src.data() + s, n);
                for (std::size_t i = 0; i < dst.size(); ++i) {
                    bool inside = i >= kGuard + d && i < kGuard + d + n;
                    std::byte want = inside ? src[s + i - kGuard - d] : std::byte{0xee};
                    ASSERT_EQ(dst[i], want) << "n=" << n << " src+" << s << " dst+" << d << " at " << i;
                }
            }
        }
    }
}

}  // namespace
}  // namespace ipclab
