#include "tests/support/program.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {

namespace {

// In the child: wire stdio to files and exec; never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::string& dir,
                             bool with_stdin) {
    int in = with_stdin ? ::open((dir + "/stdin").c_str(), O_RDONLY) : ::open("/dev/null", O_RDONLY);
    int out = ::open((dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open((dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashed test must not leave servers behind
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    // Tests ignore SIGPIPE; programs under test start with default dispositions.
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD}) ::sigaction(s, &sa, nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
}

int exit_code(int status) {
    if (status >= 0 && WIFEXITED(status)) return WEXITSTATUS(status);
    return -1;
}

void remove_dir(const std::string& dir) {
    for (const char* f : {"/stdin", "/stdout", "/stderr"}) ::unlink((dir + f).c_str());
    ::rmdir(dir.c_str());
}

}  // namespace

std::string bin(const std::string& program) { return std::string(IPCLAB_BIN_DIR) + "/" + program; }

std::string script(const std::string& name) {
    namespace fs = std::filesystem;
    fs::path bin_dir(IPCLAB_BIN_DIR);
    for (const auto& up : {bin_dir.parent_path(), bin_dir.parent_path().parent_path()}) {
        fs::path p = up / "scripts" / name;
        if (fs::exists(p)) return p.string();
    }
    return (bin_dir.parent_path() / "scripts" / name).string();
}

ProgramResult run_program(const std::vector<std::string>& argv, const std::string& stdin_text,
                          int timeout_ms) {
    std::string dir = make_capture_dir();
    {
        std::ofstream f(dir + "/stdin");
        f << stdin_text;
    }
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) exec_child(argv, dir, true);
    int status = wait_or_kill(pid, timeout_ms);
    ProgramResult r{exit_code(status), slurp(dir + "/stdout"), slurp(dir + "/stderr")};
    remove_dir(dir);
    return r;
}

RunningProgram::RunningProgram(const std::vector<std::string>& argv) : dir_(make_capture_dir()) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) exec_child(argv, dir_, false);
}

RunningProgram::~RunningProgram() {
    if (pid_ > 0) stop(SIGTERM);
    remove_dir(dir_);
}

std::string RunningProgram::out() const { return slurp(dir_ + "/stdout"); }
std::string RunningProgram::err() const { return slurp(dir_ + "/stderr"); }

bool RunningProgram::wait_for_err(const std::string& text, int timeout_ms) const {
    return eventually([&] { return err().find(text) != std::string::npos; }, timeout_ms);
}

std::string RunningProgram::listening_port(int timeout_ms) const {
    if (!wait_for_err("listening on", timeout_ms)) return "";
    std::string e = err();
    auto line_end = e.find(" (pid", e.find("listening on"));
    auto colon = e.rfind(':', line_end);
    return e.substr(colon + 1, line_end - colon - 1);
}

int RunningProgram::stop(int signo, int timeout_ms) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signo);
    int status = wait_or_kill(pid_, timeout_ms);
    pid_ = -1;
    return exit_code(status);
}

std::optional<int> RunningProgram::wait_exit(int timeout_ms) {
    if (pid_ <= 0) return std::nullopt;
    auto status = wait_within(pid_, timeout_ms);
    if (!status) return std::nullopt;
    pid_ = -1;
    return exit_code(*status);
}

std::string seed_exchanges(const std::string& port, int times) {
    for (int i = 0; i < times; ++i) {
        auto r = run_program({bin("client"), "-m", "hello", "127.0.0.1", port});
        if (r.exit_code != 0) return "run " + std::to_string(i) + ": exit " + std::to_string(r.exit_code) + ": " + r.err;
        if (r.out != "I got your message\n") return "run " + std::to_string(i) + " printed: " + r.out;
    }
    return "";
}

TempDir::TempDir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

}  // namespace ipclab::test
