// Named pipes: a well-known FIFO for hellos plus two FIFOs per session
// (the UNP vol. 2 rendezvous; names and the hello are in fifo_hello.hpp).
//
// Server: under InstanceLock("fifo", NAME) creates NAME.fifo (0600) and holds
// it open for reading and for writing (so the last client closing never
// gives it EOF). accept() reads hellos in whole 16-byte records, validates
// them (live pid; its session FIFOs exist, are FIFOs, ours, mode 0600, by
// lstat) and opens s2c for writing, then c2s for reading, both O_NONBLOCK.
// Opening in the parent (not the child) lets the client's c2s open succeed
// without waiting for fork; the descriptors go to the child with the fork
// and the parent drops its copies when the PendingSession dies.
//
// Client: mkfifo c2s and s2c (0600 whatever the umask); open s2c for reading
// (so the server's open for writing succeeds); write the hello; open c2s
// for writing, retrying ENXIO with short naps until the server has opened it
// or limits.timeout_ms passes. No open ever blocks, so neither side can
// deadlock on the other's open order.
//
// A FIFO read end opened before any writer reads EOF until a writer appears,
// but poll(2) reports nothing until data comes or a writer has come and gone;
// each side therefore polls once before its first read.
//
// Ownership: the client removes its session FIFOs (before closing them, so a
// server child that sees EOF finds them gone). If the names are still there
// when a session ends, the client died: the server child waits briefly for
// the pid (a pidfd taken at hello time, so pid reuse cannot fool it) to be
// gone and then removes them, comparing inodes.
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

using fifo::Hello;
using fifo::kHelloSize;

// Hellos read per read(2); a multiple of the record size keeps records whole.
constexpr std::size_t kHelloBatch = 256 * kHelloSize;
static_assert(kHelloBatch % kHelloSize == 0);
// How long a server child waits for a client that vanished to be fully gone.
constexpr int kOwnerExitWaitMs = 1000;
// Bigger pipes move large messages in fewer wake-ups (capped by pipe-max-size).
// Measured on 2 cores, 1 MiB echo: 64 KiB pipes ~700 us min round trip, 256 KiB
// ~320 us, 1 MiB ~280 us. 256 KiB keeps 64 sessions (2 pipes each) within the
// default per-user pipe budget (fs.pipe-user-pages-soft, 64 MiB), beyond which
// the kernel shrinks every new pipe of the user to two pages.
constexpr int kPipeBytes = 256 << 10;

std::atomic<std::uint32_t> g_next_serial{0};

std::string mode_text(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

// open(2) of a FIFO with O_NONBLOCK never sleeps, but EINTR is handled anyway.
int open_retry(const std::string& path, int flags) {
    for (;;) {
        int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 || errno != EINTR) return fd;
        on_eintr();
    }
}

// A client process we may have to outlive. A pidfd names the process, not
// the number, so a recycled pid cannot pass for it.
class ProcessWatch {
public:
    ProcessWatch() = default;
    // False when the process does not exist (or is a zombie).
    bool attach(pid_t pid) {
        pid_ = pid;
        // syscall(2): glibc 2.36 declares pidfd_open without C linkage for C++.
        int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
        if (fd >= 0) {
            pidfd_.reset(fd);
            return !exited(0);
        }
        if (errno == ESRCH) return false;
        if (errno != ENOSYS && errno != EPERM) throw_errno("pidfd_open " + std::to_string(pid));
        return process_alive(pid);  // old kernel: fall back to the number
    }

    // True once the process has exited, waiting up to wait_ms for it.
    bool exited(int wait_ms) const noexcept {
        Deadline deadline(wait_ms);
        for (;;) {
            if (pidfd_) {
                struct pollfd p {pidfd_.get(), POLLIN, 0};
                int n = ::poll(&p, 1, deadline.remaining_ms());
                if (n >= 0) return n > 0;
                if (errno != EINTR || stop_requested()) return false;
                continue;
            }
            if (!process_alive(pid_)) return true;
            int left = deadline.remaining_ms();
            if (left == 0) return false;
            ::poll(nullptr, 0, std::min(left, 5));
        }
    }

private:
    pid_t pid_ = 0;
    Fd pidfd_;
};

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
};

// lstat-checks a session FIFO named in a hello; never follows symlinks.
FileId check_session_fifo(const std::string& path, std::uint32_t pid) {
    std::string who = "fifo session file " + path + " of pid " + std::to_string(pid);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) throw ProtocolError(who + " does not exist");
        throw_errno("lstat " + path);
    }
    if (!S_ISFIFO(st.st_mode)) throw ProtocolError(who + " is not a FIFO");
    if (st.st_uid != ::getuid())
        throw ProtocolError(who + " belongs to uid " + std::to_string(st.st_uid) + ", not to us");
    if ((st.st_mode & 07777) != 0600)
        throw ProtocolError(who + " has mode " + mode_text(st.st_mode) + ", not 0600");
    return {st.st_dev, st.st_ino};
}

void check_same_file(int fd, const FileId& id, const std::string& path) {
    struct stat st {};
    check(::fstat(fd, &st), ("fstat " + path).c_str());
    if (st.st_dev != id.dev || st.st_ino != id.ino)
        throw ProtocolError("fifo session file " + path + " was replaced while being opened");
}

// Unlinks a dead client's leftover FIFO (ours, a FIFO, and, when id is
// given, still the very file we saw). Best effort: returns whether it did.
bool remove_stale_fifo(const std::string& path, const FileId* id = nullptr) noexcept {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_uid != ::getuid())
        return false;
    if (id && (st.st_dev != id->dev || st.st_ino != id->ino)) return false;
    return ::unlink(path.c_str()) == 0;
}

// A session's FIFO names as the server child sees them: removed at the end
// only if the client is gone (it removes them itself otherwise).
class SessionNames {
public:
    SessionNames(fifo::SessionPaths paths, FileId c2s, FileId s2c, ProcessWatch watch)
        : paths_(std::move(paths)), c2s_(c2s), s2c_(s2c), watch_(std::move(watch)) {}

    void remove_if_client_gone(int wait_ms) noexcept {
        if (!still_there(paths_.c2s, c2s_) && !still_there(paths_.s2c, s2c_)) return;
        if (!watch_.exited(wait_ms)) return;
        remove_stale_fifo(paths_.c2s, &c2s_);
        remove_stale_fifo(paths_.s2c, &s2c_);
    }

private:
    static bool still_there(const std::string& path, const FileId& id) noexcept {
        struct stat st {};
        return ::lstat(path.c_str(), &st) == 0 && st.st_dev == id.dev && st.st_ino == id.ino;
    }

    fifo::SessionPaths paths_;
    FileId c2s_, s2c_;
    ProcessWatch watch_;
};

int pipe_size_target() {
    static const int target = [] {
        long max = 0;
        std::ifstream in("/proc/sys/fs/pipe-max-size");
        if (!(in >> max) || max <= 0) return 0;
        return static_cast<int>(std::min<long>(max, kPipeBytes));
    }();
    return target;
}

// Best effort: the kernel refuses (EPERM) once the user's pipe budget is spent.
void grow_pipe(int fd) {
    int want = pipe_size_target();
    if (want <= 0) return;
    if (::fcntl(fd, F_SETPIPE_SZ, want) < 0 && errno != EPERM && errno != EBUSY &&
        errno != EINVAL)
        throw_errno("fcntl(F_SETPIPE_SZ)");
}

// The channel both sides use: the framed stream channel over two FIFOs,
// plus the first-read poll and the ownership of the session names.
class FifoChannel final : public Channel {
public:
    FifoChannel(std::unique_ptr<Channel> inner, int read_fd, int timeout_ms, OwnedPath c2s,
                OwnedPath s2c, std::unique_ptr<SessionNames> server_names)
        : inner_(std::move(inner)),
          read_fd_(read_fd),
          timeout_ms_(timeout_ms),
          c2s_(std::move(c2s)),
          s2c_(std::move(s2c)),
          server_names_(std::move(server_names)) {}

    ~FifoChannel() override {
        // Client: names first, so a server child that sees EOF finds them gone.
        c2s_ = OwnedPath();
        s2c_ = OwnedPath();
        inner_.reset();
        if (server_names_) server_names_->remove_if_client_gone(peer_ended_ ? kOwnerExitWaitMs : 0);
    }

    void send(FrameType type, std::span<const std::byte> payload) override {
        stop_point();
        try {
            inner_->send(type, payload);
        } catch (const PeerGone&) {
            peer_ended_ = true;
            throw;
        }
    }

    bool receive(Message& msg) override {
        stop_point();
        if (!writer_seen_) {
            if (!wait_fd(read_fd_, POLLIN, timeout_ms_ > 0 ? timeout_ms_ : -1, "fifo"))
                throw TimeoutError("timed out after " + std::to_string(timeout_ms_) +
                                   " ms waiting for the peer");
            writer_seen_ = true;
        }
        try {
            bool ok = inner_->receive(msg);
            if (!ok) peer_ended_ = true;
            return ok;
        } catch (const PeerGone&) {
            peer_ended_ = true;
            throw;
        }
    }

private:
    // A stop signal that lands between system calls causes no EINTR; a busy
    // session would never notice it, so each message looks at the flag.
    static void stop_point() {
        if (stop_requested()) throw Interrupted();
    }

    std::unique_ptr<Channel> inner_;
    int read_fd_;  // owned by inner_
    int timeout_ms_;
    OwnedPath c2s_, s2c_;
    std::unique_ptr<SessionNames> server_names_;
    bool writer_seen_ = false;
    bool peer_ended_ = false;
};

// Takes names only once nothing can fail, so a failing open() still holds them.
std::unique_ptr<Channel> make_fifo_channel(Fd read, Fd write, const Limits& limits, OwnedPath c2s,
                                           OwnedPath s2c, std::unique_ptr<SessionNames>&& names) {
    // Reads block (StreamReader polls first for the timeout); writes stay
    // non-blocking so a full pipe waits in poll, bounded by the timeout.
    set_nonblocking(read.get(), false);
    int read_fd = read.get();
    auto inner = make_framed_channel(StreamFds{std::move(read), std::move(write), false}, limits,
                                     false);
    return std::make_unique<FifoChannel>(std::move(inner), read_fd, limits.timeout_ms,
                                         std::move(c2s), std::move(s2c), std::move(names));
}

class FifoPending final : public PendingSession {
public:
    FifoPending(std::uint32_t pid, Fd c2s, Fd s2c, std::unique_ptr<SessionNames> names)
        : pid_(pid), c2s_(std::move(c2s)), s2c_(std::move(s2c)), names_(std::move(names)) {}

    std::string peer() const override { return "pid " + std::to_string(pid_); }

    std::unique_ptr<Channel> open(const Limits& limits) override {
        try {
            return make_fifo_channel(std::move(c2s_), std::move(s2c_), limits, OwnedPath(),
                                     OwnedPath(), std::move(names_));
        } catch (...) {
            if (names_) names_->remove_if_client_gone(0);
            throw;
        }
    }

private:
    std::uint32_t pid_;
    Fd c2s_, s2c_;
    std::unique_ptr<SessionNames> names_;
};

class FifoListener final : public Listener {
public:
    FifoListener(InstanceLock lock, OwnedPath path, Fd read, Fd write, std::string dir,
                 std::string name)
        : lock_(std::move(lock)),
          path_(std::move(path)),
          read_(std::move(read)),
          write_(std::move(write)),
          dir_(std::move(dir)),
          name_(std::move(name)),
          buf_(kHelloBatch) {}

    std::string describe() const override { return "fifo " + path_.path(); }

    std::unique_ptr<PendingSession> accept(int wake_fd) override {
        if (pos_ == end_) {
            struct pollfd p[2] = {{read_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
            int n = ::poll(p, wake_fd >= 0 ? 2 : 1, -1);
            if (n < 0) {
                if (errno == EINTR) return nullptr;
                throw_errno("poll " + path_.path());
            }
            if (p[0].revents & (POLLERR | POLLNVAL))
                throw std::runtime_error("poll reports an error on " + path_.path());
            if (!(p[0].revents & POLLIN)) return nullptr;
            ssize_t got = ::read(read_.get(), buf_.data(), buf_.size());
            if (got < 0) {
                if (errno == EINTR || errno == EAGAIN) return nullptr;
                throw_errno("read " + path_.path());
            }
            pos_ = 0;
            end_ = static_cast<std::size_t>(got);  // 0 cannot happen: we hold a writer
            if (end_ == 0) return nullptr;
        }
        return take_hello();
    }

    std::function<void()> orphan_sweep() const override {
        return [name = name_] { reclaim_orphans("fifo", name); };
    }

    void close_in_child() noexcept override {
        read_.reset();
        write_.reset();
        lock_.close_in_child();
    }

private:
    // Consumes one record from the buffer, whatever happens to it.
    std::unique_ptr<PendingSession> take_hello() {
        std::size_t avail = end_ - pos_;
        const std::byte* p = buf_.data() + pos_;
        if (avail < kHelloSize) {
            // Clients write whole records atomically: only a stray writer gets here.
            pos_ = end_;
            throw ProtocolError("discarded " + std::to_string(avail) +
                                " bytes on " + path_.path() + ": not a whole hello");
        }
        if (!fifo::has_magic(p)) {
            // Resynchronise on the next magic so garbage costs at most itself.
            std::size_t skip = 1;
            while (skip + 4 <= avail && !fifo::has_magic(p + skip)) ++skip;
            if (skip + 4 > avail) skip = avail;
            pos_ += skip;
            throw ProtocolError("discarded " + std::to_string(skip) + " bytes on " +
                                path_.path() + " that are not a hello (wrong magic)");
        }
        pos_ += kHelloSize;
        Hello h = fifo::decode_hello(std::span<const std::byte, kHelloSize>(p, kHelloSize));
        return open_session(h);
    }

    std::unique_ptr<PendingSession> open_session(const Hello& h) {
        std::string who = "hello from pid " + std::to_string(h.pid);
        if (h.pid == 0 || h.pid > static_cast<std::uint32_t>(INT_MAX))
            throw ProtocolError("fifo hello names an impossible pid " + std::to_string(h.pid));
        auto paths = fifo::session_paths(dir_, name_, h.pid, h.serial);
        ProcessWatch watch;
        if (!watch.attach(static_cast<pid_t>(h.pid))) {
            bool removed_c2s = remove_stale_fifo(paths.c2s);
            bool removed = remove_stale_fifo(paths.s2c) || removed_c2s;
            throw ProtocolError(who + ", which is not running" +
                                (removed ? " (removed its stale session FIFOs)" : ""));
        }
        FileId c2s_id = check_session_fifo(paths.c2s, h.pid);
        FileId s2c_id = check_session_fifo(paths.s2c, h.pid);
        // s2c first: the client reads it before it says hello, so this cannot
        // fail for a live client, and once the client can open c2s (after we
        // do) its reads never see a missing writer.
        Fd s2c(open_retry(paths.s2c, O_WRONLY | O_NONBLOCK));
        if (!s2c) {
            if (errno == ENXIO)
                throw ProtocolError(who + ": nobody is reading " + paths.s2c);
            throw_errno("open " + paths.s2c);
        }
        check_same_file(s2c.get(), s2c_id, paths.s2c);
        Fd c2s(open_retry(paths.c2s, O_RDONLY | O_NONBLOCK));
        if (!c2s) throw_errno("open " + paths.c2s);
        check_same_file(c2s.get(), c2s_id, paths.c2s);
        auto names = std::make_unique<SessionNames>(std::move(paths), c2s_id, s2c_id,
                                                    std::move(watch));
        return std::make_unique<FifoPending>(h.pid, std::move(c2s), std::move(s2c),
                                             std::move(names));
    }

    // Destroyed in reverse: descriptors, then the name, then the lock.
    InstanceLock lock_;
    OwnedPath path_;
    Fd read_, write_;
    std::string dir_, name_;
    std::vector<std::byte> buf_;
    std::size_t pos_ = 0, end_ = 0;
};

OwnedPath make_fifo(const std::string& path, bool replace_stale) {
    for (bool retried = false;; retried = true) {
        if (::mkfifo(path.c_str(), 0600) == 0) break;
        if (errno != EEXIST || !replace_stale || retried) throw_errno("mkfifo " + path);
        // Our own pid and a serial we have not used: left by a dead process image.
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink stale " + path);
    }
    OwnedPath owned(path);
    check(::chmod(path.c_str(), 0600), ("chmod " + path).c_str());  // the umask may have cut bits
    return owned;
}

// Removes this name's session FIFOs whose client is no longer running.
void sweep_dead_clients(const std::string& dir, const std::string& name) {
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        auto parsed = fifo::parse_file_name(it->path().filename().string());
        if (!parsed || parsed->name != name) continue;
        if (parsed->kind != fifo::ParsedName::Kind::c2s &&
            parsed->kind != fifo::ParsedName::Kind::s2c)
            continue;
        if (parsed->pid > static_cast<std::uint32_t>(INT_MAX) ||
            !process_alive(static_cast<pid_t>(parsed->pid)))
            remove_stale_fifo(it->path().string());
    }
}

// The server's well-known FIFO, opened before the client creates anything:
// without a server the client leaves no trace, not even the directory.
Fd open_well_known(const std::string& path, const std::string& name) {
    Fd fd(open_retry(path, O_WRONLY | O_NONBLOCK));
    if (!fd) {
        int err = errno;
        if (err == ENXIO || err == ENOENT)
            throw std::runtime_error("no fifo server named '" + name + "' (" + path + ": " +
                                     std::strerror(err) + ")");
        throw_errno("open " + path, err);
    }
    struct stat st {};
    check(::fstat(fd.get(), &st), ("fstat " + path).c_str());
    if (!S_ISFIFO(st.st_mode)) throw std::runtime_error(path + " is not a FIFO");
    return fd;
}

void send_hello(const Fd& fd, const std::string& path, const std::string& name,
                const Hello& hello, const Deadline& deadline) {
    auto bytes = fifo::encode_hello(hello);
    try {
        // Room for a hello may be short while the server is at --max-clients.
        write_all(fd.get(), bytes, false, deadline.remaining_ms(), "fifo hello");
    } catch (const PeerGone&) {
        throw std::runtime_error("no fifo server named '" + name + "' (" + path +
                                 ": the server closed it)");
    }
}

Fd open_writer_when_read(const std::string& path, const std::string& well_known,
                         const std::string& name, const Deadline& deadline, int timeout_ms) {
    long nap_us = 20;
    for (;;) {
        Fd fd(open_retry(path, O_WRONLY | O_NONBLOCK));
        if (fd) return fd;
        if (errno != ENXIO) throw_errno("open " + path);
        int left = deadline.remaining_ms();
        if (left == 0)
            throw TimeoutError("fifo server '" + name + "' did not take the session within " +
                               std::to_string(timeout_ms) +
                               " ms (busy at --max-clients, or it rejected the hello)");
        if (nap_us >= 1000 && ::access(well_known.c_str(), F_OK) != 0)
            throw std::runtime_error("fifo server '" + name + "' went away (" + well_known +
                                     " is gone)");
        long us = left < 0 ? nap_us : std::min<long>(nap_us, left * 1000L);
        struct timespec ts {0, us * 1000};
        if (::ppoll(nullptr, 0, &ts, nullptr) < 0 && errno == EINTR) on_eintr();
        nap_us = std::min<long>(nap_us * 2, 2000);
    }
}

// The pid holding an flock on path, from /proc/locks; 0 when none, -1 when unknown.
pid_t flock_holder(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    std::ifstream in("/proc/locks");
    if (!in) return -1;
    char want[64];
    std::snprintf(want, sizeof want, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                  static_cast<unsigned long long>(st.st_ino));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, type, advisory, mode, file;
        long pid = 0;
        if (!(f >> id >> type) || type == "->" || type != "FLOCK") continue;
        if (f >> advisory >> mode >> pid >> file && file == want) return static_cast<pid_t>(pid);
    }
    return 0;
}

pid_t pid_in_lock_file(const std::string& path) {
    std::ifstream in(path);
    long pid = 0;
    return (in >> pid) && pid > 0 && pid <= INT_MAX ? static_cast<pid_t>(pid) : 0;
}

std::function<void()> unlinker(const std::string& path) {
    return [path] {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + path);
    };
}

}  // namespace

std::unique_ptr<Listener> listen_fifo(const Endpoint& ep, const Limits&) {
    check_name(ep.name);
    std::string dir = private_dir();
    std::string path = fifo::well_known_path(dir, ep.name);
    InstanceLock lock("fifo", ep.name);
    // We hold the lock, so whatever is at the path is a dead server's.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink stale " + path);
    sweep_dead_clients(dir, ep.name);
    OwnedPath owned = make_fifo(path, false);
    Fd read(open_retry(path, O_RDONLY | O_NONBLOCK));
    if (!read) throw_errno("open " + path + " for reading");
    // Our own writer: without it the FIFO reads EOF whenever no client has it open.
    Fd write(open_retry(path, O_WRONLY | O_NONBLOCK));
    if (!write) throw_errno("open " + path + " for writing");
    return std::make_unique<FifoListener>(std::move(lock), std::move(owned), std::move(read),
                                          std::move(write), std::move(dir), ep.name);
}

std::unique_ptr<Channel> connect_fifo(const Endpoint& ep, const Limits& limits) {
    check_name(ep.name);
    std::string dir = existing_private_dir();
    std::string well_known = fifo::well_known_path(dir, ep.name);
    Fd hello_fd = open_well_known(well_known, ep.name);
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    Hello hello{static_cast<std::uint32_t>(::getpid()), g_next_serial.fetch_add(1)};
    auto paths = fifo::session_paths(dir, ep.name, hello.pid, hello.serial);
    OwnedPath c2s_name = make_fifo(paths.c2s, true);
    OwnedPath s2c_name = make_fifo(paths.s2c, true);
    // Reader first: the server's non-blocking open for writing needs one.
    Fd s2c(open_retry(paths.s2c, O_RDONLY | O_NONBLOCK));
    if (!s2c) throw_errno("open " + paths.s2c);
    send_hello(hello_fd, well_known, ep.name, hello, deadline);
    Fd c2s = open_writer_when_read(paths.c2s, well_known, ep.name, deadline, limits.timeout_ms);
    grow_pipe(c2s.get());
    grow_pipe(s2c.get());
    return make_fifo_channel(std::move(s2c), std::move(c2s), limits, std::move(c2s_name),
                             std::move(s2c_name), nullptr);
}

std::vector<ObjectInfo> list_fifo_objects() {
    std::vector<ObjectInfo> out;
    std::string dir = existing_private_dir();
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::string path = it->path().string();
        auto parsed = fifo::parse_file_name(it->path().filename().string());
        if (!parsed) continue;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) continue;  // removed meanwhile
        ObjectInfo info;
        info.transport = "fifo";
        info.what = path;
        info.name = parsed->name;
        info.remove = unlinker(path);
        switch (parsed->kind) {
            case fifo::ParsedName::Kind::lock:
                continue;  // list_lock_files() reports every transport's lock
            case fifo::ParsedName::Kind::well_known: {
                if (!S_ISFIFO(st.st_mode)) continue;
                std::string lock = dir + "/" + parsed->name + ".fifo.lock";
                pid_t holder = flock_holder(lock);
                pid_t recorded = pid_in_lock_file(lock);
                info.owner = holder > 0 ? holder : recorded;
                info.stale = holder == 0 || (holder < 0 && !process_alive(recorded));
                break;
            }
            case fifo::ParsedName::Kind::c2s:
            case fifo::ParsedName::Kind::s2c:
                if (!S_ISFIFO(st.st_mode)) continue;
                info.session = true;
                info.owner = parsed->pid <= static_cast<std::uint32_t>(INT_MAX)
                                 ? static_cast<pid_t>(parsed->pid)
                                 : 0;
                info.stale = !process_alive(info.owner);
                break;
        }
        out.push_back(std::move(info));
    }
    return out;
}

}  // namespace ipclab
