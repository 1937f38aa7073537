// One pair of factories per transport file; transport.cpp dispatches on the name.
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

// A connected stream socket for line-mode clients (tcp and unix only).
Fd connect_stream(const Endpoint& ep, int timeout_ms);

}  // namespace ipclab
