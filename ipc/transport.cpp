#include <algorithm>
#include <stdexcept>

#include "ipc/channel.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

Fd connect_tcp_socket(const Endpoint& ep, int timeout_ms);
Fd connect_unix_socket(const Endpoint& ep, int timeout_ms);

const std::vector<std::string>& transport_names() {
    static const std::vector<std::string> names{"tcp", "unix", "fifo", "posix-mq", "sysv-mq",
                                                "shm"};
    return names;
}

bool is_transport(const std::string& name) {
    const auto& n = transport_names();
    return std::find(n.begin(), n.end(), name) != n.end();
}

std::unique_ptr<Listener> listen(const Endpoint& ep, const Limits& limits) {
    const std::string& t = ep.transport;
    if (t == "tcp") return listen_tcp(ep, limits);
    if (t == "unix") return listen_unix(ep, limits);
    if (t == "fifo") return listen_fifo(ep, limits);
    if (t == "posix-mq") return listen_posix_mq(ep, limits);
    if (t == "sysv-mq") return listen_sysv_mq(ep, limits);
    if (t == "shm") return listen_shm(ep, limits);
    throw std::invalid_argument("unknown transport '" + t + "'");
}

std::unique_ptr<Channel> connect(const Endpoint& ep, const Limits& limits) {
    const std::string& t = ep.transport;
    if (t == "tcp") return connect_tcp(ep, limits);
    if (t == "unix") return connect_unix(ep, limits);
    if (t == "fifo") return connect_fifo(ep, limits);
    if (t == "posix-mq") return connect_posix_mq(ep, limits);
    if (t == "sysv-mq") return connect_sysv_mq(ep, limits);
    if (t == "shm") return connect_shm(ep, limits);
    throw std::invalid_argument("unknown transport '" + t + "'");
}

Fd connect_stream(const Endpoint& ep, int timeout_ms) {
    if (ep.transport == "tcp") return connect_tcp_socket(ep, timeout_ms);
    if (ep.transport == "unix") return connect_unix_socket(ep, timeout_ms);
    throw std::invalid_argument("line mode needs a stream transport (tcp or unix), not " +
                                ep.transport);
}

}  // namespace ipclab

namespace ipclab {

std::vector<ObjectInfo> list_objects(const std::string& transport, const std::string& name) {
    std::vector<ObjectInfo> out;
    auto add = [&](const std::string& t, std::vector<ObjectInfo> (*list)()) {
        if (!transport.empty() && transport != t) return;
        auto v = list();
        out.insert(out.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    };
    add("unix", list_unix_objects);
    add("fifo", list_fifo_objects);
    add("posix-mq", list_posix_mq_objects);
    add("sysv-mq", list_sysv_mq_objects);
    add("shm", list_shm_objects);
    for (auto& lock : list_lock_files())
        if (transport.empty() || lock.transport == transport) out.push_back(std::move(lock));
    if (!name.empty())
        out.erase(std::remove_if(out.begin(), out.end(), [&](const ObjectInfo& o) { return o.name != name; }),
                  out.end());
    return out;
}

std::size_t reclaim_orphans(const std::string& transport, const std::string& name) noexcept {
    std::size_t removed = 0;
    try {
        for (const auto& o : list_objects(transport, name)) {
            if (!o.session || !o.stale || o.unknown) continue;
            try {
                o.remove();
                ++removed;
            } catch (const std::exception&) {  // gone meanwhile, or not ours to remove
            }
        }
    } catch (const std::exception&) {  // an unusable private directory: nothing to reclaim
    }
    return removed;
}

}  // namespace ipclab
