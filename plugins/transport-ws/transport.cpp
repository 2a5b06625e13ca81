#include "transport.hpp"

#include "forwarded_for.hpp"
#include "protocol_claims.hpp"
#include "reactor.hpp"

#include <sodium.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace parley::ws {

namespace {

using sdk::key;
using sdk::key_enum;
using sdk::key_list;
using sdk::key_map;
using sdk::key_range;

constexpr parley_t_config_key kLinkKeys[] = {
    key_range("history", PARLEY_CFG_INT, "10", 0, 10000,
              "Encrypted messages sent to a joiner (Secure Chat: 10)."),
    key_range("max_ciphertext", PARLEY_CFG_SIZE, "64K", 16, 16 << 20,
              "Largest ciphertext (base64url characters) in one message."),
    key_range("password_delay", PARLEY_CFG_DURATION, "1s", 0, 60000,
              "Fixed delay before answering a wrong room password."),
    key_range("password_attempts", PARLEY_CFG_INT, "5", 1, 1000,
              "Wrong passwords per minute, per room and per client, before refusing."),
    key_range("rooms_per_ip", PARLEY_CFG_INT, "100", 1, 1000000,
              "Rooms one client address may create per hour (ByteChat's MAX_ROOMS_PER_IP)."),
};

// bench.* keys are read once when the instance is created (a change needs a restart).
constexpr parley_t_config_key kBenchKeys[] = {
    key("env_compat", PARLEY_CFG_BOOL, "false",
        "Read BenchTalks' environment variables PORT, MAX_FILE_SIZE, BENCH_ID and NATS_PEERS at "
        "start; each one set overrides the profile's value (port, bench.max_file_size, "
        "bench.bench_id, bench.nats_peers).",
        PARLEY_CFG_RESTART),
    key_range("max_file_size", PARLEY_CFG_SIZE, "10M", 1, 40 << 20,
              "Largest image in bytes before encryption (BenchTalks' MAX_FILE_SIZE); image "
              "payloads up to its encrypted base64 size are relayed. max_message is raised to fit.",
              PARLEY_CFG_RESTART),
    key_range("max_text", PARLEY_CFG_SIZE, "256K", 64, 16 << 20,
              "Largest encrypted text message payload (characters).", PARLEY_CFG_RESTART),
    key_range("images_per_minute", PARLEY_CFG_INT, "30", 1, 100000,
              "Images one connection may send per minute (token bucket of that depth).",
              PARLEY_CFG_RESTART),
    key_range("rooms_per_ip", PARLEY_CFG_INT, "100", 1, 1000000,
              "Rooms one client address may create per hour.", PARLEY_CFG_RESTART),
    key_enum("admin_claim", "first|sticky|none", "first",
             "Who becomes a room's admin. first: the first joiner of an empty room sets the admin "
             "hash (BenchTalks). sticky: like first, but a room's admin hash is remembered for "
             "admin_memory after it empties, so whoever rejoins first cannot take it over. none: "
             "no admins (delete, make_public, ban and pairing are refused).",
             PARLEY_CFG_RESTART),
    key_range("admin_memory", PARLEY_CFG_DURATION, "24h", 0, 30LL * 86400 * 1000,
              "admin_claim sticky: how long an empty room's admin hash is remembered (memory "
              "only; forgotten at once when the admin deletes the room).",
              PARLEY_CFG_RESTART),
    key_range("ban_duration", PARLEY_CFG_DURATION, "24h", 1000, 365LL * 86400 * 1000,
              "How long ban_client keeps a client address out of that room (memory only).",
              PARLEY_CFG_RESTART),
    key_range("invite_ttl", PARLEY_CFG_DURATION, "24h", 1000, 30LL * 86400 * 1000,
              "Lifetime of a one-time invite (POST /api/invite).", PARLEY_CFG_RESTART),
    key_range("max_invites", PARLEY_CFG_INT, "10000", 1, 10000000,
              "Open invites kept at once; more are refused with 503.", PARLEY_CFG_RESTART),
    key_range("max_invite_payload", PARLEY_CFG_SIZE, "8K", 64, 1 << 20,
              "Largest encryptedPayload of an invite.", PARLEY_CFG_RESTART),
    key_range("invites_per_ip", PARLEY_CFG_INT, "60", 1, 1000000,
              "Invites one client address may create per hour.", PARLEY_CFG_RESTART),
    key("bench_id", PARLEY_CFG_STRING, "",
        "Stable identity of this bench in a park ([A-Za-z0-9._-]{1,64}); empty: random at "
        "every start (BenchTalks' BENCH_ID).",
        PARLEY_CFG_RESTART),
    key_enum("pages", "auto|parley|benchtalks", "auto",
             "Which web client the listener serves, for its Content-Security-Policy. parley: "
             "parley's own client under a strict policy (no inline code, Trusted Types). "
             "benchtalks: BenchTalks' unmodified pages (web_root pointing at its pkg/public), "
             "which need inline scripts and styles, innerHTML and TweetNaCl from "
             "cdn.jsdelivr.net. auto: benchtalks when web_root holds BenchTalks' layout "
             "(assets/js/room.js), else parley.",
             PARLEY_CFG_RESTART),
    key_list("nats_peers", PARLEY_CFG_STRING,
             "NATS addresses of the park (BenchTalks' NATS_PEERS). Only logged: federation is "
             "configured on a transport-nats instance (its servers key).",
             PARLEY_CFG_RESTART | PARLEY_CFG_SECRET),
};

constexpr parley_t_config_key kRelayKeys[] = {
    key_range("auth_timeout", PARLEY_CFG_DURATION, "10s", 100, 600000,
              "Time a relay client has to answer the challenge before it is closed (1008).",
              PARLEY_CFG_RESTART),
};

constexpr parley_t_config_key kConfig[] = {
    key("host", PARLEY_CFG_STRING, "127.0.0.1", "Address to listen on.", PARLEY_CFG_RESTART),
    key_range("port", PARLEY_CFG_INT, "8080", 0, 65535,
              "TCP port; 0 picks a free one (logged and written to <state_dir>/<instance>.port).",
              PARLEY_CFG_RESTART),
    key_range("threads", PARLEY_CFG_INT, "0", 0, 256, "Reactor threads; 0 = one per core.",
              PARLEY_CFG_RESTART),
    key_enum("protocol", "link|bench|relay|raw", "link",
             "Wire dialect: link (Secure Chat), bench (BenchTalks), relay (Relay), raw (tests).",
             PARLEY_CFG_RESTART),
    key("shared_room_names", PARLEY_CFG_BOOL, "false",
        "Allow listeners of another protocol in this process (they must set it too). Room ids "
        "are one namespace: clients of both protocols naming one room would receive each "
        "other's frames. For tests and benchmarks; deployments run one protocol per profile.",
        PARLEY_CFG_RESTART),
    key("web_root", PARLEY_CFG_STRING, "",
        "Directory of the web client; default <prefix>/share/parley/web/<protocol>.",
        PARLEY_CFG_RESTART),
    key_list("origins", PARLEY_CFG_STRING,
             "Origins allowed to open WebSockets; empty allows only same-origin pages."),
    key("require_origin", PARLEY_CFG_BOOL, "false",
        "Refuse upgrades without an Origin header (CLI and native clients send none)."),
    key_range("max_message", PARLEY_CFG_SIZE, "64K", 125, 64 << 20,
              "Largest WebSocket message (after reassembly); larger closes with 1009."),
    key_range("send_queue", PARLEY_CFG_SIZE, "1M", 1024, int64_t(1) << 32,
              "Bytes queued per connection before it is closed as a slow consumer (1013); at "
              "least twice max_message."),
    key_range("socket_send_buffer", PARLEY_CFG_SIZE, "256K", 0, 64 << 20,
              "Kernel send buffer per connection (SO_SNDBUF; the kernel doubles it and caps it at "
              "net.core.wmem_max); bounds the kernel memory a stalled reader pins on top of "
              "send_queue. 0 leaves the system's autotuning (up to net.ipv4.tcp_wmem's maximum)."),
    key_range("send_budget", PARLEY_CFG_SIZE, "1G", 1 << 20, int64_t(1) << 40,
              "Bytes queued across all connections of this listener."),
    key_range("rate", PARLEY_CFG_INT, "20", 1, 1000000, "Messages per second per connection."),
    key_range("burst", PARLEY_CFG_INT, "40", 1, 1000000, "Token bucket depth for `rate`."),
    key_range("connections_per_ip", PARLEY_CFG_INT, "256", 1, 1000000,
              "Open connections from one address."),
    key_range("handshake_timeout", PARLEY_CFG_DURATION, "10s", 100, 600000,
              "Time allowed for a complete HTTP request head (and upgrade)."),
    key_range("idle_timeout", PARLEY_CFG_DURATION, "60s", 100, 86400000,
              "A WebSocket silent this long (no frame, no pong) is dropped."),
    key_range("ping_interval", PARLEY_CFG_DURATION, "20s", 100, 86400000,
              "Ping a silent WebSocket after this long."),
    key_range("max_http_body", PARLEY_CFG_SIZE, "128K", 0, 64 << 20,
              "Largest HTTP request body (API routes); larger gets 413 and Connection: close, "
              "and up to 4 MiB (2 s) of the rest is read and dropped so the client sees it."),
    key_list("trusted_proxies", PARLEY_CFG_STRING,
             "Addresses of reverse proxies in front of this listener (e.g. [127.0.0.1, ::1]). "
             "A connection from one of them is counted under the client address its last "
             "X-Forwarded-For entry names (per-IP limit, bans, rate of room creation), not "
             "under the proxy's."),
    key("log_client_addresses", PARLEY_CFG_BOOL, "false",
        "Name client addresses in this listener's log: WebSockets opened and closed, refused "
        "upgrades, per-IP refusals, rate-limit and slow-consumer closes. Off: parley logs no "
        "client address anywhere; turn on only where the law and your users allow it."),
    key_range("metrics_port", PARLEY_CFG_INT, "-1", -1, 65535,
              "Admin listener for Prometheus /metrics; -1 off, 0 a free port.", PARLEY_CFG_RESTART),
    key("metrics_host", PARLEY_CFG_STRING, "127.0.0.1", "Admin listener address.",
        PARLEY_CFG_RESTART),
    key("permissions_policy", PARLEY_CFG_STRING,
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "Permissions-Policy header (the relay profile with calls allows camera and mic)."),
    key_map("link", kLinkKeys, "Options of the link dialect."),
    key_map("bench", kBenchKeys, "Options of the bench (BenchTalks) dialect."),
    key_map("relay", kRelayKeys, "Options of the relay dialect."),
};

const char* mime_of(const std::filesystem::path& p) {
    auto e = p.extension().string();
    if (e == ".html") return "text/html; charset=utf-8";
    if (e == ".js" || e == ".mjs") return "text/javascript; charset=utf-8";
    if (e == ".css") return "text/css; charset=utf-8";
    if (e == ".json") return "application/json";
    if (e == ".svg") return "image/svg+xml";
    if (e == ".png") return "image/png";
    if (e == ".ico") return "image/x-icon";
    if (e == ".txt") return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

std::filesystem::path default_web_root(const std::string& protocol) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return exe.parent_path().parent_path() / "share" / "parley" / "web" / protocol;
}

} // namespace

Transport::Transport(sdk::Host host) : Plugin(host) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium init failed");
    randombytes_buf(peer_key_secret_, sizeof peer_key_secret_);
    auto s = read_settings();
    if (s.protocol == "bench" && host.config_bool("bench.env_compat")) port_from_env(s);
    dialect_ = dialect::make(s.protocol, dialect::Env{host, host.instance_name()});
    if (!dialect_) throw std::runtime_error("protocol '" + s.protocol + "' is not available yet");
    fit_dialect(s, true);
    if (s.send_queue < 2 * s.max_message)
        throw std::runtime_error("send_queue (" + std::to_string(s.send_queue) +
                                 ") must be at least twice max_message (" +
                                 std::to_string(s.max_message) + ")");
    settings_ = std::make_shared<Settings>(s);
    load_static(s.web_root);
    auto& h = this->host();
    metrics_.connections = h.gauge("parley_ws_connections", "Open WebSocket connections.");
    metrics_.accepted = h.counter("parley_ws_accepted_total", "TCP connections accepted.");
    metrics_.handshake_failures =
        h.counter("parley_ws_handshake_failures_total", "Refused or failed upgrades.");
    metrics_.messages_in = h.counter("parley_ws_messages_in_total", "Messages received.");
    metrics_.messages_out = h.counter("parley_ws_messages_out_total", "Frames queued to clients.");
    metrics_.bytes_in = h.counter("parley_ws_bytes_in_total", "Bytes read from clients.");
    metrics_.bytes_out = h.counter("parley_ws_bytes_out_total", "Bytes written to clients.");
    metrics_.slow_consumers =
        h.counter("parley_ws_slow_consumers_total", "Connections closed for an overflowing queue.");
    metrics_.rate_limited =
        h.counter("parley_ws_rate_limited_total", "Messages dropped by the rate limit.");
    metrics_.per_ip_refused =
        h.counter("parley_ws_ip_limit_refused_total", "Connections refused by the per-IP limit.");
    metrics_.http_requests = h.counter("parley_http_requests_total", "HTTP requests served.");
    metrics_.queued_bytes = h.gauge("parley_ws_queued_bytes", "Bytes queued to clients.");
}

Transport::~Transport() {
    release_protocol(this); // a listener destroyed without stop() (start failed half-way)
}

// bench.env_compat: BenchTalks deployments configure the port with $PORT; it overrides `port`.
void Transport::port_from_env(Settings& s) const {
    const char* v = std::getenv("PORT");
    if (!v || !*v) return;
    int port = -1;
    auto [p, ec] = std::from_chars(v, v + std::strlen(v), port);
    if (ec != std::errc() || *p || port < 0 || port > 65535)
        throw std::runtime_error("PORT must be a TCP port number (0-65535)");
    s.port = port;
    host().logf(PARLEY_LOG_INFO, "PORT=%d from the environment overrides port (bench.env_compat)",
                port);
}

// A dialect whose payload caps need bigger messages (bench images) gets them; an explicit
// send_queue below twice max_message is still refused by the caller.
void Transport::fit_dialect(Settings& s, bool log) const {
    size_t need = dialect_ ? dialect_->min_message() : 0;
    if (need <= s.max_message) return;
    if (log)
        host().logf(PARLEY_LOG_INFO,
                    "max_message raised from %zu to %zu bytes to fit the %s dialect's payload "
                    "limit",
                    s.max_message, need, s.protocol.c_str());
    s.max_message = need;
    s.send_queue = std::max(s.send_queue, 2 * need);
}

Settings Transport::read_settings() const {
    auto& h = host();
    Settings s;
    s.host = h.config_string("host");
    s.port = int(h.config_int("port"));
    s.threads = int(h.config_int("threads"));
    if (s.threads == 0) s.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    s.protocol = h.config_string("protocol");
    s.shared_room_names = h.config_bool("shared_room_names");
    s.web_root = h.config_string("web_root");
    if (s.web_root.empty()) s.web_root = default_web_root(s.protocol).string();
    for (size_t i = 0, n = h.config_count("origins"); i < n; ++i)
        s.origins.push_back(h.config_string("origins." + std::to_string(i)));
    s.require_origin = h.config_bool("require_origin");
    s.max_message = size_t(h.config_int("max_message"));
    s.send_queue = size_t(h.config_int("send_queue"));
    s.socket_send_buffer = int(h.config_int("socket_send_buffer"));
    s.send_budget = h.config_int("send_budget");
    s.rate = double(h.config_int("rate"));
    s.burst = double(h.config_int("burst"));
    s.per_ip = int(h.config_int("connections_per_ip"));
    s.handshake_timeout_ms = h.config_int("handshake_timeout");
    s.idle_timeout_ms = h.config_int("idle_timeout");
    s.ping_interval_ms = h.config_int("ping_interval");
    s.max_http_body = size_t(h.config_int("max_http_body"));
    s.metrics_port = int(h.config_int("metrics_port"));
    s.metrics_host = h.config_string("metrics_host");
    s.permissions_policy = h.config_string("permissions_policy");
    s.log_client_addresses = h.config_bool("log_client_addresses");
    for (size_t i = 0, n = h.config_count("trusted_proxies"); i < n; ++i) {
        auto proxy = h.config_string("trusted_proxies." + std::to_string(i));
        auto addr = normalised_address(proxy);
        if (addr.empty())
            throw std::runtime_error("trusted_proxies: '" + proxy + "' is not an IP address");
        s.trusted_proxies.push_back(addr);
    }
    return s;
}

void Transport::load_static(const std::string& root) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
        host().logf(PARLEY_LOG_WARN, "web root %s not found: serving no static files",
                    root.c_str());
        return;
    }
    size_t total = 0;
    for (auto& e : fs::recursive_directory_iterator(root, ec)) {
        if (!e.is_regular_file()) continue;
        // Lexical: fs::relative canonicalises, so a symlink to a file outside the root (the
        // sheet web/common/base.css that two clients share) would be keyed "/../common/..."
        // and never served. Symlinks in a web root are the operator's (or the install's).
        auto rel = e.path().lexically_relative(root).generic_string();
        if (rel.starts_with("node_modules") || e.file_size() > (4u << 20)) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(in)), {});
        total += body.size();
        if (total > (32u << 20)) break; // a web client, not a file server
        files_["/" + rel] = StaticFile{std::move(body), mime_of(e.path())};
    }
    host().logf(PARLEY_LOG_INFO, "serving %zu static files from %s", files_.size(), root.c_str());
}

const StaticFile* Transport::static_file(std::string_view path) const {
    auto it = files_.find(std::string(path));
    return it == files_.end() ? nullptr : &it->second;
}

void Transport::count_close(uint16_t code) {
    parley_t_metric_hptr m;
    {
        std::lock_guard lk(close_mu_);
        auto& slot = metrics_.closes[code];
        if (!slot)
            slot = host().counter("parley_ws_closes_total{code=\"" + std::to_string(code) + "\"}",
                                  "WebSocket closes by close code.");
        m = slot;
    }
    host().add(m);
}

bool Transport::ip_acquire(const std::string& ip) {
    std::lock_guard lk(ip_mu_);
    int& n = ip_counts_[ip];
    if (n >= settings()->per_ip) {
        if (n == 0) ip_counts_.erase(ip);
        return false;
    }
    ++n;
    return true;
}

void Transport::ip_release(const std::string& ip) {
    std::lock_guard lk(ip_mu_);
    auto it = ip_counts_.find(ip);
    if (it != ip_counts_.end() && --it->second <= 0) ip_counts_.erase(it);
}

uint64_t Transport::peer_key(const std::string& ip) const {
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, reinterpret_cast<const unsigned char*>(ip.data()), ip.size(),
                     peer_key_secret_);
    uint64_t k;
    std::memcpy(&k, out, sizeof k);
    return k;
}

parley_t_status Transport::start() {
    auto s = settings();
    std::string err;
    if (!claim_protocol(this, host().instance_name(), s->protocol, s->shared_room_names, err)) {
        host().set_error(err);
        return PARLEY_ERR;
    }
    int port = s->port;
    for (int i = 0; i < s->threads; ++i) {
        auto r = std::make_unique<Reactor>(*this, i);
        int bound = r->listen(s->host, port, err);
        if (bound < 0) {
            host().set_error(err);
            release_protocol(this);
            return PARLEY_ERR;
        }
        port = bound; // the others join the same port with SO_REUSEPORT
        reactors_.push_back(std::move(r));
    }
    bound_port_ = port;
    if (s->metrics_port >= 0) {
        int mp = reactors_[0]->listen_admin(s->metrics_host, s->metrics_port, err);
        if (mp < 0) {
            host().set_error(err);
            release_protocol(this);
            return PARLEY_ERR;
        }
        host().logf(PARLEY_LOG_INFO, "metrics on %s:%d/metrics", s->metrics_host.c_str(), mp);
        std::ofstream(std::filesystem::path(host().state_dir()) /
                      (host().instance_name() + ".metrics_port"))
            << mp << "\n";
    }
    // Tests and operators using port 0 read the chosen port here.
    std::ofstream(std::filesystem::path(host().state_dir()) / (host().instance_name() + ".port"))
        << port << "\n";
    for (auto& r : reactors_)
        r->start();
    host().logf(PARLEY_LOG_INFO, "listening on %s:%d (%s dialect, %d reactor threads)",
                s->host.c_str(), port, s->protocol.c_str(), s->threads);
    return PARLEY_OK;
}

void Transport::drain(uint32_t grace_ms) {
    draining_.store(true);
    for (auto& r : reactors_)
        r->drain(grace_ms);
}

void Transport::stop() {
    for (auto& r : reactors_)
        r->stop();
    reactors_.clear();
    release_protocol(this);
}

parley_t_status Transport::reload() {
    auto s = read_settings();
    auto old = settings();
    fit_dialect(s, false);
    if (s.send_queue < 2 * s.max_message) {
        host().set_error("send_queue must be at least twice max_message");
        return PARLEY_ERR;
    }
    // Restart-only keys keep their running values (the kernel already logged them).
    s.host = old->host;
    s.port = old->port;
    s.threads = old->threads;
    s.protocol = old->protocol;
    s.shared_room_names = old->shared_room_names;
    s.web_root = old->web_root;
    s.metrics_port = old->metrics_port;
    s.metrics_host = old->metrics_host;
    std::lock_guard lk(settings_mu_);
    settings_ = std::make_shared<Settings>(s);
    return PARLEY_OK;
}

void Transport::deliver(const parley_t_delivery* to, size_t n, parley_t_frame_hptr frame) {
    // Recipients usually sit on few reactors: hand each reactor its slice in one locked push.
    size_t i = 0;
    while (i < n) {
        int r = tag_reactor(to[i].tag);
        size_t j = i + 1;
        while (j < n && tag_reactor(to[j].tag) == r)
            ++j;
        if (r < int(reactors_.size())) reactors_[r]->deliver(to + i, j - i, frame);
        i = j;
    }
}

void Transport::close_conn(parley_t_delivery conn, uint16_t code, std::string_view reason) {
    int r = tag_reactor(conn.tag);
    if (r < int(reactors_.size())) reactors_[r]->close_conn(conn.tag, code, std::string(reason));
}

} // namespace parley::ws

PARLEY_PLUGIN(parley::ws::Transport, "transport-ws", PARLEY_KIND_TRANSPORT, "0.1.0",
              "HTTP and WebSocket (RFC 6455) transport with protocol dialects.",
              parley::ws::kConfig)
