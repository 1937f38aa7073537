// The transport interface every mechanism plugs into.
//
// A server holds a Listener, waits on it for a PendingSession, forks, and the
// child opens the session into a Channel that carries whole messages of any
// size (0 bytes up to Limits::max_message) both ways. Clients get a Channel
// from connect(). Each transport is one file implementing these three types,
// listed in ipc/registry.cpp.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ipc/fd.hpp"
#include "ipc/framing.hpp"
#include "ipc/local_heap.hpp"
#include "ipc/page_buffer.hpp"

namespace ipclab {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;

struct Limits {
    std::size_t max_message = kDefaultMaxMessage;
    // How long to wait for the peer (server: --idle-timeout; client: reply
    // wait). Zero or negative waits forever.
    int timeout_ms = 30000;
};

// How a shared-memory side waits for its peer.
enum class WaitMode { block, spin };

// The first transport of the registry (ipc/registry.hpp): the seed's.
const char* default_transport_name();

struct Endpoint {
    std::string transport = default_transport_name();
    std::string host;              // tcp: host to reach, or address to bind ("" = all)
    std::string port;              // tcp
    std::string name = "ipclab";   // every other transport
    WaitMode wait = WaitMode::block;
    // tcp, unix: the replies a client's session asks the server for in its
    // opening (ipc/framing.hpp); server_default leaves them to its --reply.
    SessionReply reply = SessionReply::server_default;
};

struct Message {
    FrameType type = FrameType::data;
    Bytes payload;  // large ones page-placed: see ipc/page_buffer.hpp
};

class Channel : public LocalHeapAllocated<LocalHeap::Use::session> {
public:
    virtual ~Channel() = default;
    // Sends one whole message. Throws PeerGone, TimeoutError, SystemError.
    virtual void send(FrameType type, std::span<const std::byte> payload) = 0;
    // Receives one whole message into msg (reusing its storage). Returns false
    // when the peer ended the session cleanly between messages. Throws
    // TimeoutError, OversizeError/ProtocolError (the session is then unusable),
    // PeerGone, Interrupted.
    virtual bool receive(Message& msg) = 0;
    // Line-oriented sessions (seed and nc clients): each message is one line,
    // terminator included, and replies go out as raw bytes.
    virtual bool is_text() const { return false; }
    // The replies the session's opening asked for (on a server: what the
    // client asked), or server_default: it did not ask, or the transport
    // has no opening.
    virtual SessionReply asked_reply() const { return SessionReply::server_default; }
};

// In the fork loop's LocalHeap where it has one (ipc/local_heap.hpp), as
// a session child's channels are in the child's.
class PendingSession : public LocalHeapAllocated<LocalHeap::Use::pending_sessions> {
public:
    virtual ~PendingSession() = default;
    virtual std::string peer() const = 0;
    // Runs in the forked child: completes the rendezvous, yields the channel.
    virtual std::unique_ptr<Channel> open(const Limits& limits) = 0;
    // The session's one descriptor, to hand to another process (a connected
    // stream socket: server --accept-lock pass-fd); invalid where a session
    // is not one descriptor (queues, FIFO pairs, shared memory). The pending
    // session is unusable afterwards.
    virtual Fd release_descriptor() { return Fd(); }
};

class Listener {
public:
    virtual ~Listener() = default;
    virtual std::string describe() const = 0;
    // The port it listens on, for transports addressed by host and port (a
    // server asked for port 0 learns here which one the kernel chose); "" else.
    virtual std::string bound_port() const { return ""; }
    // Blocks until a session is pending (returns it), wake_fd is readable or
    // a signal interrupts the wait (returns nullptr). Throws ProtocolError
    // for a rejected hello; the caller logs it and keeps serving.
    virtual std::unique_ptr<PendingSession> accept(int wake_fd) = 0;
    // For an event loop (server --model epoll): the descriptor that turns
    // readable when a session is pending, or -1 where there is none.
    virtual int pollable_fd() const { return -1; }
    // After pollable_fd() polled readable: the pending session, or nullptr if
    // it went away meanwhile (a reset before accept). Never blocks.
    virtual std::unique_ptr<PendingSession> accept_ready() { return nullptr; }
    // In a forked child, once, before it serves (or waits for) its sessions:
    // drop descriptors and mappings, remove no names. The child never
    // destroys the listener (it ends with _exit), so the object may be left
    // as it is: a write to it would copy its page, shared with the parent.
    virtual void close_in_child() noexcept = 0;
    // What the server runs now and then while it serves, and once after its
    // last child ended: removes this endpoint's per-session objects whose
    // creating client died before a server child took the session (nobody
    // else ever would). Empty where clients create nothing (tcp, unix).
    virtual std::function<void()> orphan_sweep() const { return {}; }
};

}  // namespace ipclab
