// Client-side framing of `parley chat`: what a server sends is reassembled and checked, what
// the client sends is masked and parses with parleyd's own (server-side) frame parser.
#include "ws_client.hpp"
#include "ws_codec.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <deque>
#include <string>

using parley::cli::client_frame;
using parley::cli::ServerFrameReader;
using Kind = ServerFrameReader::Kind;

namespace {

// An unmasked server frame.
std::string frame(uint8_t first_byte, std::string_view payload) {
    std::string f(1, char(first_byte));
    if (payload.size() < 126) {
        f += char(payload.size());
    } else if (payload.size() <= 0xFFFF) {
        f += char(126);
        f += char(payload.size() >> 8);
        f += char(payload.size() & 0xFF);
    } else {
        f += char(127);
        for (int i = 7; i >= 0; --i)
            f += char((uint64_t(payload.size()) >> (8 * i)) & 0xFF);
    }
    return f + std::string(payload);
}

std::deque<ServerFrameReader::Event> read_all(std::string_view bytes, size_t chunk = 0) {
    ServerFrameReader r;
    std::deque<ServerFrameReader::Event> out;
    if (!chunk) chunk = bytes.size();
    for (size_t i = 0; i < bytes.size(); i += chunk)
        r.feed(bytes.substr(i, chunk), out);
    return out;
}

TEST(ChatWsClient, WholeAndFragmentedMessagesWithInterleavedPing) {
    const std::string big(70000, 'x');
    // "fragmented €" in four frames (the euro sign split) with a ping in between.
    const std::string bytes = frame(0x81, "hello") + frame(0x01, "frag") + frame(0x89, "p") +
                              frame(0x00, "men") + frame(0x00, "ted \xE2\x82") +
                              frame(0x80, "\xAC") + frame(0x81, big) +
                              frame(0x88, std::string("\x03\xE8") + "bye");
    for (size_t chunk : {size_t(0), size_t(1), size_t(7), size_t(4096)}) {
        SCOPED_TRACE(chunk);
        auto ev = read_all(bytes, chunk);
        ASSERT_EQ(ev.size(), 5u);
        EXPECT_EQ(ev[0].kind, Kind::Message);
        EXPECT_EQ(ev[0].payload, "hello");
        EXPECT_EQ(ev[1].kind, Kind::Ping);
        EXPECT_EQ(ev[1].payload, "p");
        EXPECT_EQ(ev[2].kind, Kind::Message);
        EXPECT_EQ(ev[2].payload, "fragmented \xE2\x82\xAC");
        EXPECT_EQ(ev[3].payload, big);
        EXPECT_EQ(ev[4].kind, Kind::Close);
        EXPECT_EQ(ev[4].code, 1000);
        EXPECT_EQ(ev[4].payload, "bye");
    }
}

TEST(ChatWsClient, ProtocolErrors) {
    auto first_error = [](const std::string& bytes) -> uint16_t {
        auto ev = read_all(bytes);
        for (auto& e : ev)
            if (e.kind == Kind::Error) return e.code;
        return 0;
    };
    EXPECT_EQ(first_error(frame(0xC1, "x")), 1002);                    // RSV1
    EXPECT_EQ(first_error(frame(0x83, "x")), 1002);                    // reserved opcode
    EXPECT_EQ(first_error(frame(0x80, "x")), 1002);                    // continuation first
    EXPECT_EQ(first_error(frame(0x01, "a") + frame(0x81, "b")), 1002); // interleaved message
    EXPECT_EQ(first_error(frame(0x09, "p")), 1002);                    // fragmented ping
    EXPECT_EQ(first_error(frame(0x89, std::string(126, 'p'))), 1002);
    EXPECT_EQ(first_error(frame(0x88, "\x03")), 1002);     // one-byte close
    EXPECT_EQ(first_error(frame(0x88, "\x03\xED")), 1002); // 1005 may not be sent
    EXPECT_EQ(first_error(frame(0x81, "\xC3\x28")), 1007); // not UTF-8
    EXPECT_EQ(first_error(frame(0x81, "\xE2\x82")), 1007); // cut code point at FIN
    std::string masked = frame(0x81, "abcd");
    masked[1] = char(masked[1] | 0x80);
    EXPECT_EQ(first_error(masked), 1002); // servers never mask
    std::string long16 = "\x81\x7E";
    long16 += std::string("\x00\x05", 2) + "hello";
    EXPECT_EQ(first_error(long16), 1002); // non-minimal length
    ServerFrameReader small(10);
    std::deque<ServerFrameReader::Event> out;
    small.feed(frame(0x81, std::string(11, 'x')), out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].code, 1009);
}

TEST(ChatWsClient, ClientFramesAreMaskedAndParseOnTheServer) {
    ASSERT_GE(sodium_init(), 0);
    for (size_t n : {size_t(0), size_t(5), size_t(125), size_t(126), size_t(70000)}) {
        SCOPED_TRACE(n);
        std::string text(n, 'm');
        std::string f = client_frame(0x1, text);
        ASSERT_TRUE(uint8_t(f[1]) & 0x80) << "mask bit";
        if (n >= 4) {
            EXPECT_EQ(f.find(text.substr(0, 4)), std::string::npos) << "payload masked";
        }
        parley::ws::FrameParser parser;
        parley::ws::Event ev;
        size_t used = parser.parse(reinterpret_cast<uint8_t*>(f.data()), f.size(), ev);
        EXPECT_EQ(used, f.size());
        ASSERT_EQ(ev.type, parley::ws::EventType::Message);
        EXPECT_EQ(ev.payload, text);
    }
    // Two frames of the same payload use different masks.
    EXPECT_NE(client_frame(0x1, "same payload"), client_frame(0x1, "same payload"));
}

} // namespace
