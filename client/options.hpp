// What a client run is told on its command line.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "ipc/channel.hpp"

namespace ipclab {

enum class ClientMode { automatic, line, framed };

struct ClientOptions {
    std::optional<std::string> message;  // -m; otherwise one line from stdin
    std::size_t count = 1;
    std::optional<std::size_t> size;     // generated payloads of this size
    bool verify = false;
    bool stats = false;
    bool json = false;                   // --stats as one JSON object
    std::size_t warmup = 0;              // round trips per session before the measured ones
    double duration_s = 0;               // > 0: send until this many seconds passed (count is then a cap)
    std::size_t clients = 1;             // concurrent sessions, one thread each; count and duration apply to each
    double rate = 0;                     // > 0: open loop, this many requests/s over all clients for duration_s
    ClientMode mode = ClientMode::automatic;
    Limits limits;  // timeout_ms bounds connect and each reply
};

// Line mode (the seed's exchange) is used for one plain message over a
// stream transport; everything else is framed.
bool uses_line_mode(const Endpoint& ep, const ClientOptions& options);

}  // namespace ipclab
