// Where ipclab's named objects live, and how they are named.
//
// Filesystem objects (sockets, FIFOs, lock files) live in a per-user 0700
// directory, /tmp/ipclab-$UID (or $IPCLAB_DIR). Kernel namespaces without
// directories (POSIX queues, shared memory) use names carrying the uid and
// the directory's tag (a hash of its path): whose it is, and which private
// directory holds its owner's lock. Two servers of one endpoint name in two
// directories therefore never share a global name, and a name of another
// directory is never judged by this directory's locks (ipc/objects.hpp).
#pragma once

#include <optional>
#include <string>

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

// The private directory's tag: 8 hex digits of a hash of its path.
std::string dir_tag();

// "ipclab-<uid>-<tag>-<name>": the prefix of kernel-global names.
std::string global_prefix(const std::string& name);

// A kernel-global name of this uid taken apart: "ipclab-UID-TAG-REST".
struct GlobalName {
    std::string tag;
    std::string rest;  // the endpoint name and whatever the transport appended
    bool ours() const { return tag == dir_tag(); }
};
std::optional<GlobalName> parse_global_name(const std::string& entry);

// Rejects names that would escape the directory or break kernel names.
void check_name(const std::string& name);

}  // namespace ipclab
