#include "server/event_loop.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "ipc/error.hpp"
#include "ipc/framing.hpp"
#include "ipc/io.hpp"
#include "server/session.hpp"

namespace ipclab {

namespace {

// Bytes one session may read per wake-up before the loop turns to the
// others: a peer that floods cannot starve the rest.
constexpr std::size_t kReadBudget = 256 * 1024;
// A session's first buffer; a big message grows it, and a buffer larger
// than kKeepBuffer is freed once empty, so idle sessions stay small.
constexpr std::size_t kSmallBuffer = 4096;
constexpr std::size_t kKeepBuffer = 64 * 1024;
// Replies queued but not yet taken by the socket beyond which a session is
// no longer read: a peer that sends without reading costs this much (plus
// the message being answered), not an unbounded queue.
constexpr std::size_t kMaxQueued = 1 << 20;
// Idle deadlines are checked by one scan of all sessions this often, not
// per event: a session may outlive its timeout by this much.
constexpr auto kExpiryTick = std::chrono::milliseconds(100);
constexpr int kMaxEvents = 64;

// Bytes in [pos, end) of one allocation. Not a vector: zero-filling would
// touch every page of a large message before its bytes arrive.
class ByteBuffer {
public:
    std::size_t size() const { return end_ - pos_; }
    const std::byte* data() const { return buf_.get() + pos_; }
    void consume(std::size_t n) {
        pos_ += n;
        if (pos_ == end_) pos_ = end_ = 0;
    }
    // Room for n more bytes: compacts, then grows geometrically but never
    // past cap_hint (the size of the message being read, when known).
    std::byte* room(std::size_t n, std::size_t cap_hint = std::numeric_limits<std::size_t>::max()) {
        if (cap_ - end_ >= n) return buf_.get() + end_;
        if (pos_ > 0) {
            std::memmove(buf_.get(), buf_.get() + pos_, size());
            end_ -= pos_;
            pos_ = 0;
        }
        if (cap_ - end_ < n) {
            std::size_t grown = std::max(end_ + n, std::min(std::max(cap_ * 2, kSmallBuffer), cap_hint));
            std::unique_ptr<std::byte[]> bigger(new std::byte[grown]);
            if (end_ > 0) std::memcpy(bigger.get(), buf_.get(), end_);
            buf_ = std::move(bigger);
            cap_ = grown;
        }
        return buf_.get() + end_;
    }
    void commit(std::size_t n) { end_ += n; }
    void append(std::span<const std::byte> bytes) {
        if (bytes.empty()) return;
        std::memcpy(room(bytes.size()), bytes.data(), bytes.size());
        commit(bytes.size());
    }
    void clear() { pos_ = end_ = 0; }
    // Frees a large allocation once it is empty.
    void trim() {
        if (size() == 0 && cap_ > kKeepBuffer) {
            buf_.reset();
            cap_ = pos_ = end_ = 0;
        }
    }

private:
    std::unique_ptr<std::byte[]> buf_;
    std::size_t cap_ = 0, pos_ = 0, end_ = 0;
};

}  // namespace

class EventSession {
public:
    using Clock = std::chrono::steady_clock;

    EventSession(Fd socket, std::string peer, const ServerOptions& options)
        : fd_(std::move(socket)), options_(options), last_progress_(Clock::now()), start_(last_progress_) {
        set_nonblocking(fd_.get(), true);
        report_.peer = std::move(peer);
    }

    int fd() const { return fd_.get(); }
    SessionReport& report() { return report_; }
    Clock::time_point start() const { return start_; }
    Clock::time_point last_progress() const { return last_progress_; }
    std::uint32_t registered = 0;  // the interest epoll holds for it now

    // What to wait for: input unless the peer ended it, the session is
    // closing or its reply queue is full; room for output while replies wait.
    std::uint32_t interest() const {
        std::uint32_t e = 0;
        if (!eof_ && !closing_ && out_.size() < kMaxQueued) e |= EPOLLIN;
        if (out_.size() > 0) e |= EPOLLOUT;
        return e;
    }

    // Serves what is ready: writes queued replies, reads, answers every
    // whole message. True when the session has ended (its report says how).
    bool on_ready() {
        try {
            flush();
            if (interest() & EPOLLIN) read_input();
            parse();
            flush();
            if (closing_) return out_.size() == 0;
            return eof_ && in_.size() == 0 && out_.size() == 0;  // "client closed", the report's default
        } catch (const OversizeError& e) {
            return refuse(e.what(), "refused");
        } catch (const ProtocolError& e) {
            return refuse(e.what(), "protocol error");
        } catch (const PeerGone& e) {
            end(std::string("peer vanished (") + e.what() + ")");
        } catch (const std::exception& e) {
            end(std::string("error: ") + e.what());
        }
        return true;
    }

    void end(std::string ending) {
        report_.ending = std::move(ending);
        report_.clean = false;
    }

private:
    enum class Mode { opening, framed, text };

    void progress() { last_progress_ = Clock::now(); }

    // Bytes the message being read still lacks, when its size is known.
    std::size_t missing() const { return need_ > in_.size() ? need_ - in_.size() : 0; }

    void read_input() {
        std::size_t budget = kReadBudget;
        while (budget > 0) {
            // A message of known size is read in pieces as large as what it
            // lacks; a line in pieces that grow with what is buffered.
            std::size_t want = std::clamp(need_ > 0 ? missing() : in_.size(), kSmallBuffer, budget);
            std::byte* at = in_.room(want, need_ > 0 ? need_ : std::numeric_limits<std::size_t>::max());
            ssize_t n = ::recv(fd_.get(), at, want, 0);
            if (n > 0) {
                in_.commit(static_cast<std::size_t>(n));
                budget -= std::min(budget, static_cast<std::size_t>(n));
                progress();
                if (static_cast<std::size_t>(n) < want) return;  // drained: epoll says when there is more
                continue;
            }
            if (n == 0) {
                eof_ = true;
                return;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == ECONNRESET) throw PeerGone("connection reset reading stream");
            throw_errno("read session");
        }
    }

    // Answers every whole message buffered, until the reply queue is full.
    void parse() {
        while (!closing_ && out_.size() < kMaxQueued) {
            if (mode_ == Mode::opening) {
                if (in_.size() == 0) return;
                if (in_.data()[0] != std::byte{0}) {
                    mode_ = Mode::text;
                    continue;
                }
                Opening opening = parse_opening({in_.data(), in_.size()});
                if (opening.size == 0) {
                    if (eof_) throw_short_opening(in_.size());
                    return;
                }
                in_.consume(opening.size);
                reply_ = session_reply_mode(options_, opening.reply);
                mode_ = Mode::framed;
            } else if (mode_ == Mode::framed) {
                if (!take_frame()) return;
            } else if (!take_line()) {
                return;
            }
        }
    }

    bool take_frame() {
        if (in_.size() < kFrameHeaderSize) {
            if (eof_ && in_.size() > 0) throw PeerGone("peer closed in the middle of a frame header");
            return false;
        }
        FrameHeader h = decode_header(std::span<const std::byte, kFrameHeaderSize>(in_.data(), kFrameHeaderSize),
                                      options_.limits.max_message);
        need_ = kFrameHeaderSize + h.length;
        if (in_.size() < need_) {
            if (eof_) throw PeerGone("peer closed in the middle of a frame payload");
            return false;
        }
        handle(h.type, {in_.data() + kFrameHeaderSize, h.length});
        in_.consume(need_);
        need_ = 0;
        in_.trim();
        return true;
    }

    // A message is one line including its '\n'; a last line without one
    // counts too (as the blocking TextChannel has it).
    bool take_line() {
        const std::byte* start = in_.data();
        const void* nl = in_.size() > scanned_ ? std::memchr(start + scanned_, '\n', in_.size() - scanned_) : nullptr;
        std::size_t len = 0;
        if (nl != nullptr) {
            len = static_cast<std::size_t>(static_cast<const std::byte*>(nl) - start) + 1;
            check_line(len);
        } else {
            scanned_ = in_.size();
            check_line(scanned_);
            if (!eof_ || in_.size() == 0) return false;
            check_line(in_.size() + 1);  // no terminator to discount
            len = in_.size();
        }
        handle(FrameType::data, {start, len});
        in_.consume(len);
        scanned_ = 0;
        in_.trim();
        return true;
    }

    void check_line(std::size_t len) const { check_text_line(len, options_.limits.max_message); }

    void handle(FrameType type, std::span<const std::byte> payload) {
        ++report_.messages;
        report_.bytes_in += payload.size();
        if (type == FrameType::error) {
            end("client sent an error frame");
            closing_ = true;
            return;
        }
        if (!options_.quiet) print_message_line(payload);
        std::span<const std::byte> reply;
        if (!choose_reply(reply_, payload, reply)) return;
        queue(FrameType::data, reply);
        report_.bytes_out += reply.size();
    }

    void queue(FrameType type, std::span<const std::byte> payload) {
        if (mode_ == Mode::text) {
            out_.append(type == FrameType::error ? as_bytes(text_error_line(payload)) : payload);
            return;
        }
        HeaderBytes header = encode_header(type, payload.size());
        out_.append(header);
        out_.append(payload);
    }

    // Ends the session with an error reply (when the session got as far as
    // a channel: past a good opening), sent before the socket closes.
    bool refuse(const std::string& why, const char* kind) {
        end(std::string(kind) + ": " + why);
        closing_ = true;
        in_.clear();
        bool opened = mode_ != Mode::opening;
        if (opened) queue(FrameType::error, as_bytes(why));
        try {
            flush();
        } catch (const std::exception&) {
            return true;  // the peer is gone: nothing more to tell it
        }
        return out_.size() == 0;
    }

    void flush() {
        while (out_.size() > 0) {
            ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                out_.consume(static_cast<std::size_t>(n));
                progress();
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) throw PeerGone("connection closed writing a reply");
            throw_errno("send reply");
        }
        out_.trim();
    }

    Fd fd_;
    const ServerOptions& options_;
    SessionReport report_;
    Clock::time_point last_progress_, start_;
    Mode mode_ = Mode::opening;
    ReplyMode reply_ = options_.reply;  // a framed opening may ask for another
    ByteBuffer in_, out_;
    std::size_t need_ = 0;     // framed: header + payload of the frame being read (0: unknown yet)
    std::size_t scanned_ = 0;  // text: bytes already searched for '\n'
    bool eof_ = false;         // the peer shut its side: no more input
    bool closing_ = false;     // ended: flush what is queued, then close
};

EventLoop::EventLoop(const ServerOptions& options)
    : options_(options), epoll_(::epoll_create1(EPOLL_CLOEXEC)), events_(kMaxEvents) {
    if (!epoll_) throw_errno("epoll_create1");
}

EventLoop::~EventLoop() = default;

void epoll_watch_readable(int epoll_fd, int fd, const char* what) {
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    check(::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev), what);
}

void EventLoop::watch(int fd) { epoll_watch_readable(epoll_.get(), fd, "epoll_ctl(ADD)"); }

void EventLoop::unwatch(int fd) { check(::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr), "epoll_ctl(DEL)"); }

void EventLoop::add_session(Fd socket, std::string peer) {
    auto session = std::make_unique<EventSession>(std::move(socket), std::move(peer), options_);
    const int fd = session->fd();
    struct epoll_event ev {};
    ev.events = session->interest();
    ev.data.fd = fd;
    check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl(ADD session)");
    session->registered = ev.events;
    if (sessions_.empty()) next_expiry_check_ = Clock::now() + kExpiryTick;
    sessions_.emplace(fd, std::move(session));
}

const std::vector<int>& EventLoop::run_once(int timeout_ms) {
    ready_.clear();
    const bool idle_timeout = options_.limits.timeout_ms > 0 && !sessions_.empty();
    if (idle_timeout) {
        auto until = std::chrono::ceil<std::chrono::milliseconds>(next_expiry_check_ - Clock::now()).count();
        int tick = static_cast<int>(std::max<long long>(0, until));
        timeout_ms = timeout_ms < 0 ? tick : std::min(timeout_ms, tick);
    }
    int n = ::epoll_wait(epoll_.get(), events_.data(), kMaxEvents, timeout_ms);
    if (n < 0) {
        if (errno != EINTR) throw_errno("epoll_wait");
        n = 0;  // a signal: the caller's self-pipe says which
    }
    for (int i = 0; i < n; ++i) {
        int fd = events_[static_cast<std::size_t>(i)].data.fd;
        if (sessions_.count(fd) != 0)
            serve(fd, events_[static_cast<std::size_t>(i)].events);
        else
            ready_.push_back(fd);
    }
    if (idle_timeout) {
        auto now = Clock::now();
        if (now >= next_expiry_check_) {
            expire_idle(now);
            next_expiry_check_ = now + kExpiryTick;
        }
    }
    return ready_;
}

void EventLoop::serve(int fd, std::uint32_t) {
    EventSession& s = *sessions_.at(fd);
    // Whatever epoll said (input, room, hang-up, error), one pass finds out:
    // reads and writes report EOF and errors themselves.
    if (s.on_ready())
        finish(fd);
    else
        update_interest(s);
}

void EventLoop::update_interest(EventSession& s) {
    std::uint32_t want = s.interest();
    if (want == s.registered) return;
    struct epoll_event ev {};
    ev.events = want;
    ev.data.fd = s.fd();
    check(::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, s.fd(), &ev), "epoll_ctl(MOD)");
    s.registered = want;
}

void EventLoop::expire_idle(Clock::time_point now) {
    const auto limit = std::chrono::milliseconds(options_.limits.timeout_ms);
    std::vector<int> expired;
    for (auto& [fd, s] : sessions_)
        if (now - s->last_progress() >= limit) expired.push_back(fd);
    for (int fd : expired) {
        sessions_.at(fd)->end("idle timeout");
        finish(fd);
    }
}

void EventLoop::finish(int fd) {
    auto it = sessions_.find(fd);
    if (it == sessions_.end()) return;
    SessionReport& r = it->second->report();
    if (options_.log_sessions) {
        r.seconds = std::chrono::duration<double>(Clock::now() - it->second->start()).count();
        log_report(r, ::getpid());
    }
    sessions_.erase(it);  // closing the socket also takes it out of the epoll set
}

void EventLoop::end_all(const std::string& ending) {
    while (!sessions_.empty()) {
        int fd = sessions_.begin()->first;
        sessions_.begin()->second->end(ending);
        finish(fd);
    }
}

}  // namespace ipclab
