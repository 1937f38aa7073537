// Baselines: the plainest program each mechanism allows, UNP style (raw
// calls, readn/writen, nothing else), timed exactly like the ipclab runs.
// Every object is created by this process before the fork and has an owner
// here; names (POSIX queues, FIFOs) are unlinked as soon as both ends hold
// them, the rest are anonymous (socketpair, MAP_SHARED|MAP_ANONYMOUS) or, for
// System V, removed by their owner when the run ends or unwinds.
#include "bench/baselines.hpp"

#include "bench/ping_pong.hpp"
#include "bench/stream_pump.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/payload.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/fifo_rendezvous.hpp"
#include "ipc/io.hpp"
#include "ipc/owned.hpp"
#include "ipc/private_dir.hpp"
#include "server/options.hpp"

namespace ipclab::bench {

namespace {

constexpr int kWarmup = 16;

// EINTR: retry, unless a stop was requested.
void on_interrupt() {
    if (interrupted()) throw Interrupted();
}

void set_nodelay(int fd) {
    int one = 1;
    check(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), "setsockopt(TCP_NODELAY)");
}

// A listening TCP socket on 127.0.0.1 and a kernel-chosen port.
Fd tcp_listener(sockaddr_in& addr, int backlog) {
    Fd l(check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(l.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
    check(::listen(l.get(), backlog), "listen");
    socklen_t len = sizeof addr;
    check(::getsockname(l.get(), reinterpret_cast<sockaddr*>(&addr), &len), "getsockname");
    return l;
}

Fd tcp_connect(const sockaddr_in& addr) {
    Fd c(check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    while (::connect(c.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno != EINTR) throw_errno("connect");
        on_interrupt();
    }
    return c;
}

// A connected TCP pair over loopback, both ends with TCP_NODELAY (as ipclab's).
std::pair<Fd, Fd> tcp_pair() {
    sockaddr_in addr{};
    Fd l = tcp_listener(addr, 1);
    Fd c = tcp_connect(addr);
    Fd s(check(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept4"));
    set_nodelay(c.get());
    set_nodelay(s.get());
    return {std::move(c), std::move(s)};
}

std::pair<Fd, Fd> unix_pair() {
    int sv[2];
    check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
    return {Fd(sv[0]), Fd(sv[1])};
}

// A named FIFO in ipclab's own directory, both ends open and its name
// already gone. The fifo baselines use these, not pipe(2): since Linux 6.x a
// write to an anonymous pipe no longer updates the inode's times, while one
// to a FIFO still does, on the filesystem holding it (measured: ipclab's
// fifo 64 B round trip was 1.20x of a pipe ping-pong and 1.12x of a FIFO
// one, 3 interleaved pairs, pinned 1,1). The floor is the same mechanism.
std::pair<Fd, Fd> named_fifo_pair() {  // {read end, write end}
    // Replaces one left by a killed process of the same pid; removed on return.
    OwnedPath name = make_fifo(private_dir() + "/baseline-fifo-" + std::to_string(::getpid()), true);
    // Read end first and non-blocking, so opening the write end cannot wait.
    Fd r = open_fifo(name.name(), O_RDONLY | O_NONBLOCK);
    if (!r) throw_errno("open " + name.name() + " (read end)");
    Fd w = open_fifo(name.name(), O_WRONLY);
    if (!w) throw_errno("open " + name.name() + " (write end)");
    set_nonblocking(r.get(), false);  // reads block, as a pipe's
    return {std::move(r), std::move(w)};
}

// What every raw ping-pong shares: the echo child, the reply buffer and
// the byte-exact check of the last echo.
class RawPingPong : public PingPong {
public:
    bool echoed(std::span<const std::byte> request) const override {
        return request.size() <= reply_.size() &&
               (request.empty() || std::memcmp(reply_.data(), request.data(), request.size()) == 0);
    }
    pid_t server() const override { return child_.pid(); }

protected:
    RawPingPong(std::size_t size, std::size_t reply_capacity)
        : size_(size), reply_(std::max(reply_capacity, size) + 1) {}
    std::size_t size_;
    PageBuffer reply_;
    Child child_;
};

// Stream sockets and pipes: write N bytes, read N bytes back.
class StreamPingPong : public RawPingPong {
public:
    StreamPingPong(std::size_t size, int cpu, Fd c_read, Fd c_write, Fd s_read, Fd s_write)
        : RawPingPong(size, size), read_(std::move(c_read)), write_(std::move(c_write)) {
        int sr = s_read.get(), sw = s_write ? s_write.get() : s_read.get();
        child_ = Child(fork_child(cpu, [&]() -> int {
            read_.reset();
            write_.reset();
            PageBuffer buf(size);
            while (readn(sr, buf.data(), size)) writen(sw, buf.data(), size);
            return 0;
        }));
    }
    void round_trip(std::span<const std::byte> q) override {
        int cr = read_.get(), cw = write_ ? write_.get() : read_.get();
        writen(cw, q.data(), size_);
        if (!readn(cr, reply_.data(), size_)) throw PeerGone("baseline echo child closed");
    }

private:
    Fd read_, write_;  // write_ empty: a socket, both ways on read_
};

// ---- UDP -------------------------------------------------------------------

// The largest UDP payload over IPv4: a message above it goes as several datagrams.
constexpr std::size_t kUdpMaxDatagram = 65507;

// A UDP socket on 127.0.0.1 and a kernel-chosen port; its address in addr.
Fd udp_socket(sockaddr_in& addr) {
    Fd fd(check(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket"));
    addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
    socklen_t len = sizeof addr;
    check(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len), "getsockname");
    return fd;
}

void udp_send(int fd, const void* p, std::size_t n) {
    while (::send(fd, p, n, 0) < 0) {
        if (errno != EINTR) throw_errno("send");
        on_interrupt();
    }
}

// One datagram into p (at most cap bytes); its length.
std::size_t udp_recv(int fd, void* p, std::size_t cap) {
    for (;;) {
        ssize_t r = ::recv(fd, p, cap, 0);
        if (r >= 0) return static_cast<std::size_t>(r);
        if (errno == EAGAIN || errno == EWOULDBLOCK) throw PeerGone("baseline udp echo lost (no datagram in 10 s)");
        if (errno != EINTR) throw_errno("recv");
        on_interrupt();
    }
}

// Two connected UDP sockets; the child echoes each datagram as it comes.
// A message above one datagram goes a datagram at a time, each waiting for
// its echo (stop and wait): the plainest way that cannot overflow a
// receive buffer and lose one.
class UdpPingPong : public RawPingPong {
public:
    UdpPingPong(std::size_t size, int cpu) : RawPingPong(size, size) {
        sockaddr_in c_addr{}, s_addr{};
        client_ = udp_socket(c_addr);
        Fd server = udp_socket(s_addr);
        check(::connect(client_.get(), reinterpret_cast<sockaddr*>(&s_addr), sizeof s_addr), "connect");
        check(::connect(server.get(), reinterpret_cast<sockaddr*>(&c_addr), sizeof c_addr), "connect");
        struct timeval tv {10, 0};  // a lost datagram fails the run instead of hanging it
        check(::setsockopt(client_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), "setsockopt(SO_RCVTIMEO)");
        int s = server.get();
        child_ = Child(fork_child(cpu, [&]() -> int {
            client_.reset();
            PageBuffer buf(kUdpMaxDatagram);
            for (;;) udp_send(s, buf.data(), udp_recv(s, buf.data(), kUdpMaxDatagram));
        }));
    }
    void round_trip(std::span<const std::byte> q) override {
        std::size_t at = 0;
        do {
            std::size_t n = std::min(kUdpMaxDatagram, size_ - at);
            udp_send(client_.get(), q.data() + at, n);
            if (udp_recv(client_.get(), reply_.data() + at, n + 1) != n) throw ProtocolError("baseline udp echo of another size");
            at += n;
        } while (at < size_);
    }

private:
    Fd client_;
};

// ---- POSIX message queues -------------------------------------------------

class Mq {
public:
    explicit Mq(mqd_t q) : q_(q) {}
    Mq(const Mq&) = delete;
    Mq& operator=(const Mq&) = delete;
    ~Mq() {
        if (q_ != static_cast<mqd_t>(-1)) ::mq_close(q_);
    }
    mqd_t get() const { return q_; }

private:
    mqd_t q_;
};

std::unique_ptr<Mq> anonymous_mq(const std::string& name, long maxmsg, long msgsize) {
    mq_attr attr{};
    attr.mq_maxmsg = maxmsg;
    attr.mq_msgsize = msgsize;
    mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
    if (q == static_cast<mqd_t>(-1)) throw_errno("mq_open " + name);
    auto owner = std::make_unique<Mq>(q);
    check(::mq_unlink(name.c_str()), "mq_unlink");  // the descriptors keep the queue alive
    return owner;
}

// Messages larger than the kernel's msgsize_max go as plain consecutive chunks.
void mq_send_all(mqd_t q, const void* p, std::size_t size, std::size_t chunk) {
    auto* c = static_cast<const char*>(p);
    std::size_t off = 0;
    do {
        std::size_t n = std::min(chunk, size - off);
        while (::mq_send(q, c + off, n, 0) != 0) {
            if (errno != EINTR) throw_errno("mq_send");
            on_interrupt();
        }
        off += n;
    } while (off < size);
}

// out must have room for size + chunk bytes (mq_receive wants a full message's room).
void mq_receive_all(mqd_t q, void* out, std::size_t size, std::size_t chunk) {
    auto* c = static_cast<char*>(out);
    std::size_t got = 0;
    do {
        ssize_t n = ::mq_receive(q, c + got, chunk, nullptr);
        if (n < 0) {
            if (errno != EINTR) throw_errno("mq_receive");
            on_interrupt();
            continue;
        }
        got += static_cast<std::size_t>(n);
    } while (got < size);
}

class PosixMqPingPong : public RawPingPong {
public:
    PosixMqPingPong(std::size_t size, int cpu) : RawPingPong(size, size + chunk_for(size)), chunk_(chunk_for(size)) {
        long maxmsg = std::min<long>(10, read_long("/proc/sys/fs/mqueue/msg_max", 10));
        std::string base = "/ipcbench-" + std::to_string(::getpid()) + "-base";
        c2s_ = anonymous_mq(base + "-c2s", maxmsg, static_cast<long>(chunk_));
        s2c_ = anonymous_mq(base + "-s2c", maxmsg, static_cast<long>(chunk_));
        child_ = Child(fork_child(cpu, [&]() -> int {
            PageBuffer buf(size + chunk_);
            for (;;) {
                mq_receive_all(c2s_->get(), buf.data(), size, chunk_);
                mq_send_all(s2c_->get(), buf.data(), size, chunk_);
            }
        }));
    }
    void round_trip(std::span<const std::byte> q) override {
        mq_send_all(c2s_->get(), q.data(), size_, chunk_);
        mq_receive_all(s2c_->get(), reply_.data(), size_, chunk_);
    }

private:
    static std::size_t chunk_for(std::size_t size) {
        long msgsize_max = read_long("/proc/sys/fs/mqueue/msgsize_max", 8192);
        return std::clamp<std::size_t>(size, 1, static_cast<std::size_t>(msgsize_max));
    }
    std::size_t chunk_;
    std::unique_ptr<Mq> c2s_, s2c_;
};

// ---- System V message queues ----------------------------------------------

class SysvQueue {
public:
    SysvQueue() : id_(check(::msgget(IPC_PRIVATE, IPC_CREAT | 0600), "msgget")) {}
    SysvQueue(const SysvQueue&) = delete;
    SysvQueue& operator=(const SysvQueue&) = delete;
    ~SysvQueue() { ::msgctl(id_, IPC_RMID, nullptr); }
    int id() const { return id_; }

private:
    int id_;
};

// One queue, mtype 1 towards the server and 2 back (UNP vol. 2 style).
// A msgbuf (mtype, then text) whose text starts half a page into a
// page-aligned buffer: half a page from the page-aligned message buffers it
// is copied to and from, so those copies are never 4K-aliased.
class RawMsgBuf {
public:
    explicit RawMsgBuf(std::size_t chunk) : mem_(kPageSize + sizeof(long) + chunk) {}
    char* data() { return reinterpret_cast<char*>(mem_.data()) + kPageSize / 2 - sizeof(long); }

private:
    PageBuffer mem_;
};

void sysv_send_all(int id, long type, const void* p, std::size_t size, RawMsgBuf& mbuf, std::size_t chunk) {
    auto* c = static_cast<const char*>(p);
    std::size_t off = 0;
    do {
        std::size_t n = std::min(chunk, size - off);
        std::memcpy(mbuf.data(), &type, sizeof type);
        std::memcpy(mbuf.data() + sizeof type, c + off, n);
        while (::msgsnd(id, mbuf.data(), n, 0) != 0) {
            if (errno != EINTR) throw_errno("msgsnd");
            on_interrupt();
        }
        off += n;
    } while (off < size);
}

void sysv_receive_all(int id, long type, void* out, std::size_t size, RawMsgBuf& mbuf, std::size_t chunk) {
    auto* c = static_cast<char*>(out);
    std::size_t got = 0;
    do {
        ssize_t n = ::msgrcv(id, mbuf.data(), chunk, type, 0);
        if (n < 0) {
            if (errno != EINTR) throw_errno("msgrcv");
            on_interrupt();
            continue;
        }
        std::memcpy(c + got, mbuf.data() + sizeof(long), static_cast<std::size_t>(n));
        got += static_cast<std::size_t>(n);
    } while (got < size);
}

class SysvMqPingPong : public RawPingPong {
public:
    SysvMqPingPong(std::size_t size, int cpu)
        : RawPingPong(size, size + chunk_for(size)), chunk_(chunk_for(size)), mbuf_(chunk_) {
        child_ = Child(fork_child(cpu, [&]() -> int {
            PageBuffer buf(size + chunk_);
            RawMsgBuf mbuf(chunk_);
            for (;;) {
                sysv_receive_all(queue_.id(), 1, buf.data(), size, mbuf, chunk_);
                sysv_send_all(queue_.id(), 2, buf.data(), size, mbuf, chunk_);
            }
        }));
    }
    ~SysvMqPingPong() override { child_.stop(); }  // before the queue goes
    void round_trip(std::span<const std::byte> q) override {
        sysv_send_all(queue_.id(), 1, q.data(), size_, mbuf_, chunk_);
        sysv_receive_all(queue_.id(), 2, reply_.data(), size_, mbuf_, chunk_);
    }

private:
    static std::size_t chunk_for(std::size_t size) {
        long msgmax = read_long("/proc/sys/kernel/msgmax", 8192);
        return std::clamp<std::size_t>(size, 1, static_cast<std::size_t>(msgmax));
    }
    std::size_t chunk_;
    SysvQueue queue_;
    RawMsgBuf mbuf_;
};

// ---- Shared memory ----------------------------------------------------------

struct Unmap {
    std::size_t len;
    void operator()(void* p) const { ::munmap(p, len); }
};
using Mapping = std::unique_ptr<void, Unmap>;

Mapping anonymous_shared(std::size_t len) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
    return Mapping(p, Unmap{len});
}

// The shm_open(3) example's shape: two process-shared semaphores and a buffer.
struct SemHeader {
    sem_t request;
    sem_t reply;
};
constexpr std::size_t kDataOffset = 256;  // keeps the buffer off the control words' cache lines
static_assert(sizeof(SemHeader) <= kDataOffset);

void sem_wait_checked(sem_t* s) {
    while (::sem_wait(s) != 0) {
        if (errno != EINTR) throw_errno("sem_wait");
        on_interrupt();
    }
}

// Where a shared-memory ping-pong's echo child puts its reply.
enum class ReplyBuffer {
    // Back into the request's own bytes: the plainest ping-pong, and the
    // floor of `Baseline/shm*`. Each side then writes only lines it has just
    // read itself, which no duplex channel can do.
    in_place,
    // Into a buffer of its own, pages further on, as every duplex channel
    // (ipclab's rings, a socket, a pipe pair) has one per direction:
    // `BaselineDuplex/shm*`. With the two sides spinning on two CPUs each
    // write then takes its lines back from the other CPU's cache (4 KiB:
    // 1.9-2.0 µs against 1.1-1.2 in place, Intel Xeon VM, pinned).
    own,
};

// An anonymous shared mapping: the control words (Header) at its start, the
// message buffer after them (and the reply's, with ReplyBuffer::own),
// shared with the forked echo child.
template <typename Header>
class SharedPingPong : public RawPingPong {
protected:
    SharedPingPong(std::size_t size, ReplyBuffer reply)
        : RawPingPong(size, size),
          map_(anonymous_shared(kDataOffset + reply_at(size, reply) + size + 1)),
          h_(new (map_.get()) Header),
          data_(static_cast<std::byte*>(map_.get()) + kDataOffset),
          answer_(data_ + reply_at(size, reply)) {}
    Mapping map_;
    Header* h_;
    std::byte* data_;    // the request
    std::byte* answer_;  // the reply: data_ itself, or a page-aligned distance after it

    // The echo child's own copy of the message: page-aligned, so kDataOffset
    // (256 bytes) from data_ and answer_ modulo 4 KiB. From the heap it
    // sometimes landed a few bytes after one of them, where glibc's
    // `rep movsb` copies 64 KiB 17x slower on the EPYC hosts (see copy_bytes
    // in ipc/shm_ring.hpp): in one ipc-bench process of four the raw 64 KiB
    // round trip took 27-44 us against 6-13 in the others, in shm and
    // shm-spin alike, and Paired/shm-spin/65536 read 0.16-0.25.
    static PageBuffer echo_buffer(std::size_t size) { return PageBuffer(size + 1); }

private:
    static std::size_t reply_at(std::size_t size, ReplyBuffer reply) {
        return reply == ReplyBuffer::in_place ? 0 : (std::max<std::size_t>(size, 1) + kPageSize - 1) / kPageSize * kPageSize;
    }
};

class ShmSemPingPong : public SharedPingPong<SemHeader> {
public:
    ShmSemPingPong(std::size_t size, int cpu, ReplyBuffer reply) : SharedPingPong(size, reply) {
        check(::sem_init(&h_->request, 1, 0), "sem_init");
        check(::sem_init(&h_->reply, 1, 0), "sem_init");
        child_ = Child(fork_child(cpu, [&]() -> int {
            PageBuffer local = echo_buffer(size);
            for (;;) {
                sem_wait_checked(&h_->request);
                std::memcpy(local.data(), data_, size);    // the server takes the message out ...
                std::memcpy(answer_, local.data(), size);  // ... and puts its reply in
                check(::sem_post(&h_->reply), "sem_post");
            }
        }));
    }
    ~ShmSemPingPong() override {
        child_.stop();
        ::sem_destroy(&h_->request);
        ::sem_destroy(&h_->reply);
    }
    void round_trip(std::span<const std::byte> q) override {
        std::memcpy(data_, q.data(), size_);
        check(::sem_post(&h_->request), "sem_post");
        sem_wait_checked(&h_->reply);
        std::memcpy(reply_.data(), answer_, size_);
    }
};

// Two sequence words on their own cache lines; each side busy-polls the
// other's. A request with kParkBit set sends the child to sleep on `park`
// until resume(), so a paired run's other member has the CPU to itself; the
// measured path itself never sleeps.
struct SpinHeader {
    alignas(64) std::atomic<std::uint64_t> request{0};
    alignas(64) std::atomic<std::uint64_t> reply{0};
    alignas(64) sem_t park;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared across processes");
static_assert(sizeof(SpinHeader) <= kDataOffset);
constexpr std::uint64_t kParkBit = 1ull << 63;

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

class ShmSpinPingPong : public SharedPingPong<SpinHeader> {
public:
    ShmSpinPingPong(std::size_t size, int cpu, ReplyBuffer reply) : SharedPingPong(size, reply) {
        check(::sem_init(&h_->park, 1, 0), "sem_init");
        child_ = Child(fork_child(cpu, [&]() -> int {
            PageBuffer local = echo_buffer(size);
            std::uint64_t seen = 0;
            for (;;) {
                std::uint64_t r;
                while ((r = h_->request.load(std::memory_order_acquire)) == seen) relax();
                seen = r;
                if (r & kParkBit) {
                    h_->reply.store(r, std::memory_order_release);
                    sem_wait_checked(&h_->park);
                    continue;
                }
                std::memcpy(local.data(), data_, size);
                std::memcpy(answer_, local.data(), size);
                h_->reply.store(r, std::memory_order_release);
            }
        }));
    }
    ~ShmSpinPingPong() override {
        child_.stop();
        ::sem_destroy(&h_->park);
    }
    void round_trip(std::span<const std::byte> q) override {
        std::memcpy(data_, q.data(), size_);
        h_->request.store(++n_, std::memory_order_release);
        await(n_);
        std::memcpy(reply_.data(), answer_, size_);
    }
    void pause() override {
        h_->request.store(++n_ | kParkBit, std::memory_order_release);
        await(n_ | kParkBit);
    }
    void resume() override { check(::sem_post(&h_->park), "sem_post"); }

private:
    // Pure spin, no fallback: the hardware's floor. Checked rarely for a
    // stop request or a dead child, so a lost peer cannot hang the run.
    void await(std::uint64_t want) const {
        for (std::uint32_t spins = 1; h_->reply.load(std::memory_order_acquire) != want; ++spins) {
            relax();
            if ((spins & 0xfffff) == 0) {
                if (interrupted()) throw Interrupted();
                if (::waitpid(child_.pid(), nullptr, WNOHANG) != 0)
                    throw PeerGone("baseline spin child is gone");
            }
        }
    }
    std::uint64_t n_ = 0;
};

void baseline_round_trip(benchmark::State& state, const PingPongMaker& make, std::size_t size) {
    if (!begin_run(state)) return;
    try {
        auto p = make();
        measure_round_trips(state, *p, size);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// ---- One-way streams ---------------------------------------------------------

// The writer's end of a raw stream and its reader child, which takes the
// bytes as cat(1) does (but into a buffer it walks through, below) and
// answers one byte per ack_every bytes taken (0: only at EOF) - how the
// writer learns they arrived. Sockets answer on the data socket, a FIFO on
// a second FIFO.
class RawStream : public StreamPump {
public:
    RawStream(const std::string& t, std::size_t size, std::uint64_t ack_every, int cpu) : socket_(t != "fifo") {
        Fd s_data, s_ack;
        if (t == "tcp") {
            std::tie(data_, s_data) = tcp_pair();
        } else if (t == "unix") {
            std::tie(data_, s_data) = unix_pair();
        } else if (t == "fifo") {
            std::tie(s_data, data_) = named_fifo_pair();
            std::tie(ack_, s_ack) = named_fifo_pair();
        } else {
            throw std::invalid_argument("no stream baseline for " + t);
        }
        child_ = Child(fork_child(cpu, [&]() -> int {
            data_.reset();
            ack_.reset();
            // Into a page-aligned buffer as every raw baseline (a heap
            // buffer's page offset, and so whether the copy is 4K-aliased,
            // varied by process), walking through it as it fills (wrapping
            // at its end), as a receiver that keeps whole messages must:
            // read to the buffer's start every time, as cat(1) does, a
            // 1 MiB stream reused the first few hundred KiB, hot in cache,
            // while ipclab's receiver fills 1 MiB per message
            // (PairedStream/unix/1048576 on one CPU 0.74 against that
            // reader, 0.97-1.00 against this one; fifo 0.78 and 0.97-0.99).
            PageBuffer buf(std::max<std::size_t>(size, 64 * 1024));
            const int answer = s_ack ? s_ack.get() : s_data.get();
            std::uint64_t taken = 0, answered = 0;
            std::size_t at = 0;
            const char one = 1;
            for (;;) {
                ssize_t n = ::read(s_data.get(), buf.data() + at, buf.size() - at);
                if (n == 0) break;
                if (n < 0) {
                    if (errno != EINTR) throw_errno("read");
                    continue;
                }
                at = (at + static_cast<std::size_t>(n)) % buf.size();
                taken += static_cast<std::uint64_t>(n);
                for (; ack_every > 0 && taken / ack_every > answered; ++answered) writen(answer, &one, 1);
            }
            writen(answer, &one, 1);
            return 0;
        }));
    }
    void send(std::span<const std::byte> message) override { writen(data_.get(), message.data(), message.size()); }
    void flush() override { expect_answer(); }
    pid_t server() const override { return child_.pid(); }
    // Closes the writer's side and waits for the reader's EOF answer.
    void finish() {
        if (socket_) check(::shutdown(data_.get(), SHUT_WR), "shutdown");
        else data_.reset();
        expect_answer();
    }

private:
    void expect_answer() {
        char got = 0;
        if (!readn(socket_ ? data_.get() : ack_.get(), &got, 1) || got != 1)
            throw PeerGone("the baseline reader did not acknowledge");
    }
    bool socket_;
    Fd data_, ack_;
    Child child_;
};

// The reader takes the bytes until EOF, then answers one byte; the
// writer's last iteration closes its side and waits for that byte.
void baseline_stream(benchmark::State& state, const std::string& t, std::size_t size, int cpu) {
    if (!begin_run(state)) return;
    try {
        RawStream raw(t, size, 0, cpu);
        Bytes payload = request_buffer(size);  // placed as ipclab's Stream source is: the same copy into the kernel
        fill_payload(payload, 0, size);
        for (int i = 0; i < kWarmup; ++i) raw.send(payload);
        Meter meter(state, raw.server());
        const auto last = static_cast<std::uint64_t>(state.max_iterations) - 1;
        std::uint64_t seq = 0;
        meter.start();
        for (auto _ : timed(state)) {
            stop_if_signalled();
            if (size >= 8) std::memcpy(payload.data(), &seq, 8);
            auto t0 = Clock::now();
            raw.send(payload);
            if (seq == last) raw.finish();
            meter.add(elapsed_ns(t0, Clock::now()));
            ++seq;
        }
        meter.stop();
        meter.report(static_cast<std::int64_t>(size), seq);
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// ---- Fork per connection -----------------------------------------------------

// A minimal C fork-per-connection TCP server on loopback. one_shot: the
// child reads once, replies and exits (the seed's server); otherwise it
// answers every message until the client closes, as an ipclab session child
// does - the comparable figure for Connect/tcp.
class RawForkServer {
public:
    RawForkServer(int cpu, bool one_shot) {
        Fd listener = tcp_listener(addr_, 1024);
        server_ = Child(fork_child(cpu, [&]() -> int {
            int l = listener.get();
            for (;;) {
                int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) {
                    if (errno == EINTR || errno == ECONNABORTED) continue;
                    return 1;
                }
                pid_t pid = ::fork();
                if (pid == 0) {
                    ::close(l);
                    char buf[256];
                    ssize_t n;
                    do {
                        n = ::read(c, buf, sizeof buf);
                        if (n > 0 && ::write(c, kAckText, sizeof kAckText - 1) < 0) break;
                    } while (n > 0 && !one_shot);
                    ::_exit(0);
                }
                ::close(c);
                while (::waitpid(-1, nullptr, WNOHANG) > 0) {
                }
            }
        }));
    }

    // One connection: the message, its acknowledgement, close. False when
    // the acknowledgement did not come.
    bool exchange(std::span<const std::byte> message) const {
        Fd c = tcp_connect(addr_);
        writen(c.get(), message.data(), message.size());
        char reply[sizeof kAckText];
        const std::size_t ack_len = sizeof kAckText - 1;
        return readn(c.get(), reply, ack_len) && std::memcmp(reply, kAckText, ack_len) == 0;
    }

    pid_t pid() const { return server_.pid(); }

private:
    sockaddr_in addr_{};
    Child server_;
};

void baseline_connect_fork(benchmark::State& state, int cpu, bool one_shot) {
    if (!begin_run(state)) return;
    try {
        RawForkServer server(cpu, one_shot);
        Bytes payload;
        fill_payload(payload, 1, 64);
        auto exchange = [&]() { return server.exchange(payload); };
        for (int i = 0; i < 2; ++i)
            if (!exchange()) return fail(state, "baseline fork server did not answer");
        measure_exchanges(state, server.pid(), exchange, "baseline fork server did not answer");
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

// Baseline/connect-fork-session as a member of a pair (PairedConnect/tcp):
// each round trip is one whole connection.
class RawSessionPingPong : public PingPong {
public:
    explicit RawSessionPingPong(int cpu) : server_(cpu, false) {}
    void round_trip(std::span<const std::byte> request) override { acked_ = server_.exchange(request); }
    bool echoed(std::span<const std::byte>) const override { return acked_; }
    std::string mismatch(std::span<const std::byte>) const override {
        return "the C fork server did not acknowledge the connection's message";
    }
    pid_t server() const override { return server_.pid(); }

private:
    RawForkServer server_;
    bool acked_ = false;
};

// ---- socat in fork mode -------------------------------------------------------

bool on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
        std::size_t end = dirs.find(':', at);
        if (end == std::string::npos) end = dirs.size();
        std::string dir = dirs.substr(at, end - at);
        if (!dir.empty() && ::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
        at = end + 1;
    }
    return false;
}

// A port the kernel just handed out and we let go of; socat binds it next.
std::uint16_t free_loopback_port() {
    sockaddr_in addr{};
    Fd l = tcp_listener(addr, 1);
    return ntohs(addr.sin_port);
}

// The other reference point, measured instead of quoted: socat
// forking a child per connection that echoes through a pipe (PIPE: no exec,
// so it is fork per connection and nothing else), the same 64-byte exchange.
void baseline_connect_socat(benchmark::State& state, int cpu) {
    if (!begin_run(state)) return;
    if (!on_path("socat")) return fail(state, "socat is not installed (apt-get install socat)");
    try {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(free_loopback_port());
        std::string listen = "TCP4-LISTEN:" + std::to_string(ntohs(addr.sin_port)) +
                             ",bind=127.0.0.1,reuseaddr,fork,backlog=1024";
        Child socat(fork_child(cpu, [&]() -> int {
            // -t: a child lingers this long after its client's EOF (default 0.5 s).
            ::execlp("socat", "socat", "-t", "0.05", listen.c_str(), "PIPE", static_cast<char*>(nullptr));
            std::string msg = std::string("ipc-bench: exec socat: ") + std::strerror(errno) + "\n";
            [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg.data(), msg.size());
            return 127;
        }));
        Bytes payload;
        fill_payload(payload, 1, 64);
        Bytes echo(payload.size());
        auto exchange = [&]() {
            Fd c = tcp_connect(addr);
            writen(c.get(), payload.data(), payload.size());
            return readn(c.get(), echo.data(), echo.size()) && echo == payload;
        };
        // socat needs a moment to listen: retry refused connections, bounded.
        for (int tries = 0;; ++tries) {
            try {
                if (exchange()) break;
            } catch (const SystemError&) {
                if (tries >= 500) throw;
            }
            if (interrupted()) return fail(state, "interrupted");
            ::usleep(10000);
        }
        measure_exchanges(state, socat.pid(), exchange, "socat did not echo the message");
    } catch (const std::exception& e) {
        fail(state, e.what());
    }
}

constexpr std::size_t kCheckEveryBytes = std::size_t{64} << 20;

void baseline_memcpy(benchmark::State& state, std::size_t size) {
    if (!begin_run(state)) return;
    Bytes src, dst(size);  // both at one page offset: never 4K-aliased
    fill_payload(src, 0, size);
    std::memcpy(dst.data(), src.data(), size);  // fault the pages in
    // No system call here to return EINTR, and without begin_run every later
    // repetition ran in full after a stop. The flag is looked at between
    // batches of copies (64 MiB each: milliseconds at any size), so the copy
    // loop itself is what it was: a per-copy check cost 4% at 64 B (1.27 ->
    // 1.32 ns, 8 interleaved rounds).
    const auto batch = static_cast<benchmark::IterationCount>(
        std::max<std::size_t>(1, kCheckEveryBytes / std::max<std::size_t>(size, 1)));
    timed(state);
    while (state.KeepRunningBatch(batch)) {
        for (benchmark::IterationCount i = 0; i < batch; ++i) {
            std::memcpy(dst.data(), src.data(), size);
            benchmark::DoNotOptimize(dst.data());
            benchmark::ClobberMemory();
        }
        if (interrupted()) return fail(state, "interrupted");
    }
    if (size > 0 && std::memcmp(dst.data(), src.data(), size) != 0)
        return fail(state, "memcpy copied wrong bytes");
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

}  // namespace

std::unique_ptr<PingPong> make_baseline_ping_pong(const std::string& t, std::size_t size, int cpu) {
    if (t == "tcp") {
        auto [c, s] = tcp_pair();
        return std::make_unique<StreamPingPong>(size, cpu, std::move(c), Fd{}, std::move(s), Fd{});
    }
    if (t == "unix") {
        auto [c, s] = unix_pair();
        return std::make_unique<StreamPingPong>(size, cpu, std::move(c), Fd{}, std::move(s), Fd{});
    }
    if (t == "fifo") {
        auto [to_server_r, to_server_w] = named_fifo_pair();
        auto [to_client_r, to_client_w] = named_fifo_pair();
        return std::make_unique<StreamPingPong>(size, cpu, std::move(to_client_r), std::move(to_server_w),
                                                std::move(to_server_r), std::move(to_client_w));
    }
    if (t == "udp") return std::make_unique<UdpPingPong>(size, cpu);
    if (t == "posix-mq") return std::make_unique<PosixMqPingPong>(size, cpu);
    if (t == "sysv-mq") return std::make_unique<SysvMqPingPong>(size, cpu);
    if (t == "shm") return std::make_unique<ShmSemPingPong>(size, cpu, ReplyBuffer::in_place);
    if (t == "shm-spin") return std::make_unique<ShmSpinPingPong>(size, cpu, ReplyBuffer::in_place);
    throw std::invalid_argument("no baseline for " + t);
}

bool has_duplex_baseline(const std::string& t) { return t == "shm" || t == "shm-spin"; }

std::unique_ptr<PingPong> make_session_baseline_ping_pong(int server_cpu) {
    return std::make_unique<RawSessionPingPong>(server_cpu);
}

std::unique_ptr<PingPong> make_duplex_baseline_ping_pong(const std::string& t, std::size_t size, int cpu) {
    if (t == "shm") return std::make_unique<ShmSemPingPong>(size, cpu, ReplyBuffer::own);
    if (t == "shm-spin") return std::make_unique<ShmSpinPingPong>(size, cpu, ReplyBuffer::own);
    throw std::invalid_argument("no duplex baseline for " + t);
}

std::unique_ptr<StreamPump> make_baseline_stream_pump(const std::string& t, std::size_t size, std::uint64_t flush_bytes,
                                                      int cpu) {
    if (flush_bytes == 0) throw std::invalid_argument("a stream pump flushes after at least one byte");
    return std::make_unique<RawStream>(t, size, flush_bytes, cpu);
}

namespace {

benchmark::internal::Benchmark* register_raw_round_trip(const std::string& family, const Config& c,
                                                        const std::string& transport, std::size_t size,
                                                        BaselineMaker make) {
    std::string name = family + "/" + transport + "/" + std::to_string(size);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        baseline_round_trip(s, [=] { return make(transport, size, cpu); }, size);
    })->UseRealTime();
}

}  // namespace

benchmark::internal::Benchmark* register_baseline_round_trip(const Config& c, const std::string& transport, std::size_t size) {
    return register_raw_round_trip("Baseline", c, transport, size, make_baseline_ping_pong);
}

benchmark::internal::Benchmark* register_duplex_baseline_round_trip(const Config& c, const std::string& transport,
                                                                    std::size_t size) {
    return register_raw_round_trip("BaselineDuplex", c, transport, size, make_duplex_baseline_ping_pong);
}

bool has_baseline_stream(const std::string& t) { return t == "tcp" || t == "unix" || t == "fifo"; }

bool has_baseline_connect(const std::string& t) { return t == "tcp"; }

benchmark::internal::Benchmark* register_baseline_stream(const Config& c, const std::string& transport, std::size_t size) {
    std::string name = "BaselineStream/" + transport + "/" + std::to_string(size);
    int cpu = server_cpu_for(c, transport);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        baseline_stream(s, transport, size, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_baseline_connect_fork(const Config& c) {
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark("Baseline/connect-fork", [=](benchmark::State& s) {
        baseline_connect_fork(s, cpu, true);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_baseline_connect_fork_session(const Config& c) {
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark("Baseline/connect-fork-session", [=](benchmark::State& s) {
        baseline_connect_fork(s, cpu, false);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_baseline_connect_socat(const Config& c) {
    int cpu = c.server_cpu;
    return benchmark::RegisterBenchmark("Baseline/connect-socat", [=](benchmark::State& s) {
        baseline_connect_socat(s, cpu);
    })->UseRealTime();
}

benchmark::internal::Benchmark* register_baseline_memcpy(std::size_t size) {
    std::string name = "Baseline/memcpy/" + std::to_string(size);
    return benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
        baseline_memcpy(s, size);
    })->UseRealTime();
}

}  // namespace ipclab::bench
