// The sysv-mq transport against the real server loop.
#include <fcntl.h>
#include <poll.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>

#include "ipc/chunking.hpp"
#include "ipc/private_dir.hpp"

namespace ipclab::test {
namespace {
constexpr const char* kTransport = "sysv-mq";
}
}  // namespace ipclab::test

#include "tests/queue_transport_tests.hpp"
#include "tests/support/hostile.hpp"

namespace ipclab::test {
namespace {

// A prefork worker waits on the listener its supervisor made, and fork
// copies the listener but not the tick that bounds its blocking msgrcv. A
// stop that lands just before that msgrcv comes with no later signal; the
// wait must still end, at the worker's own tick, as the supervisor's does.
TEST_F(QueueTransport, AForkedChildsWaitOnTheListenerEndsWithoutASignal) {
    auto listener = listen(ep_, echo_.limits);
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
    Fd wake_read(ends[0]), wake_write(ends[1]);
    pid_t pid = test_fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; ++i) {  // a tick returns nullptr; the wake then ends the loop
            try {
                if (listener->accept(wake_read.get())) ::_exit(2);
            } catch (const std::exception&) {
                ::_exit(3);
            }
            struct pollfd p {wake_read.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) == 1) ::_exit(0);
        }
        ::_exit(4);
    }
    // The wake is written only once the child blocks in msgrcv, past its
    // check (/proc/PID/syscall: the number of the call a task sleeps in).
    const std::string in_call = "/proc/" + std::to_string(pid) + "/syscall";
    const std::string msgrcv = std::to_string(SYS_msgrcv) + " ";
    EXPECT_TRUE(eventually([&] { return slurp(in_call).rfind(msgrcv, 0) == 0; }))
        << "the child never blocked in msgrcv";
    char byte = 1;
    EXPECT_EQ(::write(wake_write.get(), &byte, 1), 1);
    std::optional<int> status = wait_within(pid, 10000);
    if (!status) wait_or_kill(pid, 0);
    ASSERT_TRUE(status) << "10 s after its wake the child still waited in msgrcv: no tick of its own";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "child status " << *status;
}

TEST_F(QueueTransport, ForgedHellosAreRejectedAndServingContinues) {
    ServerProcess server(ep_, echo_);
    int q = sysv_server_queue(name_);
    ASSERT_GE(q, 0);
    auto send = [&](std::span<const std::byte> bytes) {
        struct {
            long mtype;
            char text[64];
        } m{};
        m.mtype = 1;
        std::memcpy(m.text, bytes.data(), bytes.size());
        EXPECT_EQ(::msgsnd(q, &m, bytes.size(), 0), 0);
    };
    // Another user's queue (we are root in the test environment; else skip that part).
    int foreign = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    ASSERT_GE(foreign, 0);
    struct msqid_ds ds {};
    ASSERT_EQ(::msgctl(foreign, IPC_STAT, &ds), 0);
    ds.msg_perm.uid = 65534;
    bool chowned = ::geteuid() == 0 && ::msgctl(foreign, IPC_SET, &ds) == 0;
    // Our own queue, but no marker says the pid in the hello created it.
    int unmarked = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    ASSERT_GE(unmarked, 0);

    send(as_bytes("junk"));
    send(encode_hello(Hello{0x7ffffff0, static_cast<std::uint32_t>(unmarked),
                            static_cast<std::uint32_t>(foreign)}));  // no such process
    send(encode_hello(Hello{::getpid(), static_cast<std::uint32_t>(foreign),
                            static_cast<std::uint32_t>(unmarked)}));
    send(encode_hello(Hello{::getpid(), static_cast<std::uint32_t>(unmarked),
                            static_cast<std::uint32_t>(unmarked + 1000000)}));
    echo_session(100);
    EXPECT_TRUE(eventually([&] {
        std::string err = server.stderr_text();
        return err.find("rejected") != std::string::npos &&
               err.find("not running") != std::string::npos &&
               (!chowned || err.find("not ours") != std::string::npos) &&
               err.find("not an accessible queue") != std::string::npos;
    })) << server.stderr_text();
    EXPECT_EQ(::msgctl(foreign, IPC_RMID, nullptr), 0);
    EXPECT_EQ(::msgctl(unmarked, IPC_RMID, nullptr), 0);
}

TEST_F(QueueTransport, ListingShowsLiveQueues) {
    ServerProcess server(ep_, echo_);
    auto ch = connect(ep_, client_);
    int queues = 0;
    for (const auto& o : list_sysv_mq_objects())
        if (o.what.rfind("msqid", 0) == 0) {
            ++queues;
            EXPECT_FALSE(o.stale) << o.what;
        }
    EXPECT_GE(queues, 3);  // the well-known queue and the session pair
}

}  // namespace
}  // namespace ipclab::test
