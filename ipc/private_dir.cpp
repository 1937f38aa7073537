#include "ipc/private_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipc/error.hpp"
#include "ipc/random.hpp"

namespace ipclab {

namespace {

std::string dir_path() {
    if (const char* env = std::getenv("IPCLAB_DIR"); env != nullptr && *env != '\0')
        return env;
    return "/tmp/ipclab-" + std::to_string(::getuid());
}

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
        throw std::invalid_argument("an endpoint name must have 1 to 64 characters");
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            throw std::invalid_argument("endpoint name '" + name +
                                        "' may hold only letters, digits, '.', '_' and '-'");
    }
    if (name[0] == '.') throw std::invalid_argument("an endpoint name must not start with '.'");
}

}  // namespace ipclab
