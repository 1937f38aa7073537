// Placeholder until the shm transport lands (issue 3).
#include <stdexcept>

#include "ipc/transports.hpp"

namespace ipclab {

std::unique_ptr<Listener> listen_shm(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport shm is not available yet");
}

std::unique_ptr<Channel> connect_shm(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport shm is not available yet");
}

}  // namespace ipclab

namespace ipclab {
std::vector<ObjectInfo> list_shm_objects() { return {}; }
}  // namespace ipclab
