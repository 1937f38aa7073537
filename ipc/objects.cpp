#include "ipc/objects.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

namespace {

// The pid at the start of an open lock file; 0 when none is recorded yet.
pid_t recorded_pid(int fd) noexcept {
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    long pid = std::strtol(buf, nullptr, 10);
    return pid > 0 && pid <= INT_MAX ? static_cast<pid_t>(pid) : 0;
}

}  // namespace

bool process_alive(pid_t pid) noexcept {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno != EPERM) return false;
    // A zombie still answers kill(pid, 0) but holds nothing: it counts as dead.
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return errno != ENOENT;  // no /proc: trust kill()
    char buf[512];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char* close = std::strrchr(buf, ')');  // the command name may hold spaces
    if (close == nullptr || close[1] == '\0' || close[2] == '\0') return true;
    return close[2] != 'Z' && close[2] != 'X';
}

std::string lock_path(const std::string& dir, const std::string& transport,
                      const std::string& name) {
    return dir + "/" + name + "." + transport + ".lock";
}

pid_t lock_file_pid(const std::string& path) noexcept {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    return fd ? recorded_pid(fd.get()) : 0;
}

// A probe with a shared lock of its own, never a parse of /proc/locks
// (whose device numbers need not match stat's on every filesystem). The
// probe holds the lock for microseconds; an InstanceLock that meets it
// retries (see below).
bool lock_is_held(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return false;
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // released when fd closes
    return errno == EWOULDBLOCK;
}

pid_t recorded_server_pid(const std::string& transport, const std::string& name) {
    return lock_file_pid(lock_path(existing_private_dir(), transport, name));
}

InstanceLock::InstanceLock(const std::string& transport, const std::string& name)
    : owner_(::getpid()) {
    check_name(name);
    path_ = lock_path(private_dir(), transport, name);
    // A lock held by no live pid is a server between its flock and writing
    // its pid, or a lock_is_held() probe: both are over within milliseconds.
    constexpr int kBusyRetries = 50, kBusyNapMs = 2;
    for (int busy = 0;;) {
        fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd_) throw_errno("open " + path_);
        if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) {
            // The file we locked may have been unlinked by its previous owner
            // between our open and our flock; lock the current file instead.
            struct stat held {}, now {};
            check(::fstat(fd_.get(), &held), "fstat lock");
            if (::stat(path_.c_str(), &now) != 0 || held.st_ino != now.st_ino) continue;
            break;
        }
        if (errno == EINTR) {
            on_eintr();
            continue;
        }
        if (errno != EWOULDBLOCK) throw_errno("flock " + path_);
        pid_t pid = recorded_pid(fd_.get());
        if (!process_alive(pid) && busy++ < kBusyRetries) {
            if (::poll(nullptr, 0, kBusyNapMs) < 0 && errno == EINTR) on_eintr();
            continue;
        }
        throw AlreadyRunning("an ipclab " + transport + " server named '" + name +
                             "' is already running, pid " + std::to_string(pid));
    }
    std::string pid = std::to_string(owner_) + "\n";
    if (::ftruncate(fd_.get(), 0) != 0 ||
        ::pwrite(fd_.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        int err = errno;
        ::unlink(path_.c_str());  // we hold the lock: the file is ours (e.g. a full disk)
        throw_errno("write " + path_, err);
    }
}

InstanceLock::~InstanceLock() {
    if (fd_ && ::getpid() == owner_) {
        ::unlink(path_.c_str());  // before the flock goes: a successor locks a fresh file
        fd_.reset();
    }
}

std::vector<std::string> directory_entries(const std::string& dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        names.push_back(it->path().filename().string());
    return names;
}

std::optional<std::string> strip_suffix(const std::string& s, std::string_view suffix) {
    if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0)
        return std::nullopt;
    return s.substr(0, s.size() - suffix.size());
}

std::vector<std::string> stems_with_suffix(const std::string& dir, std::string_view suffix) {
    std::vector<std::string> stems;
    for (const auto& entry : directory_entries(dir))
        if (auto stem = strip_suffix(entry, suffix)) stems.push_back(std::move(*stem));
    return stems;
}

bool is_fifo(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

namespace {

ObjectInfo object(const std::string& transport, const std::string& name, std::string what,
                  std::function<void()> remove) {
    ObjectInfo info;
    info.transport = transport;
    info.name = name;
    info.what = std::move(what);
    info.remove = std::move(remove);
    return info;
}

}  // namespace

ObjectInfo server_object(const std::string& transport, const std::string& name,
                         std::string what, std::function<void()> remove) {
    ObjectInfo info = object(transport, name, std::move(what), std::move(remove));
    std::string lock = lock_path(existing_private_dir(), transport, name);
    info.owner = lock_file_pid(lock);
    info.stale = !lock_is_held(lock);
    return info;
}

ObjectInfo session_object(const std::string& transport, const std::string& name,
                          std::string what, pid_t creator, std::function<void()> remove) {
    ObjectInfo info = object(transport, name, std::move(what), std::move(remove));
    info.session = true;
    info.owner = creator;
    info.stale = !process_alive(creator);
    return info;
}

ObjectInfo foreign_object(const std::string& transport, const std::string& name,
                          std::string what, bool session, pid_t creator,
                          std::function<void()> remove) {
    ObjectInfo info = object(transport, name, std::move(what), std::move(remove));
    info.session = session;
    info.owner = creator;
    info.unknown = true;
    return info;
}

std::function<void()> orphan_sweeper(const std::string& transport, const std::string& name) {
    return [transport, name] { reclaim_orphans(transport, name); };
}

std::function<void()> file_remover(const std::string& path) {
    return [path] { remove_file(path); };
}

std::vector<ObjectInfo> list_lock_files() {
    std::vector<ObjectInfo> out;
    std::string dir = existing_private_dir();
    for (const auto& stem : stems_with_suffix(dir, ".lock")) {
        auto dot = stem.rfind('.');
        std::string transport = dot == std::string::npos ? "?" : stem.substr(dot + 1);
        std::string name = dot == std::string::npos ? stem : stem.substr(0, dot);
        std::string path = dir + "/" + stem + ".lock";
        ObjectInfo info = object(transport, name, path, file_remover(path));
        info.owner = lock_file_pid(path);
        info.stale = !lock_is_held(path);
        out.push_back(std::move(info));
    }
    return out;
}

}  // namespace ipclab
