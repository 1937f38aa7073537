// Serving one session: the message handler that runs in a forked child.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ipc/channel.hpp"
#include "server/options.hpp"

namespace ipclab {

struct SessionReport {
    std::string peer;
    std::uint64_t messages = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    double seconds = 0;
    std::string ending = "client closed";
    bool clean = true;  // false: error, timeout, refusal, vanished peer
};

// Opens the pending session and serves it to its end. Never throws: every
// way a session can end is recorded in the report.
SessionReport run_session(PendingSession& pending, const ServerOptions& options);

// Serves an open channel: receive, print, reply, until the peer stops. A
// peer that closes leaves report.ending as it came (a new report's "client
// closed"): assigning the same words again was a fresh session child's first
// call into glibc's memcpy, a page of libc's code faulted in for nothing.
void serve_channel(Channel& channel, const ServerOptions& options, SessionReport& report);

// CLOCK_MONOTONIC in nanoseconds, through syscall(2) rather than the vDSO
// that clock_gettime and steady_clock::now() read: a fresh session child's
// first vDSO read faulted in the vDSO's code and data pages, which fork does
// not map into a child, and now() its own page of code (perf page-faults: 3
// of a logging session's 22), where the system call costs about 0.1 us and
// syscall() is code the child runs anyway (its tick's timer). The session's
// duration and the server loop's grace deadline (async-signal-safe: one
// system call) both read it.
std::int64_t monotonic_ns();

// "server: session ended pid=... peer=... messages=..." (one line, with '\n').
std::string format_report(const SessionReport& report, long pid);

// Writes that line to stderr, built on the stack: a forked session child
// logs its end without malloc (each first write to a heap page the parent
// shares is a copy-on-write fault) and without the printf family (whose
// code pages a fresh child faults in). Never throws.
void log_report(const SessionReport& report, long pid);

// A line built in a fixed buffer, spilling into a std::string only when it
// outgrows it (a very long peer name or error text).
class LineBuilder {
public:
    LineBuilder& append(std::string_view s);
    LineBuilder& append_uint(std::uint64_t v);
    LineBuilder& append_fixed3(double v);  // as printf's "%.3f" for 0 <= v < 1e15
    std::string_view view() const { return spilled_ ? std::string_view(spill_) : std::string_view(fixed_.data(), used_); }

private:
    std::array<char, 512> fixed_;
    std::size_t used_ = 0;
    bool spilled_ = false;
    std::string spill_;
};

// The line printed for each message ("Here is the message: ..."), with '\n'.
std::string format_message_line(std::span<const std::byte> payload);

// Prints that line on stdout in one writev, without building it on the
// heap; a closed or full stdout does not end the session (the reply matters
// more).
void print_message_line(std::span<const std::byte> payload);

// The replies a session gets: what its opening asked for, else --reply.
ReplyMode session_reply_mode(const ServerOptions& options, SessionReply asked);

// The reply to a message under `mode`: true and `reply` set (the payload
// itself or the seed's ack), or false for none (sink).
bool choose_reply(ReplyMode mode, std::span<const std::byte> payload, std::span<const std::byte>& reply);

// One line on stderr (session reports, the server's own lines); never throws.
void log_line(const std::string& line);

}  // namespace ipclab
