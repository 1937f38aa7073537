// Short copies as a few inline moves instead of a call into libc.
#pragma once

#include <cstddef>
#include <cstring>

namespace ipclab {

// Copies n bytes between buffers that do not overlap: up to 64 bytes as two
// to four fixed-size moves that the compiler emits in place (overlapping
// pieces, the way glibc's memcpy itself does short copies), longer ones
// through std::memcpy. Why not always memcpy: a forked session child's first
// small copy (the request taken out of its read buffer, the reply put into a
// frame) was a call into glibc's memmove, whose code sits in a 64 KiB window
// of libc that no other call of the session touches: one page fault in every
// fresh child (perf page-faults: __memmove_avx512_unaligned_erms, 1 of 17).
[[gnu::always_inline]] inline void copy_inline(std::byte* dst, const std::byte* src, std::size_t n) {
    if (n > 64) {
        std::memcpy(dst, src, n);
    } else if (n >= 16) {
        if (n > 32) {
            std::memcpy(dst, src, 16);
            std::memcpy(dst + 16, src + 16, 16);
            std::memcpy(dst + n - 32, src + n - 32, 16);
        } else {
            std::memcpy(dst, src, 16);
        }
        std::memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8) {
        std::memcpy(dst, src, 8);
        std::memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        std::memcpy(dst, src, 4);
        std::memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n > 0) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

}  // namespace ipclab
