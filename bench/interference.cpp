#include "bench/interference.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/bench_util.hpp"

namespace ipclab::bench {

namespace {

std::string task_dir(pid_t pid) {
    return pid == 0 ? std::string("/proc/thread-self") : "/proc/" + std::to_string(pid);
}

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          Clock::now().time_since_epoch())
                                          .count());
}

std::uint64_t sub(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

}  // namespace

SchedStat::SchedStat(pid_t pid) {
    int fd;
    do {
        fd = ::open((task_dir(pid) + "/schedstat").c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    // No schedstat (a kernel without CONFIG_SCHED_INFO, or the task is gone):
    // the readings stay zero and the report says no interference was seen.
    if (fd >= 0) fd_.reset(fd);
}

SchedStat::Reading SchedStat::read() const {
    Reading r;
    if (!fd_) return r;
    char buf[128];
    ssize_t n;
    do {
        n = ::pread(fd_.get(), buf, sizeof buf - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return r;
    buf[n] = '\0';
    char* end = nullptr;
    r.cpu_ns = std::strtoull(buf, &end, 10);
    r.runq_ns = std::strtoull(end, nullptr, 10);
    return r;
}

TreeSchedStat::TreeSchedStat(pid_t root) {
    if (root <= 0) return;
    tasks_.emplace_back(root);
    for (pid_t c : children_of(root)) tasks_.emplace_back(c);
}

SchedStat::Reading TreeSchedStat::read() const {
    SchedStat::Reading sum;
    for (const auto& t : tasks_) {
        auto r = t.read();
        sum.cpu_ns += r.cpu_ns;
        sum.runq_ns += r.runq_ns;
    }
    return sum;
}

namespace {
std::uint64_t status_count(pid_t pid, const std::string& key) {
    std::ifstream in(task_dir(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10);
    return 0;
}

std::uint64_t tree_count(pid_t root, std::uint64_t (*count)(pid_t)) {
    if (root <= 0) return 0;
    std::uint64_t n = count(root);
    for (pid_t c : children_of(root)) n += count(c);
    return n;
}
}  // namespace

std::uint64_t involuntary_switches(pid_t pid) { return status_count(pid, "nonvoluntary_ctxt_switches:"); }
std::uint64_t tree_involuntary_switches(pid_t root) { return tree_count(root, involuntary_switches); }
std::uint64_t voluntary_switches(pid_t pid) { return status_count(pid, "voluntary_ctxt_switches:"); }
std::uint64_t tree_voluntary_switches(pid_t root) { return tree_count(root, voluntary_switches); }

std::uint64_t steal_ns() {
    // "cpu  user nice system idle iowait irq softirq steal ..." in USER_HZ ticks.
    std::istringstream in(read_first_line("/proc/stat"));
    std::string cpu;
    unsigned long long v[8] = {};
    in >> cpu;
    for (auto& x : v) in >> x;
    long hz = ::sysconf(_SC_CLK_TCK);
    return static_cast<std::uint64_t>(v[7]) * (1000000000ull / static_cast<std::uint64_t>(hz > 0 ? hz : 100));
}

void Interference::start() {
    tree_ = TreeSchedStat(server_pid_);
    client_nivcsw_ = involuntary_switches(0);
    server_nivcsw_ = tree_involuntary_switches(server_pid_);
    steal_ = steal_ns();
    server_ = tree_.read();
    client_ = self_.read();
    wall_ = now_ns();
}

void Interference::stop() {
    wall_ = sub(now_ns(), wall_);
    auto c = self_.read();
    auto s = tree_.read();
    client_ = {sub(c.cpu_ns, client_.cpu_ns), sub(c.runq_ns, client_.runq_ns)};
    server_ = {sub(s.cpu_ns, server_.cpu_ns), sub(s.runq_ns, server_.runq_ns)};
    steal_ = sub(steal_ns(), steal_);
    client_nivcsw_ = sub(involuntary_switches(0), client_nivcsw_);
    server_nivcsw_ = sub(tree_involuntary_switches(server_pid_), server_nivcsw_);
}

double interference_share(std::uint64_t runq_ns, std::uint64_t wall_ns, std::uint64_t messages,
                          double allowance_ns) {
    if (wall_ns == 0) return 0;
    double excess = static_cast<double>(runq_ns) - allowance_ns * static_cast<double>(messages);
    return excess > 0 ? excess / static_cast<double>(wall_ns) : 0;
}

}  // namespace ipclab::bench
