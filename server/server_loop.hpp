// The fork-per-session server loop, the same for every transport.
//
// The parent waits on the listener, forks a child per session and goes back
// to waiting; a SIGCHLD handler reaps children as they end and reports them
// through a self-pipe, so the parent never blocks on a slow child. At
// --max-clients live children it stops taking sessions until one ends.
// SIGINT/SIGTERM: stop taking sessions, give children the grace period,
// SIGTERM then SIGKILL the rest, reap all, drop the listener (removing its
// names) and return 0.
#pragma once

#include <memory>

#include "ipc/channel.hpp"
#include "server/options.hpp"

namespace ipclab {

int run_server(std::unique_ptr<Listener> listener, const ServerOptions& options);

}  // namespace ipclab
