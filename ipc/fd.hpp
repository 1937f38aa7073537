// Move-only owner of a file descriptor; closes it in its destructor.
#pragma once

#include <unistd.h>

#include <utility>

namespace ipclab {

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    int release() noexcept { return std::exchange(fd_, -1); }

    // Closes the descriptor but leaves this owner holding its old number: in
    // a forked child that will never destroy the owner (it ends with _exit),
    // so the owner's page, shared with the parent, is not copied for one
    // write (a page fault per session). Nothing may use the owner afterwards.
    void close_in_exiting_child() const noexcept {
        if (fd_ >= 0) ::close(fd_);
    }

    // close(2) is not retried on EINTR: on Linux the descriptor is gone either way.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace ipclab
