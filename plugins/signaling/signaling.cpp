// signaling: WebRTC call rooms for the relay profile (and any profile that enables it).
//
// Clients reach it through a dialect that proved their identity (relay WebSocket or Socket.IO):
// every event T arrives as kernel command `call.T` with call.identity = the proven key hash and
// call.args = `{"type":"T","args":[...]}` (Socket.IO's argument list) or named fields. Events
// and payloads follow Relay's socket.js so its client logic maps one to one; replies go out with
// host->send_to as `{"type":"<event>","args":[...]}`. The gateway only relays offers, answers
// and ICE candidates (opaque, possibly end-to-end encrypted); media never passes through it.
//
// Who may join a call room is decided here from proven identities, never from the first
// joiner's claim (Relay's squatting bug): rooms listed in config have a fixed ACL; Relay's
// derived room ids ("room-" + base64url(SHA-256(sorted key hashes joined by ","))) must match
// the member list the joiner presents, which must contain the joiner; other rooms admit any
// proven circle member (acl: auto), or nobody (acl: config).
#include <parley/sdk.hpp>

#include "json_escape.hpp"
#include "turn.hpp"

#include <simdjson.h>
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace parley::sdk;
using parley::json_escape;

constexpr parley_t_config_key kRoomKeys[] = {
    key("name", PARLEY_CFG_STRING, nullptr, "Call room id.", PARLEY_CFG_REQUIRED),
    key_list("members", PARLEY_CFG_STRING, "Key hashes (64 hex) allowed to join this room."),
};

constexpr parley_t_config_key kConfig[] = {
    key_enum("acl", "auto|derived|circle|config", "auto",
             "Rooms not listed in `rooms`: auto = Relay's derived ids (room-...) must match the "
             "presented member list, any other id admits any proven member; derived = every room "
             "must be derived; circle = any proven member; config = only listed rooms."),
    key_list_of_maps("rooms", kRoomKeys, "Call rooms with a fixed ACL (name, members)."),
    key_range("max_members", PARLEY_CFG_INT, "8", 2, 64,
              "Most members in one call room (a mesh: every pair negotiates)."),
    key_range("max_rooms_per_conn", PARLEY_CFG_INT, "4", 1, 64,
              "Most call rooms one connection may be in."),
    key_range("max_signal", PARLEY_CFG_SIZE, "64K", 1024, 1024 * 1024,
              "Largest signaling frame (SDP, candidate, encrypted blob) relayed."),
    key_range("rate", PARLEY_CFG_INT, "50", 1, 100000, "Call events per second per connection."),
    key_range("burst", PARLEY_CFG_INT, "200", 1, 100000,
              "Call events a connection may send at once before `rate` applies."),
    key_list("turn_urls", PARLEY_CFG_STRING,
             "TURN/STUN URLs handed out with credentials, e.g. turn:turn.example.org:3478."),
    key("turn_secret", PARLEY_CFG_STRING, "",
        "coturn's static-auth-secret (use-auth-secret). Prefer turn_secret_file.",
        PARLEY_CFG_SECRET),
    key("turn_secret_file", PARLEY_CFG_STRING, "",
        "File whose first line is coturn's static-auth-secret; re-read on reload and when it "
        "changes."),
    key_range("turn_ttl", PARLEY_CFG_DURATION, "6h", 60 * 1000, 7LL * 24 * 3600 * 1000,
              "Lifetime of issued TURN credentials."),
    key_range("secret_poll", PARLEY_CFG_DURATION, "10s", 0, 3600 * 1000,
              "How often turn_secret_file's modification time is checked; 0 = only on reload."),
};

constexpr std::string_view kNotAllowed = "Not allowed to join this call.";

struct Settings {
    enum class Acl { Auto, Derived, Circle, Config } acl = Acl::Auto;
    std::map<std::string, std::set<std::string>> rooms;
    uint32_t max_members = 8;
    uint32_t max_rooms_per_conn = 4;
    size_t max_signal = 64 * 1024;
    double rate = 50, burst = 200;
    std::vector<std::string> turn_urls;
    std::string secret_inline, secret_file;
    int64_t ttl_s = 6 * 3600;
    uint64_t poll_ms = 10000;
};

struct Member {
    std::string id;
    std::string key; // proven key hash
};

struct Room {
    std::map<parley_t_conn_id, Member> members; // ordered: stable member lists
};

struct ConnState {
    std::string identity;
    std::set<std::string> rooms;
    double tokens = 0;
    std::chrono::steady_clock::time_point at{};
};

using Out = std::vector<std::pair<parley_t_conn_id, std::string>>;

bool is_key_hash(std::string_view s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

bool valid_room(std::string_view r) {
    if (r.empty() || r.size() > 128) return false;
    return std::all_of(r.begin(), r.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == ':';
    });
}

// Relay's getRoomIdForConversation: "room-" + base64url(SHA-256(sorted hashes joined by ",")).
std::string derived_room_id(std::vector<std::string> keys) {
    std::sort(keys.begin(), keys.end());
    std::string in;
    for (size_t i = 0; i < keys.size(); ++i) {
        if (i) in += ',';
        in += keys[i];
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(in.data()), in.size());
    char b64[sodium_base64_ENCODED_LEN(sizeof h, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(b64, sizeof b64, h, sizeof h, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return "room-" + std::string(b64);
}

std::string frame(std::string_view type, std::string_view args_json) {
    std::string s;
    s.reserve(args_json.size() + type.size() + 24);
    s += R"({"type":")";
    s += type;
    s += R"(","args":[)";
    s += args_json;
    s += "]}";
    return s;
}

std::string error_frame(std::string_view event, std::string_view msg) {
    return R"({"type":"error","error":")" + json_escape(msg) + R"(","event":")" +
           json_escape(event) + R"("})";
}

// One parsed command: positional Socket.IO args, or named fields of the frame.
struct Args {
    simdjson::dom::element root;
    simdjson::dom::array list;
    bool positional = false;

    simdjson::simdjson_result<simdjson::dom::element> get(size_t i, const char* name) const {
        if (positional) return list.at(i);
        return root[name];
    }
    std::optional<std::string_view> str(size_t i, const char* name) const {
        std::string_view v;
        if (get(i, name).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
};

class Signaling;

struct CommandEntry {
    const char* name;
    const char* event;
    void (Signaling::*fn)(parley_t_conn_id, const std::string&, const Args&, Out&);
};

class Signaling final : public Plugin {
  public:
    explicit Signaling(Host h) : Plugin(h) {
        if (sodium_init() < 0) throw std::runtime_error("libsodium init failed");
        m_joins_ = h.counter("parley_signaling_joins_total", "Call room joins accepted.");
        m_refused_ =
            h.counter("parley_signaling_refused_total", "Call events refused (ACL, size, rate).");
        m_signals_ = h.counter("parley_signaling_signals_total", "Signals relayed.");
        m_turn_ = h.counter("parley_signaling_turn_credentials_total", "TURN credentials issued.");
        m_rooms_ = h.gauge("parley_signaling_rooms", "Open call rooms.");
        std::string err;
        if (!load_settings(err)) throw std::runtime_error(err);
    }

    parley_t_status start() override {
        static const CommandEntry kCommands[] = {
            {"call.join_room", "join_room", &Signaling::on_join},
            {"call.leave_room", "leave_room", &Signaling::on_leave},
            {"call.signal", "signal", &Signaling::on_signal},
            {"call.call_state", "call_state", &Signaling::on_call_state},
            {"call.members", "members", &Signaling::on_members},
            {"call.turn_credentials", "turn_credentials", &Signaling::on_turn},
            // The relay and Socket.IO dialects call this when a proven connection closes;
            // clients cannot send it (their events are all named call.*).
            {"relay.closed", "closed", &Signaling::on_disconnect},
        };
        slots_.reserve(std::size(kCommands)); // registered pointers must stay valid
        for (auto& c : kCommands) {
            slots_.push_back({this, &c});
            auto st = host().table()->command_register(host().ctx(), bytes(c.name), &dispatch,
                                                       &slots_.back());
            if (st != PARLEY_OK) {
                host().set_error(std::string("command ") + c.name + " is already registered");
                return st;
            }
        }
        arm_poll();
        auto s = settings();
        host().logf(PARLEY_LOG_INFO, "signaling started: %zu configured rooms, TURN %s",
                    s->rooms.size(), secret().empty() ? "off" : "on");
        return PARLEY_OK;
    }

    void stop() override { disarm_poll(); }

    parley_t_status reload() override {
        std::string err;
        if (!load_settings(err)) {
            host().set_error(err + " (keeping the previous settings)");
            return PARLEY_ERR;
        }
        disarm_poll();
        arm_poll();
        return PARLEY_OK;
    }

  private:
    struct Slot {
        Signaling* self;
        const CommandEntry* entry;
    };

    static parley_t_status dispatch(void* user, const parley_t_command_call* call) {
        auto* slot = static_cast<Slot*>(user);
        return slot->self->handle(*slot->entry, call);
    }

    parley_t_status handle(const CommandEntry& e, const parley_t_command_call* call) {
        std::string_view event = e.event;
        std::string identity(view(call->identity));
        parley_t_conn_id conn = call->conn;
        Out out;
        bool internal = event == "closed";
        if (!internal) {
            if (!conn) return PARLEY_ERR_INVALID;
            // The allowlist is asked again where access is granted (joins, TURN); relaying
            // within a call needs only the proof the dialect made.
            bool grants = event == "join_room" || event == "turn_credentials";
            if (identity.empty() || (grants && !identity_allowed(identity))) {
                host().add(m_refused_);
                out.emplace_back(conn,
                                 event == "join_room"
                                     ? frame("room_join_error",
                                             R"({"message":")" + std::string(kNotAllowed) + R"("})")
                                     : error_frame(event, "authentication required"));
                flush(out);
                return PARLEY_ERR_DENIED;
            }
            if (!take_token(conn)) {
                host().add(m_refused_);
                out.emplace_back(conn, error_frame(event, "rate limited"));
                flush(out);
                return PARLEY_ERR_LIMIT;
            }
        }
        auto s = settings();
        std::string_view raw = view(call->args);
        if (raw.size() > s->max_signal) {
            host().add(m_refused_);
            out.emplace_back(conn, error_frame(event, "payload too large"));
            flush(out);
            return PARLEY_ERR_LIMIT;
        }
        thread_local simdjson::dom::parser parser;
        Args a;
        if (raw.empty() && !internal) {
            out.emplace_back(conn, error_frame(event, "malformed"));
            flush(out);
            return PARLEY_ERR_INVALID;
        }
        if (!raw.empty()) {
            simdjson::padded_string padded(raw);
            if (parser.parse(padded).get(a.root) != simdjson::SUCCESS || !a.root.is_object()) {
                out.emplace_back(conn, error_frame(event, "malformed"));
                flush(out);
                return PARLEY_ERR_INVALID;
            }
            a.positional = a.root["args"].get(a.list) == simdjson::SUCCESS;
            (this->*e.fn)(conn, identity, a, out);
        } else {
            (this->*e.fn)(conn, identity, a, out);
        }
        flush(out);
        return PARLEY_OK;
    }

    // ---- events ----

    void on_join(parley_t_conn_id conn, const std::string& me, const Args& a, Out& out) {
        auto s = settings();
        auto refuse = [&](std::string_view msg) {
            host().add(m_refused_);
            out.emplace_back(
                conn, frame("room_join_error", R"({"message":")" + json_escape(msg) + R"("})"));
        };
        auto room = a.str(0, "roomId");
        if (!room || !valid_room(*room)) return refuse(kNotAllowed);
        // Relay's client also sends its key hash: a claim that must match the proof.
        auto claimed = a.str(1, "keyHash");
        if (claimed && !claimed->empty() && *claimed != me) return refuse(kNotAllowed);
        std::vector<std::string> presented;
        simdjson::dom::array list;
        if (a.get(2, "allowedKeyHashes").get(list) == simdjson::SUCCESS) {
            for (auto el : list) {
                std::string_view k;
                if (el.get(k) == simdjson::SUCCESS && is_key_hash(k) && presented.size() < 100)
                    presented.emplace_back(k);
            }
        }
        std::string rid(*room);
        bool in_presented = std::find(presented.begin(), presented.end(), me) != presented.end();
        if (auto it = s->rooms.find(rid); it != s->rooms.end()) {
            if (!it->second.count(me)) return refuse(kNotAllowed);
        } else {
            using Acl = Settings::Acl;
            if (s->acl == Acl::Config) return refuse(kNotAllowed);
            if (!presented.empty() && !in_presented) return refuse(kNotAllowed);
            bool need_derived =
                s->acl == Acl::Derived || (s->acl == Acl::Auto && rid.rfind("room-", 0) == 0);
            if (need_derived && (!in_presented || derived_room_id(presented) != rid))
                return refuse(kNotAllowed);
        }
        std::string my_id = std::to_string(conn);
        std::lock_guard lk(mu_);
        auto& cs = conns_[conn];
        cs.identity = me;
        Room& r = rooms_[rid];
        if (!r.members.count(conn)) {
            if (r.members.size() >= s->max_members || cs.rooms.size() >= s->max_rooms_per_conn) {
                if (r.members.empty()) rooms_.erase(rid);
                host().add(m_refused_);
                out.emplace_back(conn, frame("room_join_error", R"({"message":"Call is full."})"));
                return;
            }
            r.members[conn] = Member{my_id, me};
            cs.rooms.insert(rid);
            host().add(m_joins_);
            std::string joined = R"({"id":")" + my_id + R"(","keyHash":")" + me + R"("})";
            for (auto& [c, m] : r.members)
                if (c != conn) out.emplace_back(c, frame("peer_joined", joined));
        }
        out.emplace_back(conn, frame("members", members_json(r, conn)));
        host().set(m_rooms_, int64_t(rooms_.size()));
    }

    void on_leave(parley_t_conn_id conn, const std::string&, const Args& a, Out& out) {
        auto room = a.str(0, "roomId");
        if (!room)
            return void(out.emplace_back(conn, error_frame("leave_room", "roomId required")));
        std::lock_guard lk(mu_);
        if (leave_locked(conn, std::string(*room), out))
            out.emplace_back(conn, frame("last_to_leave", ""));
    }

    void on_disconnect(parley_t_conn_id conn, const std::string&, const Args&, Out& out) {
        std::lock_guard lk(mu_);
        drop_conn_locked(conn, out);
    }

    void on_signal(parley_t_conn_id conn, const std::string&, const Args& a, Out& out) {
        simdjson::dom::object payload;
        if (a.get(0, "data").get(payload) != simdjson::SUCCESS)
            return void(out.emplace_back(conn, error_frame("signal", "malformed")));
        std::string_view to;
        if (payload["to"].get(to) != simdjson::SUCCESS)
            return void(out.emplace_back(conn, error_frame("signal", "to required")));
        parley_t_conn_id target = 0;
        auto [p, ec] = std::from_chars(to.data(), to.data() + to.size(), target);
        std::string my_id = std::to_string(conn);
        // Rebuild Relay's {from, ...data}: every field but `to` is relayed as is (opaque).
        std::string body = R"({"from":")" + my_id + '"';
        for (auto field : payload) {
            if (field.key == "to" || field.key == "from") continue;
            body += ",\"";
            body += json_escape(field.key);
            body += "\":";
            body += simdjson::minify(field.value);
        }
        body += '}';
        std::lock_guard lk(mu_);
        bool ok = ec == std::errc() && p == to.data() + to.size() && target != conn &&
                  shares_room_locked(conn, target);
        if (!ok) {
            host().add(m_refused_);
            return void(
                out.emplace_back(conn, error_frame("signal", "recipient is not in your call")));
        }
        host().add(m_signals_);
        out.emplace_back(target, frame("signal", body));
    }

    void on_call_state(parley_t_conn_id conn, const std::string&, const Args& a, Out& out) {
        auto room = a.str(0, "roomId");
        simdjson::dom::object st;
        bool muted = false, deafened = false;
        if (!room || a.get(1, "state").get(st) != simdjson::SUCCESS ||
            st["muted"].get(muted) != simdjson::SUCCESS ||
            st["deafened"].get(deafened) != simdjson::SUCCESS)
            return void(out.emplace_back(conn, error_frame("call_state", "malformed")));
        std::string body = R"({"id":")" + std::to_string(conn) + R"(","muted":)" +
                           (muted ? "true" : "false") + R"(,"deafened":)" +
                           (deafened ? "true" : "false");
        // Optional extras for parley's web client (camera, screen share); Relay ignores them.
        for (const char* k : {"cameraOn", "screenSharing"}) {
            bool v = false;
            if (st[k].get(v) == simdjson::SUCCESS)
                body += std::string(",\"") + k + "\":" + (v ? "true" : "false");
        }
        body += '}';
        std::lock_guard lk(mu_);
        auto it = rooms_.find(std::string(*room));
        if (it == rooms_.end() || !it->second.members.count(conn))
            return void(out.emplace_back(conn, error_frame("call_state", "not in this call")));
        for (auto& [c, m] : it->second.members)
            if (c != conn) out.emplace_back(c, frame("peer_call_state", body));
    }

    void on_members(parley_t_conn_id conn, const std::string&, const Args& a, Out& out) {
        auto room = a.str(0, "roomId");
        std::lock_guard lk(mu_);
        auto it = room ? rooms_.find(std::string(*room)) : rooms_.end();
        if (it == rooms_.end() || !it->second.members.count(conn))
            return void(out.emplace_back(conn, error_frame("members", "not in this call")));
        out.emplace_back(conn, frame("members", members_json(it->second, conn)));
    }

    void on_turn(parley_t_conn_id conn, const std::string&, const Args&, Out& out) {
        auto s = settings();
        std::string sec = secret();
        if (sec.empty() || s->turn_urls.empty())
            return void(
                out.emplace_back(conn, error_frame("turn_credentials", "TURN not configured")));
        int64_t expiry = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count() +
                         s->ttl_s;
        auto cred =
            parley::signaling::turn_credential(sec, expiry, parley::signaling::random_opaque_id());
        std::string urls;
        for (auto& u : s->turn_urls)
            urls += (urls.empty() ? "\"" : ",\"") + json_escape(u) + '"';
        host().add(m_turn_);
        out.emplace_back(conn,
                         frame("turn_credentials",
                               R"({"urls":[)" + urls + R"(],"username":")" +
                                   json_escape(cred.username) + R"(","credential":")" +
                                   cred.password + R"(","ttl":)" + std::to_string(s->ttl_s) + "}"));
    }

    // ---- room state (mu_ held) ----

    std::string members_json(const Room& r, parley_t_conn_id except) const {
        std::string s = "[";
        for (auto& [c, m] : r.members) {
            if (c == except) continue;
            if (s.size() > 1) s += ',';
            s += R"({"id":")" + m.id + R"(","keyHash":")" + m.key + R"("})";
        }
        return s + "]";
    }

    // Returns true when `conn` was a member and the room is now empty.
    bool leave_locked(parley_t_conn_id conn, const std::string& rid, Out& out) {
        auto it = rooms_.find(rid);
        if (it == rooms_.end() || !it->second.members.erase(conn)) return false;
        if (auto c = conns_.find(conn); c != conns_.end()) c->second.rooms.erase(rid);
        std::string left = '"' + std::to_string(conn) + '"';
        for (auto& [c, m] : it->second.members)
            out.emplace_back(c, frame("peer_left", left));
        bool empty = it->second.members.empty();
        if (empty) rooms_.erase(it);
        host().set(m_rooms_, int64_t(rooms_.size()));
        return empty;
    }

    void drop_conn_locked(parley_t_conn_id conn, Out& out) {
        auto it = conns_.find(conn);
        if (it == conns_.end()) return;
        auto rooms = it->second.rooms;
        for (auto& r : rooms)
            leave_locked(conn, r, out);
        conns_.erase(conn);
    }

    bool shares_room_locked(parley_t_conn_id a, parley_t_conn_id b) const {
        auto it = conns_.find(a);
        if (it == conns_.end()) return false;
        for (auto& rid : it->second.rooms) {
            auto r = rooms_.find(rid);
            if (r != rooms_.end() && r->second.members.count(b)) return true;
        }
        return false;
    }

    bool take_token(parley_t_conn_id conn) {
        auto s = settings();
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(mu_);
        auto& cs = conns_[conn];
        if (cs.at == std::chrono::steady_clock::time_point{}) {
            cs.tokens = s->burst;
        } else {
            cs.tokens = std::min(
                s->burst, cs.tokens + s->rate * std::chrono::duration<double>(now - cs.at).count());
        }
        cs.at = now;
        if (cs.tokens < 1) return false;
        cs.tokens -= 1;
        return true;
    }

    // The dialect proved the identity at connect; the circle may have changed since (the relay
    // plugin reloads its allowlist), so ask again when a relay service is present.
    bool identity_allowed(const std::string& id) const {
        if (!is_key_hash(id)) return false;
        parley_t_command_call c{};
        c.struct_size = sizeof c;
        c.identity = bytes(id);
        auto st = host().table()->command_call(host().ctx(), bytes("relay.allowed"), &c);
        return st == PARLEY_OK || st == PARLEY_ERR_NOT_FOUND;
    }

    // Sends outside the lock. A connection that no longer exists is dropped from its calls, so
    // a missed disconnect cannot leave ghosts behind.
    void flush(Out& out) {
        while (!out.empty()) {
            Out batch;
            batch.swap(out);
            std::vector<parley_t_conn_id> gone;
            for (auto& [c, text] : batch) {
                Frame f = host().frame_of(text);
                if (host().table()->send_to(host().ctx(), c, f.get()) == PARLEY_ERR_NOT_FOUND)
                    gone.push_back(c);
            }
            if (gone.empty()) break;
            std::lock_guard lk(mu_);
            for (auto c : gone)
                drop_conn_locked(c, out);
        }
    }

    // ---- settings and the TURN secret ----

    std::shared_ptr<const Settings> settings() const {
        std::lock_guard lk(cfg_mu_);
        return settings_;
    }
    std::string secret() const {
        std::lock_guard lk(cfg_mu_);
        return secret_;
    }

    bool load_settings(std::string& err) {
        auto s = std::make_shared<Settings>();
        const Host& h = host();
        std::string acl = h.config_string("acl", "auto");
        s->acl = acl == "derived"  ? Settings::Acl::Derived
                 : acl == "circle" ? Settings::Acl::Circle
                 : acl == "config" ? Settings::Acl::Config
                                   : Settings::Acl::Auto;
        size_t n = h.config_count("rooms");
        for (size_t i = 0; i < n; ++i) {
            std::string p = "rooms." + std::to_string(i);
            std::string name = h.config_string(p + ".name");
            if (!valid_room(name)) {
                err = "rooms." + std::to_string(i) + ".name: invalid room id";
                return false;
            }
            auto& set = s->rooms[name];
            size_t m = h.config_count(p + ".members");
            for (size_t j = 0; j < m; ++j) {
                std::string k = h.config_string(p + ".members." + std::to_string(j));
                for (auto& ch : k)
                    ch = char(std::tolower(static_cast<unsigned char>(ch)));
                if (!is_key_hash(k)) {
                    err = p + ".members." + std::to_string(j) + ": not a 64-hex key hash";
                    return false;
                }
                set.insert(k);
            }
        }
        s->max_members = uint32_t(h.config_int("max_members", 8));
        s->max_rooms_per_conn = uint32_t(h.config_int("max_rooms_per_conn", 4));
        s->max_signal = size_t(h.config_int("max_signal", 64 * 1024));
        s->rate = double(h.config_int("rate", 50));
        s->burst = double(h.config_int("burst", 200));
        size_t u = h.config_count("turn_urls");
        for (size_t i = 0; i < u; ++i)
            s->turn_urls.push_back(h.config_string("turn_urls." + std::to_string(i)));
        s->secret_inline = h.config_string("turn_secret");
        s->secret_file = h.config_string("turn_secret_file");
        s->ttl_s = h.config_int("turn_ttl", 6 * 3600 * 1000) / 1000;
        s->poll_ms = uint64_t(h.config_int("secret_poll", 10000));
        std::string sec = s->secret_inline;
        int64_t mtime = 0;
        if (!s->secret_file.empty() && !read_secret_file(s->secret_file, sec, mtime, err))
            return false;
        std::lock_guard lk(cfg_mu_);
        settings_ = s;
        secret_ = sec;
        secret_mtime_ = mtime;
        return true;
    }

    static bool read_secret_file(const std::string& path, std::string& out, int64_t& mtime,
                                 std::string& err) {
        struct stat st {};
        std::ifstream f(path);
        if (!f || ::stat(path.c_str(), &st) != 0) {
            err = "turn_secret_file: cannot read " + path;
            return false;
        }
        std::string line;
        std::getline(f, line);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.pop_back();
        if (line.empty()) {
            err = "turn_secret_file: empty secret in " + path;
            return false;
        }
        out = line;
        mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        return true;
    }

    void arm_poll() {
        auto s = settings();
        if (s->secret_file.empty() || !s->poll_ms) return;
        poll_timer_ =
            host().table()->timer_start(host().ctx(), s->poll_ms, s->poll_ms, &on_poll, this);
    }
    void disarm_poll() {
        if (poll_timer_) host().table()->timer_cancel(host().ctx(), poll_timer_);
        poll_timer_ = 0;
    }
    static void on_poll(void* user) { static_cast<Signaling*>(user)->poll_secret(); }
    void poll_secret() {
        auto s = settings();
        struct stat st {};
        if (::stat(s->secret_file.c_str(), &st) != 0) return;
        int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        {
            std::lock_guard lk(cfg_mu_);
            if (mtime == secret_mtime_) return;
        }
        std::string sec, err;
        if (!read_secret_file(s->secret_file, sec, mtime, err)) {
            host().log(PARLEY_LOG_WARN, "signaling: TURN secret file unreadable, keeping the old");
            return;
        }
        std::lock_guard lk(cfg_mu_);
        secret_ = sec;
        secret_mtime_ = mtime;
        host().log(PARLEY_LOG_INFO, "signaling: TURN secret reloaded");
    }

    mutable std::mutex cfg_mu_;
    std::shared_ptr<const Settings> settings_;
    std::string secret_;
    int64_t secret_mtime_ = 0;
    uint64_t poll_timer_ = 0;

    std::mutex mu_;
    std::unordered_map<std::string, Room> rooms_;
    std::unordered_map<parley_t_conn_id, ConnState> conns_;

    std::vector<Slot> slots_;
    parley_t_metric_hptr m_joins_, m_refused_, m_signals_, m_turn_, m_rooms_;
};

} // namespace

PARLEY_PLUGIN(Signaling, "signaling", PARLEY_KIND_SERVICE, "0.1.0",
              "WebRTC call rooms (Relay's events), server-side ACL, TURN REST credentials", kConfig)
