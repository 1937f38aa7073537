// The rendezvous of the fifo and shm transports: a server's well-known FIFO
// in the private directory, into which each client writes one hello
// (ipc/fifo_hello.hpp) naming its pid and session. What the hello leads to
// (session FIFOs, a shared segment) is the transport's business.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/io.hpp"
#include "ipc/objects.hpp"
#include "ipc/owned.hpp"

namespace ipclab {

// open(2) of a FIFO with O_CLOEXEC | O_NOFOLLOW, EINTR retried. An empty Fd
// (errno set) on failure, since callers tell ENXIO and ENOENT apart.
Fd open_fifo(const std::string& path, int flags);

// mkfifo with mode 0600 whatever the umask. With replace_stale, a FIFO of
// that name left by a dead process image is removed once and made again.
OwnedPath make_fifo(const std::string& path, bool replace_stale);

// Server side. Made under the server's InstanceLock, so whatever is at path
// is a dead server's and is replaced. The FIFO is held open for reading and
// for writing: with a writer of our own it never reads EOF when the last
// client closes it. Hellos are read in batches of whole records.
class HelloFifo {
public:
    explicit HelloFifo(const std::string& path);

    const std::string& path() const { return name_.name(); }

    // Waits for hellos or for wake_fd. nullopt when woken, interrupted or
    // nothing was there. Bytes that are no hello are discarded (up to the next
    // magic, so garbage costs at most itself) with a ProtocolError.
    std::optional<fifo::Hello> next(int wake_fd);

    // A forked session child keeps neither end (the name stays the parent's).
    void close_in_child() noexcept;

private:
    fifo::Hello take_hello();

    OwnedPath name_;  // declared first: removed after the descriptors close
    Fd read_, write_;
    std::vector<std::byte> buf_;
    std::size_t pos_ = 0, end_ = 0;
};

// The listener of a transport whose clients say hello on a HelloFifo; the
// transport supplies only what a hello leads to (session()). Takes the
// InstanceLock of (transport, name) first, reclaims what dead clients of the
// name left, then makes the FIFO at fifo_path.
class HelloListener : public Listener {
public:
    HelloListener(std::string transport, std::string name, const std::string& fifo_path);

    std::string describe() const override { return transport_ + " " + hellos_.path(); }
    std::unique_ptr<PendingSession> accept(int wake_fd) override;
    std::function<void()> orphan_sweep() const override;
    void close_in_child() noexcept override;

protected:
    // Validates a hello and prepares its session; throws ProtocolError to reject it.
    virtual std::unique_ptr<PendingSession> session(const fifo::Hello& hello) = 0;
    const std::string& name() const { return name_; }

private:
    std::string transport_, name_;
    InstanceLock lock_;  // before the FIFO: released last, after it is gone
    HelloFifo hellos_;
};

// Client side: the well-known FIFO of the `transport` server called `name`,
// opened for writing without blocking. Throws "no TRANSPORT server named
// 'NAME' (...)" when nobody serves it, and refuses a path that is not a FIFO
// of ours.
Fd open_hello_fifo(const std::string& path, const std::string& transport,
                   const std::string& name);

// Writes one hello in one write (atomic), waiting for room (a server at its
// session limit may leave none for a while) until the deadline.
void send_hello(const Fd& fifo, const std::string& path, const std::string& transport,
                const std::string& name, const fifo::Hello& hello, const Deadline& deadline);

}  // namespace ipclab
