// `link`: the Secure Chat wire protocol (one invite link = one room; the key never leaves the
// browser), plus ByteChat-style extensions an unmodified Secure Chat client never uses:
// optional room passwords (Argon2id, hashed on a worker), directed messages, room info API.
//
//   upgrade   GET /ws/<roomId>?client=<clientId>   roomId [A-Za-z0-9._~-]{1,64},
//             clientId ^[a-z0-9_-]{4,16}$ (case-insensitive)
//   client -> {"type":"message","iv":b64url(12 bytes),"ciphertext":b64url[,"to":clientId]}
//             {"type":"clear_history"}
//             {"type":"auth","password":"..."[,"create":true]}          (extension)
//   server -> {"type":"history","messages":[message...]}                 on connect
//             {"type":"system","event":"connected|joined|left|history_cleared",...}
//             {"type":"message","from","iv","ciphertext","sentAt"}
//             {"type":"history_cleared","by":clientId}
//             {"type":"auth_ok"} / {"type":"error","code","message"}
#include "dialect.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <chrono>
#include <mutex>
#include <unordered_map>

namespace parley::dialect {

namespace {

constexpr int kMaxErrors = 10; // bad envelopes before the client is closed with 1008

bool valid_room(std::string_view r) {
    if (r.empty() || r.size() > 64) return false;
    for (char c : r)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~'))
            return false;
    return true;
}

bool valid_client(std::string_view s) {
    if (s.size() < 4 || s.size() > 16) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

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

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

struct LinkConfig {
    uint32_t history = 10;
    size_t max_ciphertext = 64 * 1024;
    int64_t password_delay_ms = 1000;
    int password_attempts = 5; // failures per minute, per room and per client
    int rooms_per_ip = 100;    // rooms one client address may create per hour (ByteChat)
};

// Rooms created per client key in the current hour window.
class CreationLimit {
  public:
    bool take(uint64_t key, int limit) {
        std::lock_guard lk(mu_);
        auto now = std::chrono::steady_clock::now();
        if (now - window_ > std::chrono::hours(1)) {
            counts_.clear();
            window_ = now;
        }
        return ++counts_[key] <= limit;
    }

  private:
    std::mutex mu_;
    std::unordered_map<uint64_t, int> counts_;
    std::chrono::steady_clock::time_point window_ = std::chrono::steady_clock::now();
};

// Failed password attempts per key in the current minute window.
class Throttle {
  public:
    bool allowed(const std::string& key, int limit) {
        std::lock_guard lk(mu_);
        roll();
        auto it = fails_.find(key);
        return it == fails_.end() || it->second < limit;
    }
    void fail(const std::string& key) {
        std::lock_guard lk(mu_);
        roll();
        ++fails_[key];
    }

  private:
    void roll() {
        auto now = std::chrono::steady_clock::now();
        if (now - window_ > std::chrono::minutes(1)) {
            fails_.clear();
            window_ = now;
        }
    }
    std::mutex mu_;
    std::unordered_map<std::string, int> fails_;
    std::chrono::steady_clock::time_point window_ = std::chrono::steady_clock::now();
};

struct Shared {
    explicit Shared(sdk::Host h) : host(h) {}
    sdk::Host host;
    LinkConfig cfg;
    Throttle throttle;
    CreationLimit creations;
};

class LinkSession final : public Session, public std::enable_shared_from_this<LinkSession> {
  public:
    LinkSession(std::shared_ptr<Shared> sh, std::string room, std::string client)
        : sh_(std::move(sh)), room_(std::move(room)), client_(std::move(client)) {}

    void on_open(Conn& c) override {
        size_t len = 0;
        auto st = host()->room_meta_get(ctx(), sdk::bytes(room_), PARLEY_META_PASSWORD_HASH,
                                        nullptr, 0, &len);
        if (st == PARLEY_OK && len > 0) {
            // Wait silently for {"type":"auth"}: nothing about the room (not even that it wants a
            // password) reaches a client before it proves the password. Clients learn that a
            // password is needed from GET /api/room/<id>/info.
            return;
        }
        join(c);
    }

    void on_text(Conn& c, std::string_view msg) override {
        thread_local simdjson::ondemand::parser parser;
        thread_local std::string buf;
        buf.assign(msg);
        buf.reserve(msg.size() + simdjson::SIMDJSON_PADDING);
        simdjson::ondemand::document doc;
        std::string_view type, iv, ct, to, password;
        bool create = false;
        bool has_to = false;
        // Every field is optional at parse time and checked per type below; unknown fields are
        // ignored so newer clients keep working.
        auto err = parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc);
        simdjson::ondemand::object obj;
        if (!err) err = doc.get_object().get(obj);
        if (!err) {
            for (auto field : obj) {
                std::string_view k;
                if (field.unescaped_key().get(k)) {
                    err = simdjson::TAPE_ERROR;
                    break;
                }
                auto v = field.value();
                if (k == "type")
                    err = v.get_string().get(type);
                else if (k == "iv")
                    err = v.get_string().get(iv);
                else if (k == "ciphertext")
                    err = v.get_string().get(ct);
                else if (k == "to") {
                    has_to = true;
                    err = v.get_string().get(to);
                } else if (k == "password")
                    err = v.get_string().get(password);
                else if (k == "create")
                    err = v.get_bool().get(create);
                if (err) break;
            }
        }
        if (err) return bad(c, "bad_envelope", "expected a JSON object with string fields");
        // The views above point into the parser's string buffer: copy what must outlive it.
        if (type == "message") return on_message(c, iv, ct, has_to, to);
        if (type == "clear_history") return on_clear(c);
        if (type == "auth") return on_auth(c, std::string(password), create);
        if (type == "ping") return c.send_text(R"({"type":"pong"})");
        return bad(c, "unknown_type", "unknown envelope type");
    }

    void on_rate_limited(Conn& c) override {
        c.send_text(R"({"type":"error","code":"rate_limited","message":"slow down"})");
    }

    void on_close(Conn& c) override {
        if (!joined_) return;
        uint32_t left = 0;
        host()->room_leave(ctx(), c.id(), sdk::bytes(room_), &left);
        publish_system(c, "left", left, true);
    }

  private:
    const parley_t_host* host() const { return sh_->host.table(); }
    parley_t_host_ctx_hptr ctx() const { return sh_->host.ctx(); }

    void bad(Conn& c, std::string_view code, std::string_view message) {
        c.send_text(std::string(R"({"type":"error","code":")") + std::string(code) +
                    R"(","message":")" + json_escape(message) + "\"}");
        if (++errors_ >= kMaxErrors) c.close(1008, "too many bad envelopes");
    }

    void join(Conn& c) {
        parley_t_join_result jr{sizeof jr};
        c.hold(true); // live messages wait until the history frame is out
        auto st = host()->room_join(ctx(), c.id(), sdk::bytes(room_), sdk::bytes(client_), &jr);
        if (st != PARLEY_OK) {
            c.hold(false);
            c.send_text(
                R"({"type":"error","code":"room_full","message":"room or connection limit reached"})");
            c.close(1008, "room limit");
            return;
        }
        if (jr.created && !sh_->creations.take(c.peer_key(), sh_->cfg.rooms_per_ip)) {
            host()->room_leave(ctx(), c.id(), sdk::bytes(room_), nullptr);
            c.hold(false);
            c.send_text(
                R"({"type":"error","code":"room_limit","message":"too many rooms created from this address"})");
            c.close(1008, "room creation limit");
            return;
        }
        joined_ = true;
        created_ = jr.created != 0;
        members_ = jr.members;
        struct Fetch {
            std::shared_ptr<Poster> poster;
            uint64_t tag;
            std::shared_ptr<LinkSession> self;
        };
        auto f = std::make_unique<Fetch>(Fetch{c.poster(), c.tag(), shared_from_this()});
        auto fst = host()->history_fetch(
            ctx(), sdk::bytes(room_), sh_->cfg.history, jr.join_seq,
            [](void* u, parley_t_status st, const parley_t_history_entry* e, size_t n) {
                std::unique_ptr<Fetch> f(static_cast<Fetch*>(u));
                std::string frame = R"({"type":"history","messages":[)";
                if (st == PARLEY_OK)
                    for (size_t i = 0; i < n; ++i) {
                        if (i) frame += ',';
                        frame.append(e[i].record.ptr, e[i].record.len);
                    }
                frame += "]}";
                auto self = f->self;
                f->poster->post(
                    f->tag, [self, frame = std::move(frame)](Conn& c) { self->welcome(c, frame); });
            },
            f.get());
        if (fst == PARLEY_OK)
            f.release(); // the callback owns it now
        else
            welcome(c, R"({"type":"history","messages":[]})");
    }

    void welcome(Conn& c, const std::string& history) {
        c.send_text(history);
        c.hold(false);
        c.send_text(R"({"type":"system","event":"connected","clientId":")" + client_ +
                    R"(","members":)" + std::to_string(members_) + R"(,"text":"connected"})");
        publish_system(c, "joined", members_, true);
        // Cluster mode: the notice the other nodes' members get if this node dies with us in it.
        auto bye = sh_->host.frame_of(system_text("left", members_ > 0 ? members_ - 1 : 0));
        host()->room_farewell(ctx(), c.id(), sdk::bytes(room_), bye.get());
    }

    std::string system_text(std::string_view event, uint32_t members) const {
        return R"({"type":"system","event":")" + std::string(event) + R"(","clientId":")" +
               client_ + R"(","members":)" + std::to_string(members) + R"(,"text":")" + client_ +
               " " + std::string(event) + "\"}";
    }

    void publish_system(Conn& c, std::string_view event, uint32_t members, bool except_self) {
        auto f = sh_->host.frame_of(system_text(event, members));
        host()->room_publish(ctx(), sdk::bytes(room_), f.get(), except_self ? c.id() : 0);
    }

    void on_message(Conn& c, std::string_view iv, std::string_view ct, bool has_to,
                    std::string_view to) {
        if (!joined_) return bad(c, "not_joined", "authenticate first");
        // 12 raw bytes are 16 base64url characters (no padding).
        if (iv.size() != 16 || !is_base64url(iv))
            return bad(c, "bad_iv", "iv must be 12 bytes of base64url");
        if (ct.empty() || ct.size() > sh_->cfg.max_ciphertext || !is_base64url(ct))
            return bad(c, "bad_ciphertext", "ciphertext must be non-empty base64url within limits");
        std::string env;
        env.reserve(ct.size() + 128);
        env += R"({"type":"message","from":")";
        env += client_;
        env += R"(","iv":")";
        env += iv;
        env += R"(","ciphertext":")";
        env += ct;
        env += R"(","sentAt":)";
        env += std::to_string(unix_ms());
        if (has_to) {
            // Directed messages are for in-room key exchange: never stored, one recipient.
            if (!valid_client(to)) return bad(c, "bad_recipient", "invalid recipient id");
            env += R"(,"to":")";
            env += lower(to);
            env += "\"}";
            auto f = sh_->host.frame_of(env);
            if (host()->room_send_to_member(ctx(), sdk::bytes(room_), sdk::bytes(lower(to)),
                                            f.get()) != PARLEY_OK)
                bad(c, "no_such_member", "recipient is not in the room");
            return;
        }
        env += '}';
        auto f = sh_->host.frame_of(env);
        struct Done {
            std::shared_ptr<Poster> poster;
            uint64_t tag;
        };
        auto d = std::make_unique<Done>(Done{c.poster(), c.tag()});
        auto st = host()->room_publish_persist(
            ctx(), sdk::bytes(room_), f.get(), c.id(), sdk::bytes(env),
            [](void* u, parley_t_status st) {
                std::unique_ptr<Done> d(static_cast<Done*>(u));
                if (st == PARLEY_OK) return;
                d->poster->post(d->tag, [st](Conn& c) {
                    c.send_text(
                        st == PARLEY_ERR_LIMIT
                            ? R"({"type":"error","code":"store_full","message":"message not stored"})"
                            : R"({"type":"error","code":"unavailable","message":"message not stored"})");
                });
            },
            d.get());
        if (st == PARLEY_OK)
            d.release(); // the completion owns it now
        else if (st == PARLEY_ERR_UNAVAILABLE)
            host()->room_publish(ctx(), sdk::bytes(room_), f.get(), c.id()); // no store: live only
    }

    void on_clear(Conn& c) {
        if (!joined_) return bad(c, "not_joined", "authenticate first");
        struct Done {
            std::shared_ptr<Poster> poster;
            uint64_t tag;
            std::shared_ptr<LinkSession> self;
        };
        auto d = std::make_unique<Done>(Done{c.poster(), c.tag(), shared_from_this()});
        auto st = host()->history_clear(
            ctx(), sdk::bytes(room_),
            [](void* u, parley_t_status st) {
                std::unique_ptr<Done> d(static_cast<Done*>(u));
                auto self = d->self;
                d->poster->post(d->tag, [self, st](Conn& c) { self->cleared(c, st); });
            },
            d.get());
        if (st == PARLEY_OK)
            d.release();
        else
            cleared(c, PARLEY_OK); // nothing stored: clearing is trivially done
    }

    void cleared(Conn& c, parley_t_status st) {
        if (st != PARLEY_OK)
            return c.send_text(
                R"({"type":"error","code":"unavailable","message":"history not cleared"})");
        auto f = sh_->host.frame_of(R"({"type":"history_cleared","by":")" + client_ + "\"}");
        host()->room_publish(ctx(), sdk::bytes(room_), f.get(), 0);
        publish_system(c, "history_cleared",
                       host()->room_members(ctx(), sdk::bytes(room_), nullptr, nullptr), false);
    }

    void on_auth(Conn& c, std::string password, bool create) {
        if (auth_busy_) return bad(c, "busy", "authentication in progress");
        if (password.empty() || password.size() > 1024)
            return bad(c, "bad_password", "password must be 1..1024 bytes");
        std::string room_key = "r:" + room_;
        std::string peer_key = "p:" + std::to_string(c.peer_key());
        if (!sh_->throttle.allowed(room_key, sh_->cfg.password_attempts) ||
            !sh_->throttle.allowed(peer_key, sh_->cfg.password_attempts)) {
            c.send_text(
                R"({"type":"error","code":"too_many_attempts","message":"try again later"})");
            c.close(1008, "too many attempts");
            return;
        }
        std::string stored;
        char buf[crypto_pwhash_STRBYTES];
        size_t len = 0;
        bool has_password =
            host()->room_meta_get(ctx(), sdk::bytes(room_), PARLEY_META_PASSWORD_HASH, buf,
                                  sizeof buf, &len) == PARLEY_OK &&
            len > 0 && len < sizeof buf;
        if (has_password) {
            // Also for create:true: a client re-creating a room after a reconnect proves the
            // password like everyone else.
            if (joined_) return c.send_text(R"({"type":"auth_ok"})");
            stored.assign(buf, len);
            create = false;
        } else if (create) {
            // Only the creator of a fresh room may set its password, and only once.
            if (!joined_ || !created_)
                return bad(c, "not_creator", "only the creator of a new room may set a password");
        } else {
            if (joined_) return c.send_text(R"({"type":"auth_ok"})");
            return join(c); // no password (any more): nothing to check
        }
        auth_busy_ = true;
        struct Job {
            std::shared_ptr<Shared> sh;
            std::shared_ptr<Poster> poster;
            uint64_t tag;
            std::shared_ptr<LinkSession> self;
            std::string password;
            std::string stored;
            bool create;
            bool ok = false;
            std::string hash;
        };
        auto job = std::make_unique<Job>(Job{sh_, c.poster(), c.tag(), shared_from_this(),
                                             std::move(password), std::move(stored), create});
        auto st = host()->work_submit(
            ctx(),
            [](void* u) {
                std::unique_ptr<Job> j(static_cast<Job*>(u));
                if (j->create) {
                    char out[crypto_pwhash_STRBYTES];
                    j->ok = crypto_pwhash_str(out, j->password.data(), j->password.size(),
                                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                              crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
                    if (j->ok) j->hash = out;
                } else {
                    j->ok = crypto_pwhash_str_verify(j->stored.c_str(), j->password.data(),
                                                     j->password.size()) == 0;
                }
                sodium_memzero(j->password.data(), j->password.size());
                auto self = j->self;
                auto poster = j->poster;
                auto tag = j->tag;
                std::shared_ptr<Job> job(std::move(j));
                poster->post(tag, [self, job](Conn& c) { self->auth_done(c, *job); });
            },
            job.get());
        if (st == PARLEY_OK) {
            job.release(); // the worker owns it now
        } else {
            sodium_memzero(job->password.data(), job->password.size());
            auth_busy_ = false;
            c.send_text(R"({"type":"error","code":"busy","message":"server busy, retry"})");
        }
    }

    template <typename Job> void auth_done(Conn& c, const Job& j) {
        if (j.create) {
            auth_busy_ = false;
            if (!j.ok ||
                host()->room_meta_set(ctx(), sdk::bytes(room_), PARLEY_META_PASSWORD_HASH,
                                      sdk::bytes(j.hash), PARLEY_META_SET_ONCE) != PARLEY_OK)
                return c.send_text(
                    R"({"type":"error","code":"password_not_set","message":"room already has a password"})");
            return c.send_text(R"({"type":"auth_ok"})");
        }
        if (j.ok) {
            auth_busy_ = false;
            c.send_text(R"({"type":"auth_ok"})");
            return join(c);
        }
        sh_->throttle.fail("r:" + room_);
        sh_->throttle.fail("p:" + std::to_string(c.peer_key()));
        // A fixed delay before answering makes guessing slow without holding a worker.
        struct Late {
            std::shared_ptr<Poster> poster;
            uint64_t tag;
            std::shared_ptr<LinkSession> self;
        };
        auto late = std::make_unique<Late>(Late{c.poster(), c.tag(), shared_from_this()});
        host()->timer_start(
            ctx(), uint64_t(sh_->cfg.password_delay_ms), 0,
            [](void* u) {
                std::unique_ptr<Late> l(static_cast<Late*>(u));
                auto self = l->self;
                l->poster->post(l->tag, [self](Conn& c) {
                    self->auth_busy_ = false;
                    c.send_text(
                        R"({"type":"error","code":"bad_password","message":"wrong password"})");
                    c.close(1008, "wrong password");
                });
            },
            late.release()); // the one-shot timer callback owns it
    }

    std::shared_ptr<Shared> sh_;
    std::string room_;
    std::string client_;
    bool joined_ = false;
    bool created_ = false;
    bool auth_busy_ = false;
    uint32_t members_ = 0;
    int errors_ = 0;
};

// Sessions are shared_ptr-owned (async completions hold them); the transport owns a thin
// unique_ptr wrapper.
class SessionHandle final : public Session {
  public:
    explicit SessionHandle(std::shared_ptr<LinkSession> s) : s_(std::move(s)) {}
    void on_open(Conn& c) override { s_->on_open(c); }
    void on_text(Conn& c, std::string_view m) override { s_->on_text(c, m); }
    void on_rate_limited(Conn& c) override { s_->on_rate_limited(c); }
    void on_close(Conn& c) override { s_->on_close(c); }

  private:
    std::shared_ptr<LinkSession> s_;
};

class Link final : public Dialect {
  public:
    explicit Link(const Env& env) : sh_(std::make_shared<Shared>(env.host)) {
        auto& h = sh_->host;
        sh_->cfg.history = uint32_t(h.config_int("link.history", 10));
        sh_->cfg.max_ciphertext = size_t(h.config_int("link.max_ciphertext", 64 * 1024));
        sh_->cfg.password_delay_ms = h.config_int("link.password_delay", 1000);
        sh_->cfg.password_attempts = int(h.config_int("link.password_attempts", 5));
        sh_->cfg.rooms_per_ip = int(h.config_int("link.rooms_per_ip", 100));
    }

    std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) override {
        constexpr std::string_view prefix = "/ws/";
        if (req.path.substr(0, prefix.size()) != prefix) {
            refusal.status = 404;
            refusal.body = "API OK";
            return nullptr;
        }
        auto room = req.path.substr(prefix.size());
        auto client = query_param(req.query, "client");
        if (!valid_room(room) || !valid_client(client)) {
            refusal.status = 400;
            refusal.body = "invalid room or client id\n";
            return nullptr;
        }
        return std::make_unique<SessionHandle>(
            std::make_shared<LinkSession>(sh_, std::string(room), lower(client)));
    }

    bool http(const HttpRequest& req, HttpReply& rep) override {
        auto p = req.path;
        if (req.method != "GET" && req.method != "HEAD") return false;
        if (p == "/new_chat" || (p.starts_with("/room/") && valid_room(p.substr(6)))) {
            rep.file = "index.html";
            return true;
        }
        constexpr std::string_view api = "/api/room/";
        if (p.starts_with(api) && p.ends_with("/info")) {
            auto room = p.substr(api.size(), p.size() - api.size() - 5);
            if (!valid_room(room)) {
                rep.status = 400;
                rep.content_type = "application/json";
                rep.body = R"({"error":"invalid room id"})";
                return true;
            }
            auto& h = sh_->host;
            uint32_t members = h.table()->room_members(h.ctx(), sdk::bytes(room), nullptr, nullptr);
            size_t len = 0;
            bool exists =
                h.table()->room_meta_get(h.ctx(), sdk::bytes(room), PARLEY_META_PASSWORD_HASH,
                                         nullptr, 0, &len) != PARLEY_ERR_NOT_FOUND ||
                members > 0;
            bool pw = len > 0;
            rep.content_type = "application/json";
            rep.body = std::string(R"({"exists":)") + (exists ? "true" : "false") +
                       R"(,"members":)" + std::to_string(members) + R"(,"passwordRequired":)" +
                       (pw ? "true" : "false") + "}";
            return true;
        }
        if (p == "/") {
            rep.body = "API OK";
            return true;
        }
        return false;
    }

    std::string csp() const override {
        return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'";
    }

  private:
    std::shared_ptr<Shared> sh_;
};

} // namespace

std::unique_ptr<Dialect> make_link(const Env& env) {
    if (sodium_init() < 0) return nullptr;
    return std::make_unique<Link>(env);
}

} // namespace parley::dialect
