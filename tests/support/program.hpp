// Runs the real bin/server and bin/client for end-to-end tests. Their
// location comes from CMake (IPCLAB_BIN_DIR), never from parsing paths.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ipclab::test {

std::string bin(const std::string& program);

// A script of scripts/, which sits beside bin/ in the source tree: <repo>/bin
// in the default build, <repo>/build-*/bin in the sanitizer builds.
std::string script(const std::string& name);

struct ProgramResult {
    int exit_code = -1;  // -1: killed after the timeout or by a signal
    std::string out, err;
};

// Runs argv to completion with stdin_text on its standard input.
ProgramResult run_program(const std::vector<std::string>& argv, const std::string& stdin_text = "",
                          int timeout_ms = 30000);

// Runs the seed's exchange (`client -m hello 127.0.0.1 PORT`) `times` times
// against a running server; "" when every run printed the seed's ack and
// exited 0, else what went wrong.
std::string seed_exchanges(const std::string& port, int times = 3);

// A program left running (a server); stdout/stderr go to files we remove.
class RunningProgram {
public:
    explicit RunningProgram(const std::vector<std::string>& argv);
    RunningProgram(const RunningProgram&) = delete;
    RunningProgram& operator=(const RunningProgram&) = delete;
    ~RunningProgram();

    pid_t pid() const { return pid_; }
    std::string out() const;
    std::string err() const;
    // Waits (bounded) until stderr contains text; false on timeout or exit.
    bool wait_for_err(const std::string& text, int timeout_ms = 10000) const;
    // The port from the server's "listening on tcp [::]:PORT" line.
    std::string listening_port(int timeout_ms = 10000) const;
    // Sends signo, waits; returns the exit code (-1 if killed or timed out).
    int stop(int signo, int timeout_ms = 15000);
    // Waits up to timeout_ms for it to exit by itself, killing nothing:
    // its exit code (-1 if killed by a signal), or nullopt while it runs.
    std::optional<int> wait_exit(int timeout_ms);

private:
    pid_t pid_ = -1;
    std::string dir_;
};

// A private folder (mkdtemp under the temp directory, PREFIX.XXXXXX) for a
// test's output, removed with everything in it when the test ends.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "ipclab-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace ipclab::test
