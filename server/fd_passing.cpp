#include "server/fd_passing.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ipc/error.hpp"
#include "ipc/socket_util.hpp"

namespace ipclab {

namespace {
constexpr std::size_t kMaxText = 255;
constexpr char kIdle = 'R';

// One message of text plus room for one descriptor, for sendmsg and recvmsg.
struct DescriptorMessage {
    DescriptorMessage(void* text, std::size_t len) : iov{text, len} {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    DescriptorMessage(const DescriptorMessage&) = delete;
    DescriptorMessage& operator=(const DescriptorMessage&) = delete;
    struct iovec iov;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
};
}  // namespace

std::pair<Fd, Fd> worker_socket_pair() {
    int sv[2];
    check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), "socketpair(worker)");
    return {Fd(sv[0]), Fd(sv[1])};
}

void send_descriptor(int sock, int fd, const std::string& text) {
    std::string body = text.substr(0, kMaxText);
    if (body.empty()) body = "?";  // a zero-length datagram would read as EOF
    DescriptorMessage m(body.data(), body.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    for (;;) {
        if (::sendmsg(sock, &m.msg, MSG_NOSIGNAL) >= 0) return;
        if (errno != EINTR) throw_errno("sendmsg(SCM_RIGHTS) to a worker");
    }
}

PassedListener::PassedListener(Fd sock, std::string description)
    : sock_(std::move(sock)), description_(std::move(description)) {}

std::unique_ptr<PendingSession> PassedListener::accept(int wake_fd) {
    if (!announced_) {
        char b = kIdle;
        if (::send(sock_.get(), &b, 1, MSG_NOSIGNAL) < 0) {
            if (errno == EINTR) return nullptr;
            if (errno == EPIPE || errno == ECONNRESET) ::_exit(0);  // the supervisor is gone
            throw_errno("send(idle) to the supervisor");
        }
        announced_ = true;
    }
    struct pollfd p[2] = {{sock_.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(p, wake_fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
        if (errno == EINTR) return nullptr;
        throw_errno("poll(supervisor)");
    }
    if (!(p[0].revents & (POLLIN | POLLHUP))) return nullptr;
    char text[kMaxText + 1];
    DescriptorMessage m(text, kMaxText);
    ssize_t got = ::recvmsg(sock_.get(), &m.msg, MSG_CMSG_CLOEXEC);
    if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) return nullptr;
        throw_errno("recvmsg(SCM_RIGHTS) from the supervisor");
    }
    // EOF: the supervisor died (a SIGKILL; a stop would have reached us as
    // SIGTERM). No session is in progress here: end quietly.
    if (got == 0) ::_exit(0);
    Fd fd;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&m.msg); c != nullptr; c = CMSG_NXTHDR(&m.msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int received;
            std::memcpy(&received, CMSG_DATA(c), sizeof(int));
            fd.reset(received);
        }
    if (!fd) throw ProtocolError("a message from the supervisor without a descriptor");
    announced_ = false;
    return adopt_socket_session(std::move(fd), std::string(text, static_cast<std::size_t>(got)));
}

}  // namespace ipclab
