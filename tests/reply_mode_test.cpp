// A session's opening asks for its replies (ipc/framing.hpp, version 2), and
// every server design that serves stream sockets grants it, whatever its
// --reply; a session that does not ask (version 1) keeps getting the
// server's --reply.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "ipc/framing.hpp"
#include "ipc/registry.hpp"
#include "tests/support/hostile.hpp"
#include "tests/support/server_process.hpp"

namespace ipclab::test {
namespace {

using Case = std::tuple<ServerModel, std::string>;  // design, transport

// Every design over tcp (the remote runs' transport); fork and epoll over
// unix too (the other transport whose sessions open with the framed opening).
std::vector<Case> cases() {
    std::vector<Case> out;
    for (ServerModel m : kServerModels) {
        out.emplace_back(m, "tcp");
        if (m == ServerModel::fork || m == ServerModel::epoll) out.emplace_back(m, "unix");
    }
    return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    return std::string(model_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param);
}

// Sends text, returns the reply's text ("ended" or "failed: why" otherwise).
std::string exchange(Channel& ch, const std::string& text) {
    try {
        ch.send(FrameType::data, as_bytes(text));
        Message reply;
        if (!ch.receive(reply)) return "ended";
        std::string got(reinterpret_cast<const char*>(reply.payload.data()), reply.payload.size());
        return reply.type == FrameType::data ? got : "error frame: " + got;
    } catch (const std::exception& e) {
        return std::string("failed: ") + e.what();
    }
}

class SessionReplyMode : public ::testing::TestWithParam<Case> {
protected:
    void start(ReplyMode server_reply) {
        ServerOptions o;
        o.model = std::get<0>(GetParam());
        o.reply = server_reply;
        o.quiet = true;
        o.workers = 2;
        server_ = std::make_unique<ServerProcess>(endpoint_for(std::get<1>(GetParam()), fresh_name("reply")), o);
    }
    std::unique_ptr<Channel> open_asking(SessionReply reply) {
        Endpoint ep = server_->client_endpoint();
        ep.reply = reply;
        return connect(ep, client_limits());
    }
    std::unique_ptr<ServerProcess> server_;
};

TEST_P(SessionReplyMode, EachSessionGetsTheRepliesItsOpeningAskedFor) {
    const std::string ack = kAckText;
    for (ReplyMode server_reply : {ReplyMode::ack, ReplyMode::sink}) {
        SCOPED_TRACE(server_reply == ReplyMode::ack ? "server --reply ack" : "server --reply sink");
        start(server_reply);
        {
            auto ch = open_asking(SessionReply::echo);
            EXPECT_EQ(exchange(*ch, "echo me"), "echo me");
            const std::string big(70000, 'e');  // more than one read of the server's buffers
            EXPECT_EQ(exchange(*ch, big), big);
        }
        {
            auto ch = open_asking(SessionReply::ack);
            EXPECT_EQ(exchange(*ch, "ack me"), ack);
            EXPECT_EQ(exchange(*ch, ""), ack);
        }
        {
            // A sink answers only the empty message that marks a sync point.
            auto ch = open_asking(SessionReply::sink);
            for (int i = 0; i < 3; ++i) ch->send(FrameType::data, as_bytes("swallowed"));
            EXPECT_EQ(exchange(*ch, ""), ack);
        }
        {
            // Version 1 leaves the replies to the server's --reply.
            auto ch = open_asking(SessionReply::server_default);
            if (server_reply == ReplyMode::ack) {
                EXPECT_EQ(exchange(*ch, "default"), ack);
            } else {
                ch->send(FrameType::data, as_bytes("swallowed"));
                EXPECT_EQ(exchange(*ch, ""), ack);
            }
        }
        EXPECT_EQ(server_->stop(), 0);
        server_.reset();
    }
}

INSTANTIATE_TEST_SUITE_P(DesignsAndStreamSockets, SessionReplyMode, ::testing::ValuesIn(cases()), case_name);

}  // namespace
}  // namespace ipclab::test
