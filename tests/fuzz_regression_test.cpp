// Inputs the libFuzzer harnesses of tests/fuzz found, replayed through the
// same parsers (built with g++ like the rest of the suite): each one must
// now end in the documented clean error, not in a contract violation.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "ipc/error.hpp"
#include "ipc/fifo_hello.hpp"
#include "ipc/stream_channel.hpp"

namespace ipclab {
namespace {

// The harnesses' way onto the wire: the whole input in a socketpair, writer closed.
std::unique_ptr<Channel> text_session(const std::string& wire, std::size_t max_message) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    Fd reader(sv[0]), writer(sv[1]);
    EXPECT_EQ(::write(writer.get(), wire.data(), wire.size()), static_cast<ssize_t>(wire.size()));
    writer.reset();
    Limits limits;
    limits.max_message = max_message;
    limits.timeout_ms = 2000;
    return open_stream_session(std::move(reader), limits);
}

std::string text(const Message& m) {
    return {reinterpret_cast<const char*>(m.payload.data()), m.payload.size()};
}

// fuzz_text_line, input 00 02: max_message 0 and a last line "\x02" without
// '\n'. The +1 allowance for the terminator let one byte of payload through.
TEST(FuzzRegression, UnterminatedLastLineOverTheLimitIsOversize) {
    auto ch = text_session("\x02", 0);
    Message msg;
    EXPECT_THROW(ch->receive(msg), OversizeError);

    ch = text_session("12345678\n123456789", 8);
    ASSERT_TRUE(ch->receive(msg));
    EXPECT_EQ(text(msg), "12345678\n");  // the limit plus its terminator is fine
    EXPECT_THROW(ch->receive(msg), OversizeError);
}

TEST(FuzzRegression, UnterminatedLastLineAtTheLimitIsStillAMessage) {
    auto ch = text_session("ping\n12345678", 8);
    Message msg;
    ASSERT_TRUE(ch->receive(msg));
    EXPECT_EQ(text(msg), "ping\n");
    ASSERT_TRUE(ch->receive(msg));
    EXPECT_EQ(text(msg), "12345678");
    EXPECT_FALSE(ch->receive(msg));
}

// fuzz_fifo_hello: "....70.070.0.s2c" parsed as pid 70, serial 0, a name
// session_paths never makes, so the dead-client sweep could remove a file
// that is not a session FIFO of pid 70.
TEST(FuzzRegression, FifoNamesWithPaddedNumbersAreNotOurs) {
    EXPECT_FALSE(fifo::parse_file_name("\xd5\xe3.\xbf.70.070.0.s2c"));
    EXPECT_FALSE(fifo::parse_file_name("ipclab.070.1.c2s"));
    EXPECT_FALSE(fifo::parse_file_name("ipclab.70.01.c2s"));
    EXPECT_FALSE(fifo::parse_file_name("ipclab.00.1.c2s"));

    auto p = fifo::parse_file_name("ipclab.70.0.s2c");  // a plain 0 is how to_string prints it
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, fifo::ParsedName::Kind::s2c);
    EXPECT_EQ(p->name, "ipclab");
    EXPECT_EQ(p->pid, 70u);
    EXPECT_EQ(p->serial, 0u);
    EXPECT_EQ(fifo::session_paths("d", p->name, p->pid, p->serial).s2c, "d/ipclab.70.0.s2c");
}

}  // namespace
}  // namespace ipclab
