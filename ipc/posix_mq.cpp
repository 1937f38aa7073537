// POSIX message queues (mq_open).
//
// Rendezvous: the server, under InstanceLock("posix-mq", NAME), owns the
// well-known queue /ipclab-UID-TAG-NAME (hello-sized messages; TAG names the
// private directory, see private_dir.hpp). A client creates its two session
// queues /ipclab-UID-TAG-NAME@PID.R.c2s and .s2c (R: 64 random bits in hex,
// so no other user can create them first and a process may hold several
// sessions at once; a taken name is replaced by a fresh draw; '@' cannot occur
// in a --name, so no server name can collide with a session queue), 0600,
// mq_msgsize = fs.mqueue.msgsize_max, and sends a hello (see chunking.hpp).
// The server child opens both queues and first sends a welcome carrying its
// pid; then messages flow as chunks (chunking.hpp), one queue message each.
//
// End of session: an explicit end marker chunk. The client sends it (without
// waiting for room) before it closes and unlinks its queues; the server child
// sends one when it ends a session itself (after an error frame, idle timeout
// or shutdown). receive() returns false on the marker.
//
// Waiting: blocking mq_send/mq_receive, which a periodic TickTimer
// (kQueueSliceMs, SIGALRM) interrupts, as sysv-mq's are; after each
// interruption the deadline (limits.timeout_ms, TimeoutError) and the peer's
// pid (PeerGone when dead) are checked. Not mq_timedsend/mq_timedreceive:
// their timeout arms a kernel timer on every wait that sleeps, measured 7%
// of the 64 B round trip (1.17 -> 1.09 of the raw floor without, 3
// interleaved pairs, pinned 1,1). A sender blocked on a full queue whose reverse
// queue holds a message stops sending: the peer has answered early (an error
// frame, e.g. an oversize refusal) and receive() delivers it.
//
// Ownership: the client creates and unlinks its session queues; the server
// child unlinks them only after it has seen the client pid dead (SIGKILL).
// Every created queue has a zero-byte marker file, private_dir()/QUEUE.pmq,
// so queues can be listed and reclaimed without a mounted mqueue fs.
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "ipc/chunking.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/io.hpp"
#include "ipc/objects.hpp"
#include "ipc/page_buffer.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/queue_util.hpp"
#include "ipc/random.hpp"
#include "ipc/tick_timer.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

constexpr const char* kTransport = "posix-mq";
constexpr const char* kMarkerSuffix = ".pmq";
constexpr long kMinChunk = 1024;  // the smallest queue message we fall back to
// Session queue depth. Not 10: RLIMIT_MSGQUEUE (819200 bytes per user unless
// raised with CAP_SYS_RESOURCE) charges depth x msgsize per queue, so 10 x 8 KiB
// would allow only four sessions; 4 still keeps a sender a few chunks ahead.
constexpr long kDepth = 4;

// On Linux a queue descriptor is a file descriptor (mq_close is close), so
// Fd owns it like any other.
static_assert(std::is_same_v<mqd_t, int>, "Fd owns queue descriptors only where mqd_t is an fd");

std::string base_queue(const std::string& name) { return "/" + global_prefix(name); }
// The hello carries the random part as two 32-bit words.
struct SessionId {
    std::uint32_t a = 0, b = 0;
};
std::string session_queue(const std::string& name, pid_t pid, SessionId id, const char* dir) {
    return base_queue(name) + "@" + std::to_string(pid) + "." + to_hex(id.a, 8) + to_hex(id.b, 8) +
           "." + dir;
}
std::string marker_for(const std::string& queue) {
    return existing_private_dir() + "/" + queue.substr(1) + kMarkerSuffix;
}

// Removes a queue and then its marker; a queue already gone is fine.
void remove_queue(const std::string& queue) {
    if (::mq_unlink(queue.c_str()) != 0 && errno != ENOENT) throw_errno("mq_unlink " + queue);
    remove_file(marker_for(queue));  // only once the queue is gone: it is how a leftover is found
}

// A queue name this process created, with its marker.
using OwnedQueue = Owned<std::string, remove_queue>;

struct Kernel {
    long msgsize;  // fs.mqueue.msgsize_max: the size of every session queue message
    long maxmsg;   // session queue depth: min(kDepth, fs.mqueue.msg_max)
};

Kernel kernel_limits() {
    return {read_proc_long("/proc/sys/fs/mqueue/msgsize_max", 8192),
            std::min(kDepth, read_proc_long("/proc/sys/fs/mqueue/msg_max", 10))};
}

// RLIMIT_MSGQUEUE (819200 bytes by default) counts every queue's full
// capacity against the user: at 10 x 8 KiB a queue costs ~82 KB, so only
// four sessions would fit. Take the hard limit once; a privileged process
// (CAP_SYS_RESOURCE) lifts it altogether.
void raise_msgqueue_limit() {
    // Once per process, and safe when several threads open sessions at once
    // (client --clients, the threaded server designs): a magic static.
    [[maybe_unused]] static const bool done = [] {
        struct rlimit rl {};
        if (::getrlimit(RLIMIT_MSGQUEUE, &rl) != 0) return true;
        struct rlimit unlimited {RLIM_INFINITY, RLIM_INFINITY};
        if (::setrlimit(RLIMIT_MSGQUEUE, &unlimited) == 0) return true;
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            ::setrlimit(RLIMIT_MSGQUEUE, &rl);
        }
        return true;
    }();
}

// Creates queue (O_EXCL, 0600) and its marker. A name already taken (a
// squatter, or a guess that collided) returns an empty Fd: the caller
// draws a fresh name, and never takes or removes another's queue. When
// the per-user RLIMIT_MSGQUEUE is still exhausted the queue gets fewer
// slots, then smaller chunks (messages are never refused or clamped: they
// just take more chunks); when even the smallest queue does not fit, other
// sessions hold the budget, so a client waits for one to end, up to
// wait_ms, as it would for a free slot under --max-clients.
Fd create_queue(const std::string& queue, int oflag, long maxmsg, long msgsize, int wait_ms) {
    private_dir();  // the marker's directory, created (and checked) if need be
    create_marker(marker_for(queue));
    raise_msgqueue_limit();
    Deadline deadline(wait_ms);
    int nap_ms = 1;
    for (;;) {
        struct mq_attr attr {};
        attr.mq_maxmsg = maxmsg;
        attr.mq_msgsize = msgsize;
        mqd_t d = ::mq_open(queue.c_str(), oflag | O_CREAT | O_EXCL, 0600, &attr);
        if (d != mqd_t(-1)) {
            Fd owned(d);
            check(::fchmod(owned.get(), 0600), "fchmod mq");  // umask cannot widen it, but be sure
            return owned;
        }
        int err = errno;
        if (err == EINTR) {
            on_eintr();
            continue;
        }
        if (err == EEXIST) {
            remove_file(marker_for(queue));
            return Fd();
        }
        if (err == EMFILE && maxmsg > 1) {
            maxmsg = std::max(1L, maxmsg / 2);
            continue;
        }
        if (err == EMFILE && msgsize > kMinChunk) {
            msgsize = std::max(kMinChunk, msgsize / 2);
            continue;
        }
        if (err == EMFILE && wait_ms != 0 && !deadline.expired()) {
            int left = deadline.remaining_ms();
            ::poll(nullptr, 0, left < 0 ? nap_ms : std::min(nap_ms, left));
            if (stop_requested()) throw Interrupted();
            nap_ms = std::min(nap_ms * 2, 50);
            continue;
        }
        remove_file(marker_for(queue));
        if (err == EMFILE)
            throw_errno("mq_open " + queue + " (per-user RLIMIT_MSGQUEUE exhausted, or too many "
                        "open descriptors)", err);
        throw_errno("mq_open " + queue, err);
    }
}

std::size_t queue_msgsize(mqd_t d, const char* what) {
    struct mq_attr attr {};
    check(::mq_getattr(d, &attr), what);
    return static_cast<std::size_t>(attr.mq_msgsize);
}

enum class Role { client, server };

class PosixMqChannel final : public Channel {
public:
    // Both ends; the client then hands it its queue names (set_owned).
    PosixMqChannel(Role role, Fd tx, Fd rx, const Limits& limits, pid_t peer,
                   std::string name, SessionId serial)
        : role_(role),
          tx_(std::move(tx)),
          rx_(std::move(rx)),
          limits_(limits),
          peer_(peer),
          name_(std::move(name)),
          serial_(serial),
          assembler_(limits.max_message),
          tick_(kQueueSliceMs) {
        tx_msgsize_ = queue_msgsize(tx_.get(), "mq_getattr send queue");
        rx_msgsize_ = queue_msgsize(rx_.get(), "mq_getattr receive queue");
        // A page more than a queue message: each chunk is placed in its page
        // so that copying its piece to or from the payload is never
        // 4K-aliased (ipc/page_buffer.hpp).
        rxbuf_ = PageBuffer(rx_msgsize_ + kPageSize);
        txbuf_ = PageBuffer(tx_msgsize_ + kPageSize);
    }

    ~PosixMqChannel() override {
        if (peer_ended_ || peer_dead_ || owner_ != ::getpid()) return;
        // Tell the peer, without waiting for room: a full queue means it is
        // not reading anyway, and it notices our pid gone.
        std::byte marker[kChunkHeaderSize];
        encode_end_marker(marker);
        struct timespec now = realtime_after(0);
        ::mq_timedsend(tx_.get(), reinterpret_cast<const char*>(marker), sizeof marker, 0, &now);
    }

    // Rendezvous, server child side: the first message names us.
    void send_welcome() {
        auto welcome = encode_welcome(::getpid());
        send_raw(tx_.get(), welcome.data(), welcome.size(), false);
    }
    // Rendezvous, client side: wait for the server child, then watch its pid.
    void receive_welcome() {
        std::size_t n = receive_raw(0);
        peer_ = decode_welcome(std::span<const std::byte>(rxbuf_.data(), n));
    }
    void set_owned(OwnedQueue c2s, OwnedQueue s2c) {
        owned_.push_back(std::move(c2s));
        owned_.push_back(std::move(s2c));
    }

    void send(FrameType type, std::span<const std::byte> payload) override {
        if (peer_ended_) throw PeerGone("the peer ended the session");
        if (send_aborted_) throw PeerGone("the peer answered before the last message was sent");
        std::byte* chunk = txbuf_.data() + quarter_page_from(payload.data(), kChunkHeaderSize);
        bool sent = send_chunked(type, payload, {chunk, tx_msgsize_}, [&](std::size_t len, bool may_abort) {
            return send_raw(tx_.get(), chunk, len, may_abort);
        });
        if (!sent) send_aborted_ = true;  // the peer spoke first; receive() has it
    }

    bool receive(Message& msg) override {
        if (peer_ended_) return false;
        bool got = receive_chunked(assembler_, msg, [&] {
            std::size_t at = quarter_page_from(assembler_.next_piece(msg), kChunkHeaderSize);
            std::size_t n = receive_raw(at);
            return std::optional<std::span<const std::byte>>(std::in_place, rxbuf_.data() + at, n);
        });
        if (!got) peer_ended_ = true;
        return got;
    }

    // Sends one queue message. Returns false (message not sent) when
    // may_abort and the reverse queue holds a message while ours is full.
    bool send_raw(mqd_t q, const std::byte* data, std::size_t len, bool may_abort) {
        LazyDeadline deadline(limits_.timeout_ms);  // no clock read per message
        for (;;) {
            if (::mq_send(q, reinterpret_cast<const char*>(data), len, 0) == 0) return true;
            // Any signal (our tick, the iterative server's grace tick) ends
            // the wait, and the peer and the deadline are checked after each.
            if (errno != EINTR) throw_errno("mq_send");
            on_eintr();
            if (may_abort && reply_pending()) return false;
            check_peer();
            if (deadline.get().expired())
                throw TimeoutError("timed out after " + std::to_string(limits_.timeout_ms) +
                                   " ms: the peer's queue stayed full");
        }
    }

    // Receives one queue message into rxbuf_ at offset `at`; returns its length.
    std::size_t receive_raw(std::size_t at) {
        LazyDeadline deadline(limits_.timeout_ms);
        for (;;) {
            ssize_t n = ::mq_receive(rx_.get(), reinterpret_cast<char*>(rxbuf_.data() + at), rx_msgsize_, nullptr);
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno != EINTR) throw_errno("mq_receive");  // see send_raw
            on_eintr();
            check_peer_before_receive();
            if (deadline.get().expired())
                throw TimeoutError("timed out after " + std::to_string(limits_.timeout_ms) +
                                   " ms waiting for the peer");
        }
    }

private:
    bool reply_pending() const {
        struct mq_attr attr {};
        return ::mq_getattr(rx_.get(), &attr) == 0 && attr.mq_curmsgs > 0;
    }

    // A peer that sent its last message (or the end of the session) and
    // exited while we slept is gone only once that message is read: liveness
    // first, then the queue, so nothing it sent before dying is missed.
    void check_peer_before_receive() {
        if (peer_ <= 0 || process_alive(peer_) || reply_pending()) return;
        check_peer();
    }

    void check_peer() {
        if (peer_ <= 0 || process_alive(peer_)) return;
        peer_dead_ = true;
        if (role_ == Role::server) {
            // The client died without cleaning up (SIGKILL): its queues are orphans.
            remove_quietly(remove_queue, session_queue(name_, peer_, serial_, "c2s"));
            remove_quietly(remove_queue, session_queue(name_, peer_, serial_, "s2c"));
            throw PeerGone("client pid " + std::to_string(peer_) +
                           " vanished; removed its queues");
        }
        throw PeerGone("server pid " + std::to_string(peer_) + " vanished");
    }

    Role role_;
    Fd tx_, rx_;
    Limits limits_;
    pid_t peer_;
    std::string name_;
    SessionId serial_;  // the client's random session id: part of the queue names
    ChunkAssembler assembler_;
    TickTimer tick_;  // interrupts blocked sends and receives (see the top)
    std::size_t tx_msgsize_ = 0, rx_msgsize_ = 0;
    PageBuffer txbuf_, rxbuf_;  // each a queue message and a page (see the constructor)
    std::vector<OwnedQueue> owned_;  // destroyed after the descriptors are used in ~
    pid_t owner_ = ::getpid();
    bool peer_ended_ = false;
    bool peer_dead_ = false;
    bool send_aborted_ = false;
};

Fd open_client_queue(const std::string& queue, int oflag) {
    for (;;) {
        mqd_t d = ::mq_open(queue.c_str(), oflag);
        if (d != mqd_t(-1)) {
            Fd owned(d);
            struct stat st {};
            check(::fstat(owned.get(), &st), "fstat mq");
            if (st.st_uid != ::geteuid() || (st.st_mode & 0777) != 0600)
                throw ProtocolError("queue " + queue + " is not ours with mode 0600");
            return owned;
        }
        if (errno == EINTR) {
            on_eintr();
            continue;
        }
        if (errno == ENOENT)
            throw ProtocolError("the hello names queue " + queue + ", which does not exist");
        throw_errno("mq_open " + queue);
    }
}

class PosixMqPending final : public PendingSession {
public:
    PosixMqPending(std::string name, pid_t pid, SessionId serial)
        : name_(std::move(name)), pid_(pid), serial_(serial) {}
    std::string peer() const override { return "pid " + std::to_string(pid_); }

    std::unique_ptr<Channel> open(const Limits& limits) override {
        Fd rx = open_client_queue(session_queue(name_, pid_, serial_, "c2s"), O_RDONLY);
        Fd tx = open_client_queue(session_queue(name_, pid_, serial_, "s2c"), O_WRONLY);
        auto ch = std::make_unique<PosixMqChannel>(Role::server, std::move(tx), std::move(rx),
                                                   limits, pid_, name_, serial_);
        ch->send_welcome();
        return ch;
    }

private:
    std::string name_;
    pid_t pid_;
    SessionId serial_;
};

class PosixMqListener final : public Listener {
public:
    PosixMqListener(InstanceLock lock, std::string name, std::string queue, OwnedQueue owned,
                    Fd mqd)
        : lock_(std::move(lock)),
          name_(std::move(name)),
          queue_name_(std::move(queue)),
          owned_(std::move(owned)),
          mqd_(std::move(mqd)),
          buf_(queue_msgsize(mqd_.get(), "mq_getattr well-known queue")) {}

    std::string describe() const override { return "posix-mq " + queue_name_; }

    std::unique_ptr<PendingSession> accept(int wake_fd) override {
        struct pollfd p[2] = {{mqd_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
        int n = ::poll(p, wake_fd >= 0 ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR) return nullptr;
            throw_errno("poll posix-mq listener");
        }
        if (!(p[0].revents & POLLIN)) return nullptr;
        ssize_t got = ::mq_receive(mqd_.get(), reinterpret_cast<char*>(buf_.data()), buf_.size(),
                                   nullptr);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR) return nullptr;
            throw_errno("mq_receive " + queue_name_);
        }
        Hello h = decode_hello(std::span<const std::byte>(buf_.data(), static_cast<std::size_t>(got)));
        if (!process_alive(h.pid)) {
            // The client died before we got to it; its queues are orphans.
            remove_quietly(remove_queue, session_queue(name_, h.pid, {h.id_a, h.id_b}, "c2s"));
            remove_quietly(remove_queue, session_queue(name_, h.pid, {h.id_a, h.id_b}, "s2c"));
            throw ProtocolError("hello from pid " + std::to_string(h.pid) +
                                ", which is not running");
        }
        return std::make_unique<PosixMqPending>(name_, h.pid, SessionId{h.id_a, h.id_b});
    }

    std::function<void()> orphan_sweep() const override {
        return orphan_sweeper(kTransport, name_);
    }

    void close_in_child() noexcept override {
        mqd_.reset();
        lock_.close_in_child();
    }

private:
    InstanceLock lock_;  // first: released last, after the names are gone
    std::string name_;
    std::string queue_name_;
    OwnedQueue owned_;
    Fd mqd_;
    std::vector<std::byte> buf_;
};

}  // namespace

std::unique_ptr<Listener> listen_posix_mq(const Endpoint& ep, const Limits&) {
    check_name(ep.name);
    InstanceLock lock(kTransport, ep.name);
    std::string queue = base_queue(ep.name);
    // We hold the lock, so a queue of this name is a dead server's.
    if (::mq_unlink(queue.c_str()) != 0 && errno != ENOENT) throw_errno("mq_unlink stale " + queue);
    Kernel k = kernel_limits();
    // The well-known queue costs little, but without CAP_SYS_RESOURCE it
    // shares the user's RLIMIT_MSGQUEUE with every session of every ipclab
    // process of this user: when that is full, wait a while for sessions
    // to end, as a client does, before failing.
    constexpr int kBudgetWaitMs = 5000;
    Fd mqd = create_queue(queue, O_RDONLY | O_NONBLOCK, k.maxmsg,
                           static_cast<long>(kHelloSize), kBudgetWaitMs);
    if (!mqd) throw std::runtime_error(queue + " was created again meanwhile; is another server starting?");
    OwnedQueue owned(queue);
    return std::make_unique<PosixMqListener>(std::move(lock), ep.name, queue, std::move(owned),
                                             std::move(mqd));
}

std::unique_ptr<Channel> connect_posix_mq(const Endpoint& ep, const Limits& limits) {
    check_name(ep.name);
    std::string well_known = base_queue(ep.name);
    Fd server;
    for (;;) {
        mqd_t d = ::mq_open(well_known.c_str(), O_WRONLY);
        if (d != mqd_t(-1)) {
            server = Fd(d);
            // Queue names are global: a queue under our name that another user
            // made would collect our hellos.
            struct stat st {};
            check(::fstat(server.get(), &st), "fstat mq");
            if (st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0)
                throw std::runtime_error(well_known + " is not ours with mode 0600; refusing it");
            break;
        }
        if (errno == EINTR) {
            on_eintr();
            continue;
        }
        if (errno == ENOENT)
            throw std::runtime_error("no posix-mq server named '" + ep.name + "' (" +
                                     well_known + " does not exist)");
        throw_errno("mq_open " + well_known);
    }
    pid_t server_pid = recorded_server_pid(kTransport, ep.name);
    if (server_pid > 0 && !process_alive(server_pid))
        throw std::runtime_error("no posix-mq server named '" + ep.name + "' (pid " +
                                 std::to_string(server_pid) + " left a stale queue)");

    Kernel k = kernel_limits();
    pid_t me = ::getpid();
    SessionId serial;
    Fd c2s, s2c;
    OwnedQueue c2s_owned, s2c_owned;
    for (int attempt = 0; !s2c; ++attempt) {
        if (attempt == kNameAttempts)
            throw std::runtime_error("mq_open: " + std::to_string(kNameAttempts) +
                                     " fresh random queue names were all taken; someone is "
                                     "squatting " + base_queue(ep.name) + "@*");
        std::uint64_t r = random_u64();
        serial = SessionId{static_cast<std::uint32_t>(r >> 32), static_cast<std::uint32_t>(r)};
        std::string c2s_name = session_queue(ep.name, me, serial, "c2s");
        std::string s2c_name = session_queue(ep.name, me, serial, "s2c");
        c2s = create_queue(c2s_name, O_WRONLY, k.maxmsg, k.msgsize, limits.timeout_ms);
        if (!c2s) continue;
        c2s_owned = OwnedQueue(c2s_name);
        s2c = create_queue(s2c_name, O_RDONLY, k.maxmsg, k.msgsize, limits.timeout_ms);
        if (s2c) s2c_owned = OwnedQueue(s2c_name);
    }

    auto ch = std::make_unique<PosixMqChannel>(Role::client, std::move(c2s), std::move(s2c),
                                               limits, server_pid, ep.name, serial);
    ch->set_owned(std::move(c2s_owned), std::move(s2c_owned));
    auto hello = encode_hello(Hello{me, serial.a, serial.b});
    ch->send_raw(server.get(), hello.data(), hello.size(), false);
    server.reset();
    ch->receive_welcome();
    return ch;
}

namespace {

// What a queue name says: "/ipclab-UID-TAG-NAME" (a server's) or
// "/ipclab-UID-TAG-NAME@PID.R.DIR" (a client's session queue).
ObjectInfo describe_queue(const std::string& queue) {
    auto remove = [queue] { remove_queue(queue); };
    auto global = parse_global_name(queue.substr(1));
    if (!global) return foreign_object(kTransport, "", queue, false, 0, remove);
    auto at = global->rest.find('@');
    std::string name = global->rest.substr(0, at);
    bool session = at != std::string::npos;
    pid_t creator =
        session ? static_cast<pid_t>(std::strtol(global->rest.c_str() + at + 1, nullptr, 10)) : 0;
    if (!global->ours()) return foreign_object(kTransport, name, queue, session, creator, remove);
    if (!session) return server_object(kTransport, name, queue, remove);
    return session_object(kTransport, name, queue, creator, remove);
}

}  // namespace

std::vector<ObjectInfo> list_posix_mq_objects() {
    std::set<std::string> queues;
    for (const auto& stem : stems_with_suffix(existing_private_dir(), kMarkerSuffix))
        queues.insert("/" + stem);
    // Queues without a marker are visible only through a mounted mqueue fs.
    std::string prefix = global_prefix("");
    for (const auto& entry : directory_entries("/dev/mqueue"))
        if (entry.rfind(prefix, 0) == 0) queues.insert("/" + entry);
    std::vector<ObjectInfo> out;
    for (const auto& q : queues) out.push_back(describe_queue(q));
    return out;
}

}  // namespace ipclab
