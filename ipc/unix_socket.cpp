// UNIX-domain stream sockets in the per-user private directory.
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

sockaddr_un unix_address(const std::string& name, std::string* path_out) {
    check_name(name);
    std::string path = private_dir() + "/" + name + ".sock";
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
        throw std::invalid_argument("socket path " + path + " is longer than the " +
                                    std::to_string(sizeof sa.sun_path - 1) +
                                    " bytes a UNIX socket address holds");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    if (path_out) *path_out = path;
    return sa;
}

}  // namespace

std::unique_ptr<Listener> listen_unix(const Endpoint& ep, const Limits&) {
    std::string path;
    sockaddr_un sa = unix_address(ep.name, &path);
    InstanceLock lock("unix", ep.name);
    // We hold the lock, so a socket file already there is a dead server's.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink stale " + path);
    Fd fd = new_socket(AF_UNIX, SOCK_STREAM);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        throw_errno("bind " + path);
    OwnedPath owned(path);
    check(::chmod(path.c_str(), 0600), "chmod socket");
    check(::listen(fd.get(), 1024), "listen");
    return std::make_unique<SocketListener>(std::move(fd), "unix " + path, std::move(lock),
                                            std::move(owned));
}

Fd connect_unix_socket(const Endpoint& ep, int timeout_ms) {
    std::string path;
    sockaddr_un sa = unix_address(ep.name, &path);
    Fd fd = new_socket(AF_UNIX, SOCK_STREAM);
    int err = connect_within(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa, timeout_ms);
    if (err == ENOENT || err == ECONNREFUSED)
        throw std::runtime_error("no unix server named '" + ep.name + "' (" + path + ": " +
                                 std::strerror(err) + ")");
    if (err != 0) throw_errno("connect " + path, err);
    return fd;
}

std::unique_ptr<Channel> connect_unix(const Endpoint& ep, const Limits& limits) {
    StreamFds fds{connect_unix_socket(ep, limits.timeout_ms), Fd{}, true};
    return make_framed_channel(std::move(fds), limits, true);
}

}  // namespace ipclab
