// What /proc and the IPC namespaces say about a process tree and about
// leftover ipclab objects, for tests that assert on leaks.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

namespace ipclab::test {

// Direct children of pid, and those among them that are zombies.
std::vector<pid_t> children_of(pid_t pid);
std::vector<pid_t> zombie_children_of(pid_t pid);

// Open descriptors of pid (entries of /proc/PID/fd).
int open_fd_count(pid_t pid);

// Every IPC object that could be ours: /dev/shm entries, System V queues,
// segments and semaphore sets, POSIX queues (when a mqueue file system is
// visible), and files in the private directory. Compare two snapshots.
std::set<std::string> ipc_object_snapshot();

// Objects in the snapshot now that were not in `before` and belong to a test
// using `name` (every named object carries it; System V queues have no
// name, so all new ones count). Objects other processes remove meanwhile,
// or create under other names, do not make a test fail.
std::vector<std::string> leftover_objects(const std::set<std::string>& before,
                                          const std::string& name);

// Mounts an mqueue file system in a private mount namespace so POSIX queues
// can be listed without touching the host's mounts. Returns false when not
// permitted (not root); the snapshot then omits POSIX queues.
bool make_posix_queues_visible();

// Polls until pred() holds or timeout_ms passes; returns the last result.
template <typename Pred>
bool eventually(Pred pred, int timeout_ms = 5000);

}  // namespace ipclab::test

#include <chrono>
#include <thread>

template <typename Pred>
bool ipclab::test::eventually(Pred pred, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}
