// What of a peer's bytes may reach the user's terminal.
//
// A server is not trusted: its reply or error text may hold escape
// sequences (clear screen, colours, '\r' overwriting a line) or be huge.
// Printed text is valid UTF-8 without control characters (C0, DEL, C1).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ipclab {

// How much of a peer's error text is printed.
inline constexpr std::size_t kPeerTextCap = 512;

// True when text prints as itself: valid UTF-8 with no control character
// except tab.
bool is_plain_text(std::string_view text);

// text with control characters and invalid UTF-8 bytes escaped (\n, \r, \t,
// \xHH), cut after `cap` input bytes with a note saying how many were cut.
std::string escaped_text(std::string_view text, std::size_t cap = kPeerTextCap);

}  // namespace ipclab
