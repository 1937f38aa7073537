// `server --model prefork --accept-lock pass-fd` (UNP vol. 1 ch. 30.9): the
// supervisor alone accepts, and hands each connection's descriptor to an
// idle worker over a UNIX socket pair of that worker's (SCM_RIGHTS), with
// the peer's description as the message. A worker says it is idle by
// writing one byte on its pair each time it is ready for the next session.
// Only sessions that are one descriptor can travel so (tcp, unix).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"

namespace ipclab {

// A SOCK_SEQPACKET pair: [0] for the supervisor, [1] for the worker.
std::pair<Fd, Fd> worker_socket_pair();

// Sends fd with text (at most 255 bytes) on sock. Throws SystemError
// (EPIPE: the worker died).
void send_descriptor(int sock, int fd, const std::string& text);

// A worker's listener: announces it is idle, then waits for a descriptor
// from the supervisor (or for wake_fd, or a signal: nullptr). When the
// supervisor is gone (EOF) there is nobody to serve for: the worker exits.
class PassedListener final : public Listener {
public:
    PassedListener(Fd sock, std::string description);
    std::string describe() const override { return description_; }
    std::unique_ptr<PendingSession> accept(int wake_fd) override;
    void close_in_child() noexcept override { sock_.reset(); }

private:
    Fd sock_;
    std::string description_;
    bool announced_ = false;  // told the supervisor we are idle since the last session
};

}  // namespace ipclab
