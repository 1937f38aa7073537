// Placeholder until the fifo transport lands (issue 3).
#include <stdexcept>

#include "ipc/transports.hpp"

namespace ipclab {

std::unique_ptr<Listener> listen_fifo(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport fifo is not available yet");
}

std::unique_ptr<Channel> connect_fifo(const Endpoint&, const Limits&) {
    throw std::runtime_error("transport fifo is not available yet");
}

}  // namespace ipclab

namespace ipclab {
std::vector<ObjectInfo> list_fifo_objects() { return {}; }
}  // namespace ipclab
