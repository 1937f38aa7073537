// bin/server: parse the command line, open the listener, run the loop.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "ipc/channel.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"
#include "server/cli_checks.hpp"
#include "server/objects.hpp"
#include "server/server_loop.hpp"

using namespace ipclab;

namespace {

// The names a flag takes, from the list of its values and their names.
template <typename Kind, std::size_t N>
std::vector<std::string> names_of(const Kind (&kinds)[N], const char* (*name)(Kind)) {
    std::vector<std::string> names;
    for (Kind k : kinds) names.emplace_back(name(k));
    return names;
}

// The value a flag's name stands for (the name was checked against names_of).
template <typename Kind, std::size_t N>
Kind named(const Kind (&kinds)[N], const char* (*name)(Kind), const std::string& text) {
    for (Kind k : kinds)
        if (text == name(k)) return k;
    return kinds[0];
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "ipclab server: answers each message of a session, forking one child per session.\n"
        "  server PORT                  TCP on every interface (IPv4 and IPv6)\n"
        "  server --transport fifo      the same exchange over FIFOs (likewise every transport)"};
    app.set_version_flag("--version", IPCLAB_VERSION);
    app.footer("Exit codes: 0 success, 1 runtime failure, 2 usage error.");

    Endpoint ep;
    ServerOptions opt;
    int port = -1;
    double idle_timeout = 30;
    std::size_t max_message = kDefaultMaxMessage;
    std::string wait = "block";

    app.add_option("PORT", port, "Port to listen on (" + host_port_transports() + "; 0 picks a free one)")
        ->check(CLI::Range(0, 65535));
    app.add_option("-t,--transport", ep.transport, transport_choices())
        ->check(CLI::IsMember(transport_names()))
        ->capture_default_str();
    add_list_transports_flag(app);
    app.add_option("--name", ep.name, "Endpoint name for the transports not addressed by PORT")
        ->check(endpoint_name())
        ->capture_default_str();
    app.add_option("--bind", ep.host, "Address to bind (transports addressed by PORT; default every interface)");
    std::string reply = "ack";
    app.add_option("--reply", reply,
                   "ack: reply 'I got your message'; echo: send the payload back; sink: reply only "
                   "to empty messages (one-way throughput)")
        ->check(CLI::IsMember({"ack", "echo", "sink"}))
        ->capture_default_str();
    app.add_option("--wait", wait,
                   "block (sleep until woken; polls up to 10 us while the peer is mid-message or "
                   "streaming) or spin (bounded busy-poll first); transports with wait modes: " +
                       wait_mode_transports())
        ->check(CLI::IsMember({"block", "spin"}))
        ->capture_default_str();
    std::string model = "fork";
    app.add_option("--model", model,
                   "fork: a child per session (the default); iterative: one session at a time in the server "
                   "process itself; prefork: --workers children made up front, each serving one session at a "
                   "time from the shared listener; thread: a thread per session; prethread: --workers threads "
                   "made up front, taking turns to accept; epoll: one process, one thread, every session a "
                   "non-blocking socket in an event loop (tcp, unix)")
        ->check(CLI::IsMember(names_of(kServerModels, model_name)))
        ->capture_default_str();
    app.add_option("--workers", opt.workers,
                   "prefork, prethread: children or threads made up front, so sessions served at once")
        ->check(CLI::Range(1u, 1024u))
        ->capture_default_str();
    std::string accept_lock = "none";
    app.add_option("--accept-lock", accept_lock,
                   "prefork: how the workers share the listener. none: all wait on it and all wake for each "
                   "session (the thundering herd); flock: a file lock; mutex: a process-shared mutex (only the "
                   "lock's holder waits on the listener); pass-fd: the supervisor accepts and hands each "
                   "connection to an idle worker (tcp, unix)")
        ->check(CLI::IsMember(names_of(kAcceptLockKinds, accept_lock_name)))
        ->capture_default_str();
    app.add_option("--max-clients", opt.max_clients, "Live sessions at most (fork, thread, epoll); more wait")
        ->check(CLI::Range(1u, 100000u))
        ->capture_default_str();
    app.add_option("--idle-timeout", idle_timeout, "Seconds of silence that end a session (0: never)")
        ->check(duration_seconds(86400.0))
        ->capture_default_str();
    app.add_option("--max-message", max_message, "Largest message in bytes (suffixes k, M, G)")
        ->transform(CLI::AsSizeValue(false))
        ->check(CLI::Range(std::size_t{0}, std::size_t{0xFFFFFFFFu}))
        ->default_str("16MiB");
    app.add_option("--grace", opt.grace_seconds, "Seconds sessions get to finish after SIGINT/SIGTERM")
        ->check(duration_seconds(3600.0))
        ->capture_default_str();
    app.add_flag("--once", opt.once, "Serve one session, then exit");
    app.add_flag("-q,--quiet", opt.quiet, "Do not print 'Here is the message: ...'");
    bool no_log = false;
    app.add_flag("--no-log", no_log,
                 "Do not print the listening line, a line per ended session or the stop line on stderr "
                 "(errors still print; the benchmarks run their servers so)");
    app.add_flag("--no-reap", opt.no_reap,
                 "TEACHING ONLY: do not reap ended children, so they stay zombies (see `ps`) "
                 "until the server exits");
    bool list = false, cleanup = false, force = false;
    app.add_flag("--list-objects", list,
                 "List this user's ipclab objects (of --transport and --name if given) and "
                 "which are stale");
    app.add_flag("--cleanup", cleanup,
                 "Remove stale objects left by dead processes (of --transport and --name if "
                 "given), then exit");
    app.add_flag("--force", force,
                 "With --cleanup: also remove objects whose owner is unknown (another "
                 "IPCLAB_DIR's), with a warning each")
        ->needs("--cleanup");

    try {
        app.parse(argc, argv);
        const TransportInfo& info = transport_info(ep.transport);
        if (!list && !cleanup) {  // maintenance commands take --transport and --name as filters
            check_applies(app, info);
            // The names were checked by CLI11; the rules below read the design itself.
            const ServerModel m = named(kServerModels, model_name, model);
            const bool pool = m == ServerModel::prefork || m == ServerModel::prethread;
            if (m != ServerModel::fork && app.count("--no-reap"))
                throw CLI::ValidationError("--no-reap", "does not apply to --model " + model +
                                                            ": only fork has a child per session to leave unreaped");
            if (m != ServerModel::fork && m != ServerModel::thread && m != ServerModel::epoll &&
                app.count("--max-clients"))
                throw CLI::ValidationError("--max-clients", "does not apply to --model " + model +
                                                                ": it serves one session per process or "
                                                                "thread it has (iterative: one; pools: --workers)");
            if (!pool && app.count("--workers"))
                throw CLI::ValidationError("--workers", "applies to --model prefork and prethread only");
            if (accept_lock == "pass-fd" && !info.connect_stream)
                throw CLI::ValidationError("--accept-lock", "pass-fd hands a worker the session's one descriptor, "
                                                            "which only a stream socket session is (" +
                                                                stream_socket_transports() + "), not --transport " +
                                                                ep.transport);
            if (m != ServerModel::prefork && app.count("--accept-lock"))
                throw CLI::ValidationError("--accept-lock", "applies to --model prefork only (prethread's "
                                                            "threads always take turns under a mutex)");
            if (m == ServerModel::epoll && !model_applies(m, info))
                throw CLI::ValidationError("--model", "epoll does not apply to --transport " + ep.transport +
                                                          ": the event loop drives sessions that are one pollable "
                                                          "stream socket (" + stream_socket_transports() + ")");
            if (m == ServerModel::prefork && !model_applies(m, info))
                throw CLI::ValidationError("--model", "prefork does not apply to --transport " + ep.transport +
                                                          ": " + shared_rendezvous_note());
            // Last: a design or flag that cannot apply is said before a missing PORT.
            if (info.host_port && port < 0)
                throw CLI::ValidationError("PORT", "is required for --transport " + ep.transport);
        }
        if (!info.host_port && port >= 0)
            throw CLI::ValidationError("PORT", "does not apply to --transport " + ep.transport + "; use --name");
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    if (list || cleanup) {
        std::string only = app.count("--transport") ? ep.transport : "";
        std::string only_name = app.count("--name") ? ep.name : "";
        try {
            if (list) print_objects(only, only_name, std::cout);
            return cleanup ? cleanup_stale_objects(only, only_name, force, std::cout, std::cerr) : 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "server: %s\n", e.what());
            return 1;
        }
    }

    opt.model = named(kServerModels, model_name, model);
    opt.accept_lock = named(kAcceptLockKinds, accept_lock_name, accept_lock);
    opt.reply = reply == "echo" ? ReplyMode::echo : reply == "sink" ? ReplyMode::sink : ReplyMode::ack;
    ep.port = std::to_string(port);
    ep.wait = wait == "spin" ? WaitMode::spin : WaitMode::block;
    opt.limits.max_message = max_message;
    opt.limits.timeout_ms = to_ms(idle_timeout);
    opt.log_sessions = !no_log;

    try {
        ignore_sigpipe();
        // Our children print too: no stdio buffer may be duplicated by fork.
        std::setvbuf(stdout, nullptr, _IONBF, 0);
        return run_server(listen(ep, opt.limits), opt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
        return 1;
    }
}
