#include "bench/bench_util.hpp"

#include <dirent.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bench/interference.hpp"
#include "client/latency.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"

namespace ipclab::bench {

volatile sig_atomic_t g_stop_signal = 0;

Bytes request_buffer(std::size_t size) {
    Bytes b;
    b.reserve(std::max(size, kLargeBuffer));  // PlacedAllocator places what is this large
    return b;
}

namespace {

void on_stop_signal(int) {
    int saved = errno;
    g_stop_signal = 1;
    request_stop();
    errno = saved;
}

void set_action(int signo, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocked calls must return EINTR
    check(::sigaction(signo, &sa, nullptr), "sigaction");
}

const long kTicks = ::sysconf(_SC_CLK_TCK) > 0 ? ::sysconf(_SC_CLK_TCK) : 100;

std::uint64_t ticks_to_ns(unsigned long long ticks) {
    return static_cast<std::uint64_t>(ticks) * (1000000000ull / static_cast<std::uint64_t>(kTicks));
}

// Fields of /proc/PID/stat after the command name: [0] is field 3 (state).
std::vector<std::string> stat_fields(pid_t pid) {
    std::string line = read_first_line("/proc/" + std::to_string(pid) + "/stat");
    std::vector<std::string> out;
    auto close = line.rfind(')');
    if (close == std::string::npos) return out;
    std::istringstream in(line.substr(close + 1));
    std::string f;
    while (in >> f) out.push_back(f);
    return out;
}

unsigned long long field(const std::vector<std::string>& f, std::size_t stat_index) {
    std::size_t i = stat_index - 3;
    return i < f.size() ? std::strtoull(f[i].c_str(), nullptr, 10) : 0;
}

// One process's own CPU time, all its threads included, those that ended
// too (a thread-per-session server's sessions are mostly ended threads): the
// process's CPU-time clock, in ns. Fallbacks: schedstat (ns, but of the main
// thread only), then stat's utime+stime (every thread, but in 10 ms ticks).
std::uint64_t own_cpu_ns(pid_t pid, const std::vector<std::string>& fields) {
    clockid_t clock;
    timespec ts{};
    if (::clock_getcpuclockid(pid, &clock) == 0 && ::clock_gettime(clock, &ts) == 0)
        return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
    std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
    unsigned long long ns = 0;
    if (in >> ns) return ns;
    return ticks_to_ns(field(fields, 14) + field(fields, 15));
}

}  // namespace

std::size_t parse_size(const std::string& text) {
    if (text.empty()) throw std::invalid_argument("empty size");
    std::size_t pos = 0;
    unsigned long long v = 0;
    try {
        v = std::stoull(text, &pos, 10);
    } catch (const std::exception&) {
        throw std::invalid_argument("bad size '" + text + "'");
    }
    std::string unit = text.substr(pos);
    unsigned long long mult = 1;
    if (unit == "" || unit == "b" || unit == "B") mult = 1;
    else if (unit == "k" || unit == "K" || unit == "KiB") mult = 1024;
    else if (unit == "m" || unit == "M" || unit == "MiB") mult = 1024 * 1024;
    else throw std::invalid_argument("bad size unit in '" + text + "' (use k or M)");
    if (v > kMaxBenchMessage / mult || v * mult > kMaxBenchMessage)
        throw std::invalid_argument("size '" + text + "' is above 16 MiB");
    return static_cast<std::size_t>(v * mult);
}

int server_cpu_for(const Config& c, const std::string& transport) {
    if (transport_variant(transport).wait != WaitMode::spin || c.server_cpu < 0 || c.server_cpu != c.client_cpu)
        return c.server_cpu;
    long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu > 1 ? static_cast<int>((c.server_cpu + 1) % ncpu) : c.server_cpu;
}

void pin_to_cpu(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    check(::sched_setaffinity(0, sizeof set, &set), "sched_setaffinity");
}

void install_stop_handlers() {
    set_action(SIGINT, on_stop_signal);
    set_action(SIGTERM, on_stop_signal);
}

bool interrupted() noexcept { return g_stop_signal != 0 || stop_requested(); }

namespace {
bool g_loop_entered = false;  // of the benchmark call running now (one thread)
}  // namespace

bool begin_run(benchmark::State& state) {
    g_loop_entered = false;
    // When this repetition ran, on the wall clock: lines its interference
    // counters up with what else the machine did then (a load, a cron job).
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    state.counters["started_unix_s"] = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
    if (!interrupted()) return true;
    fail(state, "interrupted");
    return false;
}

benchmark::State& timed(benchmark::State& state) {
    g_loop_entered = true;
    return state;
}

void fail(benchmark::State& state, const std::string& message) {
    if (state.error_occurred()) return;
    if (g_loop_entered) return state.SkipWithError(message.c_str());
    g_loop_entered = true;
    for (auto _ : state) {
        state.SkipWithError(message.c_str());
        break;
    }
}

pid_t fork_child(int cpu, const std::function<int()>& body) {
    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    if (pid > 0) return pid;
    // A server outlives nothing: if ipc-bench dies (killed, or aborted by
    // Google Benchmark) its servers get SIGTERM, stop and remove their
    // objects, instead of serving an accept loop forever (seen: ten bench
    // servers left running after an abort).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // it died before the prctl
    // Ctrl-C reaches the whole group: the parent decides when children end.
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = SIG_DFL;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGCHLD, &sa, nullptr);
    g_stop_signal = 0;
    clear_stop();
    int rc = 1;
    try {
        pin_to_cpu(cpu);
        rc = body();
    } catch (const std::exception& e) {
        std::string msg = std::string("ipc-bench child: ") + e.what() + "\n";
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg.data(), msg.size());
    } catch (...) {
    }
    ::_exit(rc);
}

int wait_or_kill(pid_t pid, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;  // not our child (already reaped)
        if (Clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return -1;
}

Child& Child::operator=(Child&& o) noexcept {
    if (this != &o) {
        stop();
        pid_ = o.pid_;
        o.pid_ = -1;
    }
    return *this;
}

int Child::stop(int signo, int timeout_ms) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signo);
    int status = wait_or_kill(pid_, timeout_ms);
    pid_ = -1;
    return status;
}

void reap_exited_children() noexcept {
    int status;
    while (::waitpid(-1, &status, WNOHANG) > 0) {
    }
}

std::uint64_t self_cpu_ns() {
    struct rusage ru {};
    check(::getrusage(RUSAGE_SELF, &ru), "getrusage");
    auto ns = [](const timeval& tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * 1000000000ull +
               static_cast<std::uint64_t>(tv.tv_usec) * 1000ull;
    };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
}

std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::string p = std::to_string(pid);
    std::ifstream in("/proc/" + p + "/task/" + p + "/children");
    if (in) {
        long c;
        while (in >> c) out.push_back(static_cast<pid_t>(c));
        return out;
    }
    // No CONFIG_PROC_CHILDREN: scan every process for its parent.
    DIR* d = ::opendir("/proc");
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        char* end = nullptr;
        long c = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || c <= 0) continue;
        auto f = stat_fields(static_cast<pid_t>(c));
        if (static_cast<pid_t>(field(f, 4)) == pid) out.push_back(static_cast<pid_t>(c));
    }
    ::closedir(d);
    return out;
}

std::uint64_t tree_cpu_ns(pid_t pid) {
    if (pid <= 0) return 0;
    auto f = stat_fields(pid);
    if (f.empty()) return 0;
    std::uint64_t total = own_cpu_ns(pid, f) + ticks_to_ns(field(f, 16) + field(f, 17));
    for (pid_t c : children_of(pid)) {
        auto cf = stat_fields(c);
        if (!cf.empty()) total += own_cpu_ns(c, cf);
    }
    return total;
}

std::uint64_t tree_minor_faults(pid_t pid) {
    if (pid <= 0) return 0;
    auto f = stat_fields(pid);
    if (f.empty()) return 0;
    std::uint64_t total = field(f, 10) + field(f, 11);  // minflt, cminflt
    for (pid_t c : children_of(pid)) {
        auto cf = stat_fields(c);
        if (!cf.empty()) total += field(cf, 10);
    }
    return total;
}

std::uint64_t self_minor_faults() {
    struct rusage ru {};
    check(::getrusage(RUSAGE_SELF, &ru), "getrusage");
    return static_cast<std::uint64_t>(ru.ru_minflt);
}

Meter::Meter(benchmark::State& state, pid_t peer, bool settle)
    : state_(state), peer_(peer), settle_(settle), interference_(std::make_unique<Interference>(peer)) {}

Meter::~Meter() = default;

namespace {
void wait_children_reaped(pid_t pid) {
    auto deadline = Clock::now() + std::chrono::milliseconds(500);
    while (!children_of(pid).empty() && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}
}  // namespace

void Meter::start() {
    if (settle_) wait_children_reaped(peer_);
    server0_ = tree_cpu_ns(peer_);
    server_faults0_ = tree_minor_faults(peer_);
    interference_->start();
    client_faults0_ = self_minor_faults();
    client0_ = self_cpu_ns();
}

void Meter::stop() {
    client1_ = self_cpu_ns();
    client_faults1_ = self_minor_faults();
    interference_->stop();
    if (settle_) wait_children_reaped(peer_);
    server1_ = tree_cpu_ns(peer_);
    server_faults1_ = tree_minor_faults(peer_);
}

void Meter::report(std::int64_t bytes_per_iteration, std::uint64_t messages) {
    state_.SetBytesProcessed(state_.iterations() * bytes_per_iteration);
    put_percentiles(state_, samples_);
    if (messages > 0) {
        auto per = [&](std::uint64_t a, std::uint64_t b) {
            return static_cast<double>(b > a ? b - a : 0) / static_cast<double>(messages);
        };
        state_.counters["client_cpu_ns_per_msg"] = per(client0_, client1_);
        state_.counters["server_cpu_ns_per_msg"] = per(server0_, server1_);
        state_.counters["client_faults_per_msg"] = per(client_faults0_, client_faults1_);
        state_.counters["server_faults_per_msg"] = per(server_faults0_, server_faults1_);
        report_interference(state_, *interference_, messages,
                            settle_ ? kForkAllowanceNs
                                    : message_allowance_ns(static_cast<std::size_t>(std::max<std::int64_t>(bytes_per_iteration, 0))));
    }
}

void raw_io_failed(const char* call) {
    if (errno == EINTR) {
        if (interrupted()) throw Interrupted();
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) throw TimeoutError(std::string(call) + ": timed out");
    if (errno == ECONNRESET || errno == EPIPE) throw PeerGone(std::string(call) + ": the peer closed");
    throw_errno(call);
}

void writen(int fd, const void* p, std::size_t n) {
    auto* c = static_cast<const char*>(p);
    while (n > 0) {
        ssize_t w = ::write(fd, c, n);
        if (w < 0) {
            raw_io_failed("write");
            continue;
        }
        c += w;
        n -= static_cast<std::size_t>(w);
    }
}

bool readn(int fd, void* p, std::size_t n) {
    auto* c = static_cast<char*>(p);
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, c + got, n - got);
        if (r < 0) {
            raw_io_failed("read");
            continue;
        }
        if (r == 0) {
            if (got == 0) return false;
            throw PeerGone("baseline peer closed mid-message");
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

void put_percentiles(benchmark::State& state, const Histogram& ns, const std::string& prefix) {
    if (ns.count() == 0) return;
    auto put = [&](const char* name, std::uint64_t v) { state.counters[prefix + name] = static_cast<double>(v); };
    put("p50_ns", ns.percentile(50));
    put("p99_ns", ns.percentile(99));
    put("p999_ns", ns.percentile(99.9));
    put("max_ns", ns.max());
}

void report_interference(benchmark::State& state, const Interference& i, std::uint64_t messages,
                         double allowance_ns) {
    if (messages == 0) return;
    auto per = [&](std::uint64_t v) { return static_cast<double>(v) / static_cast<double>(messages); };
    state.counters["client_runq_ns_per_msg"] = per(i.client_runq_ns());
    state.counters["server_runq_ns_per_msg"] = per(i.server_runq_ns());
    state.counters["client_nivcsw_per_msg"] = per(i.client_nivcsw());
    state.counters["server_nivcsw_per_msg"] = per(i.server_nivcsw());
    state.counters["steal_ns_per_msg"] = per(i.steal());
    state.counters["runq_share"] = runq_share(i.client_runq_ns() + i.server_runq_ns(), i.wall_ns());
    double share = interference_share(i.client_runq_ns() + i.server_runq_ns(), i.wall_ns(), messages, allowance_ns);
    state.counters["interference"] = share;
    state.counters["disturbed"] = share > kDisturbedShare ? 1 : 0;
}

std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    return line;
}

long read_long(const std::string& path, long fallback) {
    std::ifstream in(path);
    long v;
    return (in >> v) ? v : fallback;
}

void add_context(const Config& config) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    benchmark::AddCustomContext("host", host);
    struct utsname u {};
    if (::uname(&u) == 0)
        benchmark::AddCustomContext("kernel", std::string(u.sysname) + " " + u.release + " " +
                                                  u.version + " " + u.machine);
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line, model = "unknown";
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos) model = line.substr(line.find_first_not_of(" \t", colon + 1));
            break;
        }
    }
    benchmark::AddCustomContext("cpu_model", model);
    benchmark::AddCustomContext("cores_online", std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)));
    auto add_file = [](const char* key, const char* path) {
        std::string v = read_first_line(path);
        benchmark::AddCustomContext(key, v.empty() ? "unknown" : v);
    };
    add_file("mq_msgsize_max", "/proc/sys/fs/mqueue/msgsize_max");
    add_file("mq_msg_max", "/proc/sys/fs/mqueue/msg_max");
    add_file("sysv_msgmax", "/proc/sys/kernel/msgmax");
    add_file("sysv_msgmnb", "/proc/sys/kernel/msgmnb");
    add_file("pipe_max_size", "/proc/sys/fs/pipe-max-size");
    add_file("somaxconn", "/proc/sys/net/core/somaxconn");
    add_file("clocksource", "/sys/devices/system/clocksource/clocksource0/current_clocksource");
    benchmark::AddCustomContext(
        "pin", config.client_cpu < 0 && config.server_cpu < 0
                   ? std::string("none")
                   : "client cpu " + (config.client_cpu < 0 ? std::string("any") : std::to_string(config.client_cpu)) +
                         ", server cpu " +
                         (config.server_cpu < 0 ? std::string("any") : std::to_string(config.server_cpu)));
    std::string ts;
    for (const auto& t : config.transports) ts += (ts.empty() ? "" : ",") + t;
    benchmark::AddCustomContext("transports", ts);
    benchmark::AddCustomContext(
        "cpu_accounting",
        "client: getrusage(RUSAGE_SELF); server: /proc schedstat of the server process tree "
        "(live session children, reaped ones via cutime+cstime)");
    benchmark::AddCustomContext("round_trip_bytes",
                                "bytes_per_second counts the payload once per round trip");
}

}  // namespace ipclab::bench
