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
// The state letter of /proc/PID/stat (R, S, T, Z, ...); '?' when unreadable.
char process_state(pid_t pid);

// Open descriptors of pid (entries of /proc/PID/fd).
int open_fd_count(pid_t pid);
// Those of them that are sockets.
int socket_fd_count(pid_t pid);
// Threads of pid named comm (/proc/PID/task/*/comm): counts a program's
// own threads and not those a sanitizer's runtime adds.
int threads_named(pid_t pid, const std::string& comm);

// Gives this test process a private directory of its own (a fresh
// /tmp/ipclab-tUID-XXXXXX, set as IPCLAB_DIR, inherited by every server and
// client it starts), so its objects - files there, and global names carrying
// that directory's tag - are told apart from any other ipclab run's.
// Called by main(); tests that point IPCLAB_DIR elsewhere call it to return.
void use_test_private_dir();
// Removes that directory and whatever is left in it (main(), at exit).
void remove_test_private_dir();

// This test process's IPC objects: files in its private directory and
// /dev/shm and POSIX queue names (when a mqueue fs is visible) carrying its
// directory's tag. Compare two snapshots.
std::set<std::string> ipc_object_snapshot();

// What changed since `before`, for a failure message: "\n  + new" and
// "\n  - gone" lines.
std::string snapshot_diff(const std::set<std::string>& before);

// Objects in the snapshot now that were not in `before` and belong to a test
// using `name` (every named object carries it). Objects other processes
// remove meanwhile, or create under other names, do not make a test fail.
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
