// System V message queues (msgget).
//
// Rendezvous: the server, under InstanceLock("sysv-mq", NAME), creates the
// well-known queue under a random key (0600) and writes the key into
// private_dir()/NAME.sysv-mq.key, where clients read it. A client creates a
// pair of session queues - client->server and server->client; two queues
// rather than one so that a full request direction (msgmnb is only two
// 8 KiB messages) can never block the server's reply (e.g. an oversize
// refusal) - each under a fresh random key, after its marker file
// NAME@PID.kKEY.smq: a client killed at any moment leaves a marker naming
// what the listener's orphan sweep removes, never an invisible queue. Keys
// are global: a taken one (another user's queue, a collision) is replaced
// by a fresh draw, never reused. The hello (mtype 1, see chunking.hpp) carries
// the client pid and both msqids; the server validates it (queues owned by
// our uid, mode 0600, markers for their keys present, pid alive) or rejects it with
// ProtocolError. The server child then sends a welcome with its pid, and
// messages flow as chunks (chunking.hpp) with mtype 1 (client->server) or 2
// (server->client).
//
// End of session: the client removes its queues (IPC_RMID) on every exit
// path; the server sees EIDRM, which between messages is a clean end and
// mid-message PeerGone. A server child that ends a session itself sends the
// end marker chunk. The server child removes a SIGKILLed client's queues when
// it finds the pid dead.
//
// Waiting: msgsnd/msgrcv cannot time out and cannot be polled, so each
// session arms one periodic TickTimer (kQueueSliceMs) whose SIGALRM makes
// them return EINTR; after each the deadline (TimeoutError) and the peer's
// pid (PeerGone) are checked. The listener's accept() tries IPC_NOWAIT, then
// blocks in msgrcv, woken by the server's own signals or a slower tick.
#include <fcntl.h>
#include <poll.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "ipc/chunking.hpp"
#include "ipc/error.hpp"
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

constexpr const char* kTransport = "sysv-mq";
constexpr long kToServer = 1;
constexpr long kToClient = 2;
constexpr int kListenerTickMs = 250;

// Both ends build these; a creator calls private_dir() first (the listener's
// InstanceLock does), so look-ups never create the directory.
std::string key_file(const std::string& name) {
    return existing_private_dir() + "/" + name + ".sysv-mq.key";
}
std::string marker_for(const std::string& name, pid_t pid, key_t key) {
    return existing_private_dir() + "/" + name + "@" + std::to_string(pid) + ".k" +
           to_hex(static_cast<std::uint32_t>(key), 8) + ".smq";
}

// A random key for msgget: never IPC_PRIVATE (0).
key_t random_key() {
    for (;;)
        if (auto k = static_cast<key_t>(random_u64()); k != IPC_PRIVATE) return k;
}

std::string msgmni_text() {
    return std::to_string(read_proc_long("/proc/sys/kernel/msgmni", 32000));
}

std::size_t kernel_msgmax() {
    return static_cast<std::size_t>(read_proc_long("/proc/sys/kernel/msgmax", 8192));
}

// A queue message buffer: the long mtype, then msgmax bytes of text.
class MsgBuf {
public:
    // A page more than the message: place() moves the message within its
    // first page, so a chunk's piece can sit a quarter page from the payload it
    // is copied to or from (ipc/page_buffer.hpp).
    explicit MsgBuf(std::size_t text)
        : text_(text), mem_(sizeof(long) + text + kPageSize), base_(mem_.data()) {}
    void* raw() { return base_; }
    long& mtype() { return *std::launder(reinterpret_cast<long*>(base_)); }
    std::byte* text() { return base_ + sizeof(long); }
    std::size_t capacity() const { return text_; }
    // Puts the message so that its text's byte `header` lies a quarter page
    // from `other` (rounded down to the mtype's alignment); nullptr: the start.
    void place(const void* other, std::size_t header) {
        std::size_t at = quarter_page_from(other, header + sizeof(long));
        base_ = mem_.data() + at / alignof(long) * alignof(long);
    }

private:
    std::size_t text_;
    PageBuffer mem_;
    std::byte* base_;
};

// A queue and the marker file that vouches for it (none for the server's).
struct MsqName {
    int id = -1;
    std::string marker;
};

// IPC_RMID, then the marker: only with the queue, since it is how a
// leftover is found. A queue already gone is fine.
void remove_msq(const MsqName& q) {
    if (q.id >= 0 && ::msgctl(q.id, IPC_RMID, nullptr) != 0 && errno != EINVAL && errno != EIDRM)
        throw_errno("msgctl(IPC_RMID) msqid " + std::to_string(q.id));
    if (!q.marker.empty()) remove_file(q.marker);
}

// A queue this process created: removed (with its marker) only by the creator.
using OwnedMsq = Owned<MsqName, remove_msq>;

// Throws ProtocolError unless msqid is a queue of our uid with mode 0600;
// returns its key.
key_t check_queue_is_ours(int msqid) {
    struct msqid_ds ds {};
    if (::msgctl(msqid, IPC_STAT, &ds) != 0) {
        if (errno == EINVAL || errno == EIDRM || errno == EACCES || errno == EPERM)
            throw ProtocolError("the hello names msqid " + std::to_string(msqid) +
                                ", which is not an accessible queue");
        throw_errno("msgctl(IPC_STAT)");
    }
    if (ds.msg_perm.uid != ::geteuid() || ds.msg_perm.cuid != ::geteuid() ||
        (ds.msg_perm.mode & 0777) != 0600)
        throw ProtocolError("the hello names msqid " + std::to_string(msqid) +
                            ", which is not ours with mode 0600");
    return ds.msg_perm.__key;
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Removes a dead client's queues, but only those its markers vouch for.
void remove_orphans(const std::string& name, pid_t pid, int a, int b) noexcept {
    try {
        for (int id : {a, b}) {
            struct msqid_ds ds {};
            if (::msgctl(id, IPC_STAT, &ds) != 0) continue;
            std::string marker = marker_for(name, pid, ds.msg_perm.__key);
            if (file_exists(marker)) remove_quietly(remove_msq, MsqName{id, marker});
        }
    } catch (...) {  // an unusable private directory: nothing to remove then
    }
}

enum class Role { client, server };

class SysvMqChannel final : public Channel {
public:
    SysvMqChannel(Role role, int tx, int rx, const Limits& limits, pid_t peer, std::string name)
        : role_(role),
          tx_(tx),
          rx_(rx),
          limits_(limits),
          peer_(peer),
          name_(std::move(name)),
          assembler_(limits.max_message),
          txbuf_(kernel_msgmax()),
          rxbuf_(kernel_msgmax()),
          timer_(kQueueSliceMs) {}

    ~SysvMqChannel() override {
        if (role_ == Role::server && !peer_ended_ && !peer_dead_ && owner_ == ::getpid()) {
            // Tell the client we are done, without waiting for room.
            encode_end_marker(txbuf_.text());
            txbuf_.mtype() = kToClient;
            ::msgsnd(tx_, txbuf_.raw(), kChunkHeaderSize, IPC_NOWAIT);
        }
        if (role_ == Role::client) {
            owned_.clear();  // IPC_RMID: the server sees EIDRM, the end of the session
        }
    }

    void own(OwnedMsq a, OwnedMsq b) {
        owned_.push_back(std::move(a));
        owned_.push_back(std::move(b));
    }

    void send(FrameType type, std::span<const std::byte> payload) override {
        if (peer_ended_) throw PeerGone("the peer ended the session");
        if (send_aborted_) throw PeerGone("the peer answered before the last message was sent");
        txbuf_.place(payload.data(), kChunkHeaderSize);
        std::span<std::byte> buf(txbuf_.text(), txbuf_.capacity());
        bool sent = send_chunked(type, payload, buf, [&](std::size_t len, bool may_abort) {
            return send_raw(tx_, out_type(), len, may_abort);
        });
        if (!sent) send_aborted_ = true;  // the peer spoke first; receive() has it
    }

    // The session queue removed between messages is the peer's clean end.
    bool receive(Message& msg) override {
        if (peer_ended_) return false;
        bool got = receive_chunked(assembler_, msg, [&] {
            rxbuf_.place(assembler_.next_piece(msg), kChunkHeaderSize);
            std::size_t n = 0;
            if (!receive_raw(n)) return std::optional<std::span<const std::byte>>();
            return std::optional<std::span<const std::byte>>(std::in_place, rxbuf_.text(), n);
        });
        if (!got) peer_ended_ = true;
        return got;
    }

    void send_hello(int well_known, pid_t me) {
        txbuf_.place(nullptr, 0);
        auto hello = encode_hello(Hello{me, static_cast<std::uint32_t>(tx_),
                                        static_cast<std::uint32_t>(rx_)});
        std::memcpy(txbuf_.text(), hello.data(), hello.size());
        send_raw(well_known, kToServer, hello.size(), false);
    }
    void send_welcome() {
        txbuf_.place(nullptr, 0);
        auto w = encode_welcome(::getpid());
        std::memcpy(txbuf_.text(), w.data(), w.size());
        send_raw(tx_, kToClient, w.size(), false);
    }
    void receive_welcome() {
        rxbuf_.place(nullptr, 0);
        std::size_t n = 0;
        if (!receive_raw(n)) throw PeerGone("the session queue was removed before the welcome");
        peer_ = decode_welcome(std::span<const std::byte>(rxbuf_.text(), n));
    }

private:
    long out_type() const { return role_ == Role::client ? kToServer : kToClient; }
    long in_type() const { return role_ == Role::client ? kToClient : kToServer; }

    // Sends txbuf_ (len text bytes) to queue id. Returns false (not sent)
    // when may_abort and a message waits for us while the peer's queue is full.
    // The deadline starts at the first interruption (as a StreamReader's,
    // io.hpp: LazyDeadline): a message that goes at once reads no clock.
    bool send_raw(int id, long mtype, std::size_t len, bool may_abort) {
        LazyDeadline deadline(limits_.timeout_ms);
        txbuf_.mtype() = mtype;
        for (;;) {
            if (::msgsnd(id, txbuf_.raw(), len, 0) == 0) return true;
            if (errno == EIDRM || errno == EINVAL)
                throw PeerGone("the peer's queue was removed while sending");
            if (errno != EINTR) throw_errno("msgsnd");
            on_eintr();
            if (may_abort && reply_pending()) return false;
            check_peer();
            if (deadline.get().expired())
                throw TimeoutError("timed out after " + std::to_string(limits_.timeout_ms) +
                                   " ms: the peer's queue stayed full");
        }
    }

    // Receives one message into rxbuf_; false when the queue was removed.
    bool receive_raw(std::size_t& n) {
        LazyDeadline deadline(limits_.timeout_ms);
        for (;;) {
            ssize_t got = ::msgrcv(rx_, rxbuf_.raw(), rxbuf_.capacity(), 0, 0);
            if (got >= 0) {
                if (rxbuf_.mtype() != in_type())
                    throw ProtocolError("queue message of mtype " +
                                        std::to_string(rxbuf_.mtype()) + " where " +
                                        std::to_string(in_type()) + " was due");
                n = static_cast<std::size_t>(got);
                return true;
            }
            if (errno == EIDRM || errno == EINVAL) return false;
            if (errno == E2BIG)
                throw ProtocolError("queue message larger than msgmax (" +
                                    std::to_string(rxbuf_.capacity()) + " bytes)");
            if (errno != EINTR) throw_errno("msgrcv");
            on_eintr();
            check_peer_before_receive();
            if (deadline.get().expired())
                throw TimeoutError("timed out after " + std::to_string(limits_.timeout_ms) +
                                   " ms waiting for the peer");
        }
    }

    bool reply_pending() const {
        struct msqid_ds ds {};
        return ::msgctl(rx_, IPC_STAT, &ds) == 0 && ds.msg_qnum > 0;
    }

    // A peer that sent its last message and exited while we slept is gone
    // only once that message is read: liveness first, then the queue.
    void check_peer_before_receive() {
        if (peer_ <= 0 || process_alive(peer_) || reply_pending()) return;
        check_peer();
    }

    void check_peer() {
        if (peer_ <= 0 || process_alive(peer_)) return;
        peer_dead_ = true;
        if (role_ == Role::server) {
            remove_orphans(name_, peer_, rx_, tx_);
            throw PeerGone("client pid " + std::to_string(peer_) + " vanished; removed its queues");
        }
        throw PeerGone("server pid " + std::to_string(peer_) + " vanished");
    }

    Role role_;
    int tx_, rx_;
    Limits limits_;
    pid_t peer_;
    std::string name_;
    ChunkAssembler assembler_;
    MsgBuf txbuf_, rxbuf_;
    TickTimer timer_;
    std::vector<OwnedMsq> owned_;
    pid_t owner_ = ::getpid();
    bool peer_ended_ = false;
    bool peer_dead_ = false;
    bool send_aborted_ = false;
};

class SysvMqPending final : public PendingSession {
public:
    SysvMqPending(std::string name, Hello hello) : name_(std::move(name)), hello_(hello) {}
    std::string peer() const override { return "pid " + std::to_string(hello_.pid); }

    std::unique_ptr<Channel> open(const Limits& limits) override {
        // The client's c2s queue is our receive side, its s2c our send side.
        auto ch = std::make_unique<SysvMqChannel>(Role::server, static_cast<int>(hello_.id_b),
                                                  static_cast<int>(hello_.id_a), limits,
                                                  hello_.pid, name_);
        ch->send_welcome();
        return ch;
    }

private:
    std::string name_;
    Hello hello_;
};

class SysvMqListener final : public Listener {
public:
    SysvMqListener(InstanceLock lock, std::string name, OwnedPath key, OwnedMsq queue)
        : lock_(std::move(lock)),
          name_(std::move(name)),
          key_(std::move(key)),
          queue_(std::move(queue)),
          buf_(kernel_msgmax()),
          timer_(kListenerTickMs) {}

    std::string describe() const override {
        return "sysv-mq msqid " + std::to_string(queue_.name().id) + " (" + key_.name() + ")";
    }

    std::unique_ptr<PendingSession> accept(int wake_fd) override {
        if (wake_fd >= 0) {
            struct pollfd p {wake_fd, POLLIN, 0};
            int n = ::poll(&p, 1, 0);
            if (n > 0 || (n < 0 && errno == EINTR)) return nullptr;
            if (n < 0) throw_errno("poll wake_fd");
        }
        ssize_t got = ::msgrcv(queue_.name().id, buf_.raw(), buf_.capacity(), 0, IPC_NOWAIT);
        if (got < 0 && errno == ENOMSG) {  // nothing yet: block until a hello, signal or tick
            timer_.arm_here();  // a prefork worker's own: see timer_
            got = ::msgrcv(queue_.name().id, buf_.raw(), buf_.capacity(), 0, 0);
        }
        if (got < 0) {
            if (errno == EINTR) return nullptr;
            if (errno == E2BIG) {
                // Discard the oversized message, or it blocks the queue forever.
                ::msgrcv(queue_.name().id, buf_.raw(), buf_.capacity(), 0, IPC_NOWAIT | MSG_NOERROR);
                throw ProtocolError("oversized message on the well-known queue");
            }
            throw_errno("msgrcv well-known queue");
        }
        if (buf_.mtype() != kToServer)
            throw ProtocolError("hello of mtype " + std::to_string(buf_.mtype()));
        Hello h = decode_hello(std::span<const std::byte>(buf_.text(), static_cast<std::size_t>(got)));
        int a = static_cast<int>(h.id_a), b = static_cast<int>(h.id_b);
        if (h.id_a > 0x7fffffffu || h.id_b > 0x7fffffffu || a == b)
            throw ProtocolError("malformed hello: queue ids");
        if (!process_alive(h.pid)) {
            remove_orphans(name_, h.pid, a, b);
            throw ProtocolError("hello from pid " + std::to_string(h.pid) + ", which is not running");
        }
        key_t keys[2] = {check_queue_is_ours(a), check_queue_is_ours(b)};
        for (int i = 0; i < 2; ++i)
            if (!file_exists(marker_for(name_, h.pid, keys[i])))
                throw ProtocolError("hello from pid " + std::to_string(h.pid) + " names msqid " +
                                    std::to_string(i == 0 ? a : b) +
                                    ", which that pid did not create");
        return std::make_unique<SysvMqPending>(name_, h);
    }

    std::function<void()> orphan_sweep() const override {
        return orphan_sweeper(kTransport, name_);
    }

    void close_in_child() noexcept override { lock_.close_in_child(); }

private:
    InstanceLock lock_;  // first: released last, after the names are gone
    std::string name_;
    OwnedPath key_;
    OwnedMsq queue_;
    MsgBuf buf_;
    // Bounds the blocking msgrcv in accept(). fork does not copy timers: a
    // prefork worker waiting on this listener had none, so a stop that
    // landed between its wake_fd check and the blocking msgrcv (the
    // supervisor's death, PDEATHSIG) was never seen, and the worker waited
    // forever holding the instance lock (found in CI: a SIGKILLed
    // supervisor's worker, the restarted server refused). accept() arms one
    // for the process that blocks (arm_here).
    TickTimer timer_;
};

// The key a server wrote into its key file; nullopt when there is none.
std::optional<key_t> read_key(const std::string& path) {
    std::ifstream in(path);
    std::string hex;
    if (!(in >> hex) || hex.size() != 8 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
        return std::nullopt;
    return static_cast<key_t>(std::stoul(hex, nullptr, 16));
}

void write_key(const std::string& path, key_t key) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw_errno("create key file " + path);
    write_all(fd.get(), as_bytes(to_hex(static_cast<std::uint32_t>(key), 8) + "\n"), false, -1,
              "key file");
}

// msgget(IPC_CREAT | IPC_EXCL) under fresh random keys until one is free.
// before(key) runs first for each key (a client writes the key's marker
// there), after_fail(key) when that key could not be used. A system-wide
// queue limit (ENOSPC, kernel.msgmni) frees up as sessions end: waited out
// like a busy server, up to the deadline.
int create_queue_under_random_key(const std::function<void(key_t)>& before,
                                  const std::function<void(key_t)>& after_fail,
                                  const Deadline& deadline, key_t& key) {
    int nap_ms = 1;
    for (int attempt = 0; attempt < kNameAttempts;) {
        key = random_key();
        before(key);
        int id = ::msgget(key, IPC_CREAT | IPC_EXCL | 0600);
        if (id >= 0) return id;
        int err = errno;
        after_fail(key);
        if (err == EEXIST) {  // taken: a fresh key, never this one again
            ++attempt;
            continue;
        }
        if (err == ENOSPC && !deadline.expired()) {
            int left = deadline.remaining_ms();
            ::poll(nullptr, 0, left < 0 ? nap_ms : std::min(nap_ms, left));
            if (stop_requested()) throw Interrupted();
            nap_ms = std::min(nap_ms * 2, 50);
            continue;
        }
        if (err == EINTR) {
            on_eintr();
            continue;
        }
        if (err == ENOSPC)
            throw_errno("msgget: the system-wide limit of System V queues (kernel.msgmni = " +
                            msgmni_text() + ") is reached; it frees as other queues are removed",
                        err);
        throw_errno("msgget", err);
    }
    throw std::runtime_error("msgget: " + std::to_string(kNameAttempts) +
                             " fresh random keys were all taken; someone is squatting System V keys");
}

}  // namespace

std::unique_ptr<Listener> listen_sysv_mq(const Endpoint& ep, const Limits&) {
    check_name(ep.name);
    InstanceLock lock(kTransport, ep.name);
    std::string path = key_file(ep.name);
    // We hold the lock, so a queue under the key file's key is a dead
    // server's - if it is ours at all (keys are global).
    if (auto old = read_key(path)) {
        int stale = ::msgget(*old, 0);
        struct msqid_ds ds {};
        if (stale >= 0 && ::msgctl(stale, IPC_STAT, &ds) == 0 && ds.msg_perm.uid == ::geteuid() &&
            ds.msg_perm.cuid == ::geteuid())
            check(::msgctl(stale, IPC_RMID, nullptr), "msgctl(IPC_RMID) stale queue");
    }
    key_t key = 0;
    auto nothing = [](key_t) {};
    int id = create_queue_under_random_key(nothing, nothing, Deadline(0), key);
    OwnedMsq queue(MsqName{id, ""});
    OwnedPath key_owned(path);  // before writing: a failed write (a full disk) leaves no file
    write_key(path, key);
    return std::make_unique<SysvMqListener>(std::move(lock), ep.name, std::move(key_owned),
                                            std::move(queue));
}

std::unique_ptr<Channel> connect_sysv_mq(const Endpoint& ep, const Limits& limits) {
    check_name(ep.name);
    std::string path = key_file(ep.name);
    int well_known = -1;
    if (auto key = read_key(path)) well_known = ::msgget(*key, 0);
    if (well_known < 0) {
        throw std::runtime_error("no sysv-mq server named '" + ep.name + "'");
    }
    // Keys are global: a queue under our server's key that another user made
    // would collect our hellos.
    struct msqid_ds ds {};
    check(::msgctl(well_known, IPC_STAT, &ds), "msgctl(IPC_STAT) well-known queue");
    if (ds.msg_perm.uid != ::geteuid() || (ds.msg_perm.mode & 0077) != 0)
        throw std::runtime_error("the sysv-mq queue of '" + ep.name +
                                 "' is not ours with mode 0600; refusing it");
    pid_t server_pid = recorded_server_pid(kTransport, ep.name);
    if (server_pid > 0 && !process_alive(server_pid))
        throw std::runtime_error("no sysv-mq server named '" + ep.name + "' (pid " +
                                 std::to_string(server_pid) + " left a stale queue)");
    pid_t me = ::getpid();
    private_dir();  // the markers' directory, created (and checked) if need be
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    auto mark = [&](key_t k) { create_marker(marker_for(ep.name, me, k)); };
    auto unmark = [&](key_t k) { remove_file(marker_for(ep.name, me, k)); };
    key_t key = 0;
    int c2s_id = create_queue_under_random_key(mark, unmark, deadline, key);
    OwnedMsq c2s(MsqName{c2s_id, marker_for(ep.name, me, key)});
    int s2c_id = create_queue_under_random_key(mark, unmark, deadline, key);
    OwnedMsq s2c(MsqName{s2c_id, marker_for(ep.name, me, key)});
    auto ch = std::make_unique<SysvMqChannel>(Role::client, c2s_id, s2c_id, limits, server_pid,
                                              ep.name);
    ch->own(std::move(c2s), std::move(s2c));
    ch->send_hello(well_known, me);
    ch->receive_welcome();
    return ch;
}

namespace {

// The msqid of a queue under key that exists and belongs to our uid (a
// /proc/sysvipc/msg row); -1 otherwise. Keys are global: another user's
// queue under a key in our file is not ours to show or remove.
class QueueTable {
public:
    QueueTable() {
        std::ifstream in("/proc/sysvipc/msg");
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream f(line);
            long long key = 0, perms = 0, cbytes = 0, qnum = 0, lspid = 0, lrpid = 0, uid = 0;
            int id = 0;
            if (f >> key >> id >> perms >> cbytes >> qnum >> lspid >> lrpid >> uid)
                uid_of_[id] = static_cast<uid_t>(uid);
        }
    }

    int ours(key_t key) const {
        int id = ::msgget(key, 0);
        auto row = uid_of_.find(id);
        return id >= 0 && row != uid_of_.end() && row->second == ::geteuid() ? id : -1;
    }

private:
    std::map<int, uid_t> uid_of_;
};

// The key in a marker's name, "NAME@PID.kKEY" (stem); nullopt if malformed.
std::optional<key_t> marker_key(const std::string& rest) {
    auto k = rest.find(".k");
    if (k == std::string::npos || rest.size() != k + 2 + 8) return std::nullopt;
    std::string hex = rest.substr(k + 2);
    if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return std::nullopt;
    return static_cast<key_t>(std::stoul(hex, nullptr, 16));
}

}  // namespace

std::vector<ObjectInfo> list_sysv_mq_objects() {
    QueueTable table;
    std::vector<ObjectInfo> out;
    std::string dir = existing_private_dir();
    for (const auto& name : stems_with_suffix(dir, ".sysv-mq.key")) {
        std::string path = dir + "/" + name + ".sysv-mq.key";
        int msqid = -1;
        if (auto key = read_key(path)) msqid = table.ours(*key);
        std::string what = msqid >= 0 ? "msqid " + std::to_string(msqid) + " (server '" + name + "')"
                                      : path;
        out.push_back(server_object(kTransport, name, what,
                                    [q = MsqName{msqid, path}] { remove_msq(q); }));
    }
    for (const auto& stem : stems_with_suffix(dir, ".smq")) {
        auto at = stem.rfind('@');
        if (at == std::string::npos) continue;
        std::string path = dir + "/" + stem + ".smq";
        std::string rest = stem.substr(at + 1);
        auto creator = static_cast<pid_t>(std::strtol(rest.c_str(), nullptr, 10));
        int msqid = -1;
        if (auto key = marker_key(rest)) msqid = table.ours(*key);
        std::string what = msqid >= 0 ? "msqid " + std::to_string(msqid) + " (client pid " +
                                            std::to_string(creator) + ")"
                                      : path;
        out.push_back(session_object(kTransport, stem.substr(0, at), what, creator,
                                     [q = MsqName{msqid, path}] { remove_msq(q); }));
    }
    return out;
}

}  // namespace ipclab
