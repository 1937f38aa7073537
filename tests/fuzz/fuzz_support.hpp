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

// The opening rules of ipc/framing.hpp written out again from the format's
// description, so the harnesses check the parser against an independent
// reading: 00 'IPCLAB' then version 1, or version 2 and a reply mode 1-3.
struct ExpectedOpening {
    bool valid = false;       // a whole opening ours
    std::size_t size = 0;     // its bytes
    std::uint8_t mode = 0;    // 0: version 1 (the server's --reply); 1 ack, 2 echo, 3 sink
};

inline ExpectedOpening expected_opening(const std::uint8_t* wire, std::size_t n) {
    static constexpr std::uint8_t kPrefix[] = {0, 'I', 'P', 'C', 'L', 'A', 'B'};
    ExpectedOpening e;
    if (n < 8) return e;
    for (std::size_t i = 0; i < sizeof kPrefix; ++i)
        if (wire[i] != kPrefix[i]) return e;
    if (wire[7] == 1) return {true, 8, 0};
    if (wire[7] == 2 && n >= 9 && wire[8] >= 1 && wire[8] <= 3) return {true, 9, wire[8]};
    return e;
}

}  // namespace ipclab::fuzz
