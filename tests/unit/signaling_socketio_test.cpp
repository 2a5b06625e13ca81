// Socket.IO event framing of plugins/dialects/socketio.cpp: services' JSON frames to
// 42[...] packets and back.
#include "socketio.hpp"

#include <gtest/gtest.h>

using namespace parley::dialect;

TEST(SocketIoCodec, EncodesServiceFrames) {
    // args is Socket.IO's argument list, verbatim.
    EXPECT_EQ(socketio_encode_event(R"({"type":"members","args":[[{"id":"3","keyHash":"ab"}]]})"),
              R"(42["members",[{"id":"3","keyHash":"ab"}]])");
    EXPECT_EQ(socketio_encode_event(R"({"type":"peer_left","args":["7"]})"),
              R"(42["peer_left","7"])");
    EXPECT_EQ(socketio_encode_event(R"({"type":"last_to_leave","args":[]})"),
              R"(42["last_to_leave"])");
    // Without args: the other fields are the one argument; none at all: no argument.
    EXPECT_EQ(socketio_encode_event(R"({"type":"refresh"})"), R"(42["refresh"])");
    EXPECT_EQ(socketio_encode_event(R"({"type":"error","error":"rate limited"})"),
              R"(42["error",{"error":"rate limited"}])");
    EXPECT_EQ(socketio_encode_event(R"({"type":"x\"y","args":[1]})"), R"(42["x\"y",1])");
    EXPECT_EQ(socketio_encode_event("not json"), "");
    EXPECT_EQ(socketio_encode_event(R"(["no","type"])"), "");
}

TEST(SocketIoCodec, DecodesEvents) {
    std::string name, frame;
    ASSERT_TRUE(socketio_decode_event(R"(["join_room","r",null,["a","b"]])", name, frame));
    EXPECT_EQ(name, "join_room");
    EXPECT_EQ(frame, R"({"type":"join_room","args":["r",null,["a","b"]]})");
    ASSERT_TRUE(
        socketio_decode_event(R"(["signal",{"to":"3","sdp":{"type":"offer"}}])", name, frame));
    EXPECT_EQ(frame, R"({"type":"signal","args":[{"to":"3","sdp":{"type":"offer"}}]})");
    ASSERT_TRUE(socketio_decode_event(R"(["leave_blob"])", name, frame));
    EXPECT_EQ(frame, R"({"type":"leave_blob","args":[]})");
    // Event names become command names: only [A-Za-z0-9_-], 1..64 characters.
    EXPECT_FALSE(socketio_decode_event(R"(["../x"])", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"(["a.b"])", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"([""])", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"([1,2])", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"([])", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"({"a":1})", name, frame));
    EXPECT_FALSE(socketio_decode_event(R"(["x",)", name, frame));
    EXPECT_FALSE(socketio_decode_event("[\"" + std::string(65, 'a') + "\"]", name, frame));
}

TEST(SocketIoCodec, Paths) {
    EXPECT_TRUE(is_socketio_path("/socket.io/"));
    EXPECT_TRUE(is_socketio_path("/socket.io"));
    EXPECT_FALSE(is_socketio_path("/ws"));
}
