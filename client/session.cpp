#include "client/session.hpp"

#include <poll.h>

#include <chrono>
#include <istream>
#include <ostream>
#include <vector>

#include "client/latency.hpp"
#include "client/payload.hpp"
#include "client/printable.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/shm_stats.hpp"
#include "ipc/registry.hpp"

namespace ipclab {

namespace {

// After the first reply bytes, this much silence means the reply is complete
// (the seed's server neither frames nor terminates its reply).
constexpr int kReplySettleMs = 200;
// A line reply's first allocation: enough for any ordinary reply.
constexpr std::size_t kFirstReplyRoom = 64 * 1024;

std::string read_message_line(const ClientOptions& options, std::istream& in, std::ostream& out) {
    if (options.message) return *options.message;
    out << "Please enter the message: " << std::flush;
    std::string line;
    if (!std::getline(in, line)) throw std::runtime_error("no message on standard input");
    return line;
}

// A reply prints as itself when it is plain text, else as its size: the
// server is not trusted to send the terminal anything but text. Written
// from the reply's own bytes: no copy of a reply of up to --max-message.
void print_reply(std::ostream& out, std::span<const std::byte> reply) {
    std::string_view s(reinterpret_cast<const char*>(reply.data()), reply.size());
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
    if (is_plain_text(s))
        out << s << "\n";
    else
        out << "[" << reply.size() << " bytes]\n";
}

void check_reply(const Message& reply, std::span<const std::byte> sent, std::size_t index) {
    if (reply.type == FrameType::error)
        throw RemoteError("server refused message " + std::to_string(index) + ": " +
                          escaped_text(std::string_view(
                              reinterpret_cast<const char*>(reply.payload.data()),
                              reply.payload.size())));
    auto diff = first_difference(reply.payload, sent);
    if (!diff) return;
    if (first_difference(reply.payload, as_bytes(kAckText)) == std::nullopt)
        throw std::runtime_error(
            "--verify: the server acknowledged instead of echoing; start it with --reply echo");
    throw std::runtime_error("--verify: reply " + std::to_string(index) + " (" +
                             std::to_string(reply.payload.size()) + " bytes) differs from the " +
                             std::to_string(sent.size()) + "-byte payload at byte " +
                             std::to_string(*diff));
}

}  // namespace

std::string line_exchange(const Fd& fd, const std::string& line, const Limits& limits) {
    // One deadline for the whole exchange: bytes trickling in never extend it.
    WaitCap cap(limits.timeout_ms);
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    write_all(fd.get(), as_bytes(line), true, limits.timeout_ms, "message");
    std::string reply;
    // The reply is one line: max_message bytes and its terminator at most.
    const std::size_t limit = limits.max_message + 1;
    char buf[4096];
    for (;;) {
        int left = deadline.remaining_ms();
        int wait = reply.empty() || left == 0 ? left
                   : left < 0                 ? kReplySettleMs
                                              : std::min(left, kReplySettleMs);
        if (!wait_fd(fd.get(), POLLIN, wait, "reply")) {
            if (reply.empty()) throw TimeoutError("no reply within the timeout");
            if (deadline.expired())
                throw TimeoutError("the reply was not complete within the timeout (" +
                                   std::to_string(reply.size()) + " bytes so far)");
            return reply;
        }
        std::size_t n = read_some(fd.get(), buf, std::min(sizeof buf, limit + 1 - reply.size()), "reply");
        if (n == 0) {
            if (reply.empty()) throw PeerGone("the server closed the connection without replying");
            return reply;
        }
        // Past the first 64 KiB, room for the whole limit at once: pages are
        // touched only as bytes arrive, and no reallocation ever holds the
        // reply twice, so a flood costs --max-message plus a constant.
        if (reply.size() + n > reply.capacity())
            reply.reserve(reply.size() + n <= kFirstReplyRoom ? std::min(limit + 1, kFirstReplyRoom)
                                                              : limit + 1);
        reply.append(buf, n);
        if (reply.size() > limit)
            throw OversizeError("the reply exceeds --max-message (" +
                                std::to_string(limits.max_message) + " bytes)");
        if (reply.back() == '\n' || reply == kAckText) return reply;
    }
}

namespace {

// The client's reply deadline, reported as such (the transport's own
// message would name a single wait).
void round_trip(Channel& channel, std::span<const std::byte> payload, Message& reply,
                std::size_t index, const ClientOptions& options) {
    WaitCap cap(options.limits.timeout_ms);
    try {
        channel.send(FrameType::data, payload);
        if (!channel.receive(reply))
            throw PeerGone("the server ended the session after " + std::to_string(index) +
                           (options.duration_s > 0 ? std::string() : " of " + std::to_string(options.count)) +
                           " messages");
    } catch (const TimeoutError&) {
        throw TimeoutError("no complete reply to message " + std::to_string(index) + " within " +
                           std::to_string(options.limits.timeout_ms) + " ms");
    }
}

std::unique_ptr<Channel> connect_within(const Endpoint& ep, const Limits& limits) {
    WaitCap cap(limits.timeout_ms);
    try {
        return connect(ep, limits);
    } catch (const TimeoutError& e) {
        throw TimeoutError(std::string(e.what()) + " (connect took longer than " +
                           std::to_string(limits.timeout_ms) + " ms)");
    }
}

}  // namespace

namespace {

void line_session(const Endpoint& ep, const ClientOptions& options, std::istream& in, std::ostream& out) {
    // As the seed does: connect first, so a missing server is said before
    // anyone types a message.
    Fd fd = connect_stream(ep, options.limits.timeout_ms);
    std::string line = read_message_line(options, in, out);
    std::string reply = line_exchange(fd, line + "\n", options.limits);
    // An ipclab server refuses a line with "error: TEXT\n" (its text
    // channel's error frame): a failure, reported like a framed one.
    constexpr std::string_view kRefusal = "error: ";
    if (std::string_view(reply).substr(0, kRefusal.size()) == kRefusal) {
        std::string_view text = std::string_view(reply).substr(kRefusal.size());
        if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
        throw RemoteError("server refused the message: " + escaped_text(text));
    }
    print_reply(out, as_bytes(reply));
}

std::string waits_line(const char* who, const WaitCounts& w) {
    return std::string(who) + " waits: " + std::to_string(w.immediate) + " immediate, " + std::to_string(w.spun) +
           " spun, " + std::to_string(w.slept) + " slept\n";
}

std::string waits_json(const char* who, const WaitCounts& w) {
    return std::string("\"") + who + "\": {\"immediate\": " + std::to_string(w.immediate) +
           ", \"spun\": " + std::to_string(w.spun) + ", \"slept\": " + std::to_string(w.slept) + "}";
}

}  // namespace

void run_client(const Endpoint& ep, const ClientOptions& options, std::istream& in,
                std::ostream& out) {
    if (uses_line_mode(ep, options)) return line_session(ep, options, in, out);

    auto channel = connect_within(ep, options.limits);
    std::vector<std::byte> payload;
    if (!options.size) {
        std::string text = read_message_line(options, in, out);
        payload.assign(as_bytes(text).begin(), as_bytes(text).end());
    }
    std::vector<std::uint64_t> samples;
    samples.reserve(options.stats && options.duration_s <= 0 ? options.count : 0);
    RunStats run;
    std::size_t sent = 0;
    bool interrupted = false;
    Message reply;
    auto start = std::chrono::steady_clock::now();
    auto until = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(options.duration_s));
    for (std::size_t i = 0; i < options.count; ++i) {
        if (options.duration_s > 0 && std::chrono::steady_clock::now() >= until) break;
        if (options.size) fill_payload(payload, i, *options.size);
        auto t0 = std::chrono::steady_clock::now();
        try {
            if (stop_requested()) throw Interrupted();
            round_trip(*channel, payload, reply, i, options);
        } catch (const Interrupted&) {
            // Ctrl-C on a long run: what was measured so far is still reported.
            if (!options.stats) throw;
            interrupted = true;
            break;
        }
        auto t1 = std::chrono::steady_clock::now();
        if (options.stats)
            samples.push_back(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
        if (reply.type == FrameType::error || options.verify) check_reply(reply, payload, i);
        run.bytes_out += payload.size();
        run.bytes_in += reply.payload.size();
        ++sent;
    }
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    run.payload_size = payload.size();
    // How each side waited, so a spinning run says whether it really spun.
    std::string waits, waits_js;
    if (auto counts = shm_session_counts(*channel)) {
        waits = waits_line("client", counts->local) + waits_line("server", counts->peer);
        waits_js = "{" + waits_json("client", counts->local) + ", " + waits_json("server", counts->peer) + "}";
    }
    channel.reset();  // end the session (and remove our objects) before reporting

    std::string verified = options.verify ? "verified: all " + std::to_string(sent) +
                                                " replies equal their payloads byte for byte (" +
                                                std::to_string(run.bytes_in) + " bytes)\n"
                                          : "";
    if (options.stats) {
        run.latency = summarize(samples);
        if (options.json)
            out << format_stats_json(run, ep.transport, options.verify, interrupted, waits_js);
        else
            out << format_stats(run) << waits << verified;
    } else if (sent == 1 && options.duration_s <= 0) {
        print_reply(out, reply.payload);
        out << verified;
    } else {
        out << sent << " messages sent (" << run.bytes_out << " bytes), " << sent << " replies received ("
            << run.bytes_in << " bytes)\n"
            << verified;
    }
    if (interrupted) throw Interrupted();
}

bool uses_line_mode(const Endpoint& ep, const ClientOptions& o) {
    if (!transport_info(ep.transport).connect_stream) return false;
    if (o.mode != ClientMode::automatic) return o.mode == ClientMode::line;
    return o.count == 1 && !o.size && !o.verify && !o.stats && o.duration_s <= 0;
}

}  // namespace ipclab
