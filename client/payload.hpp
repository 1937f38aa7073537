// Generated payloads for --size: a sequence number and a pattern derived
// from it, so a reply can be checked byte for byte and matched to its request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ipc/page_buffer.hpp"

namespace ipclab {

void fill_payload(Bytes& out, std::uint64_t seq, std::size_t size);

// Returns the offset of the first differing byte, or nothing when equal.
std::optional<std::size_t> first_difference(std::span<const std::byte> a,
                                            std::span<const std::byte> b);

}  // namespace ipclab
