// The client side of a session: the seed's one-line exchange, and the
// framed loop that sends --count messages and times each round trip.
#pragma once

#include <iosfwd>
#include <string>

#include "client/options.hpp"
#include "ipc/fd.hpp"

namespace ipclab {

// Sends one text line (terminator included) over a connected stream socket and
// returns the reply: everything until the server closes, a newline, the
// whole ack text, or a short quiet spell after the first bytes. The whole
// exchange ends within limits.timeout_ms (TimeoutError) and the reply holds
// at most limits.max_message bytes plus its newline (OversizeError).
std::string line_exchange(const Fd& fd, const std::string& line, const Limits& limits);

// Runs the session the options describe; prints replies or statistics to out.
// Throws on failure (the caller prints one line and exits 1). Interrupted
// (Ctrl-C) with --stats: the statistics of the round trips done are
// printed first, then Interrupted is thrown.
void run_client(const Endpoint& ep, const ClientOptions& options, std::istream& in,
                std::ostream& out);

}  // namespace ipclab
