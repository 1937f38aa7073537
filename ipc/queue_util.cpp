#include "ipc/queue_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "ipc/error.hpp"
#include "ipc/fd.hpp"

namespace ipclab {

long read_proc_long(const char* path, long fallback) {
    std::ifstream in(path);
    long v = 0;
    if (in >> v && v > 0) return v;
    return fallback;
}

void create_marker(const std::string& path) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw_errno("create marker " + path);
}

struct timespec realtime_after(int ms) {
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += static_cast<long>(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

}  // namespace ipclab
