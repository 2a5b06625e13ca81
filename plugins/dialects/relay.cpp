// `relay`: the WebSocket side of the relay profile (Relay's join_blob/refresh and its call
// signaling), behind an admission guard: a client proves it holds an allowlisted Ed25519 key
// before anything else. The contract (also in docs/relay-identities.md):
//
//   upgrade   GET /ws
//   server -> {"type":"challenge","nonce":"<base64 of 32 random bytes>"}        on open
//   client -> {"type":"auth","publicKey":"<b64 raw Ed25519 pk>","signature":"<b64 sig>"}
//             signature over the UTF-8 bytes of "parley-relay-auth-v1\n" + nonce
//   server -> {"type":"authed","keyHash":"<64 hex>"}
//             or {"type":"error","error":"authentication failed"} + close 1008, whatever failed
//   client -> {"type":"join_blob"} / {"type":"leave_blob"}   room blob:<own key hash> only
//   server -> {"type":"refresh"}                            published by the relay plugin
//   client -> {"type":T,...}   any other T: kernel command `call.T` (conn, identity, args =
//             the frame's text); unregistered -> {"type":"error","error":"unknown type"}
//
// The allowlist lives in the relay plugin: the dialect asks it through the command bus
// (`relay.allowed`, call.identity = key hash), so transports need no relay state of their own.
#include "relay.hpp"
#include "socketio.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <atomic>
#include <memory>
#include <optional>

namespace parley::dialect {

namespace {

constexpr std::string_view kAuthFailed = R"({"type":"error","error":"authentication failed"})";
constexpr std::string_view kUnknownType = R"({"type":"error","error":"unknown type"})";
constexpr int kMaxErrors = 10; // bad frames after auth before the client is closed with 1008
constexpr size_t kNonceBytes = 32;

struct Shared {
    explicit Shared(sdk::Host h) : host(h) {}
    sdk::Host host;
    int64_t auth_timeout_ms = 10000;
    parley_t_metric_hptr m_authed = nullptr;
    parley_t_metric_hptr m_refused = nullptr;
    std::atomic<bool> warned_no_relay{false};
};

// Command names are "call." + the frame type: keep them short and unambiguous.
bool valid_type(std::string_view t) {
    if (t.empty() || t.size() > 64) return false;
    for (char c : t)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    return true;
}

// The fields the dialect itself reads; everything else is left to the services.
struct RelayFrame {
    std::string_view type;
    std::optional<std::string_view> public_key, signature, key_hash;
};

// Parses a JSON object and picks out the fields above. The views point into a thread-local
// buffer: valid until the next call on this thread.
bool parse_frame(std::string_view msg, RelayFrame& f) {
    thread_local simdjson::ondemand::parser parser;
    thread_local std::string buf;
    buf.assign(msg);
    buf.reserve(msg.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    auto err = parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc);
    simdjson::ondemand::object obj;
    if (!err) err = doc.get_object().get(obj);
    if (err) return false;
    bool have_type = false;
    for (auto field : obj) {
        std::string_view k;
        if (field.unescaped_key().get(k)) return false;
        auto v = field.value();
        std::string_view s;
        if (k == "type") {
            if (v.get_string().get(s)) return false;
            f.type = s;
            have_type = true;
        } else if (k == "publicKey" || k == "signature" || k == "keyHash") {
            // A non-string here is left unset; the handler then refuses the frame.
            if (v.get_string().get(s)) continue;
            (k == "publicKey" ? f.public_key : k == "signature" ? f.signature : f.key_hash) = s;
        }
    }
    return have_type;
}

} // namespace

std::optional<std::string> relay_b64_decode(std::string_view in, size_t max) {
    std::string out(max, '\0');
    size_t len = 0;
    for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING})
        if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                              in.size(), nullptr, &len, nullptr, variant) == 0) {
            out.resize(len);
            return out;
        }
    return std::nullopt;
}

std::string relay_b64(std::string_view raw) {
    std::string out(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                      raw.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1); // the terminating NUL
    return out;
}

std::string relay_lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out)
        if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
    return out;
}

bool relay_allowed(const sdk::Host& host, parley_t_conn_id conn, const std::string& key_hash) {
    parley_t_command_call call{};
    call.struct_size = sizeof call;
    call.conn = conn;
    call.identity = sdk::bytes(key_hash);
    return host.table()->command_call(host.ctx(), sdk::bytes("relay.allowed"), &call) == PARLEY_OK;
}

std::string relay_positional_hash(std::string_view msg, size_t index) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    std::string_view kh;
    if (parser.parse(simdjson::padded_string(msg)).get(root) != simdjson::SUCCESS ||
        root["args"].at(index).get(kh) != simdjson::SUCCESS)
        return {};
    return relay_lower(kh);
}

std::string relay_key_hash(std::string_view raw_pk) {
    auto text = relay_b64(raw_pk);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(text.data()), text.size());
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    return std::string(hex, crypto_hash_sha256_BYTES * 2);
}

std::string relay_auth_message(std::string_view nonce) {
    return std::string(kRelayAuthPrefix) + std::string(nonce);
}

RelayProof relay_check_proof(std::string_view nonce, std::string_view pk_b64,
                             std::string_view sig_b64) {
    RelayProof proof;
    auto pk = relay_b64_decode(pk_b64, 64);
    auto sig = relay_b64_decode(sig_b64, 128);
    if (!pk || pk->size() != crypto_sign_PUBLICKEYBYTES || !sig || sig->size() != crypto_sign_BYTES)
        return proof;
    proof.well_formed = true;
    auto msg = relay_auth_message(nonce);
    proof.signature_ok =
        crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                    reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                    reinterpret_cast<const unsigned char*>(pk->data())) == 0;
    proof.key_hash = relay_key_hash(*pk);
    return proof;
}

namespace {

class RelaySession final : public std::enable_shared_from_this<RelaySession> {
  public:
    explicit RelaySession(std::shared_ptr<Shared> sh) : sh_(std::move(sh)) {}
    ~RelaySession() { cancel_timeout(); }

    void on_open(Conn& c) {
        unsigned char raw[kNonceBytes];
        randombytes_buf(raw, sizeof raw);
        nonce_ = relay_b64(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
        c.send_text(R"({"type":"challenge","nonce":")" + nonce_ + "\"}");
        // With the relay plugin in compat mode, clients may skip the proof (as Relay's own
        // server lets them; see docs/calls.md): no admission deadline then.
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        compat_ = host()->command_call(ctx(), sdk::bytes("relay.compat"), &call) == PARLEY_OK;
        if (!compat_) arm_timeout(c);
    }

    void on_text(Conn& c, std::string_view msg) {
        if (state_ == State::failed) return;
        RelayFrame f;
        bool ok = parse_frame(msg, f);
        if (state_ == State::waiting) {
            if (compat_ && ok && f.type != "auth" && valid_type(f.type)) {
                state_ = State::compat; // unproven, identified by the key hashes it claims
            } else {
                // Anything but a well-formed auth frame fails admission, with the same answer.
                if (!ok || f.type != "auth" || !f.public_key || !f.signature) return refuse(c);
                return authenticate(c, *f.public_key, *f.signature);
            }
        }
        if (!ok || !valid_type(f.type)) return bad(c, "invalid frame");
        if (f.type == "auth") return bad(c, "already authenticated");
        std::string identity = key_hash_;
        if (state_ == State::compat) {
            // join_blob/leave_blob name the box; join_room names the caller ("keyHash", or
            // Relay's positional args[1]), which later events carry. Only allowlisted claims.
            std::string kh = f.key_hash ? relay_lower(*f.key_hash) : std::string();
            if (f.type == "join_blob" || f.type == "leave_blob") {
                if (kh.empty()) return bad(c, "keyHash required");
                if (f.type == "leave_blob") return kh == blob_hash_ ? leave_blob(c) : void();
                if (!relay_allowed(sh_->host, c.id(), kh)) return bad(c, "not allowed");
                if (in_blob_ && kh != blob_hash_) leave_blob(c);
                return join_blob(c, kh);
            }
            if (f.type == "join_room") {
                if (kh.empty()) kh = relay_positional_hash(msg, 1);
                if (!kh.empty() && relay_allowed(sh_->host, c.id(), kh)) key_hash_ = kh;
                // An unlisted claim goes on with no identity: the service refuses the join.
                identity = kh == key_hash_ ? key_hash_ : std::string();
            }
        } else if (f.type == "join_blob" || f.type == "leave_blob") {
            // Relay's clients name the key hash; only their own box may be watched.
            if (f.key_hash && relay_lower(*f.key_hash) != key_hash_) return bad(c, "not allowed");
            return f.type == "join_blob" ? join_blob(c, key_hash_) : leave_blob(c);
        }
        std::string name = "call." + std::string(f.type);
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        call.args = sdk::bytes(msg);
        call.identity = sdk::bytes(identity);
        auto st = host()->command_call(ctx(), sdk::bytes(name), &call);
        // Not counted as a bad frame: a client may know events this profile does not serve.
        if (st == PARLEY_ERR_NOT_FOUND) c.send_text(kUnknownType);
        // Other statuses: the service answered (or chose not to) with send_to.
    }

    void on_binary(Conn& c) {
        if (state_ == State::waiting) return refuse(c);
        c.close(1003, "binary frames not accepted");
    }

    void on_rate_limited(Conn& c) {
        if (state_ == State::authed || state_ == State::compat)
            c.send_text(R"({"type":"error","error":"rate limited"})");
    }

    void on_close(Conn& c) {
        // Rooms are left by the kernel. Services that track connections (call signaling) hear
        // about admitted ones going away; a client cannot send this name itself.
        cancel_timeout();
        if (state_ != State::authed && state_ != State::compat) return;
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        call.args = sdk::bytes(R"({"type":"closed"})");
        call.identity = sdk::bytes(key_hash_);
        host()->command_call(ctx(), sdk::bytes("relay.closed"), &call);
        state_ = State::failed;
    }

  private:
    enum class State { waiting, authed, compat, failed };

    const parley_t_host* host() const { return sh_->host.table(); }
    parley_t_host_ctx_hptr ctx() const { return sh_->host.ctx(); }

    // One-shot; its state is owned by the session and the timer cancelled with it, so nothing
    // is left behind when the connection (or the host) goes away before it fires.
    struct Late {
        std::shared_ptr<Poster> poster;
        uint64_t tag;
        std::weak_ptr<RelaySession> self;
    };
    void arm_timeout(Conn& c) {
        late_ = std::make_unique<Late>(Late{c.poster(), c.tag(), weak_from_this()});
        timer_ = host()->timer_start(
            ctx(), uint64_t(sh_->auth_timeout_ms), 0,
            [](void* u) {
                auto* l = static_cast<Late*>(u);
                auto self = l->self.lock();
                if (!self) return; // the connection is gone
                l->poster->post(l->tag, [self](Conn& c) {
                    if (self->state_ == State::waiting) self->refuse(c);
                });
            },
            late_.get());
    }
    void cancel_timeout() {
        if (timer_) host()->timer_cancel(ctx(), timer_);
        timer_ = 0;
        late_.reset();
    }

    void authenticate(Conn& c, std::string_view pk_b64, std::string_view sig_b64) {
        auto proof = relay_check_proof(nonce_, pk_b64, sig_b64);
        if (!proof.well_formed) return refuse(c);
        // Ask the allowlist even when the signature is bad, so both refusals cost the same.
        std::string hash = std::move(proof.key_hash);
        parley_t_command_call call{};
        call.struct_size = sizeof call;
        call.conn = c.id();
        call.identity = sdk::bytes(hash);
        auto st = host()->command_call(ctx(), sdk::bytes("relay.allowed"), &call);
        if (st == PARLEY_ERR_NOT_FOUND && !sh_->warned_no_relay.exchange(true))
            sh_->host.log(PARLEY_LOG_WARN,
                          "relay dialect: no relay plugin has registered relay.allowed (yet): "
                          "admissions are refused; list the relay instance before the transport");
        bool allowed = st == PARLEY_OK;
        if (!proof.signature_ok || !allowed) return refuse(c);
        state_ = State::authed;
        key_hash_ = std::move(hash);
        nonce_.clear(); // one answer per challenge
        sh_->host.add(sh_->m_authed);
        c.send_text(R"({"type":"authed","keyHash":")" + key_hash_ + "\"}");
    }

    void refuse(Conn& c) {
        state_ = State::failed;
        sh_->host.add(sh_->m_refused);
        c.send_text(kAuthFailed);
        c.close(1008, "authentication failed");
    }

    void bad(Conn& c, std::string_view error) {
        c.send_text(R"({"type":"error","error":")" + json_escape(error) + "\"}");
        if (++errors_ >= kMaxErrors) {
            state_ = State::failed;
            c.close(1008, "too many bad frames");
        }
    }

    void join_blob(Conn& c, const std::string& hash) {
        if (in_blob_) return;
        parley_t_join_result jr{};
        jr.struct_size = sizeof jr;
        auto st = host()->room_join(ctx(), c.id(), sdk::bytes("blob:" + hash), sdk::bytes(""), &jr);
        if (st == PARLEY_OK || st == PARLEY_ERR_EXISTS) {
            in_blob_ = true;
            blob_hash_ = hash;
        } else {
            bad(c, "join_blob refused");
        }
    }

    void leave_blob(Conn& c) {
        if (!in_blob_) return;
        host()->room_leave(ctx(), c.id(), sdk::bytes("blob:" + blob_hash_), nullptr);
        in_blob_ = false;
    }

    std::shared_ptr<Shared> sh_;
    State state_ = State::waiting;
    std::string nonce_;
    std::string key_hash_, blob_hash_;
    bool in_blob_ = false, compat_ = false;
    int errors_ = 0;
    std::unique_ptr<Late> late_;
    uint64_t timer_ = 0;
};

// Sessions are shared_ptr-owned (the auth timer holds a weak reference); the transport owns a
// thin unique_ptr wrapper.
class SessionHandle final : public Session {
  public:
    explicit SessionHandle(std::shared_ptr<RelaySession> s) : s_(std::move(s)) {}
    void on_open(Conn& c) override { s_->on_open(c); }
    void on_text(Conn& c, std::string_view m) override { s_->on_text(c, m); }
    void on_binary(Conn& c, std::string_view) override { s_->on_binary(c); }
    void on_rate_limited(Conn& c) override { s_->on_rate_limited(c); }
    void on_close(Conn& c) override { s_->on_close(c); }

  private:
    std::shared_ptr<RelaySession> s_;
};

class Relay final : public Dialect {
  public:
    explicit Relay(const Env& env) : sh_(std::make_shared<Shared>(env.host)) {
        auto& h = sh_->host;
        sh_->auth_timeout_ms = h.config_int("relay.auth_timeout", 10000);
        sh_->m_authed =
            h.counter("parley_relay_ws_authed_total", "WebSocket clients that proved their key.");
        sh_->m_refused = h.counter("parley_relay_ws_auth_refused_total",
                                   "WebSocket clients refused admission (any reason).");
    }

    std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) override {
        if (is_socketio_path(req.path)) { // Relay's own app (signaling helper, socketio.cpp)
            SocketIoOptions o;
            o.auth_timeout_ms = sh_->auth_timeout_ms;
            return socketio_upgrade(sh_->host, o, req, refusal);
        }
        if (req.path != "/ws") {
            refusal.status = 404;
            refusal.body = "not found\n";
            return nullptr;
        }
        return std::make_unique<SessionHandle>(std::make_shared<RelaySession>(sh_));
    }

    // The web client's page at `/` (web_root/index.html); its other files are served as static.
    bool http(const HttpRequest& req, HttpReply& rep) override {
        if ((req.method != "GET" && req.method != "HEAD") || req.path != "/") return false;
        rep.file = "index.html";
        return true;
    }

    std::string csp() const override {
        // The relay web client shows decrypted images and files from blob: URLs.
        return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: "
               "blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'; object-src 'none'; "
               "require-trusted-types-for 'script'";
    }

  private:
    std::shared_ptr<Shared> sh_;
};

} // namespace

std::unique_ptr<Dialect> make_relay(const Env& env) {
    if (sodium_init() < 0) return nullptr;
    return std::make_unique<Relay>(env);
}

} // namespace parley::dialect
