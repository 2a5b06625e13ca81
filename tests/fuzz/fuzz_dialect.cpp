// libFuzzer target for the dialects' envelope parsers (link, bench, raw, relay, Socket.IO): the
// bytes become a script of upgrades, text/binary messages, closes and clock steps played against
// real dialect sessions on the SDK's FakeHost, through a fake Conn. Besides the sanitizers it
// checks:
//   - the dialect never misuses the host ABI (FakeHost::violations(): double frame release,
//     host calls after destroy, exceptions crossing a hook);
//   - no frame leaks once every session has closed and the host is gone;
//   - close codes and reasons are valid for a Close frame;
//   - relay and Socket.IO admit a good proof of the allowlisted test key and never a bad one
//     (auth mode, below).
//
// Input: byte 0 picks the dialect (% 5: link, bench, raw, relay, socketio; one this build does
// not have yet makes the input a no-op, so the target picks new dialects up as they land; bit 0
// of byte0 / 5 registers relay.compat/relay.allowed, the relay plugin in compat mode). Then
// records
//   [op: bits 0-2 op, bits 3-4 session][len: 1 byte][len bytes of payload]
// op 0 upgrade (payload = request target, "/ws/room?client=abcd"), 1 text, 2 binary,
// 3 close, 4 advance the clock by payload[0]*100 ms, 5 HTTP GET (payload = target),
// 6 rate-limit notice, 7 run posted completions. A truncated record uses what is left.
//
// Authenticated paths: bit 1 of byte0 / 5 registers relay.allowed (same rule) and echoing
// call.join_room/leave_room/signal/members and relay.closed services, and makes op 7 with a
// non-empty payload answer session k's challenge (the nonce the session sent through the fake
// Conn; a Socket.IO session gets its CONNECT "40" first) as the fixed test identity A, whose key
// hash is allowlisted, so that the records after it reach join_blob, call.* forwarding and
// relay.closed. payload[0] % 5: 0 A, 1 A without base64 padding, 2 identity B (not
// allowlisted), 3 A signing another nonce, 4 the previous auth frame again (another session's
// challenge). Checks: a fresh challenge answered by A (0) is admitted; 2-4 never are. Frames the
// services send to a session that rewrites outgoing frames (Socket.IO) go through rewrite_out.
#include "dialect.hpp"
#include "relay.hpp"

#include <parley/sdk.hpp>
#include <parley/sdk_testing.hpp>

#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>

#include "fuzz_check.hpp"

namespace {

using namespace parley;

// A stand-in transport instance: the dialects only need its host context.
class FuzzTransport final : public sdk::Plugin {
  public:
    explicit FuzzTransport(sdk::Host h) : Plugin(h) {}
};

constexpr parley_t_config_key kConfig[] = {
    sdk::key("protocol", PARLEY_CFG_STRING, "link", "Dialect under test."),
};

} // namespace

PARLEY_PLUGIN(FuzzTransport, "fuzz-transport", PARLEY_KIND_TRANSPORT, "0.0.0", "fuzz harness",
              kConfig)

namespace {

struct Posted {
    uint64_t tag;
    std::function<void(dialect::Conn&)> fn;
};

class Queue final : public dialect::Poster {
  public:
    void post(uint64_t tag, std::function<void(dialect::Conn&)> fn) override {
        if (items.size() < 1024) items.push_back({tag, std::move(fn)});
    }
    std::deque<Posted> items;
};

class FakeConn final : public dialect::Conn {
  public:
    FakeConn(const sdk::Host& host, std::shared_ptr<Queue> q, parley_t_conn_id id, uint64_t tag,
             uint64_t peer)
        : host_(host), q_(std::move(q)), id_(id), tag_(tag), peer_(peer) {}
    parley_t_conn_id id() const override { return id_; }
    uint64_t tag() const override { return tag_; }
    std::shared_ptr<dialect::Poster> poster() override { return q_; }
    void send_text(std::string_view text) override {
        if (closed_) return; // the transport drops sends once closing, so may we
        sent_ += text.size();
        // Only the session's own messages count: Socket.IO echoes client pings ("3...").
        if (text.starts_with("0{")) sio_ = true; // Engine.IO OPEN
        if (text.starts_with(R"({"type":"authed")") || text.starts_with(R"(42["authed")"))
            authed_ = true;
        static constexpr std::string_view kRelay = R"({"type":"challenge","nonce":")";
        static constexpr std::string_view kSio = R"(42["challenge",{"nonce":")";
        for (auto prefix : {kRelay, kSio})
            if (text.starts_with(prefix)) {
                auto rest = text.substr(prefix.size());
                nonce_ = std::string(rest.substr(0, rest.find('"')));
            }
    }
    void send_frame(parley_t_frame_hptr frame) override {
        CHECK(frame != nullptr);
        if (!closed_) sent_ += frame->len;
    }
    void close(uint16_t code, std::string_view reason) override {
        CHECK(code == 1000 ||
              (code >= 1001 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
              (code >= 3000 && code <= 4999));
        CHECK(reason.size() <= 123);
        closed_ = true;
    }
    bool closing() const override { return closed_; }
    void hold(bool on) override { held_ = on; }
    uint64_t peer_key() const override { return peer_; }
    bool sio() const { return sio_; }
    bool authed() const { return authed_; }
    const std::string& nonce() const { return nonce_; }

  private:
    sdk::Host host_;
    std::shared_ptr<Queue> q_;
    parley_t_conn_id id_;
    uint64_t tag_;
    uint64_t peer_;
    bool closed_ = false;
    bool held_ = false;
    size_t sent_ = 0;
    bool sio_ = false, authed_ = false;
    std::string nonce_;
};

// Fixed Ed25519 test identities: A's key hash starts with an even hex digit (allowlisted by the
// fake relay.allowed), B's with an odd one.
struct Identity {
    std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
    std::string pk_b64;
};
struct Identities {
    Identity allowed, denied;
};
const Identities& identities() {
    static const Identities ids = [] {
        CHECK(sodium_init() >= 0);
        Identities out;
        bool have_a = false, have_b = false;
        for (int fill = 1; fill < 256 && !(have_a && have_b); ++fill) {
            Identity id;
            std::array<unsigned char, crypto_sign_SEEDBYTES> seed;
            seed.fill(static_cast<unsigned char>(fill));
            crypto_sign_seed_keypair(id.pk.data(), id.sk.data(), seed.data());
            std::string raw(reinterpret_cast<const char*>(id.pk.data()), id.pk.size());
            id.pk_b64 = dialect::relay_b64(raw);
            bool even = std::string_view("02468ace").find(dialect::relay_key_hash(raw)[0]) !=
                        std::string_view::npos;
            if (even && !have_a) out.allowed = id, have_a = true;
            if (!even && !have_b) out.denied = id, have_b = true;
        }
        CHECK(have_a && have_b);
        return out;
    }();
    return ids;
}

struct Slot {
    std::unique_ptr<FakeConn> conn;
    std::unique_ptr<dialect::Session> session;
};

class Harness {
  public:
    explicit Harness(int which) {
        fake_.set_work_inline(false);
        fake_.set_work_queue_limit(0); // password hashing would take 100 ms a try: refuse it
        inst_ = fake_.load_entry(&parley_plugin_entry_v0, "fuzz");
        CHECK(inst_.up() == PARLEY_OK);
        host_.emplace(fake_.table(), inst_.ctx());
        compat_ = (which / 5) & 1;
        auth_ = (which / 5) & 2;
        auto* t = fake_.table();
        if (compat_) {
            // The relay plugin in compat mode: relay/socketio let clients skip the proof.
            t->command_register(
                inst_.ctx(), sdk::bytes("relay.compat"),
                [](void*, const parley_t_command_call*) noexcept { return PARLEY_OK; }, nullptr);
        }
        if (compat_ || auth_) {
            // Key hashes starting with an even hex digit are "allowlisted".
            t->command_register(
                inst_.ctx(), sdk::bytes("relay.allowed"),
                [](void*, const parley_t_command_call* c) noexcept {
                    auto id = sdk::view(c->identity);
                    return !id.empty() && std::string_view("02468ace").find(id[0]) !=
                                              std::string_view::npos
                               ? PARLEY_OK
                               : PARLEY_ERR_DENIED;
                },
                nullptr);
        }
        if (auth_) {
            // Relay's call signaling, reduced to an echo to the caller plus a refresh of the
            // caller's blob room: both come back as deliveries (see drain_deliveries).
            for (const char* name :
                 {"call.join_room", "call.leave_room", "call.signal", "call.members"})
                t->command_register(inst_.ctx(), sdk::bytes(name), &Harness::echo, this);
            t->command_register(
                inst_.ctx(), sdk::bytes("relay.closed"),
                [](void*, const parley_t_command_call* c) noexcept {
                    CHECK(c->conn != 0);
                    return PARLEY_OK;
                },
                nullptr);
        }
        static constexpr const char* kNames[] = {"link", "bench", "raw", "relay", "socketio"};
        dialect_ = dialect::make(kNames[which % std::size(kNames)], dialect::Env{*host_, "fuzz"});
        relay_family_ = which % std::size(kNames) >= 3;
    }
    bool ok() const { return dialect_ != nullptr; }
    bool auth_mode() const { return auth_; }

    static parley_t_status echo(void* user, const parley_t_command_call* c) noexcept {
        auto& h = *static_cast<Harness*>(user)->host_;
        auto f = h.frame_of(sdk::view(c->args));
        if (f) h.table()->send_to(h.ctx(), c->conn, f.get());
        auto id = sdk::view(c->identity);
        if (!id.empty()) {
            auto r = h.frame_of(R"({"type":"refresh"})");
            std::string room = "blob:" + std::string(id);
            if (r) h.table()->room_publish(h.ctx(), sdk::bytes(room), r.get(), 0);
        }
        return PARLEY_OK;
    }

    // What the transport does with a frame for a session that rewrites outgoing frames.
    void drain_deliveries() {
        for (auto& d : fake_.deliveries())
            for (auto& s : slots_)
                if (s.conn && s.conn->id() == d.conn && s.session && s.session->rewrites_out()) {
                    auto out = s.session->rewrite_out(d.text);
                    CHECK(out.empty() || out.starts_with("42[\""));
                }
        fake_.clear_deliveries();
    }

    // Answers session k's challenge; see the header comment for the variants.
    void auth(size_t k, uint8_t variant) {
        auto& s = slots_[k];
        if (!s.session || s.conn->closing()) return;
        if (s.conn->sio() && s.conn->nonce().empty()) text(k, "40", false);
        if (!s.session || s.conn->closing()) return;
        // An open relay or Socket.IO session (past CONNECT) has sent its challenge.
        if (relay_family_) CHECK(!s.conn->nonce().empty());
        if (s.conn->nonce().empty()) return; // link, bench, raw: no challenge
        variant %= 5;
        const auto& ids = identities();
        const Identity& id = variant == 2 ? ids.denied : ids.allowed;
        auto msg = dialect::relay_auth_message(s.conn->nonce() + (variant == 3 ? "x" : ""));
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(msg.data()),
                             msg.size(), id.sk.data());
        std::string pk = id.pk_b64;
        std::string sg =
            dialect::relay_b64(std::string_view(reinterpret_cast<char*>(sig), sizeof sig));
        if (variant == 1) {
            while (!pk.empty() && pk.back() == '=')
                pk.pop_back();
            while (!sg.empty() && sg.back() == '=')
                sg.pop_back();
        }
        std::string fields = R"("publicKey":")" + pk + R"(","signature":")" + sg + "\"";
        std::string frame =
            s.conn->sio() ? R"(42["auth",{)" + fields + "}]" : R"({"type":"auth",)" + fields + "}";
        if (variant == 4) {
            if (last_auth_.empty()) return;
            std::swap(frame, last_auth_);
        } else {
            last_auth_ = frame;
        }
        bool fresh = !s.conn->authed();
        text(k, frame, false);
        if (!fresh) return;
        // Admitted exactly when the proof is good. (Not checked in compat mode, where an earlier
        // frame may have let the session in unproven, and without padding on Socket.IO, which
        // takes padded base64 only.)
        if (variant == 0 && !compat_) CHECK(s.conn->authed());
        if (variant >= 2) CHECK(!s.conn->authed());
    }

    ~Harness() {
        for (auto& s : slots_)
            close(s);
        run_posted();
        dialect_.reset();
        if (inst_.loaded()) inst_.destroy();
        CHECK(fake_.violations().empty());
        CHECK(fake_.live_frames() == 0);
    }

    void upgrade(size_t k, std::string_view target) {
        close(slots_[k]);
        dialect::HttpRequest req;
        req.method = "GET";
        auto q = target.find('?');
        req.path = target.substr(0, q);
        req.query = q == target.npos ? std::string_view() : target.substr(q + 1);
        req.header = [](std::string_view) { return std::string_view(); };
        req.peer_key = k & 1;
        dialect::HttpReply refusal;
        auto session = dialect_->upgrade(req, refusal);
        if (!session) {
            CHECK(refusal.status >= 400 && refusal.status < 600);
            return;
        }
        auto id = fake_.connect(++tags_);
        slots_[k].conn = std::make_unique<FakeConn>(*host_, q_, id, tags_, k & 1);
        slots_[k].session = std::move(session);
        slots_[k].session->on_open(*slots_[k].conn);
    }

    void text(size_t k, std::string_view msg, bool binary) {
        auto& s = slots_[k];
        if (!s.session || s.conn->closing()) return;
        if (binary)
            s.session->on_binary(*s.conn, msg);
        else
            s.session->on_text(*s.conn, msg);
    }

    void rate_limited(size_t k) {
        auto& s = slots_[k];
        if (s.session && !s.conn->closing()) s.session->on_rate_limited(*s.conn);
    }

    void http(std::string_view target) {
        dialect::HttpRequest req;
        req.method = "GET";
        auto q = target.find('?');
        req.path = target.substr(0, q);
        req.query = q == target.npos ? std::string_view() : target.substr(q + 1);
        req.header = [](std::string_view) { return std::string_view(); };
        dialect::HttpReply rep;
        if (dialect_->http(req, rep)) CHECK(rep.status >= 100 && rep.status < 600);
    }

    void close(Slot& s) {
        if (!s.session) return;
        // The transport tears a closed connection down: the session hears on_close once.
        s.session->on_close(*s.conn);
        s.session.reset();
        fake_.disconnect(s.conn->id());
        s.conn.reset();
    }
    void close(size_t k) { close(slots_[k]); }

    void advance(uint64_t ms) {
        fake_.advance(ms);
        run_posted();
    }

    void run_posted() {
        for (int rounds = 0; rounds < 64 && !q_->items.empty(); ++rounds) {
            auto item = std::move(q_->items.front());
            q_->items.pop_front();
            for (auto& s : slots_)
                if (s.conn && s.conn->tag() == item.tag) {
                    item.fn(*s.conn);
                    break;
                }
        }
        q_->items.clear();
    }

  private:
    sdk::testing::FakeHost fake_; // declared first: destroyed after the instance
    sdk::testing::FakeInstance inst_;
    std::optional<sdk::Host> host_;
    std::unique_ptr<dialect::Dialect> dialect_;
    std::shared_ptr<Queue> q_ = std::make_shared<Queue>();
    std::array<Slot, 4> slots_;
    uint64_t tags_ = 0;
    bool compat_ = false, auth_ = false, relay_family_ = false;
    std::string last_auth_;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0 || size > 64 * 1024) return 0;
    Harness h(data[0]);
    if (!h.ok()) return 0;
    size_t i = 1;
    while (i < size) {
        uint8_t op = data[i] & 7;
        size_t k = (data[i] >> 3) & 3;
        ++i;
        size_t len = i < size ? data[i++] : 0;
        if (len >= 0xf0 && i < size) len = ((len & 0x0f) << 8) | data[i++]; // up to 4 KiB
        len = std::min(len, size - i);
        std::string payload(reinterpret_cast<const char*>(data + i), len); // own heap copy
        i += len;
        switch (op) {
        case 0:
            h.upgrade(k, payload);
            break;
        case 1:
            h.text(k, payload, false);
            break;
        case 2:
            h.text(k, payload, true);
            break;
        case 3:
            h.close(k);
            break;
        case 4:
            h.advance(payload.empty() ? 1000 : uint64_t(uint8_t(payload[0])) * 100);
            break;
        case 5:
            h.http(payload);
            break;
        case 6:
            h.rate_limited(k);
            break;
        case 7:
            h.run_posted();
            if (h.auth_mode() && !payload.empty()) h.auth(k, uint8_t(payload[0]));
            break;
        }
        if (h.auth_mode()) h.drain_deliveries();
    }
    return 0;
}
