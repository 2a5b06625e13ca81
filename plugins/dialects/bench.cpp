// `bench`: the BenchTalks wire protocol (as of BenchTalks 1.2.0), so unmodified BenchTalks web
// clients work against parley. The server is a pure relay of opaque encrypted blobs; rooms
// exist only while someone is in them. See README-bench.md for the protocol table and for what
// parley does differently from BenchTalks, and why.
//
//   upgrade   GET /ws                      (one connection, at most one room)
//   client -> {"type","roomId","adminHash","payload"}   every field a string, all optional
//             join, message, image, delete, make_public, request_pair, claim_pair, ban_client
//   server -> {"type","payload","senderId"}             always all three, in this order
//             welcome, join, leave, message, image, deleted, made_public, pair_token,
//             pair_claim_sent, pair_approved, kicked, banned, error
//   HTTP      GET /health (JSON), POST /api/invite, GET /join/<token>, pages / and /room
//
// Threading: a session runs on its connection's loop. Admin actions reach other members only
// through the kernel (room_publish, room_leave, conn_close) and through the shared registry's
// atomic `evicted` flag; nothing here blocks or waits for another loop.
#include "dialect.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace parley::dialect {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kVersion = "1.2.0";  // the BenchTalks release this dialect speaks
constexpr int kMaxErrors = 32;                  // error frames before a client is closed (1008)
constexpr size_t kMaxToken = 256;               // admin token characters we bother decoding
constexpr size_t kSealOverhead = 24 + 16;       // secretbox: 24-byte nonce + 16-byte MAC
constexpr size_t kEnvelopeSlack = 1024;         // type, roomId, adminHash around a payload
constexpr int64_t kMaxFileSizeLimit = 40 << 20; // keeps the encoded image under max_message's cap
constexpr auto kPairTtl = std::chrono::minutes(5);
constexpr size_t kMaxPairTokens = 10000;
constexpr size_t kMaxBans = 100000;
constexpr size_t kMaxRemembered = 100000;
constexpr auto kPruneEvery = std::chrono::seconds(30);
constexpr std::string_view kBannedText = "you have been banned from this room";
constexpr std::string_view kInviteGone = "invite link is invalid, expired or already used\n";

bool valid_room(std::string_view r) {
    if (r.empty() || r.size() > 64) return false;
    for (char c : r)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~'))
            return false;
    return true;
}

// Bench ids end up in pairing URLs the BenchTalks client builds without escaping.
bool valid_bench_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

bool valid_sender_id(std::string_view s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

// 64 hex digits (a SHA-256), lowercased; empty when `s` is not one.
std::string hex64(std::string_view s) {
    if (s.size() != 64) return {};
    std::string out(s);
    for (auto& c : out) {
        c = char(std::tolower(static_cast<unsigned char>(c)));
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
    }
    return out;
}

size_t b64_len(size_t n) {
    return (n + 2) / 3 * 4;
}

// BenchTalks' client id: 16 random bytes as 8-4-4-4-12 lowercase hex (no version bits).
std::string new_sender_id() {
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, b, sizeof b);
    std::string s;
    s.reserve(36);
    s.append(hex, 8).append(1, '-').append(hex + 8, 4).append(1, '-').append(hex + 12, 4);
    s.append(1, '-').append(hex + 16, 4).append(1, '-').append(hex + 20, 12);
    return s;
}

// SHA-256 of a base64 admin token (standard alphabet with or without padding, as BenchTalks
// accepts; URL-safe too). False when it does not decode.
bool token_digest(std::string_view token, unsigned char out[crypto_hash_sha256_BYTES]) {
    if (token.empty() || token.size() > kMaxToken) return false;
    unsigned char raw[kMaxToken];
    static constexpr int kVariants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (int v : kVariants) {
        size_t n = 0;
        const char* end = nullptr;
        if (sodium_base642bin(raw, sizeof raw, token.data(), token.size(), nullptr, &n, &end, v) ==
                0 &&
            end == token.data() + token.size()) {
            crypto_hash_sha256(out, raw, n);
            sodium_memzero(raw, sizeof raw);
            return true;
        }
    }
    sodium_memzero(raw, sizeof raw);
    return false;
}

// Key under which a token is remembered: its SHA-256, never the token itself.
std::string digest_key(const unsigned char* raw, size_t n) {
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, raw, n);
    return std::string(reinterpret_cast<char*>(d), sizeof d);
}

// ---- outgoing frames: {"type":"…","payload":"…","senderId":"…"}, escaped like JSON wants ----

constexpr std::string_view kF1 = R"({"type":")", kF2 = R"(","payload":")",
                           kF3 = R"(","senderId":")", kF4 = R"("})";

size_t escaped_len(std::string_view s) {
    size_t n = s.size();
    for (unsigned char c : s) {
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t')
            n += 1;
        else if (c < 0x20)
            n += 5;
    }
    return n;
}

char* put(char* d, std::string_view s) {
    std::memcpy(d, s.data(), s.size());
    return d + s.size();
}

char* put_escaped(char* d, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            *d++ = '\\', *d++ = '"';
            break;
        case '\\':
            *d++ = '\\', *d++ = '\\';
            break;
        case '\n':
            *d++ = '\\', *d++ = 'n';
            break;
        case '\r':
            *d++ = '\\', *d++ = 'r';
            break;
        case '\t':
            *d++ = '\\', *d++ = 't';
            break;
        default:
            if (c < 0x20) {
                d = put(d, "\\u00");
                *d++ = kHex[c >> 4];
                *d++ = kHex[c & 15];
            } else {
                *d++ = char(c);
            }
        }
    }
    return d;
}

size_t frame_size(std::string_view type, std::string_view payload, std::string_view sender) {
    return kF1.size() + type.size() + kF2.size() + escaped_len(payload) + kF3.size() +
           escaped_len(sender) + kF4.size();
}

char* frame_write(char* d, std::string_view type, std::string_view payload,
                  std::string_view sender) {
    d = put(d, kF1);
    d = put(d, type); // our own constants: nothing to escape
    d = put(d, kF2);
    d = put_escaped(d, payload);
    d = put(d, kF3);
    d = put_escaped(d, sender);
    return put(d, kF4);
}

std::string frame_text(std::string_view type, std::string_view payload = {},
                       std::string_view sender = {}) {
    std::string s(frame_size(type, payload, sender), '\0');
    frame_write(s.data(), type, payload, sender);
    return s;
}

// Two admin frames that a member's own node acts on when they reach it from another cluster node
// (BenchSession::out_event), made by frame_text itself so the match cannot drift from what the
// admin's node sends. Whole-frame equality: a federated frame cannot match (transport-nats
// forwards message/image/join/leave/made_public only, and no other type spelling or duplicate
// key yields these exact bytes).
const std::string& deleted_frame() {
    static const std::string frame = frame_text("deleted");
    return frame;
}
// frame_text("kicked", kBannedText, id) is this head, then the (hex) id, then `"}`.
const std::string& kicked_head() {
    static const std::string head = [] {
        std::string f = frame_text("kicked", kBannedText, "");
        f.resize(f.size() - 2);
        return f;
    }();
    return head;
}

// Written straight into a shared frame: a 13 MiB image is copied once, not twice.
sdk::Frame frame_shared(const sdk::Host& h, std::string_view type, std::string_view payload,
                        std::string_view sender) {
    size_t n = frame_size(type, payload, sender);
    sdk::Frame f = h.frame(n);
    frame_write(f.get()->data, type, payload, sender);
    f.get()->len = n;
    f.get()->flags = PARLEY_FRAME_TEXT;
    return f;
}

// ---- configuration ----

enum class Claim { First, Sticky, None };

struct BenchConfig {
    int64_t max_file_size = 10 << 20;
    size_t max_image = 0; // characters of base64 payload, derived from max_file_size
    size_t max_text = 256 * 1024;
    int images_per_minute = 30;
    int rooms_per_ip = 100;
    Claim claim = Claim::First;
    std::chrono::milliseconds admin_memory{24 * 3600 * 1000};
    std::chrono::milliseconds ban_duration{24 * 3600 * 1000};
    std::chrono::milliseconds invite_ttl{24 * 3600 * 1000};
    size_t max_invites = 10000;
    size_t max_invite_payload = 8 * 1024;
    int invites_per_ip = 60;
    std::string bench_id;
    std::vector<std::string> nats_peers;
    bool benchtalks_pages = false; // serving BenchTalks' own pages: their CSP needs
};

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return std::string(s);
}

// BenchTalks' environment variables, read once at create time when bench.env_compat is on.
// Each one present overrides the profile's value; values of secrets are never logged.
void apply_env(const sdk::Host& h, BenchConfig& cfg) {
    if (const char* v = std::getenv("MAX_FILE_SIZE"); v && *v) {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(v, v + std::strlen(v), n);
        if (ec != std::errc() || *p || n < 1 || n > kMaxFileSizeLimit)
            throw std::runtime_error("MAX_FILE_SIZE must be a byte count from 1 to " +
                                     std::to_string(kMaxFileSizeLimit));
        cfg.max_file_size = n;
        h.logf(PARLEY_LOG_INFO,
               "bench: MAX_FILE_SIZE=%lld from the environment overrides "
               "bench.max_file_size",
               (long long)n);
    }
    if (const char* v = std::getenv("BENCH_ID"); v && *v) {
        if (!valid_bench_id(v))
            throw std::runtime_error("BENCH_ID must be 1-64 characters of [A-Za-z0-9._-]");
        cfg.bench_id = v;
        h.log(PARLEY_LOG_INFO, "bench: BENCH_ID from the environment overrides bench.bench_id");
    }
    if (const char* v = std::getenv("NATS_PEERS"); v && *v) {
        // Addresses may carry credentials (nats://user:pass@host): counted, never printed.
        cfg.nats_peers.clear();
        std::string_view rest(v);
        while (!rest.empty()) {
            auto comma = rest.find(',');
            auto peer = trim(rest.substr(0, comma));
            if (!peer.empty()) cfg.nats_peers.push_back(std::move(peer));
            if (comma == rest.npos) break;
            rest.remove_prefix(comma + 1);
        }
        h.logf(PARLEY_LOG_INFO,
               "bench: NATS_PEERS from the environment overrides "
               "bench.nats_peers (%zu peers)",
               cfg.nats_peers.size());
    }
}

// BenchTalks' stock pages (its pkg/public) have assets/js/room.js; parley's client does not.
bool serves_benchtalks_pages(const sdk::Host& h) {
    auto pages = h.config_string("bench.pages", "auto");
    if (pages != "auto") return pages == "benchtalks";
    auto root = h.config_string("web_root");
    std::error_code ec;
    return !root.empty() &&
           std::filesystem::is_regular_file(std::filesystem::path(root) / "assets/js/room.js", ec);
}

BenchConfig read_config(const sdk::Host& h) {
    BenchConfig cfg;
    cfg.max_file_size = h.config_int("bench.max_file_size", cfg.max_file_size);
    cfg.max_text = size_t(h.config_int("bench.max_text", int64_t(cfg.max_text)));
    cfg.images_per_minute = int(h.config_int("bench.images_per_minute", cfg.images_per_minute));
    cfg.rooms_per_ip = int(h.config_int("bench.rooms_per_ip", cfg.rooms_per_ip));
    auto claim = h.config_string("bench.admin_claim", "first");
    cfg.claim = claim == "none" ? Claim::None : claim == "sticky" ? Claim::Sticky : Claim::First;
    cfg.admin_memory =
        std::chrono::milliseconds(h.config_int("bench.admin_memory", cfg.admin_memory.count()));
    cfg.ban_duration =
        std::chrono::milliseconds(h.config_int("bench.ban_duration", cfg.ban_duration.count()));
    cfg.invite_ttl =
        std::chrono::milliseconds(h.config_int("bench.invite_ttl", cfg.invite_ttl.count()));
    cfg.max_invites = size_t(h.config_int("bench.max_invites", int64_t(cfg.max_invites)));
    cfg.max_invite_payload =
        size_t(h.config_int("bench.max_invite_payload", int64_t(cfg.max_invite_payload)));
    cfg.invites_per_ip = int(h.config_int("bench.invites_per_ip", cfg.invites_per_ip));
    cfg.bench_id = h.config_string("bench.bench_id");
    cfg.benchtalks_pages = serves_benchtalks_pages(h);
    for (size_t i = 0, n = h.config_count("bench.nats_peers"); i < n; ++i)
        cfg.nats_peers.push_back(h.config_string("bench.nats_peers." + std::to_string(i)));
    if (h.config_bool("bench.env_compat")) apply_env(h, cfg);
    if (cfg.max_file_size < 1 || cfg.max_file_size > kMaxFileSizeLimit)
        throw std::runtime_error("bench.max_file_size must be at most 40M");
    if (cfg.bench_id.empty()) {
        // Like BenchTalks: 8 random bytes in hex, a new identity on every start.
        unsigned char b[8];
        randombytes_buf(b, sizeof b);
        char hex[17];
        sodium_bin2hex(hex, sizeof hex, b, sizeof b);
        cfg.bench_id = hex;
    } else if (!valid_bench_id(cfg.bench_id)) {
        throw std::runtime_error("bench.bench_id must be 1-64 characters of [A-Za-z0-9._-]");
    }
    // An image is secretbox(nonce || ciphertext || MAC) in standard base64.
    cfg.max_image = b64_len(size_t(cfg.max_file_size) + kSealOverhead);
    return cfg;
}

// ---- state shared by every session of one transport instance ----

struct Member {
    explicit Member(uint64_t key) : peer_key(key) {}
    std::atomic<bool> evicted{false}; // removed by delete or ban: ignore its frames from now on
    const uint64_t peer_key;
};

struct Invite {
    std::string payload; // encrypted by the browser with the token; opaque here
    std::string room;
    Clock::time_point expires;
};

struct PairToken {
    std::string room;
    std::string claimer;
    Clock::time_point expires;
    bool used = false;
};

struct Remembered {
    std::string hash;
    Clock::time_point since; // last time the room emptied (or was claimed)
};

// A per-address counter over a rolling one-hour window.
class HourlyLimit {
  public:
    bool take(uint64_t key, int limit) {
        auto now = Clock::now();
        if (now - window_ > std::chrono::hours(1)) {
            counts_.clear();
            window_ = now;
        }
        return ++counts_[key] <= limit;
    }

  private:
    std::unordered_map<uint64_t, int> counts_;
    Clock::time_point window_ = Clock::now();
};

class Shared {
  public:
    Shared(sdk::Host h, BenchConfig c) : host(h), cfg(std::move(c)) {}

    const sdk::Host host;
    const BenchConfig cfg;
    const Clock::time_point started = Clock::now();
    std::atomic<int64_t> rooms_live{0}; // rooms with at least one member (for /health)
    // Set by the first make_public: until then no frame looks for transport-nats' federation.
    std::atomic<bool> any_public{false};

    // Calls a federation.* command of transport-nats (see its README): PARLEY_ERR_NOT_FOUND
    // when that plugin is not loaded (standalone bench). args start with this bench's id.
    parley_t_status federation(std::string_view cmd, parley_t_conn_id conn, std::string_view room,
                               std::string_view rest) const {
        std::string args = cfg.bench_id + "\n";
        args.append(rest);
        parley_t_command_call call{sizeof call};
        call.conn = conn;
        call.room = sdk::bytes(room);
        call.args = sdk::bytes(args);
        return t()->command_call(ctx(), sdk::bytes(cmd), &call);
    }

    const parley_t_host* t() const { return host.table(); }
    parley_t_host_ctx_hptr ctx() const { return host.ctx(); }

    // -- member registry: how an admin action reaches another connection's session --
    void enroll(parley_t_conn_id conn, std::shared_ptr<Member> m) {
        std::lock_guard lk(mu_);
        members_[conn] = std::move(m);
    }
    void unenroll(parley_t_conn_id conn) {
        std::lock_guard lk(mu_);
        members_.erase(conn);
    }
    std::shared_ptr<Member> member(parley_t_conn_id conn) {
        std::lock_guard lk(mu_);
        auto it = members_.find(conn);
        return it == members_.end() ? nullptr : it->second;
    }

    // -- bans: per room and client address key, for cfg.ban_duration, in memory only --
    bool banned(const std::string& room, uint64_t peer) {
        std::lock_guard lk(mu_);
        prune_locked();
        auto it = bans_.find(room);
        if (it == bans_.end()) return false;
        auto b = it->second.find(peer);
        return b != it->second.end() && b->second > Clock::now();
    }
    void ban(const std::string& room, uint64_t peer) {
        std::lock_guard lk(mu_);
        prune_locked();
        if (ban_count_ >= kMaxBans) drop_oldest_ban_locked();
        auto [it, fresh] = bans_[room].insert_or_assign(peer, Clock::now() + cfg.ban_duration);
        (void)it;
        if (fresh) ++ban_count_;
    }

    // -- sticky admin: the admin hash of a room outlives its emptiness for cfg.admin_memory --
    std::optional<std::string> recall(const std::string& room) {
        std::lock_guard lk(mu_);
        auto it = remembered_.find(room);
        if (it == remembered_.end()) return std::nullopt;
        return it->second.hash;
    }
    void remember(const std::string& room, const std::string& hash) {
        std::lock_guard lk(mu_);
        prune_locked();
        if (remembered_.size() >= kMaxRemembered) return; // degrade to `first` under pressure
        remembered_[room] = Remembered{hash, Clock::now()};
    }
    void emptied(const std::string& room) {
        std::lock_guard lk(mu_);
        if (auto it = remembered_.find(room); it != remembered_.end())
            it->second.since = Clock::now();
    }
    void forget(const std::string& room) {
        std::lock_guard lk(mu_);
        remembered_.erase(room);
    }

    // -- room creations per client address (squatting and flooding) --
    bool take_creation(uint64_t peer) {
        std::lock_guard lk(mu_);
        return creations_.take(peer, cfg.rooms_per_ip);
    }

    // -- one-time invites: only the token's SHA-256 is kept --
    enum class InviteStatus { Ok, Full, Throttled };
    InviteStatus add_invite(uint64_t peer, const std::string& room, std::string payload,
                            std::string& token_out) {
        unsigned char raw[32];
        randombytes_buf(raw, sizeof raw);
        char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
        sodium_bin2base64(b64, sizeof b64, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        auto key = digest_key(raw, sizeof raw);
        sodium_memzero(raw, sizeof raw);
        std::lock_guard lk(mu_);
        prune_locked(invites_.size() >= cfg.max_invites);
        if (invites_.size() >= cfg.max_invites) return InviteStatus::Full;
        if (!invite_limit_.take(peer, cfg.invites_per_ip)) return InviteStatus::Throttled;
        invites_[key] = Invite{std::move(payload), room, Clock::now() + cfg.invite_ttl};
        token_out = b64;
        return InviteStatus::Ok;
    }
    // Single use: a found invite is removed whether or not it was still valid.
    std::optional<Invite> take_invite(std::string_view token) {
        unsigned char raw[64];
        size_t n = 0;
        const char* end = nullptr;
        if (token.empty() || token.size() > 88) return std::nullopt;
        bool ok = false;
        for (int v : {sodium_base64_VARIANT_URLSAFE_NO_PADDING, sodium_base64_VARIANT_URLSAFE}) {
            if (sodium_base642bin(raw, sizeof raw, token.data(), token.size(), nullptr, &n, &end,
                                  v) == 0 &&
                end == token.data() + token.size()) {
                ok = true;
                break;
            }
        }
        if (!ok) return std::nullopt;
        auto key = digest_key(raw, n);
        sodium_memzero(raw, sizeof raw);
        std::lock_guard lk(mu_);
        auto it = invites_.find(key);
        if (it == invites_.end()) return std::nullopt;
        Invite inv = std::move(it->second);
        invites_.erase(it);
        if (inv.expires <= Clock::now()) return std::nullopt;
        return inv;
    }

    // -- pairing tokens (federation handshake; verified by the park, a later issue) --
    std::string add_pair_token(const std::string& room, const std::string& claimer) {
        unsigned char raw[32];
        randombytes_buf(raw, sizeof raw);
        char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
        auto key = digest_key(raw, sizeof raw);
        sodium_memzero(raw, sizeof raw);
        std::lock_guard lk(mu_);
        prune_locked(pairs_.size() >= kMaxPairTokens);
        if (pairs_.size() >= kMaxPairTokens) {
            // Oldest first: they are the closest to expiry anyway.
            auto oldest = pairs_.begin();
            for (auto it = pairs_.begin(); it != pairs_.end(); ++it)
                if (it->second.expires < oldest->second.expires) oldest = it;
            pairs_.erase(oldest);
        }
        pairs_[key] = PairToken{room, claimer, Clock::now() + kPairTtl};
        return b64;
    }

  private:
    // Expired entries go at most every kPruneEvery (or now, when `force`), under mu_.
    void prune_locked(bool force = false) {
        auto now = Clock::now();
        if (!force && now - pruned_ < kPruneEvery) return;
        pruned_ = now;
        std::erase_if(invites_, [&](auto& kv) { return kv.second.expires <= now; });
        std::erase_if(pairs_, [&](auto& kv) { return kv.second.expires <= now; });
        for (auto it = bans_.begin(); it != bans_.end();) {
            ban_count_ -= std::erase_if(it->second, [&](auto& kv) { return kv.second <= now; });
            it = it->second.empty() ? bans_.erase(it) : std::next(it);
        }
        std::erase_if(remembered_, [&](auto& kv) {
            return now - kv.second.since > cfg.admin_memory &&
                   t()->room_members(ctx(), sdk::bytes(kv.first), nullptr, nullptr) == 0;
        });
    }
    void drop_oldest_ban_locked() {
        std::string room;
        uint64_t peer = 0;
        auto oldest = Clock::time_point::max();
        for (auto& [r, m] : bans_)
            for (auto& [p, until] : m)
                if (until < oldest) oldest = until, room = r, peer = p;
        if (oldest == Clock::time_point::max()) return;
        auto it = bans_.find(room);
        it->second.erase(peer);
        if (it->second.empty()) bans_.erase(it);
        --ban_count_;
    }

    std::mutex mu_;
    std::unordered_map<parley_t_conn_id, std::shared_ptr<Member>> members_;
    std::unordered_map<std::string, std::unordered_map<uint64_t, Clock::time_point>> bans_;
    size_t ban_count_ = 0;
    std::unordered_map<std::string, Remembered> remembered_;
    std::unordered_map<std::string, Invite> invites_;
    std::unordered_map<std::string, PairToken> pairs_;
    HourlyLimit creations_;
    HourlyLimit invite_limit_;
    Clock::time_point pruned_ = Clock::now();
};

// ---- incoming frames ----

struct Incoming {
    std::string_view type, room, admin_hash, payload, admin_token;
};

// Views point into the parser's buffers: valid until the next parse on this thread.
simdjson::error_code parse_incoming(simdjson::ondemand::parser& parser, std::string& buf,
                                    std::string_view msg, Incoming& in) {
    buf.assign(msg);
    buf.reserve(msg.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    auto err = parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc);
    simdjson::ondemand::object obj;
    if (!err) err = doc.get_object().get(obj);
    if (err) return err;
    for (auto field : obj) {
        std::string_view k;
        if ((err = field.unescaped_key().get(k))) return err;
        std::string_view* slot = k == "type"         ? &in.type
                                 : k == "roomId"     ? &in.room
                                 : k == "adminHash"  ? &in.admin_hash
                                 : k == "payload"    ? &in.payload
                                 : k == "adminToken" ? &in.admin_token
                                                     : nullptr;
        if (!slot) continue; // unknown fields are ignored, as Go's decoder does
        auto v = field.value();
        bool null = false;
        if ((err = v.is_null().get(null))) return err;
        if (null) {
            *slot = {};
            continue;
        }
        if ((err = v.get_string().get(*slot))) return err;
    }
    // Nothing may follow the object (current_location() is out of bounds only at the end).
    const char* rest = nullptr;
    if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS)
        return simdjson::TRAILING_CONTENT;
    return simdjson::SUCCESS;
}

// ---- one connection ----

class BenchSession final : public Session {
  public:
    explicit BenchSession(std::shared_ptr<Shared> sh)
        : sh_(std::move(sh)), id_(new_sender_id()), image_tokens_(sh_->cfg.images_per_minute),
          image_at_(Clock::now()) {}

    void on_open(Conn&) override {} // BenchTalks clients speak first, with "join"

    void on_text(Conn& c, std::string_view msg) override {
        if (member_ && member_->evicted.load()) return; // deleted or banned: the close is queued
        // Small frames reuse this thread's parser; a large image gets a parser of its own so no
        // reactor keeps tens of megabytes of parser buffers after the image has gone out.
        thread_local simdjson::ondemand::parser small_parser;
        thread_local std::string small_buf;
        std::optional<simdjson::ondemand::parser> big_parser;
        std::string big_buf;
        bool big = msg.size() > 64 * 1024;
        if (big) big_parser.emplace();
        Incoming in;
        if (parse_incoming(big ? *big_parser : small_parser, big ? big_buf : small_buf, msg, in) !=
            simdjson::SUCCESS)
            return error(c, "malformed frame: expected a JSON object with string fields");
        if (in.type == "join") return on_join(c, in);
        if (!is_known(in.type)) return error(c, "unknown message type");
        if (!joined_) return error(c, "join a room first");
        if (!in.room.empty() && in.room != room_) return error(c, "wrong room id");
        if (in.type == "message") return relay(c, "message", in.payload);
        if (in.type == "image") return relay(c, "image", in.payload);
        if (in.type == "delete") return on_delete(c, in.payload);
        if (in.type == "make_public") return on_make_public(c, in.payload);
        if (in.type == "request_pair") return on_request_pair(c, in);
        if (in.type == "claim_pair") return on_claim_pair(c, in.payload);
        if (in.type == "ban_client") return on_ban(c, in);
    }

    // Browsers send text; BenchTalks' Go server also accepted JSON in binary frames.
    void on_binary(Conn& c, std::string_view msg) override { on_text(c, msg); }

    void on_rate_limited(Conn& c) override {
        c.send_text(frame_text("error", "rate limit exceeded, slow down", id_));
    }

    // Cluster mode: an admin on another node deleted the room, or banned this member there.
    // That node closes only its own connections; the frame reaching ours is the signal. On the
    // admin's node its members are already evicted, so nothing happens twice.
    bool observes_out() const override { return true; }

    int out_event(std::string_view frame) const override {
        const std::string &deleted = deleted_frame(), &kicked = kicked_head();
        if (frame.size() == deleted.size()) {
            if (frame == deleted && live()) return kOutDeleted;
        } else if (frame.size() == kicked.size() + id_.size() + 2) {
            if (frame.starts_with(kicked) && frame.substr(kicked.size(), id_.size()) == id_ &&
                frame.ends_with("\"}") && live())
                return kOutKicked;
        }
        return 0;
    }

    void on_out(Conn& c, int event) override {
        if (!live()) return;
        member_->evicted.store(true);
        if (event == kOutDeleted) {
            // As on the admin's node: no leave notice, the room is gone.
            uint32_t left = 1;
            if (t()->room_leave(ctx(), c.id(), sdk::bytes(room_), &left) == PARLEY_OK && left == 0)
                room_emptied();
            sh_->forget(room_);
            joined_ = false;
            return c.close(1000, "bench deleted");
        }
        // Banned: the address key is this node's, so the ban is kept here (as on_ban does for
        // a local target); the admin's node could not leave a member it does not have.
        sh_->ban(room_, member_->peer_key);
        leave_announced(c);
        joined_ = false;
        c.close(1008, "banned");
    }

    void on_close(Conn& c) override {
        if (member_) sh_->unenroll(c.id());
        if (joined_) leave_announced(c);
    }

  private:
    static constexpr int kOutDeleted = 1, kOutKicked = 2;

    bool live() const { return joined_ && member_ && !member_->evicted.load(); }

    const parley_t_host* t() const { return sh_->t(); }
    parley_t_host_ctx_hptr ctx() const { return sh_->ctx(); }

    static bool is_known(std::string_view type) {
        for (std::string_view k : {"message", "image", "delete", "make_public", "request_pair",
                                   "claim_pair", "ban_client"})
            if (type == k) return true;
        return false;
    }

    void error(Conn& c, std::string_view text) {
        c.send_text(frame_text("error", text, id_));
        if (++errors_ >= kMaxErrors) c.close(1008, "too many bad frames");
    }

    // Takes this member out of its room. Whoever removes a member (this session, or an admin's
    // delete or ban racing it) announces the leave, to the others and the park: the kernel tells
    // exactly one of them it succeeded.
    void leave_announced(Conn& c) { remove_announced(c.id(), id_); }

    // The same for member `sender` on connection `conn` of this room (an admin's ban).
    void remove_announced(parley_t_conn_id conn, std::string_view sender) {
        uint32_t left = 0;
        if (t()->room_leave(ctx(), conn, sdk::bytes(room_), &left) != PARLEY_OK) return;
        if (left == 0) return room_emptied();
        auto f = sh_->host.frame_of(frame_text("leave", "", sender));
        t()->room_publish(ctx(), sdk::bytes(room_), f.get(), 0);
        federate(f.view());
    }

    void room_emptied() {
        sh_->rooms_live.fetch_sub(1);
        sh_->emptied(room_);
    }

    void on_join(Conn& c, const Incoming& in) {
        if (joined_) return error(c, "already in a room");
        if (!valid_room(in.room)) return error(c, "invalid room id");
        std::string hash;
        if (!in.admin_hash.empty() && (hash = hex64(in.admin_hash)).empty())
            return error(c, "invalid admin hash");
        std::string room(in.room);
        // Bans are per address, so they hit everyone behind it; not the room's own admin.
        if (sh_->banned(room, c.peer_key()) && !is_admin_hash(room, hash)) {
            // BenchTalks 1.2.0 answers a banned address with "banned", then hangs up.
            c.send_text(frame_text("banned", "You have been banned from this room", id_));
            c.close(1008, "banned");
            return;
        }
        parley_t_join_result jr{sizeof jr};
        auto st = t()->room_join(ctx(), c.id(), sdk::bytes(room), sdk::bytes(id_), &jr);
        if (st != PARLEY_OK) {
            c.send_text(frame_text("error", "this bench is full, try again later", id_));
            c.close(1008, "room limit");
            return;
        }
        if (jr.created && !sh_->take_creation(c.peer_key())) {
            t()->room_leave(ctx(), c.id(), sdk::bytes(room), nullptr);
            c.send_text(frame_text("error", "too many benches created from this address", id_));
            c.close(1008, "room creation limit");
            return;
        }
        joined_ = true;
        room_ = std::move(room);
        join_hash_ = std::move(hash);
        member_ = std::make_shared<Member>(c.peer_key());
        sh_->enroll(c.id(), member_);
        if (jr.members == 1) sh_->rooms_live.fetch_add(1);
        if (jr.created) claim_admin();
        // Same order as BenchTalks: the others hear "join" first, then the joiner its welcome
        // with the member count (and, in senderId, its own id).
        auto f = sh_->host.frame_of(frame_text("join", "", id_));
        t()->room_publish(ctx(), sdk::bytes(room_), f.get(), c.id());
        federate(f.view());
        c.send_text(frame_text("welcome", std::to_string(jr.members), id_));
        // Cluster mode: what the other nodes' members hear if this node dies with us in it.
        auto bye = sh_->host.frame_of(frame_text("leave", "", id_));
        t()->room_farewell(ctx(), c.id(), sdk::bytes(room_), bye.get());
    }

    // The first joiner of a room that did not exist sets its admin hash (set-once in the
    // kernel, so a racing joiner cannot). `sticky` restores a remembered hash instead, so a
    // room that emptied cannot be taken over by whoever comes back first.
    void claim_admin() {
        std::string hash = join_hash_;
        if (sh_->cfg.claim == Claim::None) return;
        if (sh_->cfg.claim == Claim::Sticky) {
            if (auto old = sh_->recall(room_))
                hash = *old;
            else if (!hash.empty())
                sh_->remember(room_, hash);
        }
        if (hash.empty()) return;
        // Async: in cluster mode the nodes decide once (JetStream KV) and the winner lands in
        // the local meta; without a bridge it is the local set-once, done at once.
        t()->room_meta_set_async(ctx(), sdk::bytes(room_), PARLEY_META_ADMIN_HASH, sdk::bytes(hash),
                                 PARLEY_META_SET_ONCE, nullptr, nullptr);
    }

    // Whether `hash` (lowercase hex, as presented at join) is the admin hash of `room`, live or
    // remembered by `sticky`. Compared in constant time.
    bool is_admin_hash(const std::string& room, const std::string& hash) const {
        if (hash.size() != 64) return false;
        std::string stored(64, '\0');
        size_t len = 0;
        if (t()->room_meta_get(ctx(), sdk::bytes(room), PARLEY_META_ADMIN_HASH, stored.data(),
                               stored.size(), &len) != PARLEY_OK ||
            len != stored.size()) {
            auto old = sh_->cfg.claim == Claim::Sticky ? sh_->recall(room) : std::nullopt;
            if (!old || old->size() != 64) return false;
            stored = *old;
        }
        return sodium_memcmp(stored.data(), hash.data(), 64) == 0;
    }

    // The room's admin hash as 32 bytes; false when the room has none.
    bool stored_hash(unsigned char out[crypto_hash_sha256_BYTES]) const {
        char hex[64];
        size_t len = 0;
        size_t bin_len = 0;
        return t()->room_meta_get(ctx(), sdk::bytes(room_), PARLEY_META_ADMIN_HASH, hex, sizeof hex,
                                  &len) == PARLEY_OK &&
               len == sizeof hex &&
               sodium_hex2bin(out, crypto_hash_sha256_BYTES, hex, len, nullptr, &bin_len,
                              nullptr) == 0 &&
               bin_len == crypto_hash_sha256_BYTES;
    }

    // Admin actions carry the raw token; its SHA-256 must equal the room's admin hash. The
    // comparison is constant-time and the token is never stored or logged.
    bool admin_token_ok(std::string_view token) const {
        unsigned char want[crypto_hash_sha256_BYTES] = {};
        unsigned char got[crypto_hash_sha256_BYTES] = {};
        bool have = stored_hash(want);
        bool decoded = token_digest(token, got);
        bool same = sodium_memcmp(want, got, sizeof want) == 0;
        sodium_memzero(got, sizeof got);
        if (!(have && decoded && same))
            sh_->host.log(PARLEY_LOG_DEBUG, "bench: admin token refused");
        return have && decoded && same;
    }

    // BenchTalks 1.2.0 clients send ban_client without any credential. parley accepts it from
    // the connection whose join presented the room's admin hash (only token holders know it:
    // the server never sends it out), or with the token in "adminToken".
    bool admin_for_ban(std::string_view token) const {
        if (!token.empty()) return admin_token_ok(token);
        unsigned char want[crypto_hash_sha256_BYTES] = {};
        unsigned char got[crypto_hash_sha256_BYTES] = {};
        size_t bin_len = 0;
        bool have = stored_hash(want);
        bool presented = join_hash_.size() == 64 &&
                         sodium_hex2bin(got, sizeof got, join_hash_.data(), join_hash_.size(),
                                        nullptr, &bin_len, nullptr) == 0 &&
                         bin_len == sizeof got;
        return have && presented && sodium_memcmp(want, got, sizeof want) == 0;
    }

    bool take_image_token() {
        auto now = Clock::now();
        double per_sec = sh_->cfg.images_per_minute / 60.0;
        image_tokens_ = std::min<double>(
            sh_->cfg.images_per_minute,
            image_tokens_ + per_sec * std::chrono::duration<double>(now - image_at_).count());
        image_at_ = now;
        if (image_tokens_ < 1) return false;
        image_tokens_ -= 1;
        return true;
    }

    // Opaque payloads to everyone else in the room (no echo). Back-pressure is the transport's:
    // one shared frame, bounded per-connection queues and a global budget.
    void relay(Conn& c, std::string_view type, std::string_view payload) {
        if (payload.empty()) return error(c, "empty payload");
        if (type == "image") {
            if (payload.size() > sh_->cfg.max_image)
                return error(c, "image too large: the limit is " +
                                    std::to_string(sh_->cfg.max_file_size) + " bytes");
            if (!take_image_token()) return error(c, "too many images, slow down");
        } else if (payload.size() > sh_->cfg.max_text) {
            return error(c, "message too large");
        }
        auto f = frame_shared(sh_->host, type, payload, id_);
        t()->room_publish(ctx(), sdk::bytes(room_), f.get(), c.id());
        federate(f.view());
    }

    struct Found {
        std::vector<parley_t_conn_id> conns;
        std::string_view label; // when looking one member up
    };

    std::vector<parley_t_conn_id> member_conns() const {
        std::vector<parley_t_conn_id> out;
        t()->room_members(
            ctx(), sdk::bytes(room_),
            [](void* u, parley_t_conn_id conn, parley_t_bytes) {
                static_cast<std::vector<parley_t_conn_id>*>(u)->push_back(conn);
                return 0;
            },
            &out);
        return out;
    }

    parley_t_conn_id conn_of(std::string_view label) const {
        Found f{{}, label};
        t()->room_members(
            ctx(), sdk::bytes(room_),
            [](void* u, parley_t_conn_id conn, parley_t_bytes l) {
                auto* f = static_cast<Found*>(u);
                if (sdk::view(l) != f->label) return 0;
                f->conns.push_back(conn);
                return 1;
            },
            &f);
        return f.conns.empty() ? 0 : f.conns.front();
    }

    // BenchTalks: everyone (the admin too) gets "deleted", then every connection is closed and
    // the room is gone at once, so the next joiner starts a new room. No leave notices.
    void on_delete(Conn& c, std::string_view token) {
        if (!admin_token_ok(token)) return error(c, "invalid admin token");
        auto conns = member_conns();
        for (auto id : conns)
            if (auto m = sh_->member(id)) m->evicted.store(true);
        auto f = sh_->host.frame_of(deleted_frame());
        t()->room_publish(ctx(), sdk::bytes(room_), f.get(), 0);
        for (auto id : conns) {
            uint32_t left = 1;
            if (t()->room_leave(ctx(), id, sdk::bytes(room_), &left) == PARLEY_OK && left == 0)
                room_emptied();
        }
        sh_->forget(room_);
        joined_ = false;
        sh_->host.log(PARLEY_LOG_DEBUG, "bench: room deleted by its admin");
        static constexpr std::string_view reason = "bench deleted";
        for (auto id : conns)
            if (id != c.id()) t()->conn_close(ctx(), id, 1000, sdk::bytes(reason));
        c.close(1000, reason);
    }

    // One way only, as in BenchTalks; both the admin and the others hear "made_public".
    void on_make_public(Conn& c, std::string_view token) {
        if (!admin_token_ok(token)) return error(c, "invalid admin token");
        t()->room_meta_set(ctx(), sdk::bytes(room_), PARLEY_META_PUBLIC, sdk::bytes("1"), 0);
        sh_->any_public.store(true);
        auto f = sh_->host.frame_of(frame_text("made_public", "", id_));
        t()->room_publish(ctx(), sdk::bytes(room_), f.get(), c.id());
        c.send_text(frame_text("made_public", "", id_));
    }

    // payload = admin token, adminHash = the claiming bench's id (BenchTalks reuses the field).
    void on_request_pair(Conn& c, const Incoming& in) {
        if (in.admin_hash.empty()) return error(c, "claimer bench ID required");
        if (!valid_bench_id(in.admin_hash)) return error(c, "invalid claimer bench ID");
        if (!admin_token_ok(in.payload)) return error(c, "invalid admin token");
        std::string claimer(in.admin_hash);
        // With transport-nats the token lives there (it verifies claims from the park) and it
        // answers pair_token itself; standalone, it is kept here as BenchTalks does.
        auto st = sh_->federation("federation.pair_request", c.id(), room_, id_ + "\n" + claimer);
        if (st == PARLEY_OK) return;
        if (st != PARLEY_ERR_NOT_FOUND) return error(c, "pairing is unavailable, try again");
        auto token = sh_->add_pair_token(room_, claimer);
        c.send_text(frame_text("pair_token", token + "|" + claimer, id_));
    }

    // Claims travel to the park over NATS (transport-nats); the answer comes later, as
    // pair_approved to the room (or an error to this connection). Without transport-nats,
    // like a standalone BenchTalks bench, this answers that there is no park.
    void on_claim_pair(Conn& c, std::string_view token) {
        if (token.empty()) {
            auto st = sh_->federation("federation.status", 0, room_, {});
            return error(c, st == PARLEY_ERR_NOT_FOUND ? "this bench is not connected to a park"
                                                       : "missing pair token");
        }
        auto st = sh_->federation("federation.pair_claim", c.id(), room_,
                                  id_ + "\n" + std::string(token));
        if (st == PARLEY_ERR_NOT_FOUND) return error(c, "this bench is not connected to a park");
        if (st != PARLEY_OK) return error(c, "invalid pair token");
        c.send_text(frame_text("pair_claim_sent", "", id_));
    }

    // Frames of a public room also go to the park (transport-nats drops them until the room has
    // a paired bench). Private rooms never leave the bench: one relaxed load until some room of
    // this bench has been made public, then one metadata read.
    void federate(std::string_view frame) {
        if (!sh_->any_public.load(std::memory_order_relaxed)) return;
        char flag = 0;
        size_t len = 0;
        if (t()->room_meta_get(ctx(), sdk::bytes(room_), PARLEY_META_PUBLIC, &flag, 1, &len) !=
                PARLEY_OK ||
            len != 1 || flag != '1')
            return;
        sh_->federation("federation.publish", 0, room_, frame);
    }

    void on_ban(Conn& c, const Incoming& in) {
        if (!admin_for_ban(in.admin_token)) return error(c, "invalid admin token");
        if (in.payload.empty()) return error(c, "missing target client ID");
        if (in.payload == id_) return error(c, "cannot ban yourself");
        if (!valid_sender_id(in.payload)) return error(c, "client not found in room");
        std::string target(in.payload);
        auto kicked = sh_->host.frame_of(frame_text("kicked", kBannedText, target));
        auto conn = conn_of(target);
        if (!conn) {
            // Cluster mode: the target may be on another node, which bans and closes it when
            // the kicked frame arrives (BenchSession::on_out). Not found anywhere: an error.
            if (t()->room_send_to_member(ctx(), sdk::bytes(room_), sdk::bytes(target),
                                         kicked.get()) != PARLEY_OK)
                return error(c, "client not found in room");
            sh_->host.log(PARLEY_LOG_DEBUG, "bench: member on another node banned by the admin");
            return;
        }
        auto m = sh_->member(conn);
        if (!m) return error(c, "client not found in room");
        sh_->ban(room_, m->peer_key);
        m->evicted.store(true);
        t()->room_send_to_member(ctx(), sdk::bytes(room_), sdk::bytes(target), kicked.get());
        remove_announced(conn, target); // to the others here and, like any leave, the park
        sh_->host.log(PARLEY_LOG_DEBUG, "bench: member banned by the admin");
        static constexpr std::string_view reason = "banned";
        t()->conn_close(ctx(), conn, 1008, sdk::bytes(reason));
    }

    std::shared_ptr<Shared> sh_;
    const std::string id_; // senderId
    std::string room_;
    std::string join_hash_; // the admin hash this connection presented at join (lowercase hex)
    std::shared_ptr<Member> member_;
    bool joined_ = false;
    int errors_ = 0;
    double image_tokens_;
    Clock::time_point image_at_;
};

// ---- HTTP ----

// Both return true: "this route answered".
bool json_reply(HttpReply& rep, int status, std::string body) {
    rep.status = status;
    rep.content_type = "application/json";
    rep.body = std::move(body);
    return true;
}

bool text_reply(HttpReply& rep, int status, std::string_view body, std::string_view allow = {}) {
    rep.status = status;
    rep.content_type = "text/plain; charset=utf-8";
    rep.body = std::string(body);
    if (!allow.empty()) rep.headers = "Allow: " + std::string(allow) + "\r\n";
    return true;
}

class Bench final : public Dialect {
  public:
    explicit Bench(const Env& env)
        : sh_(std::make_shared<Shared>(env.host, read_config(env.host))) {
        auto& cfg = sh_->cfg;
        auto& h = sh_->host;
        h.logf(PARLEY_LOG_INFO, "bench: id %s, images up to %lld bytes, admin claim %s",
               cfg.bench_id.c_str(), (long long)cfg.max_file_size,
               cfg.claim == Claim::First    ? "first"
               : cfg.claim == Claim::Sticky ? "sticky"
                                            : "none");
        if (cfg.benchtalks_pages)
            h.log(PARLEY_LOG_INFO, "bench: serving BenchTalks' own pages: their CSP allows inline "
                                   "scripts and TweetNaCl from cdn.jsdelivr.net");
        if (!cfg.nats_peers.empty())
            h.logf(PARLEY_LOG_WARN,
                   "bench: %zu NATS peers configured, but federation is not implemented yet "
                   "in the bench dialect: load the transport-nats plugin (its `servers` and "
                   "`federation` keys); without it the bench runs standalone",
                   cfg.nats_peers.size());
    }

    size_t min_message() const override { return sh_->cfg.max_image + kEnvelopeSlack; }

    std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) override {
        if (req.path != "/ws") {
            refusal.status = 404;
            refusal.body = "not found";
            return nullptr;
        }
        return std::make_unique<BenchSession>(sh_);
    }

    bool http(const HttpRequest& req, HttpReply& rep) override {
        auto p = req.path;
        bool get = req.method == "GET" || req.method == "HEAD";
        if (p == "/health") return health(rep);
        if (p == "/api/invite") {
            if (req.method != "POST") return text_reply(rep, 405, "method not allowed\n", "POST");
            return create_invite(req, rep);
        }
        constexpr std::string_view join = "/join/", claim = "/api/invite/claim/";
        if (p.starts_with(join) || p.starts_with(claim)) {
            // GET only: a HEAD must not burn a single-use token.
            if (req.method != "GET") return text_reply(rep, 405, "method not allowed\n", "GET");
            auto token = p.substr(p.starts_with(join) ? join.size() : claim.size());
            if (token.empty()) return text_reply(rep, 400, "missing token\n");
            return claim_invite(token, rep);
        }
        if (!get) return false;
        // Pages, as BenchTalks serves them (other files come from the web root as they are).
        if (p == "/" || p == "/index.html") {
            rep.file = "index.html";
            return true;
        }
        if (p == "/room" || p == "/room.html") {
            rep.file = "room.html";
            return true;
        }
        return false;
    }

    // Images are shown from blob: URLs and the notification sound is a same-origin file.
    std::string csp() const override {
        // BenchTalks' pages load TweetNaCl from jsDelivr, use inline handlers and styles and
        // build messages with innerHTML: the loosest policy they run under, nothing more.
        if (sh_->cfg.benchtalks_pages)
            return "default-src 'none'; script-src 'self' 'unsafe-inline' "
                   "https://cdn.jsdelivr.net; style-src 'self' 'unsafe-inline'; "
                   "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: "
                   "wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
                   "object-src 'none'";
        return "default-src 'none'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; media-src 'self'; connect-src 'self' ws: wss:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; "
               "require-trusted-types-for 'script'";
    }

  private:
    bool health(HttpReply& rep) {
        auto up = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - sh_->started);
        json_reply(rep, 200,
                   R"({"status":"ok","version":")" + std::string(kVersion) +
                       R"(","uptime_seconds":)" + std::to_string(up.count()) + R"(,"rooms":)" +
                       std::to_string(std::max<int64_t>(0, sh_->rooms_live.load())) +
                       R"(,"federation":)" +
                       (sh_->federation("federation.status", 0, {}, {}) == PARLEY_ERR_NOT_FOUND
                            ? "false}"
                            : "true}"));
        return true;
    }

    bool create_invite(const HttpRequest& req, HttpReply& rep) {
        simdjson::ondemand::parser parser;
        std::string buf(req.body);
        buf.reserve(buf.size() + simdjson::SIMDJSON_PADDING);
        simdjson::ondemand::document doc;
        simdjson::ondemand::object obj;
        std::string_view room, payload;
        auto err = parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc);
        if (!err) err = doc.get_object().get(obj);
        if (!err) {
            for (auto field : obj) {
                std::string_view k;
                if ((err = field.unescaped_key().get(k))) break;
                if (k == "roomId")
                    err = field.value().get_string().get(room);
                else if (k == "encryptedPayload")
                    err = field.value().get_string().get(payload);
                if (err) break;
            }
        }
        if (err) return text_reply(rep, 400, "invalid request body\n");
        if (room.empty() || payload.empty())
            return text_reply(rep, 400, "room id and payload are required\n");
        if (!valid_room(room)) return text_reply(rep, 400, "invalid room id\n");
        if (payload.size() > sh_->cfg.max_invite_payload)
            return text_reply(rep, 413, "payload too large\n");
        std::string token;
        switch (sh_->add_invite(req.peer_key, std::string(room), std::string(payload), token)) {
        case Shared::InviteStatus::Full:
            return text_reply(rep, 503, "too many open invites, try again later\n");
        case Shared::InviteStatus::Throttled:
            return text_reply(rep, 429, "too many invites from this address\n");
        case Shared::InviteStatus::Ok:
            break;
        }
        json_reply(rep, 200, R"({"token":")" + token + "\"}");
        return true;
    }

    bool claim_invite(std::string_view token, HttpReply& rep) {
        auto inv = sh_->take_invite(token);
        if (!inv) return text_reply(rep, 404, kInviteGone);
        json_reply(rep, 200,
                   R"({"encryptedPayload":")" + json_escape(inv->payload) + R"(","roomId":")" +
                       json_escape(inv->room) + "\"}");
        return true;
    }

    std::shared_ptr<Shared> sh_;
};

} // namespace

std::unique_ptr<Dialect> make_bench(const Env& env) {
    if (sodium_init() < 0) return nullptr;
    return std::make_unique<Bench>(env);
}

} // namespace parley::dialect
