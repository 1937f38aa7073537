// UNIX-domain stream sockets in the per-user private directory.
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/objects.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/socket_util.hpp"
#include "ipc/stream_channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

sockaddr_un unix_address(const std::string& name, std::string* path_out) {
    check_name(name);
    // Both ends build it; the listener's InstanceLock has created the directory.
    std::string path = existing_private_dir() + "/" + name + ".sock";
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
    remove_file(path);  // we hold the lock, so a socket file already there is a dead server's
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
    return make_framed_channel(std::move(fds), limits, true, ep.reply);
}

}  // namespace ipclab

namespace ipclab {

std::vector<ObjectInfo> list_unix_objects() {
    std::vector<ObjectInfo> out;
    std::string dir = existing_private_dir();
    for (const auto& name : stems_with_suffix(dir, ".sock")) {
        std::string path = dir + "/" + name + ".sock";
        out.push_back(server_object("unix", name, path, file_remover(path)));
    }
    return out;
}

}  // namespace ipclab
