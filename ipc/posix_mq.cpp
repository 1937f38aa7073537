// Placeholder until the posix-mq transport lands (issue 3).
#include <stdexcept>

#include "ipc/transports.hpp"

namespace ipclab {

std::unique_ptr<Listener> listen_posix_mq(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport posix-mq is not available yet");
}

std::unique_ptr<Channel> connect_posix_mq(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport posix-mq is not available yet");
}

}  // namespace ipclab

namespace ipclab {
std::vector<ObjectInfo> list_posix_mq_objects() { return {}; }
}  // namespace ipclab
