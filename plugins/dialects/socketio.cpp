// Socket.IO (Engine.IO v4 / Socket.IO v5) over WebSocket for Relay's app; see socketio.hpp.
#include "socketio.hpp"

#include "relay.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <charconv>
#include <optional>

namespace parley::dialect {

namespace {

constexpr std::string_view kAuthFailed = R"(42["error",{"error":"authentication failed"}])";
constexpr int kMaxErrors = 10;
constexpr size_t kNonceBytes = 32;

std::string query_param(std::string_view q, std::string_view name) {
    while (!q.empty()) {
        auto amp = q.find('&');
        auto part = q.substr(0, amp);
        auto eq = part.find('=');
        if (part.substr(0, eq) == name)
            return std::string(eq == part.npos ? "" : part.substr(eq + 1));
        if (amp == q.npos) break;
        q.remove_prefix(amp + 1);
    }
    return {};
}

std::string event(std::string_view name, std::string_view args_json = {}) {
    std::string s = R"(42[")" + json_escape(name) + '"';
    if (!args_json.empty()) s += "," + std::string(args_json);
    return s + "]";
}

// The Socket.IO session. Shared-owned: the auth timer holds a weak reference; the ping timer is
// cancelled (synchronously) before the session goes away.
class SioSession final : public std::enable_shared_from_this<SioSession> {
  public:
    SioSession(sdk::Host host, SocketIoOptions opts) : host_(host), opts_(opts) {}
    ~SioSession() { stop_ping(); }

    void on_open(Conn& c) {
        sid_ = std::to_string(c.id());
        c.send_text(R"(0{"sid":")" + sid_ + R"(","upgrades":[],"pingInterval":)" +
                    std::to_string(opts_.ping_interval_ms) + R"(,"pingTimeout":)" +
                    std::to_string(opts_.ping_timeout_ms) + R"(,"maxPayload":)" +
                    std::to_string(opts_.max_payload) + "}");
        start_ping(c);
        // Relay's own app never authenticates; with the relay plugin in compat mode it is let in
        // unproven, as Relay's server does (see docs/calls.md), so there is no deadline.
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        compat_ = host_.table()->command_call(host_.ctx(), sdk::bytes("relay.compat"), &call) ==
                  PARLEY_OK;
        if (!compat_) arm_auth_timeout(c);
    }

    void on_text(Conn& c, std::string_view msg) {
        if (state_ == State::failed || msg.empty()) return;
        switch (msg[0]) {
        case '1': // Engine.IO close (on_close still tells the services)
            return c.close(1000, "");
        case '2': // client ping (not sent by v4 clients, answered anyway)
            return c.send_text("3" + std::string(msg.substr(1)));
        case '3':
        case '6':
            return;
        case '4':
            return on_packet(c, msg.substr(1));
        default:
            return bad(c, "invalid packet");
        }
    }

    void on_close(Conn& c) {
        stop_ping();
        if (state_ != State::authed && state_ != State::compat) return;
        state_ = State::failed;
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        call.args = sdk::bytes(R"({"type":"closed"})");
        call.identity = sdk::bytes(key_hash_);
        host_.table()->command_call(host_.ctx(), sdk::bytes("relay.closed"), &call);
    }

    void on_rate_limited(Conn& c) {
        if (admitted()) c.send_text(event("error", R"({"error":"rate limited"})"));
    }

  private:
    // compat: Relay's unauthenticated client (relay plugin in compat mode), identified only by
    // the key hashes it claims in its payloads.
    enum class State { opened, connected, authed, compat, failed };
    bool admitted() const { return state_ == State::authed || state_ == State::compat; }

    void on_packet(Conn& c, std::string_view p) {
        if (p.empty()) return bad(c, "invalid packet");
        char type = p[0];
        p.remove_prefix(1);
        // Only the main namespace exists.
        if (!p.empty() && p[0] == '/') {
            auto comma = p.find(',');
            std::string_view nsp = p.substr(0, comma);
            if (nsp != "/") {
                if (type == '0')
                    c.send_text("44" + std::string(nsp) + R"(,{"message":"Invalid namespace"})");
                return;
            }
            p = comma == p.npos ? std::string_view() : p.substr(comma + 1);
        }
        // An ack id may precede the payload; Relay's events do not use acks, none are sent.
        while (!p.empty() && p[0] >= '0' && p[0] <= '9')
            p.remove_prefix(1);
        switch (type) {
        case '0': // CONNECT
            if (state_ != State::opened) return;
            state_ = State::connected;
            c.send_text(R"(40{"sid":")" + sid_ + R"("})");
            return send_challenge(c);
        case '1': // DISCONNECT
            return c.close(1000, "");
        case '2':
            return on_event(c, p);
        case '5':
        case '6':
            if (!admitted()) return refuse(c);
            return bad(c, "binary events not accepted");
        default:
            return bad(c, "invalid packet");
        }
    }

    void on_event(Conn& c, std::string_view payload) {
        std::string name, frame;
        bool ok = socketio_decode_event(payload, name, frame);
        if (!admitted()) {
            if (state_ == State::connected && ok && name != "auth" && compat_)
                state_ = State::compat; // Relay's own client: no proof, as with Relay's server
            else if (state_ != State::connected || !ok || name != "auth")
                return refuse(c);
            else
                return authenticate(c, frame);
        }
        if (!ok) return bad(c, "invalid frame");
        if (name == "auth") return bad(c, "already authenticated");
        if (state_ == State::compat) return compat_event(c, name, frame);
        if (name == "join_blob" || name == "leave_blob") {
            // Relay's clients name the key hash; only their own box may be watched.
            auto kh = relay_positional_hash(frame, 0);
            if (!kh.empty() && kh != key_hash_) return bad(c, "not allowed");
            return blob(c, name == "join_blob", key_hash_);
        }
        forward(c, name, frame, key_hash_);
    }

    // Relay's socket.js, unauthenticated: join_blob(keyHash) watches blob:<keyHash>, and
    // join_room(roomId, keyHash, allowed) names the caller; both claims count only when the
    // key hash is on the allowlist. Other events carry the hash claimed at join_room.
    void compat_event(Conn& c, const std::string& name, const std::string& frame) {
        if (name == "join_blob" || name == "leave_blob") {
            std::string kh = relay_positional_hash(frame, 0);
            if (kh.empty()) return; // socket.js ignores these too
            if (name == "leave_blob") return kh == blob_hash_ ? blob(c, false, kh) : void();
            if (!relay_allowed(host_, c.id(), kh)) return bad(c, "not allowed");
            if (in_blob_ && kh != blob_hash_) blob(c, false, blob_hash_);
            return blob(c, true, kh);
        }
        if (name == "join_room") {
            std::string kh = relay_positional_hash(frame, 1);
            // An unlisted claim goes on with no identity: the service refuses it
            // (room_join_error, as socket.js answers a bad join).
            if (kh.empty() || !relay_allowed(host_, c.id(), kh)) return forward(c, name, frame, {});
            key_hash_ = std::move(kh);
        }
        forward(c, name, frame, key_hash_);
    }

    void forward(Conn& c, const std::string& name, const std::string& frame,
                 const std::string& identity) {
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        call.args = sdk::bytes(frame);
        call.identity = sdk::bytes(identity);
        auto st = host_.table()->command_call(host_.ctx(), sdk::bytes("call." + name), &call);
        if (st == PARLEY_ERR_NOT_FOUND) bad(c, "unknown type");
    }

    void send_challenge(Conn& c) {
        unsigned char raw[kNonceBytes];
        randombytes_buf(raw, sizeof raw);
        nonce_ = relay_b64(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
        c.send_text(event("challenge", R"({"nonce":")" + nonce_ + "\"}"));
    }

    void authenticate(Conn& c, const std::string& frame) {
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        std::string_view pk_b64, sig_b64;
        if (parser.parse(frame).get(root) != simdjson::SUCCESS ||
            root["args"].at(0)["publicKey"].get(pk_b64) != simdjson::SUCCESS ||
            root["args"].at(0)["signature"].get(sig_b64) != simdjson::SUCCESS)
            return refuse(c);
        if (nonce_.empty()) return refuse(c);
        auto proof = relay_check_proof(nonce_, pk_b64, sig_b64);
        if (!proof.well_formed) return refuse(c);
        // Asked even when the signature is bad, so both refusals cost the same.
        bool allowed = relay_allowed(host_, c.id(), proof.key_hash);
        std::string hash = std::move(proof.key_hash);
        if (!proof.signature_ok || !allowed) return refuse(c);
        state_ = State::authed;
        key_hash_ = std::move(hash);
        nonce_.clear(); // one answer per challenge
        c.send_text(event("authed", R"({"keyHash":")" + key_hash_ + "\"}"));
    }

    void refuse(Conn& c) {
        if (state_ == State::failed) return;
        state_ = State::failed;
        c.send_text(kAuthFailed);
        c.send_text("41");
        c.close(1008, "authentication failed");
    }

    void bad(Conn& c, std::string_view error) {
        if (!admitted()) return refuse(c);
        c.send_text(event("error", R"({"error":")" + json_escape(error) + "\"}"));
        if (++errors_ >= kMaxErrors) {
            state_ = State::failed;
            c.close(1008, "too many bad frames");
        }
    }

    void blob(Conn& c, bool join, const std::string& hash) {
        std::string room = "blob:" + hash;
        if (join && !in_blob_) {
            parley_t_join_result jr{};
            jr.struct_size = sizeof jr;
            auto st = host_.table()->room_join(host_.ctx(), c.id(), sdk::bytes(room),
                                               sdk::bytes(""), &jr);
            if (st == PARLEY_OK || st == PARLEY_ERR_EXISTS) {
                in_blob_ = true;
                blob_hash_ = hash;
            } else
                bad(c, "join_blob refused");
        } else if (!join && in_blob_) {
            host_.table()->room_leave(host_.ctx(), c.id(), sdk::bytes(room), nullptr);
            in_blob_ = false;
        }
    }

    // Engine.IO v4: the server pings, the client answers; a client that hears no ping for
    // pingInterval + pingTimeout reconnects, so the timer runs for the connection's life.
    struct Ping {
        std::shared_ptr<Poster> poster;
        uint64_t tag;
    };
    void start_ping(Conn& c) {
        ping_ = std::make_unique<Ping>(Ping{c.poster(), c.tag()});
        auto ms = uint64_t(opts_.ping_interval_ms);
        ping_timer_ = host_.table()->timer_start(
            host_.ctx(), ms, ms,
            [](void* u) {
                static_cast<Ping*>(u)->poster->post(static_cast<Ping*>(u)->tag,
                                                    [](Conn& c) { c.send_text("2"); });
            },
            ping_.get());
    }
    void stop_ping() {
        if (ping_timer_) host_.table()->timer_cancel(host_.ctx(), ping_timer_);
        ping_timer_ = 0;
        ping_.reset();
        if (auth_timer_) host_.table()->timer_cancel(host_.ctx(), auth_timer_);
        auth_timer_ = 0;
        late_.reset();
    }

    // One-shot; owned here and cancelled with the session, so nothing is left behind when the
    // connection (or the host) goes away before it fires.
    struct Late {
        std::shared_ptr<Poster> poster;
        uint64_t tag;
        std::weak_ptr<SioSession> self;
    };
    void arm_auth_timeout(Conn& c) {
        late_ = std::make_unique<Late>(Late{c.poster(), c.tag(), weak_from_this()});
        auth_timer_ = host_.table()->timer_start(
            host_.ctx(), uint64_t(opts_.auth_timeout_ms), 0,
            [](void* u) {
                auto* l = static_cast<Late*>(u);
                auto self = l->self.lock();
                if (!self) return;
                l->poster->post(l->tag, [self](Conn& c) {
                    if (self->state_ != State::authed) self->refuse(c);
                });
            },
            late_.get());
    }

    sdk::Host host_;
    SocketIoOptions opts_;
    State state_ = State::opened;
    std::string sid_, nonce_, key_hash_, blob_hash_;
    bool in_blob_ = false, compat_ = false;
    int errors_ = 0;
    std::unique_ptr<Ping> ping_;
    uint64_t ping_timer_ = 0;
    std::unique_ptr<Late> late_;
    uint64_t auth_timer_ = 0;
};

class SioHandle final : public Session {
  public:
    explicit SioHandle(std::shared_ptr<SioSession> s) : s_(std::move(s)) {}
    void on_open(Conn& c) override { s_->on_open(c); }
    void on_text(Conn& c, std::string_view m) override { s_->on_text(c, m); }
    void on_rate_limited(Conn& c) override { s_->on_rate_limited(c); }
    void on_close(Conn& c) override { s_->on_close(c); }
    bool rewrites_out() const override { return true; }
    std::string rewrite_out(std::string_view frame) override {
        return socketio_encode_event(frame);
    }

  private:
    std::shared_ptr<SioSession> s_;
};

// Socket.IO alone (no /ws), for the dialect fuzzer: the relay dialect serves the same sessions
// on /socket.io/ in real profiles.
class SocketIoDialect final : public Dialect {
  public:
    explicit SocketIoDialect(const Env& env) : host_(env.host) {
        opts_.auth_timeout_ms = env.host.config_int("relay.auth_timeout", 10000);
    }
    std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) override {
        if (!is_socketio_path(req.path)) {
            refusal.status = 404;
            refusal.body = "not found\n";
            return nullptr;
        }
        return socketio_upgrade(host_, opts_, req, refusal);
    }

  private:
    sdk::Host host_;
    SocketIoOptions opts_;
};

} // namespace

std::unique_ptr<Dialect> make_socketio(const Env& env) {
    if (sodium_init() < 0) return nullptr;
    return std::make_unique<SocketIoDialect>(env);
}

bool is_socketio_path(std::string_view path) {
    return path == "/socket.io/" || path == "/socket.io";
}

std::unique_ptr<Session> socketio_upgrade(const sdk::Host& host, const SocketIoOptions& opts,
                                          const HttpRequest& req, HttpReply& refusal) {
    if (query_param(req.query, "EIO") != "4" ||
        query_param(req.query, "transport") != "websocket" ||
        !query_param(req.query, "sid").empty()) {
        refusal.status = 400;
        refusal.body = "Engine.IO v4 over WebSocket only\n";
        return nullptr;
    }
    return std::make_unique<SioHandle>(std::make_shared<SioSession>(host, opts));
}

std::string socketio_encode_event(std::string_view json_frame) {
    thread_local simdjson::dom::parser parser;
    simdjson::padded_string padded(json_frame);
    simdjson::dom::object obj;
    std::string_view type;
    if (parser.parse(padded).get(obj) != simdjson::SUCCESS ||
        obj["type"].get(type) != simdjson::SUCCESS)
        return {};
    std::string out = R"(42[")" + json_escape(type) + '"';
    simdjson::dom::array args;
    if (obj["args"].get(args) == simdjson::SUCCESS) {
        for (auto a : args)
            out += "," + simdjson::minify(a);
        return out + "]";
    }
    std::string rest;
    for (auto field : obj) {
        if (field.key == "type") continue;
        rest += rest.empty() ? "{\"" : ",\"";
        rest += json_escape(field.key) + "\":" + simdjson::minify(field.value);
    }
    if (!rest.empty()) out += "," + rest + "}";
    return out + "]";
}

bool socketio_decode_event(std::string_view payload, std::string& name, std::string& frame) {
    thread_local simdjson::dom::parser parser;
    simdjson::padded_string padded(payload);
    simdjson::dom::array arr;
    if (parser.parse(padded).get(arr) != simdjson::SUCCESS) return false;
    std::string_view ev;
    bool first = true;
    std::string args;
    for (auto el : arr) {
        if (first) {
            if (el.get(ev) != simdjson::SUCCESS) return false;
            first = false;
            continue;
        }
        if (!args.empty()) args += ',';
        args += simdjson::minify(el);
    }
    if (first || ev.empty() || ev.size() > 64) return false;
    for (char ch : ev)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    name.assign(ev);
    frame = R"({"type":")" + name + R"(","args":[)" + args + "]}";
    return true;
}

} // namespace parley::dialect
