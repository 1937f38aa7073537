// bin/client as a user drives it (issue 15): it connects before it prompts,
// --verify says what it verified, --duration runs for a time, --json prints
// one object with stable field names, and Ctrl-C on a --stats run still
// prints the statistics of the round trips done. No timing is asserted
// beyond --duration's own contract (it ran at least that long).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

// A by-name stream transport of the registry (line mode possible) and an echo server on it.
class ClientCli : public ::testing::Test {
protected:
    void SetUp() override {
        for (const auto& t : transports())
            if (!t.host_port && t.connect_stream) transport_ = t.name;
        ASSERT_FALSE(transport_.empty());
        server_ = std::make_unique<ServerProcess>(endpoint_for(transport_, fresh_name("cli")), echo_server());
    }
    std::vector<std::string> client(std::vector<std::string> extra) const {
        std::vector<std::string> argv{bin("client"), "--transport", transport_, "--name",
                                      server_->client_endpoint().name};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }
    std::string transport_;
    std::unique_ptr<ServerProcess> server_;
};

// A number after "key": in a one-line JSON object.
double json_number(const std::string& json, const std::string& key) {
    std::smatch m;
    if (!std::regex_search(json, m, std::regex("\"" + key + "\": (-?[0-9.]+)"))) return -1;
    return std::stod(m[1]);
}

TEST(ClientPrompt, ConnectsBeforeItPrompts) {
    // The seed client connects first: a missing server is said before anyone types.
    for (const char* mode : {"line", "framed"}) {
        auto r = run_program({bin("client"), "--mode", mode, "--transport", "unix", "--name", fresh_name("none"),
                              "--timeout", "2"},
                             "typed too early\n");
        EXPECT_EQ(r.exit_code, 1) << mode << ": " << r.err;
        EXPECT_EQ(r.out.find("Please enter the message"), std::string::npos) << mode << ": " << r.out;
        EXPECT_FALSE(r.err.empty());
    }
}

TEST_F(ClientCli, PromptsOnceConnectedAndVerifySaysWhatItChecked) {
    auto r = run_program(client({"--mode", "framed", "--verify"}), "hello\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Please enter the message: hello\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("verified: all 1 replies equal their payloads byte for byte (5 bytes)"), std::string::npos)
        << r.out;
    auto many = run_program(client({"--size", "100", "--count", "7", "--verify"}));
    EXPECT_EQ(many.exit_code, 0) << many.err;
    EXPECT_NE(many.out.find("verified: all 7 replies equal their payloads byte for byte (700 bytes)"),
              std::string::npos)
        << many.out;
    auto quiet = run_program(client({"--size", "100", "--count", "7"}));
    EXPECT_EQ(quiet.out.find("verified"), std::string::npos) << "nothing claimed without --verify: " << quiet.out;
}

TEST_F(ClientCli, JsonIsOneObjectWithTheDocumentedFields) {
    auto r = run_program(client({"--size", "64", "--count", "50", "--json", "--verify"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_EQ(r.out.front(), '{');
    EXPECT_EQ(r.out.substr(r.out.size() - 2), "}\n");
    for (const char* field : {"\"transport\": \"", "\"round_trips\": 50,", "\"payload_bytes\": 64,", "\"seconds\": ",
                              "\"latency_us\": {", "\"min\": ", "\"p50\": ", "\"p90\": ", "\"p99\": ", "\"p999\": ",
                              "\"max\": ", "\"round_trips_per_s\": ", "\"bytes_sent\": 3200,",
                              "\"bytes_received\": 3200,", "\"mb_per_s_sent\": ", "\"mb_per_s_received\": ",
                              "\"verified\": true", "\"interrupted\": false", "\"waits\": "})
        EXPECT_NE(r.out.find(field), std::string::npos) << field << " in " << r.out;
    EXPECT_LE(json_number(r.out, "min"), json_number(r.out, "p50"));
    EXPECT_LE(json_number(r.out, "p50"), json_number(r.out, "max"));
}

TEST_F(ClientCli, WarmUpRoundTripsGoFirstCheckedAndUncounted) {
    // --stats warms up by default; the warm-up's replies are verified but not counted.
    auto r = run_program(client({"--size", "64", "--count", "5", "--json", "--verify"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json_number(r.out, "warmup_round_trips"), 16) << r.out;
    EXPECT_EQ(json_number(r.out, "round_trips"), 5) << r.out;
    EXPECT_EQ(json_number(r.out, "bytes_sent"), 320) << r.out;
    // The server saw them all: 16 + 5 messages in that session.
    EXPECT_TRUE(eventually([&] { return server_->stderr_text().find("messages=21") != std::string::npos; }))
        << server_->stderr_text();
    auto chosen = run_program(client({"--size", "64", "--count", "5", "--stats", "--warmup", "3", "--verify"}));
    ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
    EXPECT_NE(chosen.out.find("round trips: 5 of 64 bytes in "), std::string::npos) << chosen.out;
    EXPECT_NE(chosen.out.find("s (after 3 warm-up round trips)\n"), std::string::npos) << chosen.out;
    EXPECT_NE(chosen.out.find("verified: all 5 replies"), std::string::npos) << chosen.out;
    auto none = run_program(client({"--size", "64", "--count", "5", "--stats", "--warmup", "0"}));
    ASSERT_EQ(none.exit_code, 0) << none.err;
    EXPECT_EQ(none.out.find("warm-up"), std::string::npos) << none.out;
    // Without --stats nothing is sent but what was asked for.
    auto plain = run_program(client({"--size", "64", "--count", "2"}));
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_TRUE(eventually([&] { return server_->stderr_text().find("messages=2 ") != std::string::npos; }))
        << server_->stderr_text();
    EXPECT_EQ(run_program(client({"--mode", "line", "--warmup", "1", "-m", "x"})).exit_code, 2);
    EXPECT_EQ(run_program(client({"--size", "64", "--warmup", "-1"})).exit_code, 2);
}

TEST_F(ClientCli, DurationRunsForThatLongAndCountCapsIt) {
    auto r = run_program(client({"--size", "64", "--duration", "0.3", "--json"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GE(json_number(r.out, "seconds"), 0.3) << r.out;
    EXPECT_GE(json_number(r.out, "round_trips"), 1) << r.out;
    auto capped = run_program(client({"--size", "64", "--duration", "30", "--count", "20", "--json"}));
    ASSERT_EQ(capped.exit_code, 0) << capped.err;
    EXPECT_EQ(json_number(capped.out, "round_trips"), 20) << capped.out;
    EXPECT_EQ(run_program(client({"--size", "64", "--duration", "0"})).exit_code, 2);
    EXPECT_EQ(run_program(client({"--mode", "line", "--duration", "1", "-m", "x"})).exit_code, 2);
}

TEST_F(ClientCli, CtrlCOnAStatsRunPrintsTheStatisticsSoFar) {
    RunningProgram p(client({"--size", "64", "--duration", "60", "--stats"}));
    // Let it run a little (bounded), then interrupt as a user would.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    int rc = p.stop(SIGINT, 10000);
    EXPECT_EQ(rc, 1) << p.err();
    EXPECT_NE(p.err().find("interrupted"), std::string::npos) << p.err();
    EXPECT_NE(p.out().find("round trips: "), std::string::npos) << p.out();
    EXPECT_NE(p.out().find("latency (us): min "), std::string::npos) << p.out();
}

}  // namespace
}  // namespace ipclab::test
