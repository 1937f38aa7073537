// The transport registry: one entry per transport with everything the rest
// of ipclab asks about it. Dispatch (listen, connect), name checks, help
// texts, `--list-transports` and the scripts' lists all read this table, so
// adding a transport means its own file, its entry in registry.cpp, its
// tests and the README.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"
#include "ipc/transports.hpp"

namespace ipclab {

struct TransportInfo {
    std::string_view name;
    // How a peer waits for the next message, as the report's "waits" column says it.
    std::string_view waits;
    // Addressed by HOST PORT (and reachable from another host); the others by --name.
    bool host_port = false;
    // Carries bytes, not messages: a zero-byte write cannot be read back as a
    // message, and the raw baselines stream over it.
    bool byte_stream = false;
    // Several processes can take sessions from one listener, one session
    // each (a socket's accept queue, a queue's atomic hellos): server
    // --model prefork applies.
    bool shared_rendezvous = false;
    // Takes --wait block|spin; how it waits then.
    bool wait_modes = false;
    std::string_view spin_waits;
    std::unique_ptr<Listener> (*listen)(const Endpoint&, const Limits&) = nullptr;
    std::unique_ptr<Channel> (*connect)(const Endpoint&, const Limits&) = nullptr;
    // A bare connected stream socket, for the seed's line mode; null where none.
    Fd (*connect_stream)(const Endpoint&, int timeout_ms) = nullptr;
    // This user's objects of the transport; null where it names none of its own.
    std::vector<ObjectInfo> (*list_objects)() = nullptr;
};

// In display order; the first is the seed's (tcp) and the default.
const std::vector<TransportInfo>& transports();
const TransportInfo* find_transport(std::string_view name);
// Throws std::invalid_argument naming the known transports.
const TransportInfo& transport_info(std::string_view name);
std::vector<std::string> transport_names();
// "tcp, unix, ... or shm", for help texts.
std::string transport_choices();
// The names of the transports `which` holds for, joined with ", " (help
// texts and errors that say where something applies).
std::string transport_names_where(bool (*which)(const TransportInfo&));
// Those whose session is one stream socket (line mode, pass-fd): "tcp, unix".
std::string stream_socket_transports();

// What the benchmarks and scripts measure: every transport, and for those
// with wait modes also "<name>-spin" (both sides spin before they sleep).
struct TransportVariant {
    std::string name;
    const TransportInfo* transport = nullptr;
    WaitMode wait = WaitMode::block;
    std::string_view waits;
};
const std::vector<TransportVariant>& transport_variants();
// Throws std::invalid_argument naming the known variants.
const TransportVariant& transport_variant(std::string_view name);
// An endpoint for a variant: a free TCP port on 127.0.0.1 (port 0, the kernel
// picks) for host-and-port transports, `name` for the others.
Endpoint variant_endpoint(const TransportVariant& v, const std::string& name);

// A client's endpoint for a server whose listener reported `bound_port`.
Endpoint reach(Endpoint listening, const std::string& bound_port, const std::string& host = "127.0.0.1");

// Dispatch through the table; std::invalid_argument for an unknown transport.
std::unique_ptr<Listener> listen(const Endpoint& endpoint, const Limits& limits);
std::unique_ptr<Channel> connect(const Endpoint& endpoint, const Limits& limits);
// A connected stream socket for line-mode clients; std::invalid_argument
// where the transport has none.
Fd connect_stream(const Endpoint& ep, int timeout_ms);

}  // namespace ipclab
