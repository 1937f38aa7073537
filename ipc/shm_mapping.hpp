// Owners for shared memory: a mapping that unmaps itself, and a POSIX shm
// name that only its creating process unlinks.
#pragma once

#include <sys/mman.h>
#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "ipc/owned.hpp"

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

// shm_unlink; a name already gone is fine, any other failure throws.
void remove_shm_name(const std::string& name);

// A shared-memory object name (shm_open) that only its creating process
// unlinks (a forked child that inherits it never does).
using ShmName = Owned<std::string, remove_shm_name>;

}  // namespace ipclab
