// bin/client: parse the command line, run the session, map failures to exit codes.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>

#include "client/load.hpp"
#include "client/session.hpp"
#include "ipc/error.hpp"
#include "ipc/io.hpp"
#include "ipc/registry.hpp"
#include "server/cli_checks.hpp"

using namespace ipclab;

namespace {

void on_stop(int) { request_stop(); }

constexpr std::size_t kMaxClients = 1024;
constexpr double kMaxRate = 1e7;            // requests/s
constexpr double kDefaultRateSeconds = 10;  // --rate without --duration
constexpr double kMaxScheduled = 1e9;       // requests one --rate run may schedule
// Without it the first round trips of a 64 KiB run (page faults in both
// processes' new buffers, cold caches) were in --stats' min and low
// percentiles, and bin/client at 64 KiB read slower than ipc-bench.
constexpr std::size_t kDefaultStatsWarmup = 16;

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGINT, SIGTERM}) ::sigaction(s, &sa, nullptr);  // no SA_RESTART: waits wake
    ipclab::unblock_signals({SIGINT, SIGTERM});
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "ipclab client: sends messages to an ipclab (or the seed's) server.\n"
        "  client HOST PORT                     the seed's interactive exchange over TCP\n"
        "  client --transport shm -m hello      the same over shared memory\n"
        "  client --count 10000 --size 4096 --stats HOST PORT\n"
        "  client --clients 8 --size 64 --duration 5 --stats HOST PORT       8 sessions at once\n"
        "  client --rate 2000 --duration 2 --size 64 --stats HOST PORT       open loop, 2000 requests/s"};
    app.set_version_flag("--version", IPCLAB_VERSION);
    app.footer("Exit codes: 0 success, 1 runtime failure, 2 usage error.");

    Endpoint ep;
    ClientOptions opt;
    std::string message, wait = "block", mode = "auto";
    std::size_t size = 0, max_message = kDefaultMaxMessage;
    double timeout = 30;
    int port = -1;

    app.add_option("HOST", ep.host, "Server host name or address (" + host_port_transports() + ")");
    app.add_option("PORT", port, "Server port (" + host_port_transports() + ")")->check(CLI::Range(1, 65535));
    app.add_option("-t,--transport", ep.transport, transport_choices())
        ->check(CLI::IsMember(transport_names()))
        ->capture_default_str();
    add_list_transports_flag(app);
    app.add_option("--name", ep.name, "Endpoint name for the transports not addressed by HOST PORT")
        ->check(endpoint_name())
        ->capture_default_str();
    auto* m = app.add_option("-m,--message", message, "Message to send (default: prompt for a line)");
    app.add_option("-c,--count", opt.count, "Messages to send over one session (with --clients, over each)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 40))
        ->capture_default_str();
    auto* sz = app.add_option("-s,--size", size, "Send generated payloads of this many bytes (k, M suffixes)")
                   ->transform(CLI::AsSizeValue(false))
                   ->check(CLI::Range(std::size_t{0}, std::size_t{0xFFFFFFFFu}));
    app.add_flag("--verify", opt.verify, "Check that each reply echoes its payload byte for byte");
    app.add_flag("--stats", opt.stats,
                 "Print round-trip latency percentiles (from a histogram: within 0.4%) and throughput (also on Ctrl-C, "
                 "for the round trips done); with --clients also each client's msg/s and their fairness, with --rate "
                 "the schedule");
    auto* warmup = app.add_option("--warmup", opt.warmup,
                                  "Round trips per session before the measured ones, checked but not counted "
                                  "(default: 16 with --stats or --json, 0 otherwise)")
                       ->check(CLI::Range(std::size_t{0}, std::size_t{1000000}));
    app.add_flag("--json", opt.json,
                 "With --stats (implied): print them as one JSON object on one line; the README lists its fields");
    auto* dur = app.add_option("--duration", opt.duration_s,
                               "Send messages for this many seconds (like iperf3 -t; with --clients, each client); "
                               "--count, if given, caps them; with --rate, the schedule's length")
                    ->check(duration_seconds(86400.0));
    auto* clients = app.add_option("--clients", opt.clients,
                                   "Concurrent sessions, each on a thread of its own with its own payloads "
                                   "(1-1024); --count and --duration apply to each")
                        ->check(CLI::Range(std::size_t{1}, kMaxClients))
                        ->capture_default_str();
    auto* rate = app.add_option("--rate", opt.rate,
                                "Open loop: this many requests per second over all clients, on a fixed schedule "
                                "whatever the replies do, for --duration (default 10 s); each latency counts from "
                                "its request's scheduled time")
                     ->check(CLI::Range(0.0, kMaxRate));
    app.add_option("--wait", wait, "block or spin (transports with wait modes: " + wait_mode_transports() + ")")
        ->check(CLI::IsMember({"block", "spin"}))
        ->capture_default_str();
    app.add_option("--mode", mode, "auto, line (the seed's text exchange) or framed")
        ->check(CLI::IsMember({"auto", "line", "framed"}))
        ->capture_default_str();
    app.add_option("--timeout", timeout, "Seconds to wait for connect, and for each whole reply (0: forever)")
        ->check(duration_seconds(86400.0))
        ->capture_default_str();
    app.add_option("--max-message", max_message, "Largest reply accepted, in bytes")
        ->transform(CLI::AsSizeValue(false))
        ->check(CLI::Range(std::size_t{0}, std::size_t{0xFFFFFFFFu}))
        ->default_str("16MiB");
    sz->excludes(m);

    try {
        app.parse(argc, argv);
        const TransportInfo& info = transport_info(ep.transport);
        if (info.host_port && (ep.host.empty() || port < 0))
            throw CLI::ValidationError("HOST PORT", "are required for --transport " + ep.transport);
        if (!info.host_port && !ep.host.empty())
            throw CLI::ValidationError("HOST PORT", "do not apply to --transport " + ep.transport + "; use --name");
        check_applies(app, info);
        if (opt.json) opt.stats = true;
        if (!*warmup) opt.warmup = opt.stats ? kDefaultStatsWarmup : 0;
        if (*dur && opt.duration_s <= 0) throw CLI::ValidationError("--duration", "must be more than 0 seconds");
        // NaN passes CLI::Range's comparisons; this one it does not.
        if (*rate && !(opt.rate > 0)) throw CLI::ValidationError("--rate", "must be more than 0 requests per second");
        if (*rate && !*dur) opt.duration_s = kDefaultRateSeconds;
        // A schedule is bounded in count as well as in time.
        if (*rate && opt.rate * opt.duration_s > kMaxScheduled)
            throw CLI::ValidationError("--rate", "--rate x --duration schedules more than " +
                                                     std::to_string(static_cast<long long>(kMaxScheduled)) +
                                                     " requests");
        if ((*dur || *rate) && !app.count("--count")) opt.count = std::size_t{1} << 40;
        if ((opt.clients > 1 || *rate) && !*m && !*sz)
            throw CLI::ValidationError("--clients/--rate", "need -m TEXT or --size B: several sessions do not prompt");
        if (mode == "line" &&
            (opt.count != 1 || *sz || opt.verify || opt.stats || *dur || *clients || *rate || opt.warmup > 0))
            throw CLI::ValidationError("--mode line",
                                       "sends one text message; drop --count/--size/--verify/--stats/--duration/"
                                       "--clients/--rate/--warmup");
        if (mode == "line" && !info.connect_stream)
            throw CLI::ValidationError("--mode line", "needs a stream socket transport, not " + ep.transport);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }

    ep.port = std::to_string(port);
    ep.wait = wait == "spin" ? WaitMode::spin : WaitMode::block;
    if (*m) opt.message = message;
    if (*sz) opt.size = size;
    opt.mode = mode == "line" ? ClientMode::line : mode == "framed" ? ClientMode::framed
                                                                     : ClientMode::automatic;
    opt.limits.timeout_ms = to_ms(timeout);
    opt.limits.max_message = max_message;

    try {
        ignore_sigpipe();
        install_stop_handlers();
        run_client(ep, opt, std::cin, std::cout);
        return 0;
    } catch (const Interrupted&) {
        std::fprintf(stderr, "client: interrupted\n");
        return 1;
    } catch (const std::exception& e) {
        std::cout.flush();
        bool host_port = transport_info(ep.transport).host_port;
        std::string where = host_port ? ep.host + " port " + ep.port : ep.transport + " '" + ep.name + "'";
        auto say = [&](std::string what) {
            // Name the endpoint once: a connect error already says where it went.
            if (what.find(host_port ? where : "'" + ep.name + "'") == std::string::npos) what += " (" + where + ")";
            std::fprintf(stderr, "client: %s\n", what.c_str());
        };
        // Several sessions: every one that failed, which and why.
        if (const auto* many = dynamic_cast<const ClientFailures*>(&e)) {
            for (const auto& line : many->lines) say(line);
            return 1;
        }
        // The library states the limit; the flag that raises it is ours to name.
        say(std::string(e.what()) + (dynamic_cast<const OversizeError*>(&e) ? "; --max-message raises it" : ""));
        return 1;
    }
}
