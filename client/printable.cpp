#include "client/printable.hpp"

#include <cstdio>

namespace ipclab {

namespace {

// Length of the valid UTF-8 sequence at s[i] that is not a control
// character (C1 controls are U+0080..U+009F, i.e. C2 80..C2 9F), else 0.
std::size_t printable_sequence(std::string_view s, std::size_t i) {
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c == '\t' || (c >= 0x20 && c < 0x7f)) return 1;
    std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((b(i + k) & 0xc0) != 0x80) return 0;
    if (c == 0xc2 && b(i + 1) < 0xa0) return 0;                 // C1 control
    if (c == 0xe0 && b(i + 1) < 0xa0) return 0;                 // overlong
    if (c == 0xed && b(i + 1) >= 0xa0) return 0;                // surrogate
    if (c == 0xf0 && b(i + 1) < 0x90) return 0;                 // overlong
    if (c == 0xf4 && b(i + 1) >= 0x90) return 0;                // above U+10FFFF
    return n;
}

}  // namespace

bool is_plain_text(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        std::size_t n = printable_sequence(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string escaped_text(std::string_view text, std::size_t cap) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size() && i < cap) {
        if (std::size_t n = printable_sequence(text, i); n > 0 && text[i] != '\t') {
            out.append(text.substr(i, n));
            i += n;
            continue;
        }
        unsigned char c = static_cast<unsigned char>(text[i++]);
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        }
    }
    if (i < text.size())
        out += " [... " + std::to_string(text.size() - i) + " more bytes cut]";
    return out;
}

}  // namespace ipclab
