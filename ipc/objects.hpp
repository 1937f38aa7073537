// The bookkeeping every transport with named objects shares, written once:
// instance locks and the pid in them, whether an owner still lives,
// scanning a directory for a transport's names, and describing what was
// found for `--list-objects` and `--cleanup`. A transport supplies only its
// name patterns and how to remove its kind of object.
//
// A server holds an InstanceLock (flock on NAME.TRANSPORT.lock in the
// private directory) for as long as it runs: a second server on the same
// endpoint learns the live owner's pid; a server that finds the lock free
// knows any leftovers are stale. Whether a server lives is asked of its lock
// (a pid alone may be a zombie or reused); whether a client lives, of its
// pid (it holds no lock).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/fd.hpp"
#include "ipc/owned.hpp"

namespace ipclab {

struct ObjectInfo;  // ipc/transports.hpp

// Running and not a zombie.
bool process_alive(pid_t pid) noexcept;

// dir/NAME.TRANSPORT.lock
std::string lock_path(const std::string& dir, const std::string& transport,
                      const std::string& name);

// The pid a server wrote into its lock file; 0 when there is none.
pid_t lock_file_pid(const std::string& path) noexcept;

// True while some live process holds the flock on path (an InstanceLock).
bool lock_is_held(const std::string& path);

// The pid in the lock of (transport, name) in the private directory; 0 if none.
pid_t recorded_server_pid(const std::string& transport, const std::string& name);

class InstanceLock {
public:
    // Throws AlreadyRunning naming the live owner's pid.
    InstanceLock(const std::string& transport, const std::string& name);
    InstanceLock(InstanceLock&&) = default;
    InstanceLock& operator=(InstanceLock&&) = delete;
    ~InstanceLock();
    // A forked child drops its copy of the descriptor; the lock stays with the parent.
    void close_in_child() noexcept { fd_.close_in_exiting_child(); }

private:
    Fd fd_;
    std::string path_;
    pid_t owner_;
};

// The names in dir; none when it is missing or unreadable (nothing to find).
std::vector<std::string> directory_entries(const std::string& dir);

// s without suffix when s ends with it (and is longer); nullopt otherwise.
std::optional<std::string> strip_suffix(const std::string& s, std::string_view suffix);

// The stems of dir's entries that end in suffix.
std::vector<std::string> stems_with_suffix(const std::string& dir, std::string_view suffix);

// True when path is a FIFO (not following a symlink).
bool is_fifo(const std::string& path);

// A server's well-known object of (transport, name): owner and staleness
// from its lock in the private directory.
ObjectInfo server_object(const std::string& transport, const std::string& name,
                         std::string what, std::function<void()> remove);

// A client's per-session object: stale once its creator is dead.
ObjectInfo session_object(const std::string& transport, const std::string& name,
                          std::string what, pid_t creator, std::function<void()> remove);

// An object of another private directory (IPCLAB_DIR), whose locks we cannot
// see: never stale, only `--cleanup --force` removes it.
ObjectInfo foreign_object(const std::string& transport, const std::string& name,
                          std::string what, bool session, pid_t creator,
                          std::function<void()> remove);

// A listener's orphan sweep: reclaim_orphans(transport, name).
std::function<void()> orphan_sweeper(const std::string& transport, const std::string& name);

// remove_file(path), for ObjectInfo::remove.
std::function<void()> file_remover(const std::string& path);

}  // namespace ipclab
