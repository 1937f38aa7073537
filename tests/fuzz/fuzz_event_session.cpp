// The event loop's incremental parser (server --model epoll): a session's
// bytes arrive in pieces of a fuzzed size, the loop runs between pieces,
// then the peer shuts its side and the loop runs until the session ends.
//
//   input: max_message selector (1 byte) | piece size (1 byte) | bytes on the wire
//
// Contract (server/event_loop.hpp, with --reply echo): the session ends by
// itself once the peer has shut its side (nothing waits for more), and what
// comes back is exactly what the blocking server would send: framed, one
// data frame answering each whole data frame before the first bad, error or
// incomplete one (its echo, or under a version-2 opening the reply mode it
// asked for: the ack, or for a sink only an empty message's ack), then
// possibly one error frame; text, the input itself up to
// the first line over max_message, then possibly "error: ...\n".
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "server/event_loop.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ipclab;
using ipclab::fuzz::require;

namespace {

// Reads what the server sent so far (non-blocking).
void drain(int fd, std::string& out) {
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// The replies of a framed session (opening of `opening` bytes asking for
// `mode`, 0: the server's echo): one per whole data frame before the first
// frame that is bad (type, length), an error frame or cut short.
std::vector<std::string> expected_replies(const std::uint8_t* wire, std::size_t n, std::size_t max_message,
                                          std::size_t opening, std::uint8_t mode) {
    const std::string ack(kAckText);
    std::vector<std::string> out;
    std::size_t at = opening;
    while (at + kFrameHeaderSize <= n) {
        std::uint8_t type = wire[at];
        std::uint32_t len = be32(wire + at + 1);
        if ((type != 1 && type != 2) || len > max_message || type == 2) break;
        if (at + kFrameHeaderSize + len > n) break;
        if (mode == 0 || mode == 2)
            out.emplace_back(reinterpret_cast<const char*>(wire + at + kFrameHeaderSize), len);
        else if (mode == 1 || len == 0)
            out.push_back(ack);
        at += kFrameHeaderSize + len;
    }
    return out;
}

void check_framed(const std::uint8_t* wire, std::size_t n, std::size_t max_message, const std::string& got) {
    auto opening = fuzz::expected_opening(wire, n);
    if (!opening.valid) {
        require(got.empty(), "a reply to a session without a valid opening");
        return;
    }
    auto expected = expected_replies(wire, n, max_message, opening.size, opening.mode);
    std::size_t at = 0, i = 0;
    while (at < got.size()) {
        require(got.size() - at >= kFrameHeaderSize, "a reply frame cut short");
        auto type = static_cast<std::uint8_t>(got[at]);
        std::uint32_t len = be32(reinterpret_cast<const std::uint8_t*>(got.data() + at + 1));
        require(got.size() - at - kFrameHeaderSize >= len, "a reply payload cut short");
        std::string payload = got.substr(at + kFrameHeaderSize, len);
        at += kFrameHeaderSize + len;
        if (type == 2) {
            require(at == got.size(), "bytes after the error frame");
            break;
        }
        require(type == 1, "a reply frame of unknown type");
        require(i < expected.size(), "more replies than whole frames sent");
        require(payload == expected[i], "a reply differs from the one its frame asked for");
        ++i;
    }
    require(i == expected.size(), "a whole frame got no reply");
}

void check_text(const std::uint8_t* wire, std::size_t n, std::size_t max_message, const std::string& got) {
    std::string input(reinterpret_cast<const char*>(wire), n);
    // The echo of every line before the first one too long for max_message.
    std::size_t ok = 0;
    bool refused = false;
    while (ok < n) {
        std::size_t nl = input.find('\n', ok);
        std::size_t len = nl == std::string::npos ? n - ok : nl - ok + 1;
        std::size_t payload = nl == std::string::npos ? len : len - 1;  // the terminator is not payload
        if (payload > max_message) {
            refused = true;
            break;
        }
        ok += len;
    }
    require(got.compare(0, ok, input, 0, ok) == 0 && got.size() >= ok, "the text echo differs from the lines sent");
    if (refused)
        require(got.compare(ok, 7, "error: ") == 0 && got.back() == '\n', "an oversize line without its error line");
    else
        require(got.size() == ok, "bytes after the text echo");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    ServerOptions options;
    options.reply = ReplyMode::echo;
    options.quiet = true;
    options.log_sessions = false;
    options.limits.max_message = fuzz::pick_max_message(data[0]);
    options.limits.timeout_ms = 10000;
    const std::size_t piece = 1 + data[1] % 64;
    const std::uint8_t* wire = data + 2;
    const std::size_t n = size - 2;

    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -1;
    Fd server_end(fds[0]), peer(fds[1]);
    EventLoop loop(options);
    loop.add_session(std::move(server_end), "fuzz");
    std::string got;
    for (std::size_t at = 0; at < n && loop.sessions() > 0; at += piece) {
        std::size_t len = std::min(piece, n - at);
        if (::send(peer.get(), wire + at, len, MSG_NOSIGNAL) != static_cast<ssize_t>(len)) break;  // refused: it closed
        loop.run_once(0);
        drain(peer.get(), got);
    }
    ::shutdown(peer.get(), SHUT_WR);
    for (int i = 0; i < 1000 && loop.sessions() > 0; ++i) {
        loop.run_once(10);
        drain(peer.get(), got);
    }
    require(loop.sessions() == 0, "the session did not end after the peer shut its side");
    drain(peer.get(), got);
    if (n > 0 && wire[0] == 0)
        check_framed(wire, n, options.limits.max_message, got);
    else
        check_text(wire, n, options.limits.max_message, got);
    return 0;
}
