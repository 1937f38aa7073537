// Socket helpers shared by the TCP and UNIX-domain transports: checked
// creation, bounded connect, and the listener that both use.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <optional>
#include <string>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"
#include "ipc/objects.hpp"

namespace ipclab {

// socket(2) with SOCK_CLOEXEC; throws naming the call.
Fd new_socket(int domain, int type);

std::string sockaddr_to_string(const struct sockaddr* sa, socklen_t len);

// Connects fd within timeout_ms (<= 0: the kernel's own limit). Returns 0 or
// the errno of the failure (ETIMEDOUT on timeout) so callers can try the next address.
int connect_within(int fd, const struct sockaddr* sa, socklen_t len, int timeout_ms);

// A pending session over an accepted stream socket that came from another
// process (server --accept-lock pass-fd), described as peer.
std::unique_ptr<PendingSession> adopt_socket_session(Fd fd, std::string peer);

// A listening stream socket (TCP or UNIX) plus whatever names it owns.
class SocketListener final : public Listener {
public:
    SocketListener(Fd fd, std::string description, std::optional<InstanceLock> lock,
                   OwnedPath path);
    std::string describe() const override { return description_; }
    std::string bound_port() const override;
    std::unique_ptr<PendingSession> accept(int wake_fd) override;
    int pollable_fd() const override { return fd_.get(); }
    std::unique_ptr<PendingSession> accept_ready() override;
    void close_in_child() noexcept override;

private:
    Fd fd_;
    std::string description_;
    std::optional<InstanceLock> lock_;
    OwnedPath path_;
};

}  // namespace ipclab
