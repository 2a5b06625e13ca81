// relay: Relay's (seika5/relay) blob API as a parley service plugin, on the kernel's HTTP route
// table (served by transport-ws). Blobs are opaque 64 KiB ciphertexts addressed to a member's
// key hash; they live in the profile's store with an obfuscated expiry (send day's UTC midnight
// + 72 h + 0..24 h at random), so the exact send time is stored nowhere.
//
// Routes: POST/GET /api/blobs, DELETE /api/blobs/<id>, GET /api/keys/allowed, GET /health.
// Modes: `secure` (default) wants an Ed25519 request proof from an allowlisted key on every
// blob route; `compat` accepts Relay's unauthenticated clients. See plugins/relay/README.md.
//
// Privacy: logs carry counts only; never key hashes, blob ids, payloads, signatures or IPs.
#include "relay_core.hpp"

#include <parley/sdk.hpp>

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace parley::sdk;
namespace relay = parley::relay;

constexpr parley_t_config_key kConfig[] = {
    key("allowlist", PARLEY_CFG_STRING, nullptr,
        "Path of allowlist.json (from `parley identities generate` or `import-relay`); a "
        "relative path is resolved against the directory of the profile file. Re-read on "
        "reload, when its modification time changes (allowlist_poll) and, if the file changed, "
        "at the next admission or API check.",
        PARLEY_CFG_REQUIRED),
    key_enum("mode", "secure|compat", "secure",
             "secure: blob routes need an Ed25519 request proof from an allowlisted key; "
             "compat: Relay's unauthenticated API, for unmodified Relay clients."),
    key("web_origin", PARLEY_CFG_STRING, "",
        "Exact origin allowed by CORS (Relay's WEB_ORIGIN), e.g. http://localhost:3000; empty = "
        "no CORS headers."),
    key_range("post_rate", PARLEY_CFG_INT, "120", 0, 1000000,
              "Blob POSTs accepted per recipient per minute (token bucket, burst = the rate); 0 "
              "= unlimited."),
    key_range("proof_window", PARLEY_CFG_DURATION, "120s", 1000, 3600 * 1000,
              "Allowed clock difference for X-Parley-Timestamp; a signature is remembered this "
              "long to refuse replays."),
    key_range("list_limit", PARLEY_CFG_INT, "100", 1, 10000,
              "Most blobs returned by one GET /api/blobs (soonest expiry first)."),
    key_range("allowlist_poll", PARLEY_CFG_DURATION, "10s", 0, 3600 * 1000,
              "How often the allowlist file's modification time is checked; 0 = only on "
              "reload."),
};

constexpr std::string_view kJson = "application/json; charset=utf-8";
constexpr size_t kReplayCapacity = 200000;

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string error_json(std::string_view msg) {
    return R"({"error":")" + relay::json_escape(msg) + R"("})";
}

bool ieq_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

std::optional<std::string_view> header(const parley_t_http_request* req, std::string_view name) {
    if (!req->header) return std::nullopt;
    parley_t_bytes out{};
    if (!req->header(req, bytes(name), &out)) return std::nullopt;
    return view(out);
}

// The directory of the profile parleyd runs, so relative paths in it mean what they say wherever
// parleyd was started from. The plugin ABI does not carry the profile's path, so it is read from
// parleyd's command line (`parleyd [options] PROFILE`; the options that take a value are
// skipped). Empty when it cannot be found (then relative paths stay relative to the cwd).
std::filesystem::path profile_dir() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> argv;
    for (size_t i = 0; i < all.size();) {
        size_t z = all.find('\0', i);
        if (z == std::string::npos) z = all.size();
        argv.emplace_back(all.substr(i, z - i));
        i = z + 1;
    }
    for (size_t i = 1; i < argv.size(); ++i) {
        const auto& a = argv[i];
        if (a == "--state-dir" || a == "--describe-plugin" || a == "--plugin-path") {
            ++i;
            continue;
        }
        if (a.empty() || a[0] == '-') continue;
        std::error_code ec;
        auto abs = std::filesystem::absolute(a, ec);
        return ec ? std::filesystem::path() : abs.parent_path();
    }
    return {};
}

std::string resolve_path(const std::string& p) {
    if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
    auto dir = profile_dir();
    return dir.empty() ? p : (dir / p).lexically_normal().string();
}

bool valid_blob_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    return true;
}

struct Settings {
    bool secure = true;
    std::string web_origin;
    int64_t post_rate = 0;
    int64_t window_ms = 120000;
    uint32_t list_limit = 100;
};

using Allowlist = std::set<std::string>;

class Relay;

// One answer in flight. Owned by whoever holds it: the handler, then a store callback (through
// a released unique_ptr), then nobody once http_respond ran.
struct Pending {
    Relay* self = nullptr;
    parley_t_http_response_hptr resp = nullptr;
    std::string cors;       // CORS headers for this request's origin (may be empty)
    std::string caller;     // secure mode: the proven key hash
    std::string id;         // DELETE: the blob id
    std::string recipient;  // POST: whose box to notify once stored
    int64_t expires_ms = 0; // POST: the expiry handed to the store, echoed as expiresAt
};

class Relay final : public Plugin {
  public:
    explicit Relay(Host h) : Plugin(h) {
        if (!relay::crypto_init()) throw std::runtime_error("libsodium init failed");
        m_posts_ = h.counter("parley_relay_blobs_stored_total", "Blobs accepted by POST.");
        m_lists_ = h.counter("parley_relay_lists_total", "GET /api/blobs answered.");
        m_deletes_ = h.counter("parley_relay_blobs_deleted_total", "Blobs deleted by DELETE.");
        m_auth_ = h.counter("parley_relay_refused_total{reason=\"auth\"}",
                            "Requests refused, by reason.");
        m_size_ = h.counter("parley_relay_refused_total{reason=\"size\"}",
                            "Requests refused, by reason.");
        m_rcpt_ = h.counter("parley_relay_refused_total{reason=\"recipient\"}",
                            "Requests refused, by reason.");
        m_rate_ = h.counter("parley_relay_refused_total{reason=\"rate\"}",
                            "Requests refused, by reason.");
        m_store_ = h.counter("parley_relay_refused_total{reason=\"store\"}",
                             "Requests refused, by reason.");
        m_keys_ = h.gauge("parley_relay_allowlist_keys", "Key hashes on the allowlist.");
        load_settings();
    }

    parley_t_status start() override {
        std::string err;
        if (!load_allowlist(err)) {
            host().set_error(err);
            return PARLEY_ERR_INVALID;
        }
        const parley_t_host* t = host().table();
        for (const char* path : {"/api/blobs", "/api/blobs/*", "/api/keys/allowed", "/health"}) {
            if (t->http_route(host().ctx(), bytes(""), bytes(path), &on_http, this) != PARLEY_OK) {
                host().set_error(std::string("HTTP route ") + path +
                                 " is already registered by another instance");
                return PARLEY_ERR_EXISTS;
            }
        }
        // The relay dialect's admission guard asks here whether a proven key is a member.
        if (t->command_register(host().ctx(), bytes("relay.allowed"), &on_allowed, this) !=
            PARLEY_OK) {
            host().set_error("command relay.allowed is already registered by another instance");
            return PARLEY_ERR_EXISTS;
        }
        // The dialects ask here whether Relay's unauthenticated clients are accepted (compat).
        if (t->command_register(host().ctx(), bytes("relay.compat"), &on_compat, this) !=
            PARLEY_OK) {
            host().set_error("command relay.compat is already registered by another instance");
            return PARLEY_ERR_EXISTS;
        }
        arm_poll();
        auto s = settings();
        host().logf(PARLEY_LOG_INFO, "relay started: %s mode, CORS %s, post_rate %lld/min",
                    s->secure ? "secure" : "compat", s->web_origin.empty() ? "off" : "on",
                    static_cast<long long>(s->post_rate));
        return PARLEY_OK;
    }

    void stop() override {
        stopping_ = true;
        disarm_poll();
        // Store callbacks and work items hold `this`: wait (bounded) until they are all done.
        std::unique_lock lk(inflight_mu_);
        if (!inflight_cv_.wait_for(lk, std::chrono::seconds(10), [&] { return inflight_ == 0; }))
            host().log(PARLEY_LOG_WARN, "relay: requests still in flight at stop");
    }

    parley_t_status reload() override {
        load_settings();
        std::string err;
        if (!load_allowlist(err)) {
            host().set_error(err + " (keeping the previous allowlist)");
            return PARLEY_ERR;
        }
        disarm_poll();
        arm_poll();
        return PARLEY_OK;
    }

    // ---- used by Pending completions ----
    void begin() {
        std::lock_guard lk(inflight_mu_);
        ++inflight_;
    }
    void end() {
        std::lock_guard lk(inflight_mu_);
        if (--inflight_ == 0) inflight_cv_.notify_all();
    }

  private:
    std::shared_ptr<const Settings> settings() const {
        std::lock_guard lk(mu_);
        return settings_;
    }
    std::shared_ptr<const Allowlist> allowlist() const {
        std::lock_guard lk(mu_);
        return allow_;
    }
    bool allowed(std::string_view hash) {
        refresh_allowlist();
        auto a = allowlist();
        return a && a->count(std::string(hash)) != 0;
    }

    // An edited allowlist applies at the next check, without waiting for the poll: the file's
    // identity (mtime, size, inode) is compared on every check (one stat; the file is re-read
    // only when it changed, and a malformed new file keeps the previous list).
    void refresh_allowlist() {
        std::string path;
        FileId seen;
        {
            std::lock_guard lk(mu_);
            path = allowlist_path_;
            seen = allowlist_id_;
        }
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return;
        if (FileId::of(st) == seen) return;
        std::unique_lock busy(refresh_mu_, std::try_to_lock);
        if (!busy) return; // another thread is re-reading it right now
        std::string err;
        if (!load_allowlist(err))
            host().logf(PARLEY_LOG_WARN, "relay: %s (keeping the previous one)", err.c_str());
    }

    // relay.allowed: call->identity is a key hash proven by the caller (the relay dialect).
    static parley_t_status on_allowed(void* user, const parley_t_command_call* call) noexcept {
        auto* self = static_cast<Relay*>(user);
        try {
            std::string_view h = view(call->identity);
            return relay::is_key_hash(h) && self->allowed(h) ? PARLEY_OK : PARLEY_ERR_DENIED;
        } catch (...) {
            return PARLEY_ERR;
        }
    }

    // relay.compat: PARLEY_OK when `mode: compat` (read per call, so a reload applies to new
    // connections), PARLEY_ERR_DENIED in secure mode.
    static parley_t_status on_compat(void* user, const parley_t_command_call*) noexcept {
        try {
            auto s = static_cast<Relay*>(user)->settings();
            return s && !s->secure ? PARLEY_OK : PARLEY_ERR_DENIED;
        } catch (...) {
            return PARLEY_ERR;
        }
    }

    void load_settings() {
        auto s = std::make_shared<Settings>();
        s->secure = host().config_string("mode", "secure") != "compat";
        s->web_origin = host().config_string("web_origin");
        s->post_rate = host().config_int("post_rate", 120);
        s->window_ms = host().config_int("proof_window", 120000);
        s->list_limit = uint32_t(host().config_int("list_limit", 100));
        std::lock_guard lk(mu_);
        settings_ = std::move(s);
        allowlist_path_ = resolve_path(host().config_string("allowlist"));
        poll_ms_ = uint64_t(host().config_int("allowlist_poll", 10000));
    }

    bool load_allowlist(std::string& err) {
        std::string path;
        {
            std::lock_guard lk(mu_);
            path = allowlist_path_;
        }
        std::error_code ec;
        auto mtime = std::filesystem::last_write_time(path, ec);
        struct stat st {};
        bool have_id = ::stat(path.c_str(), &st) == 0;
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            err = "cannot read allowlist " + path;
            return false;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        std::string perr;
        auto parsed = relay::parse_allowlist(ss.str(), perr);
        if (!parsed) {
            err = "allowlist " + path + ": " + perr;
            return false;
        }
        size_t n = parsed->size();
        {
            std::lock_guard lk(mu_);
            allow_ = std::make_shared<const Allowlist>(std::move(*parsed));
            if (!ec) allowlist_mtime_ = mtime;
            if (have_id) allowlist_id_ = FileId::of(st);
        }
        host().set(m_keys_, int64_t(n));
        host().logf(PARLEY_LOG_INFO, "relay: allowlist loaded (%zu keys)", n);
        return true;
    }

    // ---- allowlist polling: a timer notices a changed mtime, a worker re-reads the file ----
    void arm_poll() {
        if (poll_ms_)
            poll_timer_ =
                host().table()->timer_start(host().ctx(), poll_ms_, poll_ms_, &on_poll, this);
    }
    void disarm_poll() {
        if (poll_timer_) host().table()->timer_cancel(host().ctx(), poll_timer_);
        poll_timer_ = 0;
    }
    static void on_poll(void* user) noexcept {
        auto* self = static_cast<Relay*>(user);
        if (self->stopping_ || self->poll_busy_.exchange(true)) return;
        self->begin();
        if (self->host().table()->work_submit(self->host().ctx(), &poll_work, self) != PARLEY_OK) {
            self->poll_busy_ = false;
            self->end();
        }
    }
    static void poll_work(void* user) noexcept {
        auto* self = static_cast<Relay*>(user);
        try {
            std::string path;
            std::filesystem::file_time_type seen;
            {
                std::lock_guard lk(self->mu_);
                path = self->allowlist_path_;
                seen = self->allowlist_mtime_;
            }
            std::error_code ec;
            auto mtime = std::filesystem::last_write_time(path, ec);
            if (!ec && mtime != seen) {
                std::string err;
                if (!self->load_allowlist(err))
                    self->host().logf(PARLEY_LOG_WARN, "relay: %s (keeping the previous one)",
                                      err.c_str());
            }
        } catch (...) {
        }
        self->poll_busy_ = false;
        self->end();
    }

    // ---- HTTP ----

    static void respond(parley_t_http_response_hptr resp, const parley_t_host* t, int status,
                        std::string_view cors, std::string_view body, std::string_view extra = {}) {
        std::string headers(cors);
        headers += extra;
        t->http_respond(resp, status, bytes(body.empty() ? std::string_view() : kJson),
                        bytes(headers), bytes(body));
    }
    void fail(parley_t_http_response_hptr resp, std::string_view cors, int status,
              std::string_view msg, std::string_view extra = {}) {
        respond(resp, host().table(), status, cors, error_json(msg), extra);
    }

    static void on_http(void* user, const parley_t_http_request* req,
                        parley_t_http_response_hptr resp) noexcept {
        auto* self = static_cast<Relay*>(user);
        try {
            self->handle(req, resp);
        } catch (...) {
            // handle() answers before anything that may throw past it only in theory (bad_alloc).
            respond(resp, self->host().table(), 500, "", error_json("internal error"));
        }
    }

    void handle(const parley_t_http_request* req, parley_t_http_response_hptr resp) {
        auto s = settings();
        std::string_view method = view(req->method);
        std::string_view path = view(req->path);

        std::string cors;
        if (!s->web_origin.empty()) {
            auto origin = header(req, "origin");
            if (origin && *origin == s->web_origin)
                cors = "Access-Control-Allow-Origin: " + s->web_origin + "\r\n";
            cors += "Vary: Origin\r\n";
        }

        if (method == "OPTIONS") { // CORS preflight (answered for every route of ours)
            std::string h;
            if (!s->web_origin.empty() && cors.starts_with("Access-Control-Allow-Origin"))
                h = "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                    "Access-Control-Allow-Headers: Content-Type, X-Parley-Key, "
                    "X-Parley-Timestamp, X-Parley-Signature\r\n"
                    "Access-Control-Max-Age: 600\r\n";
            return respond(resp, host().table(), 204, cors, "", h);
        }

        if (path == "/health") {
            if (method != "GET") return fail(resp, cors, 405, "method not allowed");
            return respond(resp, host().table(), 200, cors, R"({"ok":true})");
        }
        if (path == "/api/keys/allowed") {
            if (method != "GET") return fail(resp, cors, 405, "method not allowed");
            auto kh = relay::query_param(view(req->query), "keyHash");
            if (!kh || kh->empty()) return fail(resp, cors, 400, "keyHash required");
            std::string h = lower(*kh);
            bool ok = relay::is_key_hash(h) && allowed(h);
            return respond(resp, host().table(), 200, cors,
                           ok ? R"({"allowed":true})" : R"({"allowed":false})");
        }

        bool collection = path == "/api/blobs";
        bool item = path.starts_with("/api/blobs/");
        if (!collection && !item) return fail(resp, cors, 404, "not found");
        if (collection && method != "POST" && method != "GET")
            return fail(resp, cors, 405, "method not allowed");
        if (item && method != "DELETE") return fail(resp, cors, 405, "method not allowed");

        // Proof first: a caller without one learns nothing else about the request.
        std::string caller;
        if (s->secure && !verify_proof(*s, req, caller)) {
            host().add(m_auth_);
            return fail(resp, cors, 401, "unauthorized");
        }

        if (item) return do_delete(req, resp, std::move(cors), std::move(caller), *s);
        if (method == "POST") return do_post(req, resp, std::move(cors), *s);
        return do_list(req, resp, std::move(cors), std::move(caller), *s);
    }

    static std::string lower(std::string_view v) {
        std::string out(v);
        for (auto& c : out)
            c = char(std::tolower(static_cast<unsigned char>(c)));
        return out;
    }

    // X-Parley-Key / -Timestamp / -Signature over relay::proof_message; on success `caller` is
    // the key's hash. Never says which check failed.
    bool verify_proof(const Settings& s, const parley_t_http_request* req, std::string& caller) {
        auto key = header(req, "x-parley-key");
        auto ts = header(req, "x-parley-timestamp");
        auto sig = header(req, "x-parley-signature");
        if (!key || !ts || !sig) return false;
        auto pk = relay::b64_decode(*key);
        if (!pk || pk->size() != crypto_sign_PUBLICKEYBYTES) return false;
        std::string hash = relay::key_hash_of_public_key(*pk);
        if (!allowed(hash)) return false;
        if (ts->empty() || ts->size() > 12) return false;
        int64_t t = 0;
        for (char c : *ts) {
            if (c < '0' || c > '9') return false;
            t = t * 10 + (c - '0');
        }
        int64_t now = now_ms();
        if (std::llabs(now - t * 1000) > s.window_ms) return false;
        auto raw_sig = relay::b64_decode(*sig);
        if (!raw_sig || raw_sig->size() != crypto_sign_BYTES) return false;
        std::string msg = relay::proof_message(view(req->method), view(req->path), view(req->query),
                                               *ts, view(req->body));
        if (!relay::verify_ed25519(*pk, *raw_sig, msg)) return false;
        if (!remember_signature(*raw_sig, t * 1000 + s.window_ms + 1000, now)) return false;
        caller = std::move(hash);
        return true;
    }

    // Replay cache: a valid signature is accepted once while its timestamp is in the window.
    // Returns false if it was seen before (or the cache is full of live entries).
    bool remember_signature(const std::string& sig, int64_t forget_at_ms, int64_t now) {
        std::lock_guard lk(replay_mu_);
        while (!replay_by_time_.empty() && replay_by_time_.begin()->first <= now) {
            replay_.erase(replay_by_time_.begin()->second);
            replay_by_time_.erase(replay_by_time_.begin());
        }
        if (replay_.size() >= kReplayCapacity) return false;
        if (!replay_.emplace(sig).second) return false;
        replay_by_time_.emplace(forget_at_ms, sig);
        return true;
    }

    // Token bucket per recipient (the recipient is allowlisted, so the map stays small).
    bool take_token(const std::string& recipient, int64_t rate_per_min) {
        if (rate_per_min <= 0) return true;
        int64_t now = now_ms();
        std::lock_guard lk(rate_mu_);
        auto [it, fresh] = buckets_.try_emplace(recipient, Bucket{double(rate_per_min), now});
        Bucket& b = it->second;
        if (!fresh) {
            b.tokens = std::min(double(rate_per_min),
                                b.tokens + double(now - b.at) * double(rate_per_min) / 60000.0);
            b.at = now;
        }
        if (b.tokens < 1.0) return false;
        b.tokens -= 1.0;
        return true;
    }

    bool recipient_param(const parley_t_http_request* req, parley_t_http_response_hptr resp,
                         const std::string& cors, std::string& out) {
        auto r = relay::query_param(view(req->query), "recipientKeyHash");
        if (!r || r->empty()) {
            fail(resp, cors, 400, "recipientKeyHash required");
            return false;
        }
        out = lower(*r);
        if (!relay::is_key_hash(out)) {
            fail(resp, cors, 400, "recipientKeyHash must be 64 hex digits");
            return false;
        }
        return true;
    }

    static std::string_view store_error(parley_t_status st, int& status) {
        switch (st) {
        case PARLEY_ERR_LIMIT:
            status = 507;
            return "storage full";
        case PARLEY_ERR_UNAVAILABLE:
            status = 503;
            return "storage unavailable";
        default:
            status = 500;
            return "storage error";
        }
    }

    void do_post(const parley_t_http_request* req, parley_t_http_response_hptr resp,
                 std::string cors, const Settings& s) {
        std::string recipient;
        if (!recipient_param(req, resp, cors, recipient)) return;
        auto ct = header(req, "content-type");
        if (!ct || !ieq_prefix(*ct, "application/octet-stream")) {
            host().add(m_size_);
            // Relay's express.raw() leaves other types unread: an empty body, hence its 400.
            return fail(resp, cors, s.secure ? 415 : 400, "expected application/octet-stream");
        }
        if (req->body.len != relay::kBlobSize) {
            host().add(m_size_);
            return fail(resp, cors, 400, "blob must be exactly 65536 bytes");
        }
        if (!allowed(recipient)) {
            host().add(m_rcpt_);
            return fail(resp, cors, 403, "recipient not allowed");
        }
        if (!take_token(recipient, s.post_rate)) {
            host().add(m_rate_);
            return fail(resp, cors, 429, "too many blobs for this recipient",
                        "Retry-After: 60\r\n");
        }
        // Computed from the send day only; the send time itself is kept nowhere.
        int64_t expires = relay::random_expiry_ms(now_ms());
        auto p = std::make_unique<Pending>();
        p->self = this;
        p->resp = resp;
        p->cors = std::move(cors);
        p->expires_ms = expires;
        p->recipient = recipient;
        begin();
        Pending* raw = p.get();
        auto st = host().table()->blob_put(host().ctx(), bytes(recipient), req->body, expires,
                                           &on_put, p.release());
        if (st != PARLEY_OK) { // the callback will not run: the Pending is still ours
            std::unique_ptr<Pending> back(raw);
            int status = 0;
            auto msg = store_error(st, status);
            host().add(m_store_);
            fail(resp, back->cors, status, msg);
            end();
        }
    }

    static void on_put(void* user, parley_t_status st, parley_t_bytes id) noexcept {
        std::unique_ptr<Pending> p(static_cast<Pending*>(user));
        Relay* self = p->self;
        try {
            if (st == PARLEY_OK) {
                self->host().add(self->m_posts_);
                self->notify(p->recipient);
                respond(p->resp, self->host().table(), 201, p->cors,
                        R"({"id":")" + relay::json_escape(view(id)) + R"(","expiresAt":")" +
                            relay::iso_utc_ms(p->expires_ms) + R"("})");
            } else {
                int status = 0;
                auto msg = store_error(st, status);
                self->host().add(self->m_store_);
                self->fail(p->resp, p->cors, status, msg);
            }
        } catch (...) {
            respond(p->resp, self->host().table(), 500, p->cors, error_json("internal error"));
        }
        self->end();
    }

    void do_list(const parley_t_http_request* req, parley_t_http_response_hptr resp,
                 std::string cors, std::string caller, const Settings& s) {
        std::string recipient;
        if (!recipient_param(req, resp, cors, recipient)) return;
        if (s.secure && caller != recipient) {
            host().add(m_auth_);
            return fail(resp, cors, 403, "forbidden");
        }
        if (!allowed(recipient)) {
            host().add(m_rcpt_);
            return fail(resp, cors, 403, "recipient not allowed");
        }
        auto p = std::make_unique<Pending>();
        p->self = this;
        p->resp = resp;
        p->cors = std::move(cors);
        begin();
        Pending* raw = p.get();
        auto st = host().table()->blob_list(host().ctx(), bytes(recipient), 0, s.list_limit,
                                            &on_list, p.release());
        if (st != PARLEY_OK) {
            std::unique_ptr<Pending> back(raw);
            int status = 0;
            auto msg = store_error(st, status);
            fail(resp, back->cors, status, msg);
            end();
        }
    }

    static void on_list(void* user, parley_t_status st, const parley_t_blob* blobs,
                        size_t n) noexcept {
        std::unique_ptr<Pending> p(static_cast<Pending*>(user));
        Relay* self = p->self;
        try {
            if (st != PARLEY_OK) {
                int status = 0;
                auto msg = store_error(st, status);
                self->fail(p->resp, p->cors, status, msg);
            } else {
                // The store sorts by expiry; sort again so a store that does not cannot leak
                // insertion (= send) order.
                std::vector<const parley_t_blob*> v;
                v.reserve(n);
                for (size_t i = 0; i < n; ++i)
                    v.push_back(&blobs[i]);
                std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) {
                    if (a->expires_at_ms != b->expires_at_ms)
                        return a->expires_at_ms < b->expires_at_ms;
                    return view(a->id) < view(b->id);
                });
                std::string body = "[";
                body.reserve(2 + n * (relay::kBlobSize * 4 / 3 + 128));
                for (size_t i = 0; i < v.size(); ++i) {
                    if (i) body += ',';
                    body += R"({"id":")";
                    body += relay::json_escape(view(v[i]->id));
                    body += R"(","payload":")";
                    body += relay::b64_encode(view(v[i]->data));
                    body += R"(","expiresAt":")";
                    body += relay::iso_utc_ms(v[i]->expires_at_ms);
                    body += R"("})";
                }
                body += ']';
                self->host().add(self->m_lists_);
                respond(p->resp, self->host().table(), 200, p->cors, body);
            }
        } catch (...) {
            respond(p->resp, self->host().table(), 500, p->cors, error_json("internal error"));
        }
        self->end();
    }

    void do_delete(const parley_t_http_request* req, parley_t_http_response_hptr resp,
                   std::string cors, std::string caller, const Settings& s) {
        std::string_view id = view(req->path).substr(std::string_view("/api/blobs/").size());
        if (!valid_blob_id(id)) return fail(resp, cors, 404, "not found");
        auto p = std::make_unique<Pending>();
        p->self = this;
        p->resp = resp;
        p->cors = std::move(cors);
        p->id = std::string(id);
        p->caller = std::move(caller);
        begin();
        Pending* raw = p.get();
        parley_t_status st;
        if (s.secure) // only the recipient may delete: look the blob up first
            st = host().table()->blob_get(host().ctx(), bytes(raw->id), &on_get_for_delete,
                                          p.release());
        else
            st =
                host().table()->blob_delete(host().ctx(), bytes(raw->id), &on_deleted, p.release());
        if (st != PARLEY_OK) {
            std::unique_ptr<Pending> back(raw);
            int status = 0;
            auto msg = store_error(st, status);
            fail(resp, back->cors, status, msg);
            end();
        }
    }

    static void on_get_for_delete(void* user, parley_t_status st, const parley_t_blob* blobs,
                                  size_t n) noexcept {
        std::unique_ptr<Pending> p(static_cast<Pending*>(user));
        Relay* self = p->self;
        try {
            if (st == PARLEY_ERR_NOT_FOUND || (st == PARLEY_OK && n == 0)) {
                self->fail(p->resp, p->cors, 404, "not found");
            } else if (st != PARLEY_OK) {
                int status = 0;
                auto msg = store_error(st, status);
                self->fail(p->resp, p->cors, status, msg);
            } else if (view(blobs[0].recipient) != p->caller) {
                // Someone else's blob: indistinguishable from an absent one.
                self->host().add(self->m_auth_);
                self->fail(p->resp, p->cors, 404, "not found");
            } else {
                // We are on a store thread: issue the delete from the kernel's worker pool.
                Pending* raw = p.get();
                if (self->host().table()->work_submit(self->host().ctx(), &delete_work,
                                                      p.release()) == PARLEY_OK)
                    return; // end() runs when the delete completes
                p.reset(raw);
                self->fail(p->resp, p->cors, 503, "busy");
            }
        } catch (...) {
            respond(p->resp, self->host().table(), 500, p->cors, error_json("internal error"));
        }
        self->end();
    }

    static void delete_work(void* user) noexcept {
        auto* raw = static_cast<Pending*>(user);
        Relay* self = raw->self;
        auto st =
            self->host().table()->blob_delete(self->host().ctx(), bytes(raw->id), &on_deleted, raw);
        if (st != PARLEY_OK) {
            std::unique_ptr<Pending> p(raw);
            int status = 0;
            auto msg = store_error(st, status);
            try {
                self->fail(p->resp, p->cors, status, msg);
            } catch (...) {
            }
            self->end();
        }
    }

    static void on_deleted(void* user, parley_t_status st) noexcept {
        std::unique_ptr<Pending> p(static_cast<Pending*>(user));
        Relay* self = p->self;
        try {
            if (st == PARLEY_OK) {
                self->host().add(self->m_deletes_);
                respond(p->resp, self->host().table(), 204, p->cors, "");
            } else if (st == PARLEY_ERR_NOT_FOUND) {
                // Relay deletes with deleteMany and answers 204 either way; its client treats
                // anything else as an error. Secure mode never reaches here for absent blobs.
                if (self->settings()->secure)
                    self->fail(p->resp, p->cors, 404, "not found");
                else
                    respond(p->resp, self->host().table(), 204, p->cors, "");
            } else {
                int status = 0;
                auto msg = store_error(st, status);
                self->fail(p->resp, p->cors, status, msg);
            }
        } catch (...) {
            respond(p->resp, self->host().table(), 500, p->cors, error_json("internal error"));
        }
        self->end();
    }

    // Relay's `refresh`: members watching this box (relay dialect, join_blob) re-list it.
    void notify(const std::string& recipient) {
        auto f = host().frame_of(R"({"type":"refresh"})");
        host().table()->room_publish(host().ctx(), bytes("blob:" + recipient), f.get(), 0);
    }

    struct Bucket {
        double tokens;
        int64_t at;
    };

    struct FileId {
        int64_t mtime_ns = -1, size = -1;
        uint64_t ino = 0;
        static FileId of(const struct stat& st) {
            return {int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                    int64_t(st.st_size), uint64_t(st.st_ino)};
        }
        bool operator==(const FileId&) const = default;
    };

    mutable std::mutex mu_; // settings_, allow_, allowlist_path_/mtime_, poll_ms_
    std::shared_ptr<const Settings> settings_;
    std::shared_ptr<const Allowlist> allow_;
    std::string allowlist_path_;
    std::filesystem::file_time_type allowlist_mtime_{};
    FileId allowlist_id_;
    std::mutex refresh_mu_;
    uint64_t poll_ms_ = 0;
    uint64_t poll_timer_ = 0;
    std::atomic<bool> poll_busy_{false};
    std::atomic<bool> stopping_{false};

    std::mutex replay_mu_;
    std::set<std::string> replay_;
    std::multimap<int64_t, std::string> replay_by_time_;

    std::mutex rate_mu_;
    std::unordered_map<std::string, Bucket> buckets_;

    std::mutex inflight_mu_;
    std::condition_variable inflight_cv_;
    int64_t inflight_ = 0;

    parley_t_metric_hptr m_posts_, m_lists_, m_deletes_, m_auth_, m_size_, m_rcpt_, m_rate_,
        m_store_, m_keys_;
};

} // namespace

PARLEY_PLUGIN(Relay, "relay", PARLEY_KIND_SERVICE, "0.1.0",
              "Relay (seika5/relay) blob API: fixed 64 KiB blobs for allowlisted key hashes, "
              "obfuscated expiry, signed requests.",
              kConfig)
