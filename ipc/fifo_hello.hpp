// The hello of the FIFO rendezvous (ipc/fifo_rendezvous.hpp), which the fifo
// and shm transports share, and the fifo transport's file names (fifo.cpp).
//
//   hello  : 16 bytes, one atomic write (<= PIPE_BUF) client -> server on the
//            well-known FIFO (NAME.fifo, or NAME.shm for shm)
//            magic u32 "IPCF" | version u32 (1) | client pid u32 | serial u32, big-endian
//            serial: fifo, the client's n-th session; shm, its segment's random number
//   names  : in private_dir()
//            NAME.fifo                      the server's well-known FIFO (0600)
//            NAME.fifo.lock                 its InstanceLock
//            NAME.PID.SERIAL.c2s / .s2c     one session's FIFOs, created and removed
//                                           by the client PID (SERIAL: its n-th session)
//
// Header-only so tests can forge hellos and find session names.
#pragma once

#include <limits.h>
#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/objects.hpp"

namespace ipclab::fifo {

inline constexpr std::uint32_t kHelloMagic = 0x49504346;  // "IPCF"
inline constexpr std::uint32_t kHelloVersion = 1;
inline constexpr std::size_t kHelloSize = 16;
static_assert(kHelloSize <= PIPE_BUF, "a hello must be written atomically");

struct Hello {
    std::uint32_t pid = 0;
    std::uint32_t serial = 0;
};

using HelloBytes = std::array<std::byte, kHelloSize>;

inline HelloBytes encode_hello(const Hello& h, std::uint32_t version = kHelloVersion) {
    HelloBytes b{};
    put_u32(b.data(), kHelloMagic);
    put_u32(b.data() + 4, version);
    put_u32(b.data() + 8, h.pid);
    put_u32(b.data() + 12, h.serial);
    return b;
}

inline bool has_magic(const std::byte* p) { return get_u32(p) == kHelloMagic; }

// Throws ProtocolError for a wrong magic or version.
inline Hello decode_hello(std::span<const std::byte, kHelloSize> b) {
    if (!has_magic(b.data())) throw ProtocolError("hello has a wrong magic number");
    std::uint32_t version = get_u32(b.data() + 4);
    if (version != kHelloVersion)
        throw ProtocolError("hello has version " + std::to_string(version) + ", expected " +
                            std::to_string(kHelloVersion));
    return Hello{get_u32(b.data() + 8), get_u32(b.data() + 12)};
}

inline std::string well_known_path(const std::string& dir, const std::string& name) {
    return dir + "/" + name + ".fifo";
}

struct SessionPaths {
    std::string c2s, s2c;
};

inline SessionPaths session_paths(const std::string& dir, const std::string& name,
                                  std::uint32_t pid, std::uint32_t serial) {
    std::string base =
        dir + "/" + name + "." + std::to_string(pid) + "." + std::to_string(serial);
    return {base + ".c2s", base + ".s2c"};
}

// What a file name in the private directory is to this transport.
struct ParsedName {
    enum class Kind { well_known, lock, c2s, s2c } kind;
    std::string name;        // the endpoint name
    std::uint32_t pid = 0;   // c2s, s2c
    std::uint32_t serial = 0;
};

namespace detail {
inline std::optional<std::uint32_t> parse_u32(const std::string& s) {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    // to_string never pads: "007" is no name of ours (found by fuzz_fifo_hello).
    if (s.size() > 1 && s[0] == '0') return std::nullopt;
    unsigned long long v = std::stoull(s);
    if (v > 0xFFFFFFFFull) return std::nullopt;
    return static_cast<std::uint32_t>(v);
}
}  // namespace detail

// Parses from the right, since an endpoint name may itself contain dots.
inline std::optional<ParsedName> parse_file_name(const std::string& file) {
    if (auto name = strip_suffix(file, ".fifo.lock"))
        return ParsedName{ParsedName::Kind::lock, *name, 0, 0};
    if (auto name = strip_suffix(file, ".fifo"))
        return ParsedName{ParsedName::Kind::well_known, *name, 0, 0};
    auto c2s = strip_suffix(file, ".c2s");
    auto stem = c2s ? c2s : strip_suffix(file, ".s2c");
    if (!stem) return std::nullopt;
    const std::string& rest = *stem;
    auto dot_serial = rest.rfind('.');
    if (dot_serial == std::string::npos || dot_serial == 0) return std::nullopt;
    auto dot_pid = rest.rfind('.', dot_serial - 1);
    if (dot_pid == std::string::npos || dot_pid == 0) return std::nullopt;
    auto serial = detail::parse_u32(rest.substr(dot_serial + 1));
    auto pid = detail::parse_u32(rest.substr(dot_pid + 1, dot_serial - dot_pid - 1));
    if (!serial || !pid) return std::nullopt;
    return ParsedName{c2s ? ParsedName::Kind::c2s : ParsedName::Kind::s2c,
                      rest.substr(0, dot_pid), *pid, *serial};
}

}  // namespace ipclab::fifo
