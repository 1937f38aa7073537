#include "server/session.hpp"

#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "ipc/copy_inline.hpp"
#include "ipc/decimal.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

namespace {

bool printable(std::span<const std::byte> bytes) {
    if (bytes.size() > 4096) return false;
    for (std::byte b : bytes) {
        auto c = static_cast<unsigned char>(b);
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
        if (c == 0x7f) return false;
    }
    return true;
}

IPCLAB_SESSION_PATH void write_quietly_failing(std::string_view line, int fd, const char* what) {
    try {
        write_all(fd, as_bytes(line), false, 5000, what);
    } catch (const std::exception&) {
    }
}

// The payload as the message line shows it: a printable payload without its
// line ending, else "[N bytes]" (written into `count`).
std::string_view shown_payload(std::span<const std::byte> payload, LineBuilder& count) {
    if (!printable(payload)) {
        count.append("[").append_uint(payload.size()).append(" bytes]");
        return count.view();
    }
    std::size_t n = payload.size();
    while (n > 0 && (payload[n - 1] == std::byte{'\n'} || payload[n - 1] == std::byte{'\r'})) --n;
    return {reinterpret_cast<const char*>(payload.data()), n};
}

constexpr std::string_view kMessagePrefix = "Here is the message: ";

IPCLAB_SESSION_PATH void build_report(const SessionReport& r, long pid, LineBuilder& line) {
    line.append("server: session ended pid=").append_uint(static_cast<std::uint64_t>(pid));
    line.append(" peer=").append(r.peer);
    line.append(" messages=").append_uint(r.messages);
    line.append(" bytes_in=").append_uint(r.bytes_in);
    line.append(" bytes_out=").append_uint(r.bytes_out);
    line.append(" duration=").append_fixed3(r.seconds).append("s");
    line.append(" end=\"").append(r.ending).append("\"\n");
}

}  // namespace

IPCLAB_SESSION_PATH std::int64_t monotonic_ns() {
    timespec ts{};  // stays 0 if the call failed, which it cannot for this clock
    ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

IPCLAB_SESSION_PATH LineBuilder& LineBuilder::append(std::string_view s) {
    if (!spilled_ && used_ + s.size() <= fixed_.size()) {
        // Inline moves for the line's short pieces: glibc's memcpy was a
        // page of code a fresh session child faulted in for its log line.
        copy_inline(reinterpret_cast<std::byte*>(fixed_.data() + used_), reinterpret_cast<const std::byte*>(s.data()),
                    s.size());
        used_ += s.size();
        return *this;
    }
    if (!spilled_) {
        spill_.assign(fixed_.data(), used_);
        spilled_ = true;
    }
    spill_.append(s);
    return *this;
}

IPCLAB_SESSION_PATH LineBuilder& LineBuilder::append_uint(std::uint64_t v) {
    char digits[20];
    return append({digits, static_cast<std::size_t>(put_decimal(digits, v) - digits)});
}

IPCLAB_SESSION_PATH LineBuilder& LineBuilder::append_fixed3(double v) {
    // printf's "%.3f", whose code a session child would fault in to print one number.
    if (!(v >= 0) || v >= 1e15) return append(v < 0 ? "-" : "?");
    // Rounded half up by hand (v >= 0 here): llround was libm's code, one
    // more page a fresh session child faulted in for its log line.
    auto ms = static_cast<std::uint64_t>(v * 1000 + 0.5);
    append_uint(ms / 1000).append(".");
    char frac[3] = {static_cast<char>('0' + ms / 100 % 10), static_cast<char>('0' + ms / 10 % 10),
                    static_cast<char>('0' + ms % 10)};
    return append({frac, 3});
}

void print_message_line(std::span<const std::byte> payload) {
    LineBuilder count;
    std::string_view shown = shown_payload(payload, count);
    // One writev of the prefix, the payload and the newline: nothing copied into a heap string.
    struct iovec iov[3] = {{const_cast<char*>(kMessagePrefix.data()), kMessagePrefix.size()},
                           {const_cast<char*>(shown.data()), shown.size()},
                           {const_cast<char*>("\n"), 1}};
    try {
        write_all(STDOUT_FILENO, iov, 3, false, 5000, "stdout");
    } catch (const std::exception&) {
    }
}

void log_line(const std::string& line) { write_quietly_failing(line, STDERR_FILENO, "stderr"); }

IPCLAB_SESSION_PATH void log_report(const SessionReport& report, long pid) {
    LineBuilder line;
    build_report(report, pid, line);
    write_quietly_failing(line.view(), STDERR_FILENO, "stderr");
}

ReplyMode session_reply_mode(const ServerOptions& options, SessionReply asked) {
    switch (asked) {
        case SessionReply::ack: return ReplyMode::ack;
        case SessionReply::echo: return ReplyMode::echo;
        case SessionReply::sink: return ReplyMode::sink;
        case SessionReply::server_default: break;
    }
    return options.reply;
}

bool choose_reply(ReplyMode mode, std::span<const std::byte> payload, std::span<const std::byte>& reply) {
    if (mode == ReplyMode::sink && !payload.empty()) return false;
    reply = mode == ReplyMode::echo ? payload : as_bytes(kAckText);
    return true;
}

std::string format_message_line(std::span<const std::byte> payload) {
    LineBuilder count;
    std::string_view shown = shown_payload(payload, count);
    std::string line(kMessagePrefix);
    line.append(shown);
    line += '\n';
    return line;
}

IPCLAB_SESSION_PATH void serve_channel(Channel& channel, const ServerOptions& options, SessionReport& report) {
    const ReplyMode mode = session_reply_mode(options, channel.asked_reply());
    Message msg;
    while (channel.receive(msg)) {
        ++report.messages;
        report.bytes_in += msg.payload.size();
        if (msg.type == FrameType::error) {
            report.ending = "client sent an error frame";
            report.clean = false;
            return;
        }
        if (!options.quiet) print_message_line(msg.payload);
        std::span<const std::byte> reply;
        if (!choose_reply(mode, msg.payload, reply)) continue;
        channel.send(FrameType::data, reply);
        report.bytes_out += reply.size();
    }
}

IPCLAB_SESSION_PATH SessionReport run_session(PendingSession& pending, const ServerOptions& options) {
    SessionReport report;
    // The peer's name and the clock only serve the log line; a server that
    // logs no sessions (the benchmarks' peer) skips both: a fresh child's
    // first clock read costs page faults, and copying the name was its first
    // call into glibc's memcpy, a page of code it faulted in for nothing.
    const bool timed = options.log_sessions;
    if (timed) report.peer = pending.peer();
    const std::int64_t start = timed ? monotonic_ns() : 0;
    std::unique_ptr<Channel> channel;
    auto refuse = [&](const std::exception& e, const char* kind) {
        report.ending = std::string(kind) + ": " + e.what();
        report.clean = false;
        // Tell the client why, if it is still listening; the session ends either way.
        if (channel) {
            try {
                channel->send(FrameType::error, as_bytes(e.what()));
            } catch (const std::exception&) {
            }
        }
    };
    try {
        channel = pending.open(options.limits);
        serve_channel(*channel, options, report);
    } catch (const OversizeError& e) {
        refuse(e, "refused");
    } catch (const ProtocolError& e) {
        refuse(e, "protocol error");
    } catch (const TimeoutError&) {
        report.ending = "idle timeout";
        report.clean = false;
    } catch (const PeerGone& e) {
        report.ending = std::string("peer vanished (") + e.what() + ")";
        report.clean = false;
    } catch (const Interrupted&) {
        report.ending = "ended by server shutdown";
        report.clean = false;
    } catch (const std::exception& e) {
        report.ending = std::string("error: ") + e.what();
        report.clean = false;
    }
    channel.reset();  // removes per-session objects before the report goes out
    if (timed) report.seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
    return report;
}

std::string format_report(const SessionReport& r, long pid) {
    LineBuilder line;
    build_report(r, pid, line);
    return std::string(line.view());
}

}  // namespace ipclab
