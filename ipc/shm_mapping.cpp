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

ShmName::ShmName(std::string name) : name_(std::move(name)), owner_(::getpid()) {}

ShmName::ShmName(ShmName&& other) noexcept
    : name_(std::move(other.name_)), owner_(other.owner_) {
    other.name_.clear();
}

ShmName& ShmName::operator=(ShmName&& other) noexcept {
    if (this != &other) {
        ShmName old(std::move(*this));
        name_ = std::move(other.name_);
        owner_ = other.owner_;
        other.name_.clear();
    }
    return *this;
}

ShmName::~ShmName() {
    if (!name_.empty() && ::getpid() == owner_) ::shm_unlink(name_.c_str());
}

}  // namespace ipclab
