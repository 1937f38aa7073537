// One pair of factories per transport file; ipc/registry.cpp lists them and
// dispatches on the name.
#pragma once

#include <memory>

#include "ipc/channel.hpp"
#include "ipc/fd.hpp"

namespace ipclab {

std::unique_ptr<Listener> listen_tcp(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_tcp(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_unix(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_unix(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_fifo(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_fifo(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_posix_mq(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_posix_mq(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_sysv_mq(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_sysv_mq(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_shm(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_shm(const Endpoint& ep, const Limits& limits);

std::unique_ptr<Listener> listen_udp(const Endpoint& ep, const Limits& limits);
std::unique_ptr<Channel> connect_udp(const Endpoint& ep, const Limits& limits);

// The bare connected sockets behind tcp's and unix's channels (line mode).
// tcp's comes with TCP_NODELAY and timeout_ms as its SO_SNDTIMEO (reads: see io.hpp).
Fd connect_tcp_socket(const Endpoint& ep, int timeout_ms);
Fd connect_unix_socket(const Endpoint& ep, int timeout_ms);

}  // namespace ipclab

#include <functional>
#include <sys/types.h>
#include <string>
#include <vector>

namespace ipclab {

// An ipclab object found on this host, for `server --list-objects` and `--cleanup`.
struct ObjectInfo {
    std::string transport;          // its name in the registry (ipc/registry.cpp)
    std::string what;               // what a person recognises: path, queue name, "msqid 5"
    std::string name;               // the endpoint's --name it belongs to
    pid_t owner = 0;                // the process it belongs to; 0 when unknown
    bool stale = false;             // the owner is dead: proven, so it may be removed
    // The owner cannot be known from here: the object belongs to another
    // private directory (IPCLAB_DIR), whose locks we cannot see. Never stale;
    // only `--cleanup --force` removes it.
    bool unknown = false;
    // Made by a client for one session (not a server's well-known object):
    // what the listener's orphan sweep may remove once its creator is dead.
    bool session = false;
    std::function<void()> remove;   // removes the object (throws on failure)
};

// Each lists this user's ipclab objects of its transport (every --name).
std::vector<ObjectInfo> list_fifo_objects();
std::vector<ObjectInfo> list_posix_mq_objects();
std::vector<ObjectInfo> list_sysv_mq_objects();
std::vector<ObjectInfo> list_shm_objects();

}  // namespace ipclab

namespace ipclab {

// UNIX sockets in the private directory, and every transport's lock file.
std::vector<ObjectInfo> list_unix_objects();
std::vector<ObjectInfo> list_lock_files();

// Everything above for one transport ("" = all of them).
// Every object of this user, of one transport and one --name when those are not empty.
std::vector<ObjectInfo> list_objects(const std::string& transport, const std::string& name = "");

// Removes the per-session objects of (transport, name) in this private
// directory whose creator is dead: what a client killed before a server
// child took its session leaves behind. Returns how many; never throws.
std::size_t reclaim_orphans(const std::string& transport, const std::string& name) noexcept;

}  // namespace ipclab
