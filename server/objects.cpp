#include "server/objects.hpp"

#include <cstdio>
#include <ostream>

#include "ipc/private_dir.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

int print_objects(const std::string& transport, const std::string& name, std::ostream& out) {
    auto objects = list_objects(transport, name);
    int stale = 0, unknown = 0;
    char line[64];
    std::snprintf(line, sizeof line, "%-9s %-8s %-6s ", "TRANSPORT", "OWNER", "STATE");
    out << line << "OBJECT\n";
    for (const auto& o : objects) {
        std::snprintf(line, sizeof line, "%-9s %-8ld %-6s ", o.transport.c_str(),
                      static_cast<long>(o.owner),
                      o.unknown ? "unknown" : o.stale ? "stale" : "live");
        out << line << o.what << "\n";
        stale += o.stale ? 1 : 0;
        unknown += o.unknown ? 1 : 0;
    }
    out << objects.size() << " object(s), " << stale << " stale"
        << (stale ? "; `server --cleanup` removes the stale ones" : "");
    if (unknown)
        out << "; " << unknown << " unknown (another IPCLAB_DIR's, whose owners cannot be "
            << "checked from here: left alone unless `--cleanup --force`)";
    out << "\n";
    return stale;
}

int cleanup_stale_objects(const std::string& transport, const std::string& name, bool force,
                          std::ostream& out, std::ostream& err) {
    int removed = 0, failed = 0;
    for (const auto& o : list_objects(transport, name)) {
        if (!o.stale && !(force && o.unknown)) continue;
        if (o.unknown)
            err << "server: warning: --force removes " << o.what
                << ", whose owner is unknown (it may belong to a live server of another "
                   "IPCLAB_DIR)\n";
        try {
            o.remove();
            if (o.unknown)
                out << "removed " << o.transport << " " << o.what << " (owner unknown; --force)\n";
            else
                out << "removed " << o.transport << " " << o.what << " (owner " << o.owner
                    << " is gone)\n";
            ++removed;
        } catch (const std::exception& e) {
            err << "server: cannot remove " << o.what << ": " << e.what() << "\n";
            ++failed;
        }
    }
    out << removed << " stale object(s) removed\n";
    remove_private_dir_if_empty();
    return failed ? 1 : 0;
}

}  // namespace ipclab
