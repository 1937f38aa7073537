// The session child's lines: the log line built without printf or the heap
// (LineBuilder), and the message line written in one writev.
#include "server/session.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "ipc/fd.hpp"
#include "ipc/framing.hpp"

namespace ipclab {
namespace {

TEST(SessionLog, TheReportLineKeepsItsFormat) {
    SessionReport r;
    r.peer = "127.0.0.1:40000";
    r.messages = 3;
    r.bytes_in = 192;
    r.bytes_out = 54;
    r.seconds = 2.5;
    EXPECT_EQ(format_report(r, 4242),
              "server: session ended pid=4242 peer=127.0.0.1:40000 messages=3 bytes_in=192 bytes_out=54 "
              "duration=2.500s end=\"client closed\"\n");
    r.clean = false;
    r.ending = "idle timeout";
    r.seconds = 0;
    r.messages = r.bytes_in = r.bytes_out = 0;
    EXPECT_EQ(format_report(r, 1),
              "server: session ended pid=1 peer=127.0.0.1:40000 messages=0 bytes_in=0 bytes_out=0 "
              "duration=0.000s end=\"idle timeout\"\n");
}

TEST(SessionLog, NumbersAsPrintfWouldWriteThem) {
    auto line = [](auto fill) {
        LineBuilder b;
        fill(b);
        return std::string(b.view());
    };
    EXPECT_EQ(line([](LineBuilder& b) { b.append_uint(0); }), "0");
    EXPECT_EQ(line([](LineBuilder& b) { b.append_uint(18446744073709551615ull); }), "18446744073709551615");
    EXPECT_EQ(line([](LineBuilder& b) { b.append_fixed3(0.0004); }), "0.000");
    EXPECT_EQ(line([](LineBuilder& b) { b.append_fixed3(0.0996); }), "0.100");
    EXPECT_EQ(line([](LineBuilder& b) { b.append_fixed3(12.3456); }), "12.346");
    EXPECT_EQ(line([](LineBuilder& b) { b.append_fixed3(59.9999); }), "60.000");
}

// A line longer than the fixed buffer (a long error text) comes out whole.
TEST(SessionLog, ALongLineSpillsIntoTheHeapWhole) {
    SessionReport r;
    r.peer = "[::1]:5";
    r.ending = "error: " + std::string(2000, 'x');
    std::string line = format_report(r, 7);
    EXPECT_EQ(line.rfind("server: session ended pid=7 peer=[::1]:5 ", 0), 0u) << line;
    EXPECT_NE(line.find("end=\"error: " + std::string(2000, 'x') + "\"\n"), std::string::npos);
}

// print_message_line writes exactly format_message_line's text.
TEST(SessionLog, TheMessageLineOnStdoutIsTheFormattedOne) {
    std::string printable = "hello\r\n";
    std::string binary(100, '\0');
    std::string expected;
    for (const std::string* p : {&printable, &binary}) expected += format_message_line(as_bytes(*p));
    EXPECT_EQ(expected, "Here is the message: hello\nHere is the message: [100 bytes]\n");

    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    Fd read_end(fds[0]), write_end(fds[1]);
    Fd saved(::dup(STDOUT_FILENO));
    ASSERT_TRUE(saved);
    ASSERT_GE(::dup2(write_end.get(), STDOUT_FILENO), 0);
    for (const std::string* p : {&printable, &binary}) print_message_line(as_bytes(*p));
    ASSERT_GE(::dup2(saved.get(), STDOUT_FILENO), 0);
    write_end.reset();
    std::string got;
    char buf[256];
    for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace ipclab
