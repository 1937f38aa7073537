// The event-loop design (server --model epoll): one process, one thread,
// every session a non-blocking stream socket that epoll reports ready.
//
// The wire is the blocking channels' (ipc/stream_channel.hpp: framed after
// the opening, or text lines, told apart by the first byte), parsed
// incrementally: a session's bytes are buffered until a whole message is
// there, and its replies queued until the socket takes them. A session that
// does not read its replies stops being read (its queue is bounded), so a
// slow or hostile peer costs its own buffers and never stalls the others;
// the idle timeout ends a session that makes no progress either way.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ipc/fd.hpp"
#include "server/options.hpp"

namespace ipclab {

class EventSession;  // one session's buffers and parser (event_loop.cpp)

// Adds fd to the epoll set epoll_fd, level-triggered for reading; what names
// the call in the error.
void epoll_watch_readable(int epoll_fd, int fd, const char* what);

class EventLoop {
public:
    explicit EventLoop(const ServerOptions& options);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Descriptors the loop reports readable instead of serving (the
    // server's self-pipe, its listener): level-triggered.
    void watch(int fd);
    void unwatch(int fd);

    // Takes a connected stream socket as a new session.
    void add_session(Fd socket, std::string peer);
    std::size_t sessions() const { return sessions_.size(); }

    // Waits at most timeout_ms (-1: until something happens), serves every
    // session that is ready or past its idle deadline, and returns the
    // watched descriptors that are readable.
    const std::vector<int>& run_once(int timeout_ms);

    // Ends every session now, each logged with this ending.
    void end_all(const std::string& ending);

private:
    using Clock = std::chrono::steady_clock;
    void serve(int fd, std::uint32_t events);
    void finish(int fd);  // logs, drops the session (its socket closes)
    void update_interest(EventSession& s);
    void expire_idle(Clock::time_point now);

    ServerOptions options_;
    Fd epoll_;
    std::map<int, std::unique_ptr<EventSession>> sessions_;  // by descriptor
    std::vector<int> ready_;
    std::vector<struct epoll_event> events_;
    Clock::time_point next_expiry_check_;
};

}  // namespace ipclab
