#include "ipc/random.hpp"

#include <sys/random.h>

#include "ipc/error.hpp"

namespace ipclab {

namespace {
std::vector<std::uint64_t> g_preset;  // reversed: the next draw is at the back
}

void preset_random_draws(std::vector<std::uint64_t> values) {
    g_preset.assign(values.rbegin(), values.rend());
}

std::uint64_t random_u64() {
    if (!g_preset.empty()) {
        std::uint64_t v = g_preset.back();
        g_preset.pop_back();
        return v;
    }
    std::uint64_t v = 0;
    auto* p = reinterpret_cast<unsigned char*>(&v);
    std::size_t got = 0;
    while (got < sizeof v) {  // 8 bytes never come short from the urandom pool, but be sure
        ssize_t n = ::getrandom(p + got, sizeof v - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("getrandom");
        }
        got += static_cast<std::size_t>(n);
    }
    return v;
}

std::string to_hex(std::uint64_t v, int digits) {
    static const char kDigits[] = "0123456789abcdef";
    std::string out(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = kDigits[v & 15];
    return out;
}

}  // namespace ipclab
