#include "tests/support/proc_inspect.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ipc/private_dir.hpp"

namespace fs = std::filesystem;

namespace ipclab::test {

namespace {

std::string g_mqueue_dir;

// Fields of /proc/PID/stat after the command name (which may contain spaces).
bool read_stat(pid_t pid, char& state, pid_t& ppid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s;
    if (!std::getline(in, s)) return false;
    auto close = s.rfind(')');
    if (close == std::string::npos) return false;
    std::istringstream rest(s.substr(close + 2));
    rest >> state >> ppid;
    return static_cast<bool>(rest);
}

std::string g_test_dir;  // this test process's private directory (see use_test_private_dir)

}  // namespace

std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        char state;
        pid_t ppid;
        pid_t p = std::stoi(name);
        if (read_stat(p, state, ppid) && ppid == pid) out.push_back(p);
    }
    return out;
}

char process_state(pid_t pid) {
    char state;
    pid_t ppid;
    return read_stat(pid, state, ppid) ? state : '?';
}

std::vector<pid_t> zombie_children_of(pid_t pid) {
    std::vector<pid_t> out;
    for (pid_t c : children_of(pid)) {
        char state;
        pid_t ppid;
        if (read_stat(c, state, ppid) && state == 'Z') out.push_back(c);
    }
    return out;
}

namespace {
int entries_of(const std::string& dir) {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
    return n;
}
}  // namespace

int open_fd_count(pid_t pid) { return entries_of("/proc/" + std::to_string(pid) + "/fd"); }

int socket_fd_count(pid_t pid) {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::error_code link_ec;
        if (fs::read_symlink(it->path(), link_ec).string().rfind("socket:", 0) == 0) ++n;
    }
    return n;
}

int threads_named(pid_t pid, const std::string& comm) {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::ifstream in(it->path() / "comm");
        std::string name;
        if (std::getline(in, name) && name == comm) ++n;
    }
    return n;
}

bool make_posix_queues_visible() {
    if (!g_mqueue_dir.empty()) return true;
    if (::geteuid() != 0) return false;
    if (::unshare(CLONE_NEWNS) != 0) return false;
    // Keep our mounts out of the host's view.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    // Mount over /mnt: in our private namespace this hides nothing from anyone
    // else and leaves no directory behind.
    if (::mount("mqueue", "/mnt", "mqueue", 0, nullptr) != 0) return false;
    g_mqueue_dir = "/mnt";
    return true;
}

void use_test_private_dir() {
    if (g_test_dir.empty()) {
        std::string tmpl = "/tmp/ipclab-t" + std::to_string(::getuid()) + "-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl);
        g_test_dir = tmpl;
    }
    ::setenv("IPCLAB_DIR", g_test_dir.c_str(), 1);
}

void remove_test_private_dir() {
    if (g_test_dir.empty()) return;
    std::error_code ec;
    fs::remove_all(g_test_dir, ec);  // leftovers in it have failed their tests already
    g_test_dir.clear();
}

std::set<std::string> ipc_object_snapshot() {
    // Only what this process's private directory holds, and global names
    // carrying its tag: another ipclab run on the machine (a second make
    // test, a server someone started) has other directories and tags. System
    // V queues have no name; each of ours has a key or marker file in the
    // directory from before it exists until after it is gone, so those files
    // stand for them.
    std::set<std::string> out;
    const std::string tag = "-" + dir_tag() + "-";
    std::error_code ec;
    for (auto it = fs::directory_iterator("/dev/shm", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        if (it->path().filename().string().find(tag) != std::string::npos)
            out.insert("shm " + it->path().filename().string());
    if (!g_mqueue_dir.empty())
        for (auto it = fs::directory_iterator(g_mqueue_dir, ec);
             !ec && it != fs::directory_iterator(); it.increment(ec))
            if (it->path().filename().string().find(tag) != std::string::npos)
                out.insert("posix-mq " + it->path().filename().string());
    for (auto it = fs::directory_iterator(existing_private_dir(), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
        out.insert("file " + it->path().string());
    return out;
}

std::string snapshot_diff(const std::set<std::string>& before) {
    std::string out;
    auto now = ipc_object_snapshot();
    for (const auto& s : now)
        if (!before.count(s)) out += "\n  + " + s;
    for (const auto& s : before)
        if (!now.count(s)) out += "\n  - " + s;
    return out;
}

std::vector<std::string> leftover_objects(const std::set<std::string>& before,
                                          const std::string& name) {
    std::vector<std::string> out;
    for (const auto& o : ipc_object_snapshot())
        if (!before.count(o) && o.find(name) != std::string::npos) out.push_back(o);
    return out;
}

}  // namespace ipclab::test
