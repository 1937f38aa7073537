// Shared by the libFuzzer harnesses: how a harness reports a broken contract.
// A harness aborts (libFuzzer saves the input) when the parser misbehaves in
// a way the sanitizers cannot see: a wrong exception type, a result outside
// the documented bounds, a round trip that does not hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace ipclab::fuzz {

[[noreturn]] inline void contract_broken(const char* what) {
    std::fprintf(stderr, "contract broken: %s\n", what);
    std::abort();
}

inline void require(bool ok, const char* what) {
    if (!ok) contract_broken(what);
}

// Small receive limits keep every allocation far below -malloc_limit_mb and
// let the fuzzer reach the "exactly at the limit" edges with short inputs.
inline std::size_t pick_max_message(std::uint8_t selector) {
    static constexpr std::size_t kLimits[] = {0, 1, 2, 4, 5, 7, 8, 16, 64, 255, 256, 1000, 4096, 65535, 65536, 100000};
    return kLimits[selector % (sizeof kLimits / sizeof kLimits[0])];
}

}  // namespace ipclab::fuzz
