#include "ipc/private_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/random.hpp"

namespace ipclab {

namespace {

std::string dir_path() {
    if (const char* env = std::getenv("IPCLAB_DIR"); env != nullptr && *env != '\0')
        return env;
    return "/tmp/ipclab-" + std::to_string(::getuid());
}

}  // namespace

namespace {

// Refuses a directory that is not ours, not a directory, or open to others.
void validate(const std::string& path, const struct stat& st) {
    if (!S_ISDIR(st.st_mode))
        throw std::runtime_error(path + " is not a directory; refusing to use it");
    if (st.st_uid != ::getuid())
        throw std::runtime_error(path + " belongs to uid " + std::to_string(st.st_uid) +
                                 ", not to us; refusing to use it");
    if ((st.st_mode & 0077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
        throw std::runtime_error(path + " is open to other users (mode " + mode +
                                 "); it must be 0700");
    }
}

}  // namespace

std::string private_dir() {
    std::string path = dir_path();
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
        throw_errno("mkdir " + path);
    struct stat st {};
    check(::lstat(path.c_str(), &st), ("lstat " + path).c_str());
    validate(path, st);
    return path;
}

std::string existing_private_dir() {
    std::string path = dir_path();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return path;  // nothing in it to find
        throw_errno("lstat " + path);
    }
    validate(path, st);
    return path;
}

void remove_private_dir_if_empty() noexcept { ::rmdir(dir_path().c_str()); }

void remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + path);
}

bool lock_is_held(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return false;
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;  // released when fd closes
    return errno == EWOULDBLOCK;
}

std::string dir_tag() {
    std::string path = dir_path();
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: stable across runs and builds
    for (unsigned char c : path) h = (h ^ c) * 0x100000001b3ull;
    return to_hex(h ^ (h >> 32), 8);
}

std::string global_prefix(const std::string& name) {
    return "ipclab-" + std::to_string(::getuid()) + "-" + dir_tag() + "-" + name;
}

std::optional<GlobalName> parse_global_name(const std::string& entry) {
    const std::string uid = "ipclab-" + std::to_string(::getuid()) + "-";
    constexpr std::size_t kTag = 8;
    if (entry.compare(0, uid.size(), uid) != 0 || entry.size() < uid.size() + kTag + 2 ||
        entry[uid.size() + kTag] != '-')
        return std::nullopt;
    std::string tag = entry.substr(uid.size(), kTag);
    if (tag.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
    return GlobalName{tag, entry.substr(uid.size() + kTag + 1)};
}

void check_name(const std::string& name) {
    if (name.empty() || name.size() > 64)
        throw std::invalid_argument("--name must have 1 to 64 characters");
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            throw std::invalid_argument("--name '" + name +
                                        "' may hold only letters, digits, '.', '_' and '-'");
    }
    if (name[0] == '.') throw std::invalid_argument("--name must not start with '.'");
}

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

InstanceLock::InstanceLock(const std::string& transport, const std::string& name)
    : owner_(::getpid()) {
    check_name(name);
    path_ = private_dir() + "/" + name + "." + transport + ".lock";
    for (;;) {
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
        char buf[32] = {};
        ssize_t n = ::pread(fd_.get(), buf, sizeof buf - 1, 0);
        long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
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
        ::unlink(path_.c_str());
        fd_.reset();
    }
}


}  // namespace ipclab
