// Puts a fuzz input on the wire inside the process: the whole input is
// written into a socketpair or pipe and the write end closed, so the reader
// under test sees exactly those bytes and then EOF, and never waits.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <optional>

#include "ipc/fd.hpp"

namespace ipclab::fuzz {

// The read end holding `size` bytes then EOF, or nullopt when the input does
// not fit the kernel buffer in one non-blocking write (the harness skips it).
inline std::optional<Fd> fed_descriptor(const void* data, std::size_t size, bool socket) {
    int fds[2];
    if (socket ? ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0
               : ::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return std::nullopt;
    Fd read_end(fds[0]), write_end(fds[1]);
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = socket ? ::send(write_end.get(), static_cast<const char*>(data) + done,
                                    size - done, MSG_DONTWAIT | MSG_NOSIGNAL)
                           : ::write(write_end.get(), static_cast<const char*>(data) + done,
                                     size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::nullopt;
        done += static_cast<std::size_t>(n);
    }
    if (!socket) {
        // The reader's side of a FIFO session is blocking, polled before each read.
        int fl = ::fcntl(read_end.get(), F_GETFL);
        ::fcntl(read_end.get(), F_SETFL, fl & ~O_NONBLOCK);
    }
    return read_end;  // write_end closes here: EOF after the input
}

}  // namespace ipclab::fuzz
