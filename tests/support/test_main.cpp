// main() for every test binary: SIGPIPE off, POSIX queues made listable, a
// private directory (IPCLAB_DIR) of its own.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include "ipc/io.hpp"
#include "tests/support/proc_inspect.hpp"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ipclab::ignore_sigpipe();
    // A harness may start us with signals blocked; the mask survives fork and
    // exec, and a script under test could then never see the SIGINT we send.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ipclab::test::make_posix_queues_visible();
    ipclab::test::use_test_private_dir();  // leftover checks count only this run's objects
    // Scripts under test (compare, two-hosts) use the binaries of this build
    // tree: the sanitizer builds keep theirs in build-*/bin, not bin/.
    ::setenv("IPCLAB_BIN", IPCLAB_BIN_DIR, 1);
    // Forked children of death tests and of our fixtures must not rerun tests.
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    int rc = RUN_ALL_TESTS();
    ipclab::test::remove_test_private_dir();
    return rc;
}
