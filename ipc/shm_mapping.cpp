#include "ipc/shm_mapping.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "ipc/error.hpp"

namespace ipclab {

void Unmap::operator()(std::byte* p) const noexcept {
    if (p != nullptr) ::munmap(p, size);
}

void remove_shm_name(const std::string& name) {
    if (::shm_unlink(name.c_str()) != 0 && errno != ENOENT) throw_errno("shm_unlink " + name);
}

Mapping map_shared(int fd, std::size_t size, const char* what) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno(std::string("mmap ") + what);
    return Mapping(static_cast<std::byte*>(p), Unmap{size});
}

Mapping map_anonymous_shared(std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap(MAP_ANONYMOUS)");
    return Mapping(static_cast<std::byte*>(p), Unmap{size});
}

}  // namespace ipclab
