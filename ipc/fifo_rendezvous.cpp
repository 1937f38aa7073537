#include "ipc/fifo_rendezvous.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <span>
#include <stdexcept>

#include "ipc/error.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

using fifo::kHelloSize;

// Hellos read per read(2); a multiple of the record size keeps records whole.
constexpr std::size_t kHelloBatch = 256 * kHelloSize;
static_assert(kHelloBatch % kHelloSize == 0);

std::runtime_error no_server(const std::string& transport, const std::string& name,
                             const std::string& path, const std::string& why) {
    return std::runtime_error("no " + transport + " server named '" + name + "' (" + path + ": " +
                              why + ")");
}

}  // namespace

Fd open_fifo(const std::string& path, int flags) {
    for (;;) {
        int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) return Fd(fd);
        if (errno != EINTR) return Fd();
        on_eintr();
    }
}

OwnedPath make_fifo(const std::string& path, bool replace_stale) {
    for (bool retried = false;; retried = true) {
        if (::mkfifo(path.c_str(), 0600) == 0) break;
        if (errno != EEXIST || !replace_stale || retried) throw_errno("mkfifo " + path);
        remove_file(path);
    }
    OwnedPath owned(path);
    check(::chmod(path.c_str(), 0600), ("chmod " + path).c_str());  // the umask may have cut bits
    return owned;
}

HelloFifo::HelloFifo(const std::string& path) : buf_(kHelloBatch) {
    remove_file(path);  // the caller holds the lock: a FIFO already there is a dead server's
    name_ = make_fifo(path, false);
    read_ = open_fifo(path, O_RDONLY | O_NONBLOCK);
    if (!read_) throw_errno("open " + path + " for reading");
    write_ = open_fifo(path, O_WRONLY | O_NONBLOCK);
    if (!write_) throw_errno("open " + path + " for writing");
}

std::optional<fifo::Hello> HelloFifo::next(int wake_fd) {
    if (pos_ == end_) {
        struct pollfd p[2] = {{read_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
        if (::poll(p, wake_fd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR) return std::nullopt;
            throw_errno("poll " + path());
        }
        if (p[0].revents & (POLLERR | POLLNVAL))
            throw std::runtime_error("poll reports an error on " + path());
        if (!(p[0].revents & POLLIN)) return std::nullopt;
        ssize_t got = ::read(read_.get(), buf_.data(), buf_.size());
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) return std::nullopt;
            throw_errno("read " + path());
        }
        pos_ = 0;
        end_ = static_cast<std::size_t>(got);  // never 0 (EOF): we hold a writer
        if (end_ == 0) return std::nullopt;
    }
    return take_hello();
}

// Consumes one record from the buffer, whatever happens to it.
fifo::Hello HelloFifo::take_hello() {
    std::size_t avail = end_ - pos_;
    const std::byte* p = buf_.data() + pos_;
    if (avail < kHelloSize) {
        // Clients write whole records atomically: only a stray writer gets here.
        pos_ = end_;
        throw ProtocolError("discarded " + std::to_string(avail) + " bytes on " + path() +
                            ": not a whole hello");
    }
    if (!fifo::has_magic(p)) {
        std::size_t skip = 1;
        while (skip + 4 <= avail && !fifo::has_magic(p + skip)) ++skip;
        if (skip + 4 > avail) skip = avail;
        pos_ += skip;
        throw ProtocolError("discarded " + std::to_string(skip) + " bytes on " + path() +
                            " that are not a hello (wrong magic)");
    }
    pos_ += kHelloSize;
    return fifo::decode_hello(std::span<const std::byte, kHelloSize>(p, kHelloSize));
}

void HelloFifo::close_in_child() noexcept {
    read_.reset();
    write_.reset();
}

HelloListener::HelloListener(std::string transport, std::string name, const std::string& fifo_path)
    : transport_(std::move(transport)),
      name_(std::move(name)),
      lock_(transport_, name_),
      hellos_(fifo_path) {
    reclaim_orphans(transport_, name_);  // what clients that died before a hello was taken left
}

std::unique_ptr<PendingSession> HelloListener::accept(int wake_fd) {
    auto hello = hellos_.next(wake_fd);
    return hello ? session(*hello) : nullptr;
}

std::function<void()> HelloListener::orphan_sweep() const {
    return orphan_sweeper(transport_, name_);
}

void HelloListener::close_in_child() noexcept {
    hellos_.close_in_child();
    lock_.close_in_child();
}

// Opened before the client creates anything: without a server the client
// leaves no trace, not even the private directory.
Fd open_hello_fifo(const std::string& path, const std::string& transport,
                   const std::string& name) {
    Fd fd = open_fifo(path, O_WRONLY | O_NONBLOCK);
    if (!fd) {
        int err = errno;
        if (err == ENXIO || err == ENOENT) throw no_server(transport, name, path, std::strerror(err));
        throw_errno("open " + path, err);
    }
    struct stat st {};
    check(::fstat(fd.get(), &st), ("fstat " + path).c_str());
    if (!S_ISFIFO(st.st_mode) || st.st_uid != ::geteuid())
        throw std::runtime_error(path + " is not a FIFO of ours; refusing to use it");
    return fd;
}

void send_hello(const Fd& fifo, const std::string& path, const std::string& transport,
                const std::string& name, const fifo::Hello& hello, const Deadline& deadline) {
    auto bytes = fifo::encode_hello(hello);
    try {
        write_all(fifo.get(), bytes, false, deadline.remaining_ms(), (transport + " hello").c_str());
    } catch (const PeerGone&) {
        throw no_server(transport, name, path, "the server closed it");
    }
}

}  // namespace ipclab
