// plugins/signaling on the SDK's FakeHost: the built .so, loaded as parleyd loads it.
#include <parley/sdk.hpp>
#include <parley/sdk_testing.hpp>

#include "turn.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

using parley::sdk::testing::FakeHost;
using parley::sdk::testing::FakeInstance;

namespace {

// A stand-in for the relay plugin's `relay.allowed` (the circle's allowlist).
std::set<std::string>* g_circle = nullptr;

class FakeRelay final : public parley::sdk::Plugin {
  public:
    explicit FakeRelay(parley::sdk::Host h) : Plugin(h) {}
    parley_t_status start() override {
        return host().table()->command_register(
            host().ctx(), parley::sdk::bytes("relay.allowed"),
            [](void*, const parley_t_command_call* c) {
                return g_circle && g_circle->count(std::string(parley::sdk::view(c->identity)))
                           ? PARLEY_OK
                           : PARLEY_ERR_DENIED;
            },
            nullptr);
    }
};
constexpr parley_t_config_key kNoConfig[] = {
    parley::sdk::key("unused", PARLEY_CFG_STRING, "", "placeholder")};

} // namespace

PARLEY_PLUGIN(FakeRelay, "fake-relay", PARLEY_KIND_SERVICE, "0.0.0", "test", kNoConfig)

namespace {

const std::string A(64, 'a'), B(64, 'b'), C(64, 'c'), D(64, 'd');

struct Fixture : ::testing::Test {
    FakeHost fake;
    FakeInstance sig, relay;
    std::set<std::string> circle{A, B, C};
    parley_t_conn_id a = 0, b = 0, c = 0;

    std::map<std::string, std::string> cfg; // the signaling instance's config overlay

    void SetUp() override {
        g_circle = &circle;
        cfg = {{"turn_secret", "s3cret"}, {"turn_urls.0", "turn:127.0.0.1:3478"},
               {"turn_ttl", "1h"},        {"rooms.0.name", "team"},
               {"rooms.0.members.0", A},  {"rooms.0.members.1", B},
               {"burst", "20"},           {"rate", "1"}};
    }
    void load() {
        relay = fake.load_entry(&parley_plugin_entry_v0, "relay");
        ASSERT_EQ(relay.up(), PARLEY_OK) << relay.error();
        sig = fake.load_library(PARLEY_SIGNALING_SO, "calls");
        ASSERT_TRUE(sig.loaded()) << sig.error();
        for (auto& [k, v] : cfg)
            sig.set_config(k, v);
    }
    void up() {
        load();
        ASSERT_EQ(sig.up(), PARLEY_OK) << sig.error();
        a = fake.connect();
        b = fake.connect();
        c = fake.connect();
    }
    void TearDown() override { g_circle = nullptr; }

    parley_t_status call(const std::string& event, parley_t_conn_id conn, const std::string& who,
                         const std::string& args) {
        return fake.call("call." + event, conn,
                         R"({"type":")" + event + R"(","args":)" + args + "}", {}, who);
    }
    std::vector<std::string> to(parley_t_conn_id conn) {
        std::vector<std::string> out;
        for (auto& d : fake.deliveries_to(conn))
            out.push_back(d.text);
        return out;
    }
    std::string last(parley_t_conn_id conn) {
        auto v = to(conn);
        return v.empty() ? std::string() : v.back();
    }
    static std::string id(parley_t_conn_id c) { return std::to_string(c); }
};

TEST(Turn, HmacSha1MatchesRfc2202) {
    // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
    EXPECT_EQ(parley::signaling::hmac_sha1_base64("Jefe", "what do ya want for nothing?"),
              "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    auto cred = parley::signaling::turn_credential("Jefe", 1700000000, "abc");
    EXPECT_EQ(cred.username, "1700000000:abc");
    EXPECT_EQ(cred.password, parley::signaling::hmac_sha1_base64("Jefe", "1700000000:abc"));
    EXPECT_NE(parley::signaling::random_opaque_id(), parley::signaling::random_opaque_id());
}

TEST_F(Fixture, ConfiguredAclAdmitsMembersOnlyAndRelaysSignals) {
    up();
    EXPECT_EQ(call("join_room", a, A, R"(["team",null,[]])"), PARLEY_OK);
    EXPECT_EQ(last(a), R"({"type":"members","args":[[]]})");
    call("join_room", b, B, R"(["team",")" + B + R"(",[")" + A + R"(",")" + B + R"("]])");
    EXPECT_EQ(last(b), R"({"type":"members","args":[[{"id":")" + id(a) + R"(","keyHash":")" + A +
                           R"("}]]})");
    EXPECT_EQ(last(a), R"({"type":"peer_joined","args":[{"id":")" + id(b) + R"(","keyHash":")" + B +
                           R"("}]})");
    // C is in the circle but not in the room's ACL, whatever list it presents.
    call("join_room", c, C, R"(["team",")" + C + R"(",[")" + A + R"(",")" + C + R"("]])");
    EXPECT_EQ(
        last(c),
        R"({"type":"room_join_error","args":[{"message":"Not allowed to join this call."}]})");
    fake.clear_deliveries();

    // offer from A to B: Relay's {to, type, sdp} becomes {from, type, sdp}, fields as sent.
    call("signal", a, A,
         R"([{"to":")" + id(b) + R"(","type":"offer","sdp":{"type":"offer","sdp":"v=0\r\n"}}])");
    EXPECT_EQ(last(b), R"({"type":"signal","args":[{"from":")" + id(a) +
                           R"(","type":"offer","sdp":{"type":"offer","sdp":"v=0\r\n"}}]})");
    // An opaque end-to-end encrypted payload is relayed as is.
    call("signal", b, B, R"([{"to":")" + id(a) + R"(","e2e":"QUJD","n":1}])");
    EXPECT_EQ(last(a),
              R"({"type":"signal","args":[{"from":")" + id(b) + R"(","e2e":"QUJD","n":1}]})");
    // C (not in the call) cannot signal members; nothing reaches them.
    fake.clear_deliveries();
    call("signal", c, C, R"([{"to":")" + id(a) + R"(","type":"offer"}])");
    EXPECT_TRUE(to(a).empty());
    EXPECT_NE(last(c).find(R"("type":"error")"), std::string::npos);
    // Nor can a member signal someone outside the call.
    fake.clear_deliveries();
    call("signal", a, A, R"([{"to":")" + id(c) + R"(","type":"offer"}])");
    EXPECT_TRUE(to(c).empty());
    call("signal", a, A, R"([{"to":")" + id(a) + R"(","type":"offer"}])");
    EXPECT_EQ(to(a).size(), 2u); // two errors, no self-relay
    // call_state goes to the others as peer_call_state.
    fake.clear_deliveries();
    call("call_state", a, A, R"(["team",{"muted":true,"deafened":false,"cameraOn":true}])");
    EXPECT_EQ(last(b), R"({"type":"peer_call_state","args":[{"id":")" + id(a) +
                           R"(","muted":true,"deafened":false,"cameraOn":true}]})");
    EXPECT_TRUE(to(a).empty());
    // leave: the other gets peer_left; the last one out gets last_to_leave.
    call("leave_room", a, A, R"(["team"])");
    EXPECT_EQ(last(b), R"({"type":"peer_left","args":[")" + id(a) + R"("]})");
    EXPECT_TRUE(to(a).empty());
    call("leave_room", b, B, R"(["team"])");
    EXPECT_EQ(last(b), R"({"type":"last_to_leave","args":[]})");
    EXPECT_EQ(fake.metric("parley_signaling_rooms"), 0);
}

TEST_F(Fixture, NamedFieldsWork) {
    up();
    EXPECT_EQ(fake.call("call.join_room", a, R"({"type":"join_room","roomId":"lobby"})", {}, A),
              PARLEY_OK);
    EXPECT_EQ(last(a), R"({"type":"members","args":[[]]})");
}

TEST_F(Fixture, DerivedRoomIdsBindTheMemberList) {
    up();
    // Relay's id for the DM of A and B: "room-" + base64url(sha256(sorted hashes joined by
    // ",")), computed with Node's crypto.
    const std::string dm = "room-sdoaF1V0j0cDuuqkrlji9ColvTOqZ6Dbn9hNa4dnxJI";
    std::string ab = R"([")" + A + R"(",")" + B + R"("])";
    std::string ba = R"([")" + B + R"(",")" + A + R"("])";
    std::string ac = R"([")" + A + R"(",")" + C + R"("])";
    // A squatter cannot claim the room with another list, nor enter with the right one.
    call("join_room", c, C, R"([")" + dm + R"(",null,)" + ac + "]");
    EXPECT_NE(last(c).find("room_join_error"), std::string::npos);
    call("join_room", c, C, R"([")" + dm + R"(",null,)" + ab + "]");
    EXPECT_NE(last(c).find("room_join_error"), std::string::npos);
    // A derived-looking id that the list does not produce is refused.
    call("join_room", a, A, R"(["room-x",null,)" + ab + "]");
    EXPECT_NE(last(a).find("room_join_error"), std::string::npos);
    // The real members get in, whatever order their list has.
    call("join_room", a, A, R"([")" + dm + R"(",null,)" + ab + "]");
    EXPECT_EQ(last(a), R"({"type":"members","args":[[]]})");
    call("join_room", b, B, R"([")" + dm + R"(",null,)" + ba + "]");
    EXPECT_NE(last(b).find(id(a)), std::string::npos);
}

TEST_F(Fixture, UnprovenAndRevokedIdentitiesAreRefused) {
    up();
    call("join_room", a, "", R"(["lobby",null,[]])");
    EXPECT_NE(last(a).find("room_join_error"), std::string::npos);
    call("join_room", b, D, R"(["lobby",null,[]])"); // well-formed but not in the circle
    EXPECT_NE(last(b).find("room_join_error"), std::string::npos);
    call("turn_credentials", b, D, "[]");
    EXPECT_NE(last(b).find("authentication required"), std::string::npos);
    // A key hash claim that differs from the proof is refused.
    call("join_room", c, C, R"(["lobby",")" + A + R"(",[]])");
    EXPECT_NE(last(c).find("room_join_error"), std::string::npos);
}

TEST_F(Fixture, MeshOfThreeAndDisconnect) {
    up();
    call("join_room", a, A, R"(["lobby",null,[]])");
    call("join_room", b, B, R"(["lobby",null,[]])");
    call("join_room", c, C, R"(["lobby",null,[]])");
    auto m = last(c);
    EXPECT_NE(m.find(id(a)), std::string::npos);
    EXPECT_NE(m.find(id(b)), std::string::npos);
    EXPECT_NE(last(a).find("peer_joined"), std::string::npos);
    EXPECT_NE(last(b).find("peer_joined"), std::string::npos);
    call("signal", c, C, R"([{"to":")" + id(a) + R"(","candidate":{"candidate":"x"}}])");
    EXPECT_NE(last(a).find(R"("from":")" + id(c)), std::string::npos);
    fake.clear_deliveries();
    // The dialect reports a closed connection with relay.closed.
    EXPECT_EQ(fake.call("relay.closed", b, R"({"type":"closed"})", {}, B), PARLEY_OK);
    EXPECT_FALSE(fake.has_command("call.closed")); // not reachable by clients
    EXPECT_EQ(last(a), R"({"type":"peer_left","args":[")" + id(b) + R"("]})");
    EXPECT_EQ(last(c), R"({"type":"peer_left","args":[")" + id(b) + R"("]})");
    // A connection that vanished without notice is dropped when a send to it fails.
    fake.disconnect(c);
    fake.clear_deliveries();
    call("call_state", a, A, R"(["lobby",{"muted":false,"deafened":false}])");
    call("members", a, A, R"(["lobby"])");
    EXPECT_EQ(last(a), R"({"type":"members","args":[[]]})");
}

TEST_F(Fixture, CapsOnSizeMembersAndRate) {
    cfg["max_signal"] = "2K";
    cfg["max_members"] = "2";
    up();
    call("join_room", a, A, R"(["lobby",null,[]])");
    call("join_room", b, B, R"(["lobby",null,[]])");
    call("join_room", c, C, R"(["lobby",null,[]])");
    EXPECT_EQ(last(c), R"({"type":"room_join_error","args":[{"message":"Call is full."}]})");
    fake.clear_deliveries();
    std::string big(3000, 'x');
    EXPECT_EQ(call("signal", a, A, R"([{"to":")" + id(b) + R"(","sdp":")" + big + R"("}])"),
              PARLEY_ERR_LIMIT);
    EXPECT_TRUE(to(b).empty());
    EXPECT_NE(last(a).find("payload too large"), std::string::npos);
    // burst 20, rate 1/s: a flood is cut; nothing past the burst is relayed.
    fake.clear_deliveries();
    int limited = 0;
    for (int i = 0; i < 40; ++i)
        if (call("signal", a, A, R"([{"to":")" + id(b) + R"(","candidate":{}}])") ==
            PARLEY_ERR_LIMIT)
            ++limited;
    EXPECT_GE(limited, 19);
    EXPECT_LE(to(b).size(), 21u);
    EXPECT_NE(last(a).find("rate limited"), std::string::npos);
}

TEST_F(Fixture, TurnCredentialsForProvenMembers) {
    up();
    auto before = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    call("turn_credentials", a, A, "[]");
    auto f = last(a);
    auto u = f.find(R"("username":")");
    ASSERT_NE(u, std::string::npos) << f;
    auto user = f.substr(u + 12, f.find('"', u + 12) - (u + 12));
    auto colon = user.find(':');
    ASSERT_NE(colon, std::string::npos);
    auto expiry = std::stoll(user.substr(0, colon));
    EXPECT_GE(expiry, before + 3600);
    EXPECT_LE(expiry, before + 3600 + 5);
    EXPECT_EQ(user.find(A), std::string::npos); // no key hash in coturn's logs
    auto pw = parley::signaling::hmac_sha1_base64("s3cret", user);
    EXPECT_NE(f.find(R"("credential":")" + pw + '"'), std::string::npos) << f;
    EXPECT_NE(f.find(R"("urls":["turn:127.0.0.1:3478"])"), std::string::npos);
    EXPECT_NE(f.find(R"("ttl":3600)"), std::string::npos);
}

TEST_F(Fixture, TurnSecretFileIsReloadedWhenItChanges) {
    auto dir =
        std::filesystem::temp_directory_path() / ("signaling-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto file = dir / "turn.secret";
    std::ofstream(file) << "first\n";
    cfg.erase("turn_secret");
    cfg["turn_secret_file"] = file.string();
    cfg["secret_poll"] = "1s";
    up();
    auto password_for = [&](parley_t_conn_id conn, const std::string& who) {
        call("turn_credentials", conn, who, "[]");
        auto f = last(conn);
        auto u = f.find(R"("username":")");
        auto user = f.substr(u + 12, f.find('"', u + 12) - (u + 12));
        return std::make_pair(user, f);
    };
    auto [u1, f1] = password_for(a, A);
    EXPECT_NE(f1.find(parley::signaling::hmac_sha1_base64("first", u1)), std::string::npos);
    std::ofstream(file) << "second\n";
    std::filesystem::last_write_time(file, std::filesystem::last_write_time(file) +
                                               std::chrono::seconds(5));
    fake.advance(1500);
    auto [u2, f2] = password_for(b, B);
    EXPECT_NE(f2.find(parley::signaling::hmac_sha1_base64("second", u2)), std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_F(Fixture, MissingSecretFileFailsStart) {
    cfg["turn_secret_file"] = "/nonexistent/turn.secret";
    load();
    EXPECT_NE(sig.up(), PARLEY_OK);
}

} // namespace
