// Two private directories (IPCLAB_DIR) on one machine (issue 12, finding 8):
// servers of one --name in both never share a kernel-global name, and
// `--cleanup` in one never removes the other's objects, whose owners it
// cannot check (listed as `unknown`; only `--cleanup --force` removes them).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "ipc/transports.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/program.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

const std::vector<std::string> kNamed = {"unix", "fifo", "posix-mq", "sysv-mq", "shm"};

// Another private directory, made current by enter(); leave() returns to
// this test process's own. Removed (with anything left in it) at the end.
class OtherDir {
public:
    OtherDir() {
        char tmpl[] = "/tmp/ipclab-other-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
        path_ = tmpl;
    }
    ~OtherDir() {
        use_test_private_dir();
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    void enter() const { ::setenv("IPCLAB_DIR", path_.c_str(), 1); }
    static void leave() { use_test_private_dir(); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

class TwoDirectories : public GuardedTest, public ::testing::WithParamInterface<std::string> {
protected:
    TwoDirectories() : GuardedTest("td") {}
};

TEST_P(TwoDirectories, ServersOfOneNameInTwoDirectoriesBothServe) {
    OtherDir other;
    server_ = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_), echo_server());
    other.enter();
    std::unique_ptr<ServerProcess> second;
    ASSERT_NO_THROW(second = std::make_unique<ServerProcess>(endpoint_for(GetParam(), name_),
                                                             echo_server()));
    EXPECT_EQ(echo_once(second->client_endpoint(), 3000), "");
    OtherDir::leave();
    EXPECT_EQ(echo_once(server_->client_endpoint(), 3000), "");
    other.enter();
    EXPECT_EQ(second->stop(), 0);
    second.reset();
    EXPECT_TRUE(list_objects(GetParam(), name_).empty()) << "the other directory's server left objects";
    OtherDir::leave();
    EXPECT_EQ(echo_once(server_->client_endpoint(), 3000), "") << "the first server was disturbed";
}

INSTANTIATE_TEST_SUITE_P(Transports, TwoDirectories, ::testing::ValuesIn(kNamed),
                         transport_test_name);

// A live shm session of another directory's server: its segment is listed
// as unknown here, `--cleanup` leaves it, `--cleanup --force` removes it
// with a warning (the session itself lives on: the mapping outlasts the name).
class ForeignCleanup : public GuardedTest {
protected:
    ForeignCleanup() : GuardedTest("fc") {}
};

TEST_F(ForeignCleanup, UnknownOwnersAreListedAndLeftUnlessForced) {
    OtherDir other;
    other.enter();
    server_ = std::make_unique<ServerProcess>(endpoint_for("shm", name_), echo_server());
    auto companion = std::make_unique<Companion>(server_->client_endpoint());
    ASSERT_TRUE(companion->wait_exchanges(3)) << companion->finish();
    OtherDir::leave();

    auto list = run_program({bin("server"), "--list-objects", "--transport", "shm"}, "", 10000);
    EXPECT_EQ(list.exit_code, 0) << list.err;
    EXPECT_NE(list.out.find("unknown"), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(name_), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(" 0 stale"), std::string::npos) << list.out;

    auto cleanup = run_program({bin("server"), "--cleanup"}, "", 10000);
    EXPECT_EQ(cleanup.exit_code, 0) << cleanup.err;
    EXPECT_EQ(cleanup.out.find(name_), std::string::npos) << "removed another directory's object:\n"
                                                          << cleanup.out;
    EXPECT_TRUE(companion->wait_exchanges(20)) << companion->finish();

    auto forced = run_program({bin("server"), "--cleanup", "--force", "--transport", "shm",
                               "--name", name_},
                              "", 10000);
    EXPECT_EQ(forced.exit_code, 0) << forced.err;
    EXPECT_NE(forced.out.find("owner unknown; --force"), std::string::npos) << forced.out;
    EXPECT_NE(forced.err.find("warning"), std::string::npos) << forced.err;
    EXPECT_EQ(run_program({bin("server"), "--force"}, "", 10000).exit_code, 2)
        << "--force means nothing without --cleanup";

    other.enter();
    EXPECT_EQ(companion->finish(), "");
    companion.reset();
    EXPECT_EQ(server_->stop(), 0);
    server_.reset();
    OtherDir::leave();
}

}  // namespace
}  // namespace ipclab::test
