// Error types of the ipc library. The library never prints and never exits:
// it throws one of these and the caller decides what the user sees.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ipclab {

// A system call failed; what() names the call and its context.
using SystemError = std::system_error;

// No data (or no room) within the allowed time.
struct TimeoutError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The peer broke the protocol: bad opening, unknown frame type, oversized message.
struct ProtocolError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A message larger than the receiver's limit (Limits::max_message).
struct OversizeError : ProtocolError {
    using ProtocolError::ProtocolError;
};

// The peer vanished: EOF in the middle of a message, reset, dead process.
struct PeerGone : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The peer answered with an error frame; what() is the peer's text.
struct RemoteError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A stop was requested (SIGINT/SIGTERM) while waiting.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted by a stop request") {}
};

// Another live process owns the endpoint ("already running, pid N").
struct AlreadyRunning : std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw SystemError(err, std::system_category(), what);
}

// Returns ret unless it is -1, in which case it throws naming `what`.
template <typename T>
T check(T ret, const char* what) {
    if (ret == T(-1)) throw_errno(what);
    return ret;
}

}  // namespace ipclab
