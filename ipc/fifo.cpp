// Named pipes: a well-known FIFO for hellos plus two FIFOs per session
// (the UNP vol. 2 rendezvous; names and the hello are in fifo_hello.hpp).
//
// Server: under InstanceLock("fifo", NAME) creates NAME.fifo, a HelloFifo
// (fifo_rendezvous.hpp) shared with the shm transport. accept() takes its
// hellos and validates them (live pid; its session FIFOs exist, are FIFOs, ours, mode 0600, by
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
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/fifo_rendezvous.hpp"
#include "ipc/io.hpp"
#include "ipc/objects.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

using fifo::Hello;

constexpr const char* kTransport = "fifo";
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

    // Readable once the process has exited; -1 on kernels without pidfds.
    int fd() const { return pidfd_.get(); }

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

    // Readable once the session's client has exited (or -1).
    int client_watch_fd() const { return watch_.fd(); }

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

// What the framed stream channel over two FIFOs also does: the first-read
// poll and the ownership of the session names.
class FifoSessionHooks final : public StreamSessionHooks {
public:
    FifoSessionHooks(int read_fd, int timeout_ms, OwnedPath c2s, OwnedPath s2c,
                     std::unique_ptr<SessionNames> server_names)
        : read_fd_(read_fd),
          timeout_ms_(timeout_ms),
          c2s_(std::move(c2s)),
          s2c_(std::move(s2c)),
          server_names_(std::move(server_names)) {}

    // After the channel closed its descriptors.
    ~FifoSessionHooks() override {
        if (server_names_) server_names_->remove_if_client_gone(peer_ended_ ? kOwnerExitWaitMs : 0);
    }

    // Until the peer first opens its end, a read would see EOF. The server
    // also watches the client's process: one killed between its hello and
    // opening its FIFO would otherwise hold the session (and an iterative
    // server, every session) until the idle timeout.
    void before_first_read() override {
        struct pollfd p[2] = {{read_fd_, POLLIN, 0},
                              {server_names_ ? server_names_->client_watch_fd() : -1, POLLIN, 0}};
        int n = wait_fds(p, p[1].fd >= 0 ? 2 : 1, timeout_ms_ > 0 ? timeout_ms_ : -1, "fifo");
        if (n == 0) throw TimeoutError("timed out after " + std::to_string(timeout_ms_) + " ms waiting for the peer");
        if (p[0].revents == 0) throw PeerGone("the client exited before it opened its FIFO");
    }

    // Client: names first, so a server child that sees EOF finds them gone.
    void before_close(bool peer_ended) override {
        peer_ended_ = peer_ended;
        c2s_ = OwnedPath();
        s2c_ = OwnedPath();
    }

private:
    int read_fd_;  // the channel's
    int timeout_ms_;
    OwnedPath c2s_, s2c_;
    std::unique_ptr<SessionNames> server_names_;
    bool peer_ended_ = false;
};

// The names go to the hooks: if the channel cannot be made, their
// destructor removes them as a session's end would (a client that vanished).
std::unique_ptr<Channel> make_fifo_channel(Fd read, Fd write, const Limits& limits, OwnedPath c2s,
                                           OwnedPath s2c, std::unique_ptr<SessionNames>&& names) {
    int read_fd = read.get();
    auto hooks = std::make_unique<FifoSessionHooks>(read_fd, limits.timeout_ms, std::move(c2s), std::move(s2c),
                                                    std::move(names));
    // Reads block (StreamReader's tick timer bounds them by the timeout);
    // writes stay non-blocking so a full pipe waits in poll, bounded by it too.
    set_nonblocking(read_fd, false);
    return make_framed_channel(StreamFds{std::move(read), std::move(write), false}, limits, false,
                               SessionReply::server_default, false, std::move(hooks));
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
            if (names_) names_->remove_if_client_gone(0);  // failed before the hooks took them
            throw;
        }
    }

private:
    std::uint32_t pid_;
    Fd c2s_, s2c_;
    std::unique_ptr<SessionNames> names_;
};

class FifoListener final : public HelloListener {
public:
    FifoListener(std::string dir, const std::string& name)
        : HelloListener(kTransport, name, fifo::well_known_path(dir, name)), dir_(std::move(dir)) {}

private:
    // Validates the client's session FIFOs and opens them.
    std::unique_ptr<PendingSession> session(const Hello& h) override {
        std::string who = "hello from pid " + std::to_string(h.pid);
        if (h.pid == 0 || h.pid > static_cast<std::uint32_t>(INT_MAX))
            throw ProtocolError("fifo hello names an impossible pid " + std::to_string(h.pid));
        auto paths = fifo::session_paths(dir_, name(), h.pid, h.serial);
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
        Fd s2c = open_fifo(paths.s2c, O_WRONLY | O_NONBLOCK);
        if (!s2c) {
            if (errno == ENXIO)
                throw ProtocolError(who + ": nobody is reading " + paths.s2c);
            throw_errno("open " + paths.s2c);
        }
        check_same_file(s2c.get(), s2c_id, paths.s2c);
        Fd c2s = open_fifo(paths.c2s, O_RDONLY | O_NONBLOCK);
        if (!c2s) throw_errno("open " + paths.c2s);
        check_same_file(c2s.get(), c2s_id, paths.c2s);
        auto names = std::make_unique<SessionNames>(std::move(paths), c2s_id, s2c_id,
                                                    std::move(watch));
        return std::make_unique<FifoPending>(h.pid, std::move(c2s), std::move(s2c),
                                             std::move(names));
    }

    std::string dir_;
};

Fd open_writer_when_read(const std::string& path, const std::string& well_known,
                         const std::string& name, const Deadline& deadline, int timeout_ms) {
    long nap_us = 20;
    for (;;) {
        Fd fd = open_fifo(path, O_WRONLY | O_NONBLOCK);
        if (fd) return fd;
        if (errno != ENXIO) throw_errno("open " + path);
        int left = deadline.remaining_ms();
        if (left == 0)
            throw TimeoutError("fifo server '" + name + "' did not take the session within " +
                               std::to_string(timeout_ms) +
                               " ms (busy at its limit of sessions, or it rejected the hello)");
        if (nap_us >= 1000 && ::access(well_known.c_str(), F_OK) != 0)
            throw std::runtime_error("fifo server '" + name + "' went away (" + well_known +
                                     " is gone)");
        long us = left < 0 ? nap_us : std::min<long>(nap_us, left * 1000L);
        struct timespec ts {0, us * 1000};
        if (::ppoll(nullptr, 0, &ts, nullptr) < 0 && errno == EINTR) on_eintr();
        nap_us = std::min<long>(nap_us * 2, 2000);
    }
}

}  // namespace

std::unique_ptr<Listener> listen_fifo(const Endpoint& ep, const Limits&) {
    check_name(ep.name);
    return std::make_unique<FifoListener>(private_dir(), ep.name);
}

std::unique_ptr<Channel> connect_fifo(const Endpoint& ep, const Limits& limits) {
    check_name(ep.name);
    std::string dir = existing_private_dir();
    std::string well_known = fifo::well_known_path(dir, ep.name);
    Fd hello_fd = open_hello_fifo(well_known, kTransport, ep.name);
    Deadline deadline(limits.timeout_ms > 0 ? limits.timeout_ms : -1);
    Hello hello{static_cast<std::uint32_t>(::getpid()), g_next_serial.fetch_add(1)};
    auto paths = fifo::session_paths(dir, ep.name, hello.pid, hello.serial);
    OwnedPath c2s_name = make_fifo(paths.c2s, true);
    OwnedPath s2c_name = make_fifo(paths.s2c, true);
    // Reader first: the server's non-blocking open for writing needs one.
    Fd s2c = open_fifo(paths.s2c, O_RDONLY | O_NONBLOCK);
    if (!s2c) throw_errno("open " + paths.s2c);
    send_hello(hello_fd, well_known, kTransport, ep.name, hello, deadline);
    Fd c2s = open_writer_when_read(paths.c2s, well_known, ep.name, deadline, limits.timeout_ms);
    grow_pipe(c2s.get());
    grow_pipe(s2c.get());
    return make_fifo_channel(std::move(s2c), std::move(c2s), limits, std::move(c2s_name),
                             std::move(s2c_name), nullptr);
}

std::vector<ObjectInfo> list_fifo_objects() {
    std::vector<ObjectInfo> out;
    std::string dir = existing_private_dir();
    for (const auto& entry : directory_entries(dir)) {
        auto parsed = fifo::parse_file_name(entry);
        std::string path = dir + "/" + entry;
        // Lock files are list_lock_files()'s, for every transport.
        if (!parsed || parsed->kind == fifo::ParsedName::Kind::lock || !is_fifo(path)) continue;
        if (parsed->kind == fifo::ParsedName::Kind::well_known) {
            out.push_back(server_object(kTransport, parsed->name, path, file_remover(path)));
            continue;
        }
        pid_t creator = parsed->pid <= static_cast<std::uint32_t>(INT_MAX)
                            ? static_cast<pid_t>(parsed->pid)
                            : 0;
        out.push_back(session_object(kTransport, parsed->name, path, creator, file_remover(path)));
    }
    return out;
}

}  // namespace ipclab
