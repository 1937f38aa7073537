// The table itself, and everything that dispatches on a transport's name.
// This is the one file of ipc/ that spells the transports' names.
#include "ipc/registry.hpp"

#include <algorithm>
#include <stdexcept>

namespace ipclab {

namespace {

constexpr std::string_view kSpinSuffix = "-spin";

std::vector<TransportInfo> make_table() {
    std::vector<TransportInfo> t;
    // name, waits, host_port, byte_stream, shared_rendezvous, wait_modes, spin_waits, listen, connect,
    // connect_stream, list_objects. fifo and shm: one reader takes the hello FIFO's hellos in batches,
    // so they are not shared by a prefork pool.
    t.push_back({"tcp", "sleeps in kernel", true, true, true, false, {}, listen_tcp, connect_tcp,
                 connect_tcp_socket, nullptr});
    t.push_back({"unix", "sleeps in kernel", false, true, true, false, {}, listen_unix, connect_unix,
                 connect_unix_socket, list_unix_objects});
    t.push_back({"fifo", "sleeps in kernel", false, true, false, false, {}, listen_fifo, connect_fifo, nullptr,
                 list_fifo_objects});
    t.push_back({"posix-mq", "sleeps in kernel", false, false, true, false, {}, listen_posix_mq,
                 connect_posix_mq, nullptr, list_posix_mq_objects});
    t.push_back({"sysv-mq", "sleeps in kernel", false, false, true, false, {}, listen_sysv_mq, connect_sysv_mq,
                 nullptr, list_sysv_mq_objects});
    t.push_back({"shm", "sleeps on futex (polls <= 10 us mid-stream)", false, false, false, true,
                 "spins, then futex", listen_shm, connect_shm, nullptr, list_shm_objects});
    // udp: the listener's hellos are whole datagrams, so a prefork pool shares it.
    t.push_back({"udp", "sleeps in kernel", true, false, true, false, {}, listen_udp, connect_udp, nullptr, nullptr});
    return t;
}

std::vector<TransportVariant> make_variants() {
    std::vector<TransportVariant> v;
    for (const auto& t : transports()) v.push_back({std::string(t.name), &t, WaitMode::block, t.waits});
    for (const auto& t : transports())
        if (t.wait_modes) v.push_back({std::string(t.name) + std::string(kSpinSuffix), &t, WaitMode::spin, t.spin_waits});
    return v;
}

}  // namespace

const std::vector<TransportInfo>& transports() {
    static const std::vector<TransportInfo> table = make_table();
    return table;
}

const char* default_transport_name() { return transports().front().name.data(); }

const TransportInfo* find_transport(std::string_view name) {
    for (const auto& t : transports())
        if (t.name == name) return &t;
    return nullptr;
}

const TransportInfo& transport_info(std::string_view name) {
    if (const auto* t = find_transport(name)) return *t;
    throw std::invalid_argument("unknown transport '" + std::string(name) + "' (known: " + transport_choices() +
                                ")");
}

std::vector<std::string> transport_names() {
    std::vector<std::string> names;
    for (const auto& t : transports()) names.emplace_back(t.name);
    return names;
}

std::string transport_choices() {
    std::string out;
    const auto& all = transports();
    for (std::size_t i = 0; i < all.size(); ++i)
        out += (i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + std::string(all[i].name);
    return out;
}

std::string transport_names_where(bool (*which)(const TransportInfo&)) {
    std::string out;
    for (const auto& t : transports())
        if (which(t)) out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

const std::vector<TransportVariant>& transport_variants() {
    static const std::vector<TransportVariant> all = make_variants();
    return all;
}

const TransportVariant& transport_variant(std::string_view name) {
    for (const auto& v : transport_variants())
        if (v.name == name) return v;
    std::string known;
    for (const auto& v : transport_variants()) known += (known.empty() ? "" : ", ") + v.name;
    throw std::invalid_argument("unknown transport '" + std::string(name) + "' (known: " + known + ")");
}

Endpoint variant_endpoint(const TransportVariant& v, const std::string& name) {
    Endpoint ep;
    ep.transport = std::string(v.transport->name);
    ep.wait = v.wait;
    if (v.transport->host_port) {
        ep.host = "127.0.0.1";
        ep.port = "0";  // the kernel picks; the listener's bound_port() says which
    } else {
        ep.name = name;
    }
    return ep;
}

Endpoint reach(Endpoint listening, const std::string& bound_port, const std::string& host) {
    if (transport_info(listening.transport).host_port) {
        listening.host = host;
        listening.port = bound_port;
    }
    return listening;
}

std::string stream_socket_transports() {
    return transport_names_where([](const TransportInfo& t) { return t.connect_stream != nullptr; });
}

std::unique_ptr<Listener> listen(const Endpoint& ep, const Limits& limits) {
    return transport_info(ep.transport).listen(ep, limits);
}

std::unique_ptr<Channel> connect(const Endpoint& ep, const Limits& limits) {
    return transport_info(ep.transport).connect(ep, limits);
}

Fd connect_stream(const Endpoint& ep, int timeout_ms) {
    const auto& t = transport_info(ep.transport);
    if (!t.connect_stream) {
        throw std::invalid_argument("line mode needs a stream socket (" + stream_socket_transports() + "), not " +
                                    ep.transport);
    }
    return t.connect_stream(ep, timeout_ms);
}

std::vector<ObjectInfo> list_objects(const std::string& transport, const std::string& name) {
    std::vector<ObjectInfo> out;
    for (const auto& t : transports()) {
        if (!t.list_objects || (!transport.empty() && transport != t.name)) continue;
        auto v = t.list_objects();
        out.insert(out.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    }
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
