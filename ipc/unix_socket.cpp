// UNIX-domain stream sockets in the per-user private directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "ipc/error.hpp"
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

namespace ipclab {

namespace {

// Reads the pid a server wrote into its lock file; 0 when unreadable.
pid_t lock_owner(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return 0;
    char buf[32] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    return n > 0 ? static_cast<pid_t>(std::strtol(buf, nullptr, 10)) : 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <typename Fn>
void for_each_private_file(Fn fn) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (auto it = fs::directory_iterator(existing_private_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        fn(it->path().filename().string(), it->path().string());
}

ObjectInfo file_object(const std::string& transport, const std::string& name,
                       const std::string& path, pid_t owner, const std::string& lock) {
    ObjectInfo info;
    info.transport = transport;
    info.name = name;
    info.what = path;
    info.owner = owner;
    // The lock says whether the server lives; a pid alone may be a zombie or reused.
    info.stale = !lock_is_held(lock);
    info.remove = [path] {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + path);
    };
    return info;
}

}  // namespace

std::vector<ObjectInfo> list_unix_objects() {
    std::vector<ObjectInfo> out;
    for_each_private_file([&](const std::string& file, const std::string& path) {
        if (!ends_with(file, ".sock")) return;
        std::string name = file.substr(0, file.size() - 5);
        std::string lock = existing_private_dir() + "/" + name + ".unix.lock";
        out.push_back(file_object("unix", name, path, lock_owner(lock), lock));
    });
    return out;
}

std::vector<ObjectInfo> list_lock_files() {
    std::vector<ObjectInfo> out;
    for_each_private_file([&](const std::string& file, const std::string& path) {
        if (!ends_with(file, ".lock")) return;
        std::string stem = file.substr(0, file.size() - 5);
        auto dot = stem.rfind('.');
        std::string transport = dot == std::string::npos ? "?" : stem.substr(dot + 1);
        std::string name = dot == std::string::npos ? stem : stem.substr(0, dot);
        out.push_back(file_object(transport, name, path, lock_owner(path), path));
    });
    return out;
}

}  // namespace ipclab
