#include "server/session.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "ipc/error.hpp"
#include "ipc/io.hpp"

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

void write_quietly_failing(const std::string& line, int fd, const char* what) {
    try {
        write_all(fd, as_bytes(line), false, 5000, what);
    } catch (const std::exception&) {
    }
}

}  // namespace

void print_message_line(std::span<const std::byte> payload) {
    write_quietly_failing(format_message_line(payload), STDOUT_FILENO, "stdout");
}

void log_line(const std::string& line) { write_quietly_failing(line, STDERR_FILENO, "stderr"); }

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
    std::string line = "Here is the message: ";
    if (printable(payload)) {
        std::size_t n = payload.size();
        while (n > 0 && (payload[n - 1] == std::byte{'\n'} || payload[n - 1] == std::byte{'\r'})) --n;
        line.append(reinterpret_cast<const char*>(payload.data()), n);
    } else {
        line += "[" + std::to_string(payload.size()) + " bytes]";
    }
    line += '\n';
    return line;
}

void serve_channel(Channel& channel, const ServerOptions& options, SessionReport& report) {
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
    report.ending = "client closed";
}

SessionReport run_session(PendingSession& pending, const ServerOptions& options) {
    SessionReport report;
    report.peer = pending.peer();
    // The clock only serves the log line; a server that logs no sessions
    // (the benchmarks' peer) skips it: a fresh child's first clock read
    // costs page faults.
    const bool timed = options.log_sessions;
    auto start = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
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
    if (timed)
        report.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

std::string format_report(const SessionReport& r, long pid) {
    char buf[160];
    std::snprintf(buf, sizeof buf, " messages=%llu bytes_in=%llu bytes_out=%llu duration=%.3fs",
                  static_cast<unsigned long long>(r.messages),
                  static_cast<unsigned long long>(r.bytes_in),
                  static_cast<unsigned long long>(r.bytes_out), r.seconds);
    return "server: session ended pid=" + std::to_string(pid) + " peer=" + r.peer + buf +
           " end=\"" + r.ending + "\"\n";
}

}  // namespace ipclab
