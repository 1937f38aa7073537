// Command-line validators shared by bin/server and bin/client.
//
// CLI::Range alone lets NaN through (every comparison with NaN is false),
// and a duration becomes milliseconds in an int: so a duration must be
// finite, non-negative and small enough that seconds * 1000 fits. --name is
// checked while parsing so that a bad one is a usage error (exit 2), not a
// run-time failure.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

#include "ipc/private_dir.hpp"
#include "ipc/registry.hpp"

namespace ipclab {

// Seconds in [0, max_seconds], finite: "nan", "inf", "-1", "1e30" are refused.
inline CLI::Validator duration_seconds(double max_seconds) {
    return CLI::Validator(
        [max_seconds](std::string& text) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not a number of seconds";
            if (!std::isfinite(v)) return "'" + text + "' is not a finite number of seconds";
            if (v < 0 || v > max_seconds)
                return "'" + text + "' is outside 0.." + std::to_string(static_cast<long>(max_seconds)) +
                       " seconds";
            return "";
        },
        "SECONDS in 0.." + std::to_string(static_cast<long>(max_seconds)), "duration");
}

// An endpoint name as check_name() accepts it.
inline CLI::Validator endpoint_name() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            try {
                check_name(text);
                return "";
            } catch (const std::invalid_argument& e) {
                return e.what();
            }
        },
        "NAME", "endpoint name");
}

// The transports that take --wait, for help texts.
inline std::string wait_mode_transports() {
    return transport_names_where([](const TransportInfo& t) { return t.wait_modes; });
}

// The transports addressed by HOST PORT, for help texts ("tcp, udp").
inline std::string host_port_transports() {
    return transport_names_where([](const TransportInfo& t) { return t.host_port; });
}

// Why a prefork pool needs a shared rendezvous, naming the transports that have one.
inline std::string shared_rendezvous_note() {
    return "its workers must each take whole sessions from one listener (" +
           transport_names_where([](const TransportInfo& t) { return t.shared_rendezvous; }) + ")";
}

// --list-transports, the same on server and client: the registry's names,
// one a line, then exit 0 (CLI::Success) before any other check runs.
inline void add_list_transports_flag(CLI::App& app) {
    app.add_flag_callback(
        "--list-transports",
        [] {
            for (const auto& t : transport_names()) std::cout << t << "\n";
            throw CLI::Success();
        },
        "Print the transports, one per line, and exit");
}

// A flag given for a transport it does not apply to is a usage error, the
// same on server and client: silently ignoring `--wait spin` over tcp would
// let a user believe they measured spinning.
inline void check_applies(const CLI::App& app, const TransportInfo& t) {
    auto given = [&](const char* flag) {
        const CLI::Option* o = app.get_option_no_throw(flag);
        return o && o->count() > 0;
    };
    std::string on = "does not apply to --transport " + std::string(t.name);
    if (given("--wait") && !t.wait_modes)
        throw CLI::ValidationError("--wait", on + " (only to " + wait_mode_transports() + ")");
    if (given("--name") && t.host_port) throw CLI::ValidationError("--name", on + "; it takes HOST PORT");
    if (given("--bind") && !t.host_port) throw CLI::ValidationError("--bind", on + "; use --name");
}

// Seconds to the milliseconds the library waits with; a validated duration
// fits an int. A positive duration never rounds to 0, which means "forever".
inline int to_ms(double seconds) {
    if (seconds <= 0) return 0;
    return static_cast<int>(std::max(1L, std::lround(seconds * 1000.0)));
}

}  // namespace ipclab
