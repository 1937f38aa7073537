// What a server run is told on its command line.
#pragma once

#include "ipc/channel.hpp"
#include "ipc/registry.hpp"
#include "server/accept_lock.hpp"

namespace ipclab {

// sink: no reply, except an ack for an empty message, which marks a sync
// point so one-way (stream) transfers know everything before it arrived.
enum class ReplyMode { ack, echo, sink };

// How the server serves its sessions (UNP vol. 1 ch. 30's designs).
// fork: one child per session (the lecture's design, the default);
// iterative: one session at a time in the server process itself;
// prefork: `workers` children made up front, each an iterative server on
// the shared listener (no accept lock: all wake, one wins);
// thread: one thread per session in the server process;
// prethread: `workers` threads made up front, taking turns (a mutex) to
// accept from the listener, each then serving its session;
// epoll: one process, one thread, every session a non-blocking stream
// socket driven by an event loop (server/event_loop.hpp).
enum class ServerModel { fork, iterative, prefork, thread, prethread, epoll };
inline constexpr ServerModel kServerModels[] = {ServerModel::fork,   ServerModel::iterative,
                                                ServerModel::prefork, ServerModel::thread,
                                                ServerModel::prethread, ServerModel::epoll};

// The name `server --model` takes and the benchmarks print.
inline const char* model_name(ServerModel m) {
    switch (m) {
        case ServerModel::iterative: return "iterative";
        case ServerModel::prefork: return "prefork";
        case ServerModel::thread: return "thread";
        case ServerModel::prethread: return "prethread";
        case ServerModel::epoll: return "epoll";
        case ServerModel::fork: break;
    }
    return "fork";
}

// Whether a design can serve a transport's sessions: prefork needs a
// rendezvous several processes can take whole sessions from (an accept
// queue, a queue's hellos, udp's hello datagrams); epoll needs a
// session that is one pollable descriptor (a stream socket: System V queues
// and shared memory have no pollable wait, a FIFO or POSIX-queue
// session's rendezvous opens its objects with blocking calls, and a udp
// session is datagrams under a credit window the loop does not drive).
inline bool model_applies(ServerModel m, const TransportInfo& t) {
    if (m == ServerModel::prefork) return t.shared_rendezvous;
    if (m == ServerModel::epoll) return t.connect_stream != nullptr;
    return true;
}

struct ServerOptions {
    ReplyMode reply = ReplyMode::ack;
    ServerModel model = ServerModel::fork;
    bool quiet = false;          // no "Here is the message" lines
    bool once = false;           // serve one session, then exit
    unsigned max_clients = 64;   // live children (fork), threads (thread) or sessions (epoll) at most
    unsigned workers = 4;        // prefork, prethread: the pool's size, so its sessions at once
    AcceptLockKind accept_lock = AcceptLockKind::none;  // prefork: how workers share the listener
    // Internal: this process is one prefork worker (no listening or stopped
    // lines; the supervisor owns the listener's names and sweeps).
    bool pool_worker = false;
    double grace_seconds = 5;    // on SIGINT/SIGTERM, before children are ended
    // The listening line, one stderr line per ended session and the stop
    // line (--no-log turns them off; errors still print).
    bool log_sessions = true;
    // Teaching switch (labs): ended children are not reaped and stay zombies
    // until the server exits; --max-clients cannot be enforced then.
    bool no_reap = false;
    Limits limits;               // timeout_ms is the idle timeout
};

}  // namespace ipclab
