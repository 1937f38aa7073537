// The udp transport: its datagram codec, reassembly and credit window
// (ipc/datagram.hpp) on their own, then hostile datagrams against the real
// forked server - truncated, forged numbers, from a third port, garbage on
// the well-known port, a client that vanishes mid-message - and a one-way
// stream that must not overflow the receiver. In every case the server says
// what happened and goes on serving.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "ipc/datagram.hpp"
#include "ipc/error.hpp"
#include "ipc/fd.hpp"
#include "ipc/registry.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/proc_inspect.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

constexpr std::uint32_t kWindow = 212992;
constexpr std::uint32_t kSession = 0x5eed;

ipclab::Bytes pattern(std::size_t n) {
    ipclab::Bytes v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + 7) & 0xff);
    return v;
}

DatagramHeader data_header(std::uint32_t dgram, std::uint32_t message, std::uint32_t index, std::uint32_t count,
                           std::uint32_t total) {
    DatagramHeader h{DatagramKind::data, FrameType::data, kSession, dgram, 0, message, index, count, total};
    return h;
}

ipclab::Bytes datagram(const DatagramHeader& h, std::span<const std::byte> piece = {}) {
    auto bytes = encode_datagram_header(h);
    ipclab::Bytes out(bytes.begin(), bytes.end());
    out.insert(out.end(), piece.begin(), piece.end());
    return out;
}

// ---- the codec -------------------------------------------------------------

TEST(DatagramHeader, RoundTripsEveryField) {
    DatagramHeader h{DatagramKind::data, FrameType::error, 7, 8, 9, 10, 11, 12, 13};
    auto d = datagram(h);
    ASSERT_EQ(d.size(), kDatagramHeaderSize);
    EXPECT_EQ(d[4], std::byte{0});  // big-endian: the session's high byte first
    EXPECT_EQ(d[7], std::byte{7});
    DatagramHeader back = decode_datagram_header(d);
    EXPECT_EQ(back.kind, h.kind);
    EXPECT_EQ(back.type, h.type);
    EXPECT_EQ(back.session, 7u);
    EXPECT_EQ(back.dgram, 8u);
    EXPECT_EQ(back.ack, 9u);
    EXPECT_EQ(back.message, 10u);
    EXPECT_EQ(back.index, 11u);
    EXPECT_EQ(back.count, 12u);
    EXPECT_EQ(back.total, 13u);
}

TEST(DatagramHeader, RefusesTruncatedUnknownAndForeignDatagrams) {
    auto good = datagram(data_header(1, 1, 0, 1, 0));
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, kDatagramHeaderSize - 1})
        EXPECT_THROW(decode_datagram_header(std::span<const std::byte>(good.data(), n)), ProtocolError) << n;
    auto bad_kind = good;
    bad_kind[0] = std::byte{9};
    EXPECT_THROW(decode_datagram_header(bad_kind), ProtocolError);
    auto bad_version = good;
    bad_version[3] = std::byte{2};
    EXPECT_THROW(decode_datagram_header(bad_version), ProtocolError);
    auto bad_type = good;
    bad_type[1] = std::byte{7};
    EXPECT_THROW(decode_datagram_header(bad_type), ProtocolError);
    auto no_session = good;
    std::memset(no_session.data() + 4, 0, 4);
    EXPECT_THROW(decode_datagram_header(no_session), ProtocolError);
    // A credit carries nothing but its ack.
    DatagramHeader credit{DatagramKind::credit, FrameType::data, kSession};
    credit.message = 3;
    EXPECT_THROW(decode_datagram_header(datagram(credit)), ProtocolError);
    auto credit_with_bytes = datagram({DatagramKind::credit, FrameType::data, kSession});
    credit_with_bytes.push_back(std::byte{1});
    EXPECT_THROW(decode_datagram_header(credit_with_bytes), ProtocolError);
}

// Cuts a message into datagrams as a sender with the receiver's window kWindow does.
std::vector<ipclab::Bytes> cut(std::span<const std::byte> payload, std::uint32_t message = 1,
                                        std::uint32_t first_dgram = 1) {
    std::size_t piece = piece_size(kWindow);
    std::uint32_t count = chunk_count(payload.size(), piece);
    std::vector<ipclab::Bytes> out;
    for (std::uint32_t i = 0; i < count; ++i) {
        std::size_t at = std::size_t{i} * piece;
        auto part = payload.subspan(at, std::min(piece, payload.size() - at));
        out.push_back(datagram(data_header(first_dgram + i, message, i, count,
                                           static_cast<std::uint32_t>(payload.size())),
                               part));
    }
    return out;
}

DatagramAssembler::Result feed(DatagramAssembler& a, const ipclab::Bytes& d, Message& msg) {
    return a.feed(decode_datagram_header(d), std::span<const std::byte>(d).subspan(kDatagramHeaderSize), msg);
}

TEST(DatagramAssembler, ReassemblesMessagesOfEverySizeAndTheEnd) {
    DatagramAssembler a(16u << 20, kWindow);
    std::uint32_t dgram = 1, message = 1;
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, piece_size(kWindow), piece_size(kWindow) + 1,
                             std::size_t{1} << 20}) {
        auto payload = pattern(size);
        auto parts = cut(payload, message++, dgram);
        dgram += static_cast<std::uint32_t>(parts.size());
        Message msg;
        for (std::size_t i = 0; i < parts.size(); ++i)
            EXPECT_EQ(feed(a, parts[i], msg), i + 1 == parts.size() ? DatagramAssembler::Result::message
                                                                     : DatagramAssembler::Result::more);
        EXPECT_EQ(msg.payload, payload) << size;
    }
    DatagramHeader end{DatagramKind::end, FrameType::data, kSession, dgram};
    Message msg;
    EXPECT_EQ(feed(a, datagram(end), msg), DatagramAssembler::Result::end);
    EXPECT_EQ(a.received(), dgram);
}

// Runs a two-message exchange with one datagram lost, repeated or swapped.
std::string failure_of(void (*spoil)(std::vector<ipclab::Bytes>&)) {
    auto parts = cut(pattern(3 * piece_size(kWindow)));
    auto second = cut(pattern(10), 2, static_cast<std::uint32_t>(parts.size()) + 1);
    parts.insert(parts.end(), second.begin(), second.end());
    spoil(parts);
    DatagramAssembler a(16u << 20, kWindow);
    Message msg;
    try {
        for (const auto& d : parts) feed(a, d, msg);
    } catch (const ProtocolError& e) {
        return e.what();
    }
    return "delivered";
}

// A message in one datagram is copied out without reassembly: one reused
// Message takes messages of changing sizes whole, and a lone datagram whose
// piece is not its announced total is refused as before.
TEST(DatagramAssembler, OneDatagramMessagesOfChangingSizesAndLiesAboutThem) {
    DatagramAssembler a(1 << 20, kWindow);
    Message msg;
    std::uint32_t dgram = 1, message = 1;
    for (std::size_t size : {std::size_t{64}, std::size_t{10}, std::size_t{0}, std::size_t{64}, piece_size(kWindow)}) {
        auto payload = pattern(size);
        auto ds = cut(payload, message++, dgram++);
        ASSERT_EQ(ds.size(), 1u);
        EXPECT_EQ(feed(a, ds[0], msg), DatagramAssembler::Result::message) << size;
        EXPECT_EQ(msg.payload, payload) << size;
        EXPECT_TRUE(a.idle());
    }
    for (std::uint32_t total : {63u, 65u}) {
        DatagramAssembler b(1 << 20, kWindow);
        auto piece = pattern(64);
        EXPECT_THROW(feed(b, datagram(data_header(1, 1, 0, 1, total), piece), msg), ProtocolError) << total;
    }
}

TEST(DatagramAssembler, DetectsLostDuplicatedAndReorderedDatagrams) {
    EXPECT_NE(failure_of([](auto& p) { p.erase(p.begin() + 1); }).find("lost"), std::string::npos);
    // The last chunk of a message: the next message's first datagram shows it.
    EXPECT_NE(failure_of([](auto& p) { p.erase(p.begin() + 2); }).find("lost"), std::string::npos);
    EXPECT_NE(failure_of([](auto& p) { p.insert(p.begin() + 2, p[1]); }).find("duplicated"), std::string::npos);
    EXPECT_NE(failure_of([](auto& p) { std::swap(p[0], p[1]); }).find("reordered"), std::string::npos);
    EXPECT_EQ(failure_of([](auto&) {}), "delivered");
}

TEST(DatagramAssembler, RefusesForgedNumbersAndPieces) {
    auto payload = pattern(2 * piece_size(kWindow));
    auto parts = cut(payload);
    struct Forgery {
        const char* what;
        DatagramHeader h;
        std::size_t piece;
    };
    std::size_t p = piece_size(kWindow);
    std::uint32_t total = static_cast<std::uint32_t>(payload.size());
    for (const auto& f : {Forgery{"message number", data_header(1, 5, 0, 2, total), p},
                          Forgery{"first index", data_header(1, 1, 1, 2, total), p},
                          Forgery{"chunk count", data_header(1, 1, 0, 3, total), p},
                          Forgery{"short piece", data_header(1, 1, 0, 2, total), p - 1},
                          Forgery{"long piece", data_header(1, 1, 0, 1, 10), 11}}) {
        DatagramAssembler a(16u << 20, kWindow);
        Message msg;
        auto piece = pattern(f.piece);
        EXPECT_THROW(a.feed(f.h, piece, msg), ProtocolError) << f.what;
    }
    // Mid-message: the next datagram number, but another message or index.
    for (const auto& h : {data_header(2, 2, 1, 2, total), data_header(2, 1, 0, 2, total),
                          data_header(2, 1, 1, 2, total + 1)}) {
        DatagramAssembler a(16u << 20, kWindow);
        Message msg;
        feed(a, parts[0], msg);
        auto piece = pattern(p);
        EXPECT_THROW(a.feed(h, piece, msg), ProtocolError);
    }
    // The end of the session in the middle of a message.
    DatagramAssembler a(16u << 20, kWindow);
    Message msg;
    feed(a, parts[0], msg);
    EXPECT_THROW(a.feed({DatagramKind::end, FrameType::data, kSession, 2}, {}, msg), ProtocolError);
}

TEST(DatagramAssembler, ReassemblyGrowsWithWhatArrivedBoundedByTheLimit) {
    DatagramAssembler a(1u << 20, kWindow);
    Message msg;
    std::size_t p = piece_size(kWindow);
    auto piece = pattern(p);
    // A first chunk announcing 1 MiB reserves about what arrived, not the whole.
    a.feed(data_header(1, 1, 0, chunk_count(1u << 20, p), 1u << 20), piece, msg);
    EXPECT_LE(msg.payload.capacity(), 2 * p);
    // One byte over the limit: refused at its first chunk, before any storage.
    DatagramAssembler b(1u << 20, kWindow);
    Message other;
    std::uint32_t over = (1u << 20) + 1;
    EXPECT_THROW(b.feed(data_header(1, 1, 0, chunk_count(over, p), over), piece, other), OversizeError);
    EXPECT_EQ(other.payload.capacity(), 0u);
}

TEST(SendWindow, HoldsAtMostTheWindowUntilAcknowledged) {
    SendWindow w(kMinWindow);
    std::uint32_t sent = 0;
    while (w.fits(1000)) w.sent(++sent, 1000);
    EXPECT_EQ(sent, kMinWindow / datagram_cost(1000));
    EXPECT_THROW(w.acked(sent + 1), ProtocolError) << "acknowledges a datagram never sent";
    w.acked(2);
    EXPECT_TRUE(w.fits(1000));
    w.acked(1);  // an older credit changes nothing
    EXPECT_THROW(SendWindow(kMinWindow - 1), ProtocolError);
    EXPECT_THROW(SendWindow(kMaxWindow + 1), ProtocolError);
}

// ---- hostile datagrams against the real server ---------------------------

// A hand-made udp client: the rendezvous by hand, then whatever datagrams a test wants.
class RawClient {
public:
    explicit RawClient(const std::string& port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        server_.sin_family = AF_INET;
        server_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        server_.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
    }
    int fd() const { return fd_.get(); }
    void to_server(std::span<const std::byte> d) {
        ASSERT_EQ(::sendto(fd_.get(), d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&server_), sizeof server_),
                  static_cast<ssize_t>(d.size()));
    }
    // Hello, welcome (from a port other than the well-known one), connect. The server's window.
    std::uint32_t rendezvous() {
        DatagramHeader hello{DatagramKind::hello, FrameType::data, kSession};
        hello.total = kWindow;
        to_server(datagram(hello));
        sockaddr_in from{};
        socklen_t len = sizeof from;
        auto d = receive(reinterpret_cast<sockaddr*>(&from), &len);
        EXPECT_EQ(d.size(), kDatagramHeaderSize);
        DatagramHeader h = decode_datagram_header(d);
        EXPECT_EQ(h.kind, DatagramKind::welcome);
        EXPECT_EQ(h.session, kSession);
        EXPECT_NE(from.sin_port, server_.sin_port) << "the child answers from a socket of its own";
        child_ = from;
        EXPECT_EQ(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&from), len), 0);
        return h.total;
    }
    void send(std::span<const std::byte> d) {
        ASSERT_EQ(::send(fd_.get(), d.data(), d.size(), 0), static_cast<ssize_t>(d.size()));
    }
    // The next datagram within 10 s (empty on timeout).
    ipclab::Bytes receive(sockaddr* from = nullptr, socklen_t* len = nullptr) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return {};
        ipclab::Bytes buf(kMaxDatagram);
        ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0, from, len);
        buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return buf;
    }
    // The next data datagram, skipping credits (empty on timeout).
    ipclab::Bytes receive_data() {
        for (;;) {
            auto d = receive();
            if (d.empty() || decode_datagram_header(d).kind != DatagramKind::credit) return d;
        }
    }
    const sockaddr_in& child() const { return child_; }

private:
    Fd fd_;
    sockaddr_in server_{};
    sockaddr_in child_{};
};

std::string text_of(const ipclab::Bytes& d) {
    if (d.size() < kDatagramHeaderSize) return "";
    return std::string(reinterpret_cast<const char*>(d.data()) + kDatagramHeaderSize, d.size() - kDatagramHeaderSize);
}

class UdpServer : public DesignTest {
protected:
    UdpServer() : DesignTest("udp") {}
    std::string transport() const override { return "udp"; }
    void SetUp() override {
        DesignTest::SetUp();
        start(echo_server(5000));
    }
    // A well-behaved session still gets its echo.
    void still_serving() {
        auto ch = open();
        EXPECT_EQ(exchange(*ch, "still here"), "still here");
    }
    bool logged(const std::string& what) {
        return eventually([&] { return server_->stderr_text().find(what) != std::string::npos; }, 15000);
    }
};

TEST_F(UdpServer, EchoesAHandMadeDatagram) {
    RawClient c(server_->port());
    c.rendezvous();
    auto hello = pattern(5);
    c.send(datagram(data_header(1, 1, 0, 1, 5), hello));
    auto reply = c.receive_data();
    ASSERT_GE(reply.size(), kDatagramHeaderSize);
    DatagramHeader h = decode_datagram_header(reply);
    EXPECT_EQ(h.dgram, 1u);
    EXPECT_EQ(h.ack, 1u) << "the reply acknowledges the request";
    EXPECT_EQ(ipclab::Bytes(reply.begin() + kDatagramHeaderSize, reply.end()), hello);
}

TEST_F(UdpServer, ATruncatedDatagramIsAProtocolError) {
    RawClient c(server_->port());
    c.rendezvous();
    auto d = datagram(data_header(1, 1, 0, 1, 5));
    d.resize(10);
    c.send(d);
    EXPECT_TRUE(logged("truncated datagram")) << server_->stderr_text();
    // The client is told why, in an error message.
    auto reply = c.receive_data();
    ASSERT_GE(reply.size(), kDatagramHeaderSize);
    EXPECT_EQ(decode_datagram_header(reply).type, FrameType::error);
    EXPECT_NE(text_of(reply).find("truncated"), std::string::npos) << text_of(reply);
    still_serving();
}

TEST_F(UdpServer, ForgedSequenceNumbersAreProtocolErrors) {
    RawClient skip(server_->port());
    skip.rendezvous();
    skip.send(datagram(data_header(7, 1, 0, 1, 1), pattern(1)));
    EXPECT_TRUE(logged("lost or reordered")) << server_->stderr_text();
    RawClient replay(server_->port());
    replay.rendezvous();
    auto first = datagram(data_header(1, 1, 0, 1, 1), pattern(1));
    replay.send(first);
    EXPECT_FALSE(replay.receive_data().empty());
    replay.send(first);
    EXPECT_TRUE(logged("duplicated or reordered")) << server_->stderr_text();
    RawClient message(server_->port());
    message.rendezvous();
    message.send(datagram(data_header(1, 9, 0, 1, 1), pattern(1)));
    EXPECT_TRUE(logged("message 9 chunk 0 where message 1")) << server_->stderr_text();
    still_serving();
}

TEST_F(UdpServer, DatagramsFromAThirdPortAreIgnored) {
    RawClient c(server_->port());
    c.rendezvous();
    // Another socket aims at the session's port: garbage and a well-formed datagram.
    Fd third(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto forged = datagram(data_header(1, 1, 0, 1, 6), as_bytes("forged"));
    for (const auto& d : {forged, ipclab::Bytes(3, std::byte{0xff})})
        ASSERT_EQ(::sendto(third.get(), d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&c.child()),
                           sizeof c.child()),
                  static_cast<ssize_t>(d.size()));
    // The session's own first datagram is still number 1 and is echoed.
    c.send(datagram(data_header(1, 1, 0, 1, 7), as_bytes("genuine")));
    EXPECT_EQ(text_of(c.receive_data()), "genuine");
    EXPECT_EQ(server_->stderr_text().find("protocol error"), std::string::npos) << server_->stderr_text();
}

TEST_F(UdpServer, GarbageOnTheWellKnownPortIsRefusedAndLogged) {
    RawClient c(server_->port());
    c.to_server(ipclab::Bytes(5, std::byte{0x41}));
    c.to_server(datagram(data_header(1, 1, 0, 1, 0)));
    DatagramHeader tiny{DatagramKind::hello, FrameType::data, kSession};
    tiny.total = 100;  // a window too small to send anything
    c.to_server(datagram(tiny));
    EXPECT_TRUE(logged("truncated datagram")) << server_->stderr_text();
    EXPECT_TRUE(logged("not a hello")) << server_->stderr_text();
    EXPECT_TRUE(logged("a receive window of 100 bytes")) << server_->stderr_text();
    still_serving();
}

TEST_F(UdpServer, AClientThatVanishesMidMessageEndsItsSession) {
    {
        RawClient c(server_->port());
        std::uint32_t window = c.rendezvous();
        std::size_t p = piece_size(window);
        std::uint32_t total = static_cast<std::uint32_t>(3 * p);
        c.send(datagram(data_header(1, 1, 0, 3, total), pattern(p)));
    }  // closed after the first of three chunks
    // The child notices (its probe draws port unreachable, or the idle timeout) and logs the end.
    EXPECT_TRUE(logged("session ended")) << server_->stderr_text();
    EXPECT_EQ(server_->stderr_text().find("client closed"), std::string::npos) << server_->stderr_text();
    still_serving();
}

// The server refuses a message at its first datagram and closes while the
// client is still sending the rest: whether the client then finds the
// refusal waiting for credit or finds the port closed (ICMP) first, it
// gets the refusal, not a bare "peer gone".
TEST(UdpRefusal, ReachesAClientStillSending) {
    ServerOptions o = echo_server();
    o.limits.max_message = 1000;
    ServerProcess server(endpoint_for("udp", fresh_name("udp-refusal")), o);
    auto payload = pattern(4u << 20);
    for (int i = 0; i < 5; ++i) {
        auto ch = connect(server.client_endpoint(), client_limits());
        Message reply;
        try {
            ch->send(FrameType::data, payload);
            ASSERT_TRUE(ch->receive(reply)) << i;
        } catch (const std::exception& e) {
            FAIL() << i << ": " << e.what();
        }
        EXPECT_EQ(reply.type, FrameType::error) << i;
        std::string why(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size());
        EXPECT_NE(why.find("exceeds the receiver's limit of 1000 bytes"), std::string::npos) << why;
    }
    EXPECT_EQ(server.stop(SIGTERM), 0);
}

// A one-way stream as ipc-bench's Stream runs it: many messages, no
// replies, then an empty one the sink acknowledges. Without flow control
// the receiver's socket buffer overflows and a datagram is lost, which the
// numbering reports as an error.
TEST(UdpStream, AOneWayStreamDoesNotOverflowTheReceiver) {
    ServerOptions o = echo_server();
    o.reply = ReplyMode::sink;
    ServerProcess server(endpoint_for("udp", fresh_name("udp-stream")), o);
    for (std::size_t size : {std::size_t{64}, std::size_t{256} << 10}) {
        auto ch = connect(server.client_endpoint(), client_limits());
        auto payload = pattern(size);
        std::size_t count = size == 64 ? 20000 : 64;
        for (std::size_t i = 0; i < count; ++i) ch->send(FrameType::data, payload);
        ch->send(FrameType::data, {});
        Message ack;
        ASSERT_TRUE(ch->receive(ack)) << size;
        EXPECT_EQ(ack.type, FrameType::data);
    }
    EXPECT_EQ(server.stderr_text().find("protocol error"), std::string::npos) << server.stderr_text();
    EXPECT_EQ(server.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace ipclab::test
