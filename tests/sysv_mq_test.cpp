// The sysv-mq transport against the real server loop.
#include <sys/msg.h>

#include <cstring>

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
