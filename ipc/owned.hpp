// The one owner of a named kernel or filesystem object (a path, a POSIX
// shm or queue name, a System V queue and its marker): the object is removed
// when its owner goes, but only by the process that created the owner. A
// forked child inherits the owner and the object, never the duty to remove
// it, so a session child can never unlink its server's well-known name.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "ipc/error.hpp"

namespace ipclab {

// Removes a file by name; one already gone is fine, any other failure throws.
inline void remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink " + path);
}

// Runs a remover where a failure has nobody to tell: a destructor, or the
// leftovers of a dead peer. The object then stays for --cleanup to find.
template <typename Name>
void remove_quietly(void (*remove)(const Name&), const Name& name) noexcept {
    try {
        remove(name);
    } catch (...) {
    }
}

// Name: what identifies the object; Remove: how to remove it (throws on failure).
template <typename Name, void (*Remove)(const Name&)>
class Owned {
public:
    Owned() = default;
    explicit Owned(Name name) : name_(std::move(name)), creator_(::getpid()) {}
    Owned(Owned&& other) noexcept
        : name_(std::move(other.name_)), creator_(std::exchange(other.creator_, 0)) {}
    Owned& operator=(Owned&& other) noexcept {
        if (this != &other) {
            Owned old(std::move(*this));  // removes what we held
            name_ = std::move(other.name_);
            creator_ = std::exchange(other.creator_, 0);
        }
        return *this;
    }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    ~Owned() {
        if (creator_ != 0 && ::getpid() == creator_) remove_quietly(Remove, name_);
    }

    const Name& name() const noexcept { return name_; }

private:
    Name name_{};
    pid_t creator_ = 0;  // 0: owns nothing
};

// A filesystem name (socket, FIFO, key file, marker) removed by its creator.
using OwnedPath = Owned<std::string, remove_file>;

}  // namespace ipclab
