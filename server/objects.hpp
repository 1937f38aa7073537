// `server --list-objects` and `server --cleanup`: what ipclab objects exist
// on this host for this user, which are stale, and removing the stale ones.
#pragma once

#include <iosfwd>
#include <string>

namespace ipclab {

// transport, name: only those of one transport / one --name when not empty.

// Prints one row per object; returns how many are stale.
int print_objects(const std::string& transport, const std::string& name, std::ostream& out);

// Removes stale objects (and, with force, those of unknown owner, warning
// for each on err), printing one line each; returns 0, or 1 if any removal failed.
int cleanup_stale_objects(const std::string& transport, const std::string& name, bool force,
                          std::ostream& out, std::ostream& err);

}  // namespace ipclab
