// Where ipclab's named objects live, and who owns them.
//
// Filesystem objects (sockets, FIFOs, lock files) live in a per-user 0700
// directory, /tmp/ipclab-$UID (or $IPCLAB_DIR). Kernel namespaces without
// directories (POSIX queues, shared memory) use names carrying the uid and
// the directory's tag (a hash of its path): whose it is, and which private
// directory holds its owner's lock. Two servers of one --name in two
// directories therefore never share a global name, and a name of another
// directory is never judged by this directory's locks.
// A server holds an InstanceLock (flock on NAME.TRANSPORT.lock) for as long
// as it runs: a second server on the same endpoint learns the live owner's
// pid; a server that finds the lock free knows any leftovers are stale.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>

#include "ipc/fd.hpp"

namespace ipclab {

// Creates the directory if needed; refuses one that is not ours, not a
// directory, or open to others. Returns its path.
std::string private_dir();

// For look-ups (clients, listings, removals): validates the directory like
// private_dir() when it exists, but never creates it. A missing directory
// holds no objects, and a client must not leave behind a directory that only
// --cleanup removes. Returns its path either way.
std::string existing_private_dir();

// Removes the private directory if it is empty (best effort). Only
// `--cleanup` and the test harness call it: a process exiting must not pull
// the directory from under another that is about to create an object in it.
void remove_private_dir_if_empty() noexcept;

// Removes a file by name; one already gone is fine, any other failure throws.
void remove_file(const std::string& path);

// True while some live process holds the flock on path (an InstanceLock).
bool lock_is_held(const std::string& path);

// The private directory's tag: 8 hex digits of a hash of its path.
std::string dir_tag();

// "ipclab-<uid>-<tag>-<name>": the prefix of kernel-global names.
std::string global_prefix(const std::string& name);

// A kernel-global name of this uid taken apart: "ipclab-UID-TAG-REST".
struct GlobalName {
    std::string tag;
    std::string rest;  // the --name and whatever the transport appended
    bool ours() const { return tag == dir_tag(); }
};
std::optional<GlobalName> parse_global_name(const std::string& entry);

// Rejects names that would escape the directory or break kernel names.
void check_name(const std::string& name);

// Running and not a zombie.
bool process_alive(pid_t pid) noexcept;

class InstanceLock {
public:
    // Throws AlreadyRunning naming the live owner's pid.
    InstanceLock(const std::string& transport, const std::string& name);
    InstanceLock(InstanceLock&&) = default;
    InstanceLock& operator=(InstanceLock&&) = delete;
    ~InstanceLock();
    // A forked child drops its copy of the descriptor; the lock stays with the parent.
    void close_in_child() noexcept { fd_.reset(); }

private:
    Fd fd_;
    std::string path_;
    pid_t owner_;
};

// A name that only its creating process removes (forked children inherit
// the object but never remove it). Remove says how: unlink, shm_unlink, ...
template <int (*Remove)(const char*)>
class OwnedName {
public:
    OwnedName() = default;
    explicit OwnedName(std::string name) : name_(std::move(name)), owner_(::getpid()) {}
    OwnedName(OwnedName&& other) noexcept
        : name_(std::exchange(other.name_, {})), owner_(other.owner_) {}
    OwnedName& operator=(OwnedName&& other) noexcept {
        if (this != &other) {
            OwnedName old(std::move(*this));  // removes what we held
            name_ = std::exchange(other.name_, {});
            owner_ = other.owner_;
        }
        return *this;
    }
    OwnedName(const OwnedName&) = delete;
    OwnedName& operator=(const OwnedName&) = delete;
    ~OwnedName() {
        if (!name_.empty() && ::getpid() == owner_) Remove(name_.c_str());
    }
    const std::string& path() const { return name_; }
    void disown() noexcept { name_.clear(); }

private:
    std::string name_;
    pid_t owner_ = 0;
};

// A filesystem name (socket, FIFO, key file) removed by its creator.
using OwnedPath = OwnedName<::unlink>;

}  // namespace ipclab
