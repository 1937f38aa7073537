// main() for every test binary: SIGPIPE off, POSIX queues made listable.
#include <gtest/gtest.h>

#include "ipc/io.hpp"
#include "ipc/private_dir.hpp"
#include "tests/support/proc_inspect.hpp"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ipclab::ignore_sigpipe();
    ipclab::test::make_posix_queues_visible();
    // Forked children of death tests and of our fixtures must not rerun tests.
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    int rc = RUN_ALL_TESTS();
    ipclab::remove_private_dir_if_empty();  // servers leave it for each other, not for us
    return rc;
}
