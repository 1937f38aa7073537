// Unsigned integers as decimal digits, without printf or a table.
#pragma once

#include <cstdint>

namespace ipclab {

// Writes v's decimal digits at `at` (up to 20 for a 64-bit value) and
// returns the end. Inline and table-free: a fork server's session child
// formats its log line and peer's name with it, where printf's machinery
// or std::to_chars's out-of-line template and .rodata table were pages of
// code and data it faulted in for nothing else (ipc/session_path.hpp).
[[gnu::always_inline]] inline char* put_decimal(char* at, std::uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) *at++ = digits[--n];
    return at;
}

}  // namespace ipclab
