// Owners for shared memory: a mapping that unmaps itself, and a POSIX shm
// name that only its creating process unlinks.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "ipc/fd.hpp"

namespace ipclab {

struct Unmap {
    std::size_t size = 0;
    void operator()(std::byte* p) const noexcept;
};

// A MAP_SHARED mapping; munmap in the destructor.
using Mapping = std::unique_ptr<std::byte, Unmap>;

// Maps size bytes of fd read-write and shared. Throws naming the call.
Mapping map_shared(int fd, std::size_t size, const char* what);

// Anonymous shared memory: survives fork() into both processes (tests).
Mapping map_anonymous_shared(std::size_t size);

// A POSIX shared-memory name, unlinked in the destructor by the process that
// created the owner (a forked child that inherits it never unlinks).
class ShmName {
public:
    ShmName() = default;
    explicit ShmName(std::string name);  // "/..." as passed to shm_open
    ShmName(ShmName&& other) noexcept;
    ShmName& operator=(ShmName&& other) noexcept;
    ShmName(const ShmName&) = delete;
    ShmName& operator=(const ShmName&) = delete;
    ~ShmName();
    const std::string& name() const { return name_; }
    void disown() noexcept { name_.clear(); }

private:
    std::string name_;
    pid_t owner_ = 0;
};

}  // namespace ipclab
