// The posix-mq transport against the real server loop.
#include <fcntl.h>
#include <mqueue.h>

#include "ipc/chunking.hpp"
#include "ipc/private_dir.hpp"

namespace ipclab::test {
namespace {
constexpr const char* kTransport = "posix-mq";
}
}  // namespace ipclab::test

#include "tests/queue_transport_tests.hpp"

namespace ipclab::test {
namespace {

TEST_F(QueueTransport, ForgedHellosAreRejectedAndServingContinues) {
    ServerProcess server(ep_, echo_);
    std::string queue = "/" + global_prefix(name_);
    mqd_t q = ::mq_open(queue.c_str(), O_WRONLY);
    ASSERT_NE(q, mqd_t(-1));
    auto send = [&](std::span<const std::byte> bytes) {
        struct timespec ts {};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        EXPECT_EQ(::mq_timedsend(q, reinterpret_cast<const char*>(bytes.data()), bytes.size(), 0,
                                 &ts),
                  0);
    };
    send(as_bytes("junk"));
    auto bad_magic = encode_hello(Hello{::getpid(), 0, 0});
    bad_magic[0] = std::byte{'X'};
    send(bad_magic);
    send(encode_hello(Hello{0x7ffffff0, 0, 0}));  // no such process
    send(encode_hello(Hello{1, 0, 0}));           // alive, but it created no queues
    ::mq_close(q);
    echo_session(100);
    EXPECT_TRUE(eventually([&] {
        std::string err = server.stderr_text();
        return err.find("rejected") != std::string::npos &&
               err.find("not running") != std::string::npos &&
               err.find("does not exist") != std::string::npos;
    })) << server.stderr_text();
}

TEST_F(QueueTransport, ListingShowsLiveQueues) {
    ServerProcess server(ep_, echo_);
    auto ch = connect(ep_, client_);
    int mine = 0;
    for (const auto& o : list_posix_mq_objects())
        if (o.what.find(global_prefix(name_)) != std::string::npos) {
            ++mine;
            EXPECT_FALSE(o.stale) << o.what;
        }
    EXPECT_EQ(mine, 3);  // the well-known queue and the session pair
}

}  // namespace
}  // namespace ipclab::test
