#include "ipc/stream_channel.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "ipc/copy_inline.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/session_path.hpp"

namespace ipclab {

IPCLAB_SESSION_PATH StreamReader::StreamReader(int fd, int timeout_ms) : fd_(fd), timeout_ms_(timeout_ms), buf_(kReadBuffer) {}

IPCLAB_SESSION_PATH bool StreamReader::refill(std::size_t n, std::size_t at) {
    if (buffered() == 0) {  // start over: at the asked page offset when the bytes fit there
        pos_ = end_ = at != kAnywhere && at % kPageSize + n <= buf_.size() ? at % kPageSize : 0;
    } else if (pos_ > 0) {  // compact so the wanted bytes fit behind what is left
        std::memmove(buf_.data(), buf_.data() + pos_, buffered());
        end_ -= pos_;
        pos_ = 0;
    }
    if (buf_.size() - pos_ < n) grow(n);  // a long text line
    while (buffered() < n) {
        std::size_t got = read_ticked(buf_.data() + end_, buf_.size() - end_);
        if (got == 0) return false;
        end_ += got;
    }
    return true;
}

void StreamReader::grow(std::size_t n) {
    PageBuffer bigger(std::max(n, buf_.size() * 2));  // geometrically
    std::memcpy(bigger.data(), buf_.data() + pos_, buffered());
    end_ -= pos_;
    pos_ = 0;
    buf_.own(std::move(bigger));  // a lent parked buffer is given back
}

bool StreamReader::read_split(std::size_t head, std::span<std::byte> rest, std::size_t& into_rest) {
    if (buffered() != 0 || head == 0 || head > buf_.size())
        throw std::logic_error("StreamReader::read_split needs an empty buffer and a header that fits");
    pos_ = end_ = 0;
    struct iovec iov[2] = {{buf_.data(), head}, {rest.data(), rest.size()}};
    std::size_t n = readv_ticked(iov, rest.empty() ? 1 : 2);
    end_ = std::min(n, head);
    into_rest = n - end_;
    return n > 0;
}

void StreamReader::put_back(std::span<const std::byte> bytes) {
    if (buffered() != 0) throw std::logic_error("StreamReader::put_back behind buffered bytes");
    pos_ = end_ = 0;
    if (bytes.size() > buf_.size()) grow(bytes.size());
    std::memcpy(buf_.data(), bytes.data(), bytes.size());
    end_ = bytes.size();
}

// A poll(2) before every read would cost a system call per message, and a
// socket's SO_RCVTIMEO a kernel timer per read that sleeps (io.hpp). Instead
// a 100 ms tick (SIGALRM, no SA_RESTART) interrupts a read that blocks, so
// the idle deadline is still checked and the steady state is one read. The
// deadline starts at the first interruption (a timeout may run one tick
// late): a read that finds its data reads no clock. A descriptor that is
// non-blocking, or a socket with its own SO_RCVTIMEO, waits in poll.
//
// The tick is made at a session's fifth read, not its first. Its setup (the
// thread's id, timer_create, timer_settime, timer_delete at the end: ~1 us
// on this VM, beside a 63 ns system call) was more than a connection that
// asks one question spends in its reads: a session child and its client
// each made one per session (strace). Up to then each read first waits in
// poll, sliced by the tick's period so that a stop is seen as soon.
constexpr int kTickMs = 100;
constexpr int kPolledReads = 4;

namespace {
[[noreturn]] void throw_peer_timeout(int timeout_ms) {
    throw TimeoutError("timed out after " + std::to_string(timeout_ms) + " ms waiting for the peer");
}
}  // namespace

[[gnu::always_inline]] inline void StreamReader::before_read() {
    if (timeout_ms_ > 0 && !tick_) [[unlikely]] {
        if (polled_reads_ < kPolledReads)
            wait_readable();
        else
            tick_.emplace(kTickMs);
    }
    if (stop_requested()) throw Interrupted();
}

IPCLAB_SESSION_PATH void StreamReader::wait_readable() {
    ++polled_reads_;
    LazyDeadline deadline(timeout_ms_);  // no clock read unless a slice passes empty
    for (;;) {
        if (stop_requested()) throw Interrupted();
        struct pollfd p {fd_, POLLIN, 0};
        const int slice = deadline.started() ? std::min(deadline.get().remaining_ms(), kTickMs) : kTickMs;
        const int n = ::poll(&p, 1, slice);
        if (n > 0) return;  // readable, or closed or failed: the read says which
        if (n < 0 && errno != EINTR) throw_errno("poll stream");
        if (deadline.get().expired()) throw_peer_timeout(timeout_ms_);
    }
}

// The first try is inline in each: a read that finds its data (the steady
// state) costs the system call and a few instructions.
[[gnu::always_inline]] inline std::size_t StreamReader::read_ticked(std::byte* buf, std::size_t len) {
    before_read();
    ssize_t n = ::read(fd_, buf, len);
    if (n >= 0) [[likely]] return static_cast<std::size_t>(n);
    struct iovec iov {buf, len};
    return read_again(&iov, 1, errno);
}

std::size_t StreamReader::readv_ticked(::iovec* iov, int count) {
    if (count == 1) return read_ticked(static_cast<std::byte*>(iov[0].iov_base), iov[0].iov_len);
    before_read();
    ssize_t n = ::readv(fd_, iov, count);
    if (n >= 0) [[likely]] return static_cast<std::size_t>(n);
    return read_again(iov, count, errno);
}

std::size_t StreamReader::read_again(::iovec* iov, int count, int err) {
    LazyDeadline deadline(timeout_ms_);
    for (;;) {
        if (err == EINTR || err == EAGAIN) {
            if (err == EINTR) on_eintr();
            const Deadline& d = deadline.get();
            // EAGAIN: a non-blocking descriptor; wait for data the plain way.
            if (d.expired() || (err == EAGAIN && !wait_fd(fd_, POLLIN, d.remaining_ms(), "stream")))
                throw_peer_timeout(timeout_ms_);
        } else if (err == ECONNRESET) {
            throw PeerGone("connection reset reading stream");
        } else {
            throw_errno("read stream", err);
        }
        if (stop_requested()) throw Interrupted();
        // read(2) for one piece: the kernel's iovec import costs a little.
        ssize_t n = count == 1 ? ::read(fd_, iov[0].iov_base, iov[0].iov_len) : ::readv(fd_, iov, count);
        if (n >= 0) return static_cast<std::size_t>(n);
        err = errno;
    }
}

bool StreamReader::read_rest(std::span<std::byte> out, const char* what) {
    std::size_t from_buffer = std::min(out.size(), buffered());
    std::memcpy(out.data(), data(), from_buffer);
    consume(from_buffer);
    if (from_buffer == out.size()) return true;
    // Large remainders bypass the buffer: one copy from the kernel, no more,
    // and for pipes the same one-read-per-wake path as fill().
    for (std::size_t got = from_buffer; got < out.size();) {
        std::size_t n = read_ticked(out.data() + got, out.size() - got);
        if (n == 0) {
            if (got == 0) return false;
            throw PeerGone(std::string("peer closed in the middle of ") + what);
        }
        got += n;
    }
    return true;
}

namespace {

void apply_timeouts(const StreamFds& fds, int timeout_ms) {
    if (fds.is_socket) {
        set_send_timeout(fds.read.get(), timeout_ms);  // reads: the reader's tick
    } else if (fds.write) {
        // Writes to a full pipe then wait in poll, bounded by the timeout.
        set_nonblocking(fds.write.get(), true);
    }
}

class FramedChannel final : public Channel {
public:
    // A reader handed over by open_stream_session comes with the socket's
    // timeouts already set (timeouts_set): two system calls per session saved.
    // reply: what the opening to send asks for (client), or what the one
    // received asked for (server).
    FramedChannel(StreamFds fds, const Limits& limits, bool send_opening, SessionReply reply,
                  std::unique_ptr<StreamReader> reader, bool timeouts_set,
                  std::unique_ptr<StreamSessionHooks> hooks = nullptr)
        : hooks_(std::move(hooks)),
          first_read_hook_(hooks_ != nullptr),
          fds_(std::move(fds)),
          limits_(limits),
          pending_opening_(send_opening),
          reply_(reply),
          reader_(reader ? std::move(reader)
                         : std::make_unique<StreamReader>(fds_.read.get(), limits.timeout_ms)) {
        if (!timeouts_set) apply_timeouts(fds_, limits.timeout_ms);
    }

    IPCLAB_SESSION_PATH ~FramedChannel() override {
        if (hooks_) hooks_->before_close(peer_ended_);
    }

    IPCLAB_SESSION_PATH void send(FrameType type, std::span<const std::byte> payload) override {
        try {
            if (!pending_opening_ && payload.size() <= kShortFrame - kFrameHeaderSize) [[likely]]
                send_small<kShortFrame>(type, payload);
            else if (!pending_opening_ && payload.size() <= kCoalescedFrame - kFrameHeaderSize)
                send_medium(type, payload);
            else
                send_any(type, payload);
        } catch (const PeerGone&) {
            peer_ended_ = true;
            throw;
        }
    }

    IPCLAB_SESSION_PATH bool receive(Message& msg) override {
        // A stop signal that lands between system calls causes no EINTR, and
        // frames already buffered need none: each message looks at the flag.
        if (stop_requested()) throw Interrupted();
        if (first_read_hook_) [[unlikely]] {
            hooks_->before_first_read();
            first_read_hook_ = false;
        }
        try {
            if (receive_frame(msg)) [[likely]] return true;
        } catch (const PeerGone&) {
            peer_ended_ = true;
            throw;
        }
        peer_ended_ = true;
        return false;
    }

    IPCLAB_SESSION_PATH SessionReply asked_reply() const override { return reply_; }

private:
    void send_any(FrameType type, std::span<const std::byte> payload) {
        HeaderBytes header = encode_header(type, payload.size());
        std::span<const std::byte> opening;
        if (pending_opening_) opening = opening_bytes(reply_);
        if (opening.size() + header.size() + payload.size() <= kCoalescedFrame) {
            send_coalesced(opening, header, payload);
        } else {
            struct iovec iov[3];
            int n = 0;
            if (!opening.empty()) iov[n++] = {const_cast<std::byte*>(opening.data()), opening.size()};
            iov[n++] = {header.data(), header.size()};
            if (!payload.empty()) iov[n++] = {const_cast<std::byte*>(payload.data()), payload.size()};
            if (payload.size() >= kCorkFrom && is_tcp()) {
                write_all(write_fd(), iov, n - 1, true, limits_.timeout_ms, "frame header", MSG_MORE);
                write_all(write_fd(), &iov[n - 1], 1, true, limits_.timeout_ms, "frame");
            } else {
                write_all(write_fd(), iov, n, fds_.is_socket, limits_.timeout_ms, "frame");
            }
        }
        pending_opening_ = false;
    }

    [[gnu::always_inline]] bool receive_frame(Message& msg) {
        std::size_t early = 0;  // payload bytes read straight into msg.payload
        if (reader_->buffered() == 0 && msg.payload.capacity() >= kSplitFrom) {
            // No zero fill: Bytes leaves new bytes uninitialised.
            msg.payload.resize(msg.payload.capacity());
            if (!reader_->read_split(kFrameHeaderSize, msg.payload, early)) {
                msg.payload.clear();  // nothing of an earlier message, nor stale bytes, to misread
                return false;
            }
        }
        if (!reader_->fill(kFrameHeaderSize, payload_placement(msg))) {
            if (reader_->buffered() == 0) return false;
            throw PeerGone("peer closed in the middle of a frame header");
        }
        FrameHeader h = decode_header(
            std::span<const std::byte, kFrameHeaderSize>(reader_->data(), kFrameHeaderSize),
            limits_.max_message);
        reader_->consume(kFrameHeaderSize);
        msg.type = h.type;
        if (early > h.length) {  // read into the next frame: hand that back to the reader
            reader_->put_back(std::span<const std::byte>(msg.payload).subspan(h.length, early - h.length));
            early = h.length;
        }
        size_received(msg.payload, h.length);
        if (h.length > early &&
            !reader_->read_exact(std::span<std::byte>(msg.payload).subspan(early), "frame payload"))
            throw PeerGone("peer closed in the middle of a frame payload");
        return true;
    }

    // A small frame goes out as one buffer by write/send: copying it costs
    // less than the kernel's walk of a two-piece iovec (writev, sendmsg).
    // Measured, 3 interleaved pairs, pinned 1,1: RoundTrip/fifo/64 1.11 ->
    // 1.06 of the raw floor, tcp 1.06 -> 1.04, unix 1.11 -> 1.08. Up to 2 KiB,
    // where glibc's memcpy is a vector loop (its `rep movsb`, used above,
    // can be 4K-aliased: ipc/page_buffer.hpp).
    static constexpr std::size_t kCoalescedFrame = 2048;
    // A frame up to this size (the textbook's 256-byte buffer) is built in
    // send()'s own frame; larger ones in a function of their own. The stack
    // below a session child's fork point is pages it writes for the first
    // time, a page fault each: with the 2 KiB array inline, its reply's
    // send() and write reached 4.4 KiB below that point (perf page-faults:
    // two stack pages more than the C fork server's child writes).
    static constexpr std::size_t kShortFrame = 256;

    // A receive whose Message held a payload this large (a reused one: the
    // next is likely alike) reads header and payload in one readv, the
    // payload straight into the message's storage. Through the buffer every
    // payload byte was copied twice (kernel to buffer, buffer to message):
    // RoundTrip/tcp/65536 was 1.22x the raw ping-pong, with glibc's memmove
    // taking about as many CPU samples as the kernel's copy to user; read
    // split, 1.07 (fifo 1.22 -> 1.08, unix 1.24 -> 1.05). Only for storage
    // that Bytes places in its page (ipc/page_buffer.hpp): with 4 KiB
    // payloads read wherever malloc put them, the kernel's copy was 4K-aliased
    // in some processes (Paired/fifo/4096 1.19 -> 1.41 in 2 of 4).
    static constexpr std::size_t kSplitFrom = kLargeBuffer;

    // A TCP frame this large goes out as its header with MSG_MORE, then the
    // payload: one system call more, and no sendmsg of header and payload
    // together. Measured (RoundTrip/tcp/1048576, client and server on one
    // CPU, 48 repetitions over 16 processes each way, interleaved): with
    // one sendmsg, 15 of 48 repetitions fell into a mode twice as slow (p50
    // 400-850 us against 260-390, one side's CPU per message +150 us, the
    // frame stuck half in the sender's queue); corked, 0 of 48; the raw
    // ping-pong, which writes the payload alone, 1-3 of 48 either way. A
    // header pushed as its own segment put all 48 in the slow mode. At
    // 128-512 KiB neither way showed a slow mode, and the extra system call
    // costs where messages are small (+2.5% on the 64 KiB round trip, +7% at
    // 4 KiB): from 256 KiB on it is under 1% of a round trip. Not for UNIX
    // sockets, which ignore MSG_MORE.
    static constexpr std::size_t kCorkFrom = 256 * 1024;

    bool is_tcp() {
        if (tcp_ < 0) {  // asked once, at the first large frame
            int protocol = 0;
            socklen_t len = sizeof protocol;
            tcp_ = fds_.is_socket && ::getsockopt(write_fd(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 &&
                   protocol == IPPROTO_TCP;
        }
        return tcp_ > 0;
    }

    // The usual frame, written out without send_coalesced's walk over three
    // parts (a small message's instructions outside the kernel are most of
    // what it costs beyond the raw floor: RoundTrip/fifo/64).
    template <std::size_t kFrame>
    [[gnu::always_inline]] void send_small(FrameType type, std::span<const std::byte> payload) {
        alignas(64) std::byte frame[kFrame];
        frame[0] = static_cast<std::byte>(type);
        put_u32(frame + 1, static_cast<std::uint32_t>(payload.size()));
        copy_inline(frame + kFrameHeaderSize, payload.data(), payload.size());
        write_all(write_fd(), std::span<const std::byte>(frame, kFrameHeaderSize + payload.size()), fds_.is_socket,
                  limits_.timeout_ms, "frame");
    }

    // Out of line, so that send()'s frame holds a short frame's array only.
    [[gnu::noinline]] void send_medium(FrameType type, std::span<const std::byte> payload) {
        send_small<kCoalescedFrame>(type, payload);
    }

    // Out of line too: send_any, which calls it, may be inlined into send().
    [[gnu::noinline]] void send_coalesced(std::span<const std::byte> opening, std::span<const std::byte> header,
                                          std::span<const std::byte> payload) {
        alignas(64) std::byte frame[kCoalescedFrame];
        std::byte* at = frame;
        for (auto part : {opening, header, payload}) {
            if (!part.empty()) std::memcpy(at, part.data(), part.size());
            at += part.size();
        }
        write_all(write_fd(), std::span<const std::byte>(frame, at), fds_.is_socket, limits_.timeout_ms, "frame");
    }

    int write_fd() const { return fds_.write ? fds_.write.get() : fds_.read.get(); }

    // Where in a page the next frame should be read to so that its payload
    // lands a quarter page away from where msg's storage (reused from the last
    // message) starts. Copying the payload out of the read buffer is then
    // never 4K-aliased: with source and destination a few bytes apart
    // modulo 4096, each load waited on the store before it (measured: the
    // 4 KiB unix round trip 1.15x the raw floor or 1.3-1.6x, by where the
    // heap happened to put the two buffers).
    static std::size_t payload_placement(const Message& msg) {
        if (msg.payload.capacity() == 0) return StreamReader::kAnywhere;
        return quarter_page_from(msg.payload.data(), kFrameHeaderSize);
    }

    // First: destroyed last, after the descriptors closed (see StreamSessionHooks).
    std::unique_ptr<StreamSessionHooks> hooks_;
    bool first_read_hook_;
    bool peer_ended_ = false;
    StreamFds fds_;
    Limits limits_;
    bool pending_opening_;
    SessionReply reply_;
    std::unique_ptr<StreamReader> reader_;
    int tcp_ = -1;  // is_tcp(): -1 not asked yet
};

class TextChannel final : public Channel {
public:
    TextChannel(Fd socket, const Limits& limits, std::unique_ptr<StreamReader> reader)
        : socket_(std::move(socket)), limits_(limits), reader_(std::move(reader)) {}

    bool is_text() const override { return true; }

    void send(FrameType type, std::span<const std::byte> payload) override {
        if (type == FrameType::error) {
            write_all(socket_.get(), as_bytes(text_error_line(payload)), true, limits_.timeout_ms, "text reply");
            return;
        }
        write_all(socket_.get(), payload, true, limits_.timeout_ms, "text reply");
    }

    // A message is one line including its '\n'; a last line without one counts too.
    bool receive(Message& msg) override {
        msg.type = FrameType::data;
        std::size_t scanned = 0;
        for (;;) {
            const std::byte* start = reader_->data();
            const std::byte* nl = static_cast<const std::byte*>(
                std::memchr(start + scanned, '\n', reader_->buffered() - scanned));
            if (nl != nullptr) {
                std::size_t len = static_cast<std::size_t>(nl - start) + 1;
                check_size(len);
                assign_bytes(msg.payload, {start, len});
                reader_->consume(len);
                return true;
            }
            scanned = reader_->buffered();
            check_size(scanned);
            if (!reader_->fill(scanned + 1)) {
                if (reader_->buffered() == 0) return false;
                // No terminator to discount: a last line of max_message + 1
                // bytes is all payload, one byte over (found by fuzz_text_line).
                check_size(reader_->buffered() + 1);
                assign_bytes(msg.payload, {reader_->data(), reader_->buffered()});
                reader_->consume(reader_->buffered());
                return true;
            }
        }
    }

private:
    void check_size(std::size_t len) const { check_text_line(len, limits_.max_message); }

    Fd socket_;
    Limits limits_;
    std::unique_ptr<StreamReader> reader_;
};

}  // namespace

std::unique_ptr<Channel> make_framed_channel(StreamFds fds, const Limits& limits,
                                             bool send_opening, SessionReply reply, bool timeouts_set,
                                             std::unique_ptr<StreamSessionHooks> hooks) {
    const bool set = timeouts_set && fds.is_socket;
    return std::make_unique<FramedChannel>(std::move(fds), limits, send_opening, reply, nullptr, set,
                                           std::move(hooks));
}

IPCLAB_SESSION_PATH std::unique_ptr<Channel> open_stream_session(Fd socket, const Limits& limits, bool timeouts_set) {
    if (!timeouts_set) set_send_timeout(socket.get(), limits.timeout_ms);
    auto reader = std::make_unique<StreamReader>(socket.get(), limits.timeout_ms);
    if (reader->fill(1) && reader->data()[0] == std::byte{0}) {
        Opening opening;
        // Each fill asks for one more byte than is buffered: an opening's
        // bytes may come in any pieces, and none past it is waited for.
        while ((opening = parse_opening({reader->data(), reader->buffered()})).size == 0)
            if (!reader->fill(reader->buffered() + 1)) throw_short_opening(reader->buffered());
        reader->consume(opening.size);
        StreamFds fds{std::move(socket), Fd{}, true};
        return std::make_unique<FramedChannel>(std::move(fds), limits, false, opening.reply, std::move(reader),
                                               true);
    }
    return std::make_unique<TextChannel>(std::move(socket), limits, std::move(reader));
}

}  // namespace ipclab
