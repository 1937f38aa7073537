// Unguessable numbers for names in kernel-global namespaces.
//
// A name another local user can predict can be taken first (a squatter's
// object makes our O_EXCL create fail), so every per-session name carries
// bits from getrandom(2), and a taken name is replaced by a fresh draw,
// never retried as is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipclab {

// 64 bits from the kernel's CSPRNG; throws SystemError if it has none.
std::uint64_t random_u64();

// How many fresh names a creator tries before it gives up: a squatter
// would have to hold 2^32 names to make even one retry likely.
inline constexpr int kNameAttempts = 16;

// Tests only: the next draws return these values, in order, before the
// kernel's again - so a test can make a drawn name one a squatter holds.
// Forked children inherit what is left of them.
void preset_random_draws(std::vector<std::uint64_t> values);

// v as exactly `digits` lowercase hex digits (the low bits).
std::string to_hex(std::uint64_t v, int digits);

}  // namespace ipclab
