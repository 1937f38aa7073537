#include "client/payload.hpp"

#include <algorithm>
#include <cstring>

#include "ipc/framing.hpp"

namespace ipclab {

void fill_payload(Bytes& out, std::uint64_t seq, std::size_t size) {
    out.resize(size);
    auto mix = static_cast<std::uint8_t>(seq * 131u + 17u);
    for (std::size_t i = 0; i < size; ++i)
        out[i] = static_cast<std::byte>(static_cast<std::uint8_t>(mix + i * 7u + (i >> 8)));
    if (size >= 8) put_u64(out.data(), seq);
}

std::optional<std::size_t> first_difference(std::span<const std::byte> a,
                                            std::span<const std::byte> b) {
    std::size_t n = std::min(a.size(), b.size());
    // Empty spans may carry null pointers, which memcmp must never see.
    if (n == 0 || std::memcmp(a.data(), b.data(), n) == 0)
        return a.size() == b.size() ? std::nullopt : std::optional<std::size_t>(n);
    auto mm = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
    return static_cast<std::size_t>(mm.first - a.begin());
}

}  // namespace ipclab
