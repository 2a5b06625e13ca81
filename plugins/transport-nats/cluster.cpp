#include "cluster.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace parley::cluster {

namespace {

// ---- wire codec: little-endian integers and u32-length-prefixed byte strings ----
// Nodes of one cluster trust each other (same profile, same NATS account), but every field is
// still bounds-checked: a malformed message is counted and dropped.

constexpr uint8_t kVersion = 1;
constexpr size_t kMaxHeartbeat = 900 * 1024; // under NATS' default 1 MiB max_payload

struct Writer {
    std::string out;
    void u8(uint8_t v) { out.push_back(char(v)); }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i)
            out.push_back(char((v >> (8 * i)) & 0xff));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i)
            out.push_back(char((v >> (8 * i)) & 0xff));
    }
    void str(std::string_view s) {
        u32(uint32_t(s.size()));
        out.append(s);
    }
};

struct Reader {
    std::string_view in;
    bool ok = true;
    bool need(size_t n) {
        if (in.size() < n) ok = false;
        return ok;
    }
    uint8_t u8() {
        if (!need(1)) return 0;
        uint8_t v = uint8_t(in[0]);
        in.remove_prefix(1);
        return v;
    }
    uint32_t u32() {
        if (!need(4)) return 0;
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i)
            v |= uint32_t(uint8_t(in[size_t(i)])) << (8 * i);
        in.remove_prefix(4);
        return v;
    }
    uint64_t u64() {
        if (!need(8)) return 0;
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i)
            v |= uint64_t(uint8_t(in[size_t(i)])) << (8 * i);
        in.remove_prefix(8);
        return v;
    }
    std::string_view str() {
        uint32_t n = u32();
        if (!need(n)) return {};
        auto s = in.substr(0, n);
        in.remove_prefix(n);
        return s;
    }
};

std::string_view sv(parley_t_bytes b) {
    return {b.ptr ? b.ptr : "", b.len};
}

std::string hex(const unsigned char* p, size_t n) {
    std::string s(n * 2 + 1, '\0');
    sodium_bin2hex(s.data(), s.size(), p, n);
    s.pop_back();
    return s;
}

std::string status_text(natsStatus s) {
    return natsStatus_GetText(s);
}

bool valid_name(std::string_view s) {
    if (s.empty() || s.size() > 32) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    return true;
}

} // namespace

Cluster::Cluster(const sdk::Host& host, nats::Client& nc) : host_(host), nc_(nc) {
    name_ = host_.config_string("cluster.name", "parley");
    if (!valid_name(name_))
        throw std::runtime_error("cluster.name must be 1-32 characters of [A-Za-z0-9_-]");
    prefix_ = "parley.cluster." + name_;
    room_key_ = host_.config_string("cluster.room_key");
    heartbeat_ = std::chrono::milliseconds(host_.config_int("cluster.heartbeat", 1000));
    ttl_ = std::chrono::milliseconds(host_.config_int("cluster.node_ttl", 5000));
    if (ttl_ < 2 * heartbeat_)
        throw std::runtime_error("cluster.node_ttl must be at least twice cluster.heartbeat");
    slot_cfg_ = host_.config_int("cluster.node_slot", -1);
    // Every node uses the same profile, so our back-off ceiling (+25% jitter) is theirs too.
    reconnect_grace_ =
        std::chrono::milliseconds(host_.config_int("reconnect.max_wait", 5000) * 5 / 4);
    unsigned char id[16];
    randombytes_buf(id, sizeof id);
    node_ = hex(id, sizeof id);

    m_nodes_ = host_.gauge("parley_cluster_nodes", "Other cluster nodes alive.");
    m_remote_ = host_.gauge("parley_cluster_remote_members", "Room members on other nodes.");
    m_in_ = host_.counter("parley_cluster_in_total", "Cluster messages received.");
    m_out_ = host_.counter("parley_cluster_out_total", "Cluster messages queued for NATS.");
    m_dropped_ = host_.counter("parley_cluster_out_dropped_total",
                               "Cluster messages dropped: outbound buffer full.");
    m_bad_ = host_.counter("parley_cluster_bad_total", "Malformed cluster messages dropped.");
    m_expired_ = host_.counter("parley_cluster_nodes_expired_total",
                               "Nodes dropped after node_ttl without a heartbeat.");
    m_kv_errors_ = host_.counter("parley_cluster_kv_errors_total", "JetStream KV failures.");
    m_set_once_won_ =
        host_.counter("parley_cluster_set_once_won_total", "Set-once values this node decided.");
    m_set_once_lost_ = host_.counter("parley_cluster_set_once_lost_total",
                                     "Set-once values another node had decided.");

    // One subscription for rooms and membership: NATS keeps one publisher's order within it,
    // so a member's join always arrives before its messages and its leave after them.
    nc_.subscribe(prefix_ + ".>", [this](std::string_view subject, std::string_view data) {
        on_message(subject, data);
    });
    nc_.on_state([this](bool up) { on_link(up); });

    bridge_.struct_size = sizeof bridge_;
    bridge_.user = this;
    bridge_.joined = &Cluster::b_joined;
    bridge_.left = &Cluster::b_left;
    bridge_.publish = &Cluster::b_publish;
    bridge_.remote_members = &Cluster::b_remote;
    bridge_.meta_set_once = &Cluster::b_meta_once;
    bridge_.farewell = &Cluster::b_farewell;
}

Cluster::~Cluster() {
    stop();
    if (watcher_) kvWatcher_Destroy(watcher_);
    if (kv_meta_) kvStore_Destroy(kv_meta_);
    if (kv_nodes_) kvStore_Destroy(kv_nodes_);
    if (js_) jsCtx_Destroy(js_);
    if (kv_nc_) natsConnection_Destroy(kv_nc_);
    if (kv_opts_) natsOptions_Destroy(kv_opts_);
}

// ---- start / stop ----

parley_t_status Cluster::start() {
    std::string err;
    if (!kv_connect(err) || !claim_slot(err)) {
        host_.set_error("cluster: " + err);
        return PARLEY_ERR;
    }
    bridge_.node_slot = slot_;
    auto st = host_.table()->room_bridge_set(host_.ctx(), &bridge_);
    if (st != PARLEY_OK) {
        host_.set_error("cluster: another room bridge is registered in this process");
        return st;
    }
    bridged_ = true;
    if (kvStore_WatchAll(&watcher_, kv_meta_, nullptr) != NATS_OK) {
        host_.set_error("cluster: cannot watch the set-once KV bucket");
        return PARLEY_ERR;
    }
    kv_thread_ = std::thread([this] { kv_loop(); });
    watch_thread_ = std::thread([this] { watch_loop(); });
    auto ms = uint64_t(heartbeat_.count());
    timer_ = host_.table()->timer_start(
        host_.ctx(), ms, ms, [](void* u) { static_cast<Cluster*>(u)->on_tick(); }, this);
    host_.logf(PARLEY_LOG_INFO, "cluster: node %s joined cluster %s with sequence slot %u",
               node_.c_str(), name_.c_str(), slot_);
    return PARLEY_OK;
}

void Cluster::stop() {
    if (stopping_.exchange(true)) return;
    if (timer_) host_.table()->timer_cancel(host_.ctx(), timer_);
    timer_ = 0;
    if (bridged_) host_.table()->room_bridge_set(host_.ctx(), nullptr); // waits for hooks
    bridged_ = false;
    {
        // A clean stop tells the others at once instead of letting node_ttl run out.
        Writer w;
        w.u8(kVersion);
        w.u8('X');
        w.str(node_);
        send(prefix_ + ".n", std::move(w.out));
    }
    kv_cv_.notify_all();
    if (watcher_) kvWatcher_Stop(watcher_);
    if (kv_thread_.joinable()) kv_thread_.join();
    if (watch_thread_.joinable()) watch_thread_.join();
    if (kv_nodes_) kvStore_Delete(kv_nodes_, ("slot." + std::to_string(slot_)).c_str());
}

// ---- JetStream KV ----

bool Cluster::kv_connect(std::string& err) {
    auto fail = [&](natsStatus s, std::string_view what) {
        err = std::string(what) + ": " + status_text(s);
        return false;
    };
    natsStatus s = natsOptions_Create(&kv_opts_);
    if (s != NATS_OK) return fail(s, "nats options");
    std::vector<std::string> servers;
    for (size_t i = 0, n = host_.config_count("servers"); i < n; ++i)
        servers.push_back(host_.config_string("servers." + std::to_string(i)));
    if (servers.empty()) servers.push_back("nats://127.0.0.1:4222");
    std::vector<const char*> urls;
    bool tls = host_.config_bool("tls.enabled");
    for (auto& u : servers) {
        urls.push_back(u.c_str());
        if (u.starts_with("tls://")) tls = true;
    }
    if ((s = natsOptions_SetServers(kv_opts_, urls.data(), int(urls.size()))) != NATS_OK)
        return fail(s, "nats servers");
    natsOptions_SetName(kv_opts_, (host_.config_string("name", "parley") + "-kv").c_str());
    auto user = host_.config_string("user"), pass = host_.config_string("password");
    if (!user.empty() &&
        (s = natsOptions_SetUserInfo(kv_opts_, user.c_str(), pass.c_str())) != NATS_OK)
        return fail(s, "nats user");
    auto creds = host_.config_string("creds");
    if (!creds.empty() &&
        (s = natsOptions_SetUserCredentialsFromFiles(kv_opts_, creds.c_str(), nullptr)) != NATS_OK)
        return fail(s, "nats credentials file");
    if (tls) {
        natsOptions_SetSecure(kv_opts_, true);
        auto ca = host_.config_string("tls.ca"), cert = host_.config_string("tls.cert"),
             key = host_.config_string("tls.key"), hn = host_.config_string("tls.hostname");
        if (!ca.empty() &&
            (s = natsOptions_LoadCATrustedCertificates(kv_opts_, ca.c_str())) != NATS_OK)
            return fail(s, "nats tls ca");
        if (!cert.empty() &&
            (s = natsOptions_LoadCertificatesChain(kv_opts_, cert.c_str(), key.c_str())) != NATS_OK)
            return fail(s, "nats tls certificate");
        if (!hn.empty() && (s = natsOptions_SetExpectedHostname(kv_opts_, hn.c_str())) != NATS_OK)
            return fail(s, "nats tls hostname");
    }
    natsOptions_SetTimeout(kv_opts_, 2000);
    natsOptions_SetAllowReconnect(kv_opts_, true);
    natsOptions_SetMaxReconnect(kv_opts_, -1);
    natsOptions_SetReconnectWait(kv_opts_, 250);
    // Start needs the store of set-once values and a sequence slot: NATS must be up now.
    if ((s = natsConnection_Connect(&kv_nc_, kv_opts_)) != NATS_OK)
        return fail(s, "JetStream KV connection");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if ((s = natsConnection_JetStream(&js_, kv_nc_, &jo)) != NATS_OK) return fail(s, "JetStream");
    auto bucket = [&](kvStore** kv, const std::string& name, int64_t ttl_ms) {
        if (js_KeyValue(kv, js_, name.c_str()) == NATS_OK) return NATS_OK;
        kvConfig c;
        kvConfig_Init(&c);
        c.Bucket = name.c_str();
        c.History = 1;
        c.TTL = ttl_ms * 1000000; // nanoseconds
        return js_CreateKeyValue(kv, js_, &c);
    };
    if ((s = bucket(&kv_meta_, "parley_cluster_" + name_ + "_meta", 0)) != NATS_OK)
        return fail(s, "KV bucket (is JetStream enabled on the NATS server?)");
    // Slots of dead nodes age out: refreshed every heartbeat, kept for 10 node_ttl.
    if ((s = bucket(&kv_nodes_, "parley_cluster_" + name_ + "_nodes", 10 * ttl_.count())) !=
        NATS_OK)
        return fail(s, "KV bucket");
    return true;
}

bool Cluster::claim_slot(std::string& err) {
    if (slot_cfg_ >= 0) {
        slot_ = uint32_t(slot_cfg_);
        return true;
    }
    for (uint32_t n = 0; n < 256; ++n) {
        uint64_t rev = 0;
        if (kvStore_CreateString(&rev, kv_nodes_, ("slot." + std::to_string(n)).c_str(),
                                 node_.c_str()) == NATS_OK) {
            slot_ = n;
            return true;
        }
    }
    err = "no free sequence slot (256 nodes alive?)";
    return false;
}

void Cluster::kv_submit(std::function<void()> job) {
    {
        std::lock_guard lk(kv_mu_);
        kv_jobs_.push_back(std::move(job));
    }
    kv_cv_.notify_one();
}

void Cluster::kv_loop() {
    auto next_refresh = Clock::now();
    std::unique_lock lk(kv_mu_);
    while (!stopping_.load()) {
        kv_cv_.wait_until(lk, next_refresh, [&] { return stopping_.load() || !kv_jobs_.empty(); });
        if (stopping_.load()) break;
        if (!kv_jobs_.empty()) {
            auto job = std::move(kv_jobs_.front());
            kv_jobs_.pop_front();
            lk.unlock();
            job();
            lk.lock();
        }
        if (Clock::now() >= next_refresh) {
            next_refresh = Clock::now() + heartbeat_;
            if (slot_cfg_ < 0) {
                lk.unlock();
                uint64_t rev = 0;
                if (kvStore_PutString(&rev, kv_nodes_, ("slot." + std::to_string(slot_)).c_str(),
                                      node_.c_str()) != NATS_OK)
                    host_.add(m_kv_errors_);
                lk.lock();
            }
        }
    }
    // Pending set-once requests are answered so no caller waits forever.
    for (auto& job : kv_jobs_)
        job();
    kv_jobs_.clear();
}

// Mirrors every set-once value of the cluster; values of rooms present here go into the local
// meta at once (a node that joins a room later gets them from the mirror in b_joined).
void Cluster::watch_loop() {
    while (!stopping_.load()) {
        kvEntry* e = nullptr;
        natsStatus s = kvWatcher_Next(&e, watcher_, 250);
        if (s == NATS_TIMEOUT || (s == NATS_OK && !e)) continue;
        if (s != NATS_OK) {
            if (stopping_.load()) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        std::string key = kvEntry_Key(e);
        std::string value(static_cast<const char*>(kvEntry_Value(e)), size_t(kvEntry_ValueLen(e)));
        bool put = kvEntry_Operation(e) == kvOp_Put;
        kvEntry_Destroy(e);
        auto dot = key.find('.');
        if (dot == std::string::npos) continue;
        std::string hash = key.substr(0, dot);
        uint32_t k = uint32_t(std::strtoul(key.c_str() + dot + 1, nullptr, 10));
        std::string room;
        {
            std::lock_guard lk(mu_);
            if (put) {
                meta_[hash][k] = value;
            } else if (auto it = meta_.find(hash); it != meta_.end()) {
                it->second.erase(k);
                if (it->second.empty()) meta_.erase(it);
            }
            if (auto n = names_.find(hash); put && n != names_.end()) room = n->second;
        }
        if (!room.empty())
            host_.table()->room_meta_set(host_.ctx(), sdk::bytes(room), k, sdk::bytes(value), 0);
    }
}

// A room emptied across the cluster: its set-once values go, so the next first joiner of the
// same room id decides again (as on a single node).
void Cluster::forget_meta(const std::string& hash) {
    std::vector<std::string> keys;
    {
        std::lock_guard lk(mu_);
        auto it = meta_.find(hash);
        if (it == meta_.end()) return;
        for (auto& [k, _] : it->second)
            keys.push_back(hash + "." + std::to_string(k));
    }
    kv_submit([this, keys] {
        for (auto& k : keys)
            if (kvStore_Delete(kv_meta_, k.c_str()) != NATS_OK) host_.add(m_kv_errors_);
    });
}

// ---- helpers ----

// Room ids never appear on NATS: subjects and KV keys carry a keyed BLAKE2b of them.
std::string Cluster::hash_of(std::string_view room) const {
    unsigned char out[16];
    crypto_generichash(
        out, sizeof out, reinterpret_cast<const unsigned char*>(room.data()), room.size(),
        room_key_.empty() ? nullptr : reinterpret_cast<const unsigned char*>(room_key_.data()),
        std::min<size_t>(room_key_.size(), crypto_generichash_KEYBYTES_MAX));
    return hex(out, sizeof out);
}

void Cluster::send(std::string subject, std::string data) {
    if (nc_.publish(std::move(subject), std::move(data)))
        host_.add(m_out_);
    else
        host_.add(m_dropped_);
}

void Cluster::count_locked(const std::string& hash, int delta) {
    auto& c = remote_[hash];
    c = uint32_t(std::max<int64_t>(0, int64_t(c) + delta));
    if (c == 0) remote_.erase(hash);
    host_.add(m_remote_, delta);
}

void Cluster::drop_members_locked(Node& n, const std::string& hash, uint64_t conn,
                                  std::vector<Farewell>& out) {
    auto r = n.rooms.find(hash);
    if (r == n.rooms.end()) return;
    auto m = r->second.find(conn);
    if (m == r->second.end()) return;
    if (auto name = names_.find(hash); name != names_.end() && !m->second.farewell.empty())
        out.push_back(Farewell{name->second, std::move(m->second.farewell)});
    r->second.erase(m);
    if (r->second.empty()) n.rooms.erase(r);
    count_locked(hash, -1);
}

void Cluster::inject_farewells(const std::vector<Farewell>& fw) {
    for (auto& f : fw) {
        auto frame = host_.frame_of(f.frame);
        host_.table()->room_inject(host_.ctx(), sdk::bytes(f.room), sdk::bytes(""), frame.get(), 0);
    }
}

// ---- bridge hooks ----

void Cluster::b_joined(void* u, parley_t_bytes room, parley_t_conn_id conn, parley_t_bytes label,
                       uint32_t) {
    auto* self = static_cast<Cluster*>(u);
    std::string r(sv(room));
    std::map<uint32_t, std::string> meta;
    Writer w;
    {
        std::lock_guard lk(self->mu_);
        auto it = self->local_.find(r);
        if (it == self->local_.end()) {
            it = self->local_.emplace(r, LocalRoom{self->hash_of(r), {}}).first;
            self->names_[it->second.hash] = r;
            if (auto m = self->meta_.find(it->second.hash); m != self->meta_.end())
                meta = m->second;
        }
        it->second.members[conn] = LocalMember{std::string(sv(label)), {}};
        w.u8(kVersion);
        w.u8('J');
        w.str(self->node_);
        w.str(it->second.hash);
        w.u64(conn);
        w.str(sv(label));
    }
    // Values the cluster decided before this node had the room.
    for (auto& [k, v] : meta)
        self->host_.table()->room_meta_set(self->host_.ctx(), room, k, sdk::bytes(v), 0);
    self->send(self->prefix_ + ".n", std::move(w.out));
}

void Cluster::b_left(void* u, parley_t_bytes room, parley_t_conn_id conn, uint32_t) {
    auto* self = static_cast<Cluster*>(u);
    std::string r(sv(room));
    Writer w;
    std::string emptied;
    {
        std::lock_guard lk(self->mu_);
        auto it = self->local_.find(r);
        if (it == self->local_.end()) return;
        std::string hash = it->second.hash;
        it->second.members.erase(conn);
        if (it->second.members.empty()) {
            self->names_.erase(hash);
            self->local_.erase(it);
            if (!self->remote_.count(hash)) emptied = hash;
        }
        w.u8(kVersion);
        w.u8('L');
        w.str(self->node_);
        w.str(hash);
        w.u64(conn);
    }
    self->send(self->prefix_ + ".n", std::move(w.out));
    if (!emptied.empty()) self->forget_meta(emptied);
}

parley_t_status Cluster::b_publish(void* u, parley_t_bytes room, parley_t_bytes label,
                                   parley_t_frame_hptr frame, uint64_t seq) {
    auto* self = static_cast<Cluster*>(u);
    std::string hash;
    {
        std::lock_guard lk(self->mu_);
        auto it = self->local_.find(std::string(sv(room)));
        hash = it != self->local_.end() ? it->second.hash : self->hash_of(sv(room));
        if (label.len) {
            // Directed: only worth a message when some other node has that member.
            bool found = false;
            for (auto& [_, n] : self->nodes_) {
                auto r = n.rooms.find(hash);
                if (r == n.rooms.end()) continue;
                for (auto& [__, m] : r->second)
                    if (m.label == sv(label)) found = true;
            }
            if (!found) return PARLEY_ERR_NOT_FOUND;
        } else if (!self->remote_.count(hash)) {
            return PARLEY_OK; // nobody elsewhere: nothing to carry
        }
    }
    Writer w;
    w.out.reserve(frame->len + 64);
    w.u8(kVersion);
    w.u8('M');
    w.str(self->node_);
    w.u64(seq);
    w.u32(frame->flags);
    w.str(sv(label));
    w.out.append(frame->data, frame->len);
    if (!self->nc_.publish(self->prefix_ + ".r." + hash, std::move(w.out))) {
        self->host_.add(self->m_dropped_);
        return PARLEY_ERR_LIMIT;
    }
    self->host_.add(self->m_out_);
    return PARLEY_OK;
}

uint32_t Cluster::b_remote(void* u, parley_t_bytes room) {
    auto* self = static_cast<Cluster*>(u);
    std::lock_guard lk(self->mu_);
    auto it = self->local_.find(std::string(sv(room)));
    auto r =
        self->remote_.find(it != self->local_.end() ? it->second.hash : self->hash_of(sv(room)));
    return r == self->remote_.end() ? 0 : r->second;
}

parley_t_status Cluster::b_meta_once(void* u, parley_t_bytes room, uint32_t key,
                                     parley_t_bytes value, parley_t_meta_done_fn done,
                                     void* done_user) {
    auto* self = static_cast<Cluster*>(u);
    std::string r(sv(room)), v(sv(value));
    std::string kvkey = self->hash_of(r) + "." + std::to_string(key);
    self->kv_submit([self, r, v, kvkey, key, done, done_user] {
        parley_t_status st = PARLEY_ERR_UNAVAILABLE;
        std::string winner = v;
        uint64_t rev = 0;
        if (self->stopping_.load()) {
            // stop(): answer without a round trip
        } else if (kvStore_Create(&rev, self->kv_meta_, kvkey.c_str(), v.data(), int(v.size())) ==
                   NATS_OK) {
            st = PARLEY_OK;
            self->host_.add(self->m_set_once_won_);
        } else {
            kvEntry* e = nullptr;
            if (kvStore_Get(&e, self->kv_meta_, kvkey.c_str()) == NATS_OK && e) {
                winner.assign(static_cast<const char*>(kvEntry_Value(e)),
                              size_t(kvEntry_ValueLen(e)));
                kvEntry_Destroy(e);
                st = PARLEY_ERR_EXISTS;
                self->host_.add(self->m_set_once_lost_);
            } else {
                self->host_.add(self->m_kv_errors_);
            }
        }
        if (st == PARLEY_OK || st == PARLEY_ERR_EXISTS) {
            {
                std::lock_guard lk(self->mu_);
                self->meta_[kvkey.substr(0, kvkey.find('.'))][key] = winner;
            }
            self->host_.table()->room_meta_set(self->host_.ctx(), sdk::bytes(r), key,
                                               sdk::bytes(winner), 0);
        }
        if (done) done(done_user, st);
    });
    return PARLEY_OK;
}

void Cluster::b_farewell(void* u, parley_t_bytes room, parley_t_conn_id conn,
                         parley_t_frame_hptr frame) {
    auto* self = static_cast<Cluster*>(u);
    Writer w;
    {
        std::lock_guard lk(self->mu_);
        auto it = self->local_.find(std::string(sv(room)));
        if (it == self->local_.end()) return;
        auto m = it->second.members.find(conn);
        if (m == it->second.members.end()) return;
        m->second.farewell.assign(frame->data, frame->len);
        w.u8(kVersion);
        w.u8('F');
        w.str(self->node_);
        w.str(it->second.hash);
        w.u64(conn);
        w.str(m->second.farewell);
    }
    self->send(self->prefix_ + ".n", std::move(w.out));
}

// ---- heartbeats and expiry (kernel timer thread) ----

std::string Cluster::heartbeat_locked() {
    Writer w;
    w.u8(kVersion);
    w.u8('H');
    w.str(node_);
    w.u64(++hb_seq_);
    size_t start = w.out.size();
    w.u8(1); // full member state follows
    w.u32(uint32_t(local_.size()));
    for (auto& [_, r] : local_) {
        w.str(r.hash);
        w.u32(uint32_t(r.members.size()));
        for (auto& [conn, m] : r.members) {
            w.u64(conn);
            w.str(m.label);
            w.str(m.farewell);
        }
        if (w.out.size() > kMaxHeartbeat) {
            // Too big for one NATS message: liveness only; events carry membership.
            w.out.resize(start);
            w.u8(0);
            break;
        }
    }
    return std::move(w.out);
}

void Cluster::on_tick() {
    std::vector<Farewell> fw;
    std::vector<std::string> emptied;
    std::string hb;
    {
        std::lock_guard lk(mu_);
        // Offline, a heartbeat would only fill cnats' reconnect buffer with stale member sets
        // (crowding out room frames); on_link sends a fresh one on reconnect.
        if (online_) hb = heartbeat_locked();
        auto now = Clock::now();
        for (auto it = nodes_.begin(); it != nodes_.end();) {
            if (!online_ || now - it->second.seen <= ttl_) {
                ++it;
                continue;
            }
            host_.add(m_expired_);
            std::vector<std::pair<std::string, uint64_t>> gone;
            for (auto& [hash, members] : it->second.rooms)
                for (auto& [conn, _] : members)
                    gone.emplace_back(hash, conn);
            for (auto& [hash, conn] : gone)
                drop_members_locked(it->second, hash, conn, fw);
            for (auto& [hash, _] : gone)
                if (!remote_.count(hash) && !names_.count(hash)) emptied.push_back(hash);
            it = nodes_.erase(it);
        }
        host_.set(m_nodes_, int64_t(nodes_.size()));
        // One node cleans up after a dead one: the smallest id among the living.
        bool cleaner =
            std::all_of(nodes_.begin(), nodes_.end(), [&](auto& kv) { return node_ < kv.first; });
        if (!cleaner) emptied.clear();
    }
    if (!hb.empty()) send(prefix_ + ".n", std::move(hb));
    if (!fw.empty())
        host_.logf(PARLEY_LOG_INFO, "cluster: a node timed out; %zu members left with it",
                   fw.size());
    inject_farewells(fw);
    std::sort(emptied.begin(), emptied.end());
    emptied.erase(std::unique(emptied.begin(), emptied.end()), emptied.end());
    for (auto& h : emptied)
        forget_meta(h);
}

// A nats-server restart cuts every node at once: the others' silence is then ours, not theirs.
// While we are offline nobody expires; once back, every known node gets node_ttl plus the
// others' reconnect back-off to be heard again (a node that died meanwhile goes after that), and
// our member set goes out at once so the others reconcile what they missed.
void Cluster::on_link(bool up) {
    if (stopping_.load()) return;
    std::string hb;
    {
        std::lock_guard lk(mu_);
        if (up == online_) return;
        online_ = up;
        if (!up) return;
        auto until = Clock::now() + reconnect_grace_;
        for (auto& [_, n] : nodes_)
            n.seen = std::max(n.seen, until);
        hb = heartbeat_locked();
    }
    send(prefix_ + ".n", std::move(hb));
}

// ---- incoming (cnats thread) ----

void Cluster::on_message(std::string_view subject, std::string_view data) {
    host_.add(m_in_);
    Reader rd{data};
    if (rd.u8() != kVersion) return host_.add(m_bad_);
    uint8_t type = rd.u8();
    auto node = rd.str();
    if (!rd.ok || node.size() != 32) return host_.add(m_bad_);
    if (node == node_) return; // our own, echoed by NATS

    if (type == 'M') {
        constexpr std::string_view kRoomSubj = ".r.";
        if (subject.size() <= prefix_.size() + kRoomSubj.size()) return host_.add(m_bad_);
        auto hash = subject.substr(prefix_.size() + kRoomSubj.size());
        uint64_t seq = rd.u64();
        uint32_t flags = rd.u32();
        auto label = rd.str();
        if (!rd.ok) return host_.add(m_bad_);
        std::string room;
        {
            std::lock_guard lk(mu_);
            auto it = names_.find(std::string(hash));
            if (it == names_.end()) return; // nobody here
            room = it->second;
        }
        auto f = host_.frame_of(rd.in, flags & PARLEY_FRAME_TEXT);
        host_.table()->room_inject(host_.ctx(), sdk::bytes(room), sdk::bytes(label), f.get(), seq);
        return;
    }

    std::vector<Farewell> fw;
    {
        std::lock_guard lk(mu_);
        auto [nit, fresh] = nodes_.try_emplace(std::string(node));
        Node& n = nit->second;
        n.seen = Clock::now();
        if (fresh) host_.set(m_nodes_, int64_t(nodes_.size()));
        switch (type) {
        case 'J': {
            std::string hash(rd.str());
            uint64_t conn = rd.u64();
            auto label = rd.str();
            if (!rd.ok) return host_.add(m_bad_);
            auto [it, added] =
                n.rooms[hash].insert_or_assign(conn, RemoteMember{std::string(label), {}});
            (void)it;
            if (added) count_locked(hash, +1);
            break;
        }
        case 'L': {
            std::string hash(rd.str());
            uint64_t conn = rd.u64();
            if (!rd.ok) return host_.add(m_bad_);
            // A regular leave: the dialect published its own notice; no farewell.
            auto r = n.rooms.find(hash);
            if (r != n.rooms.end() && r->second.erase(conn)) {
                if (r->second.empty()) n.rooms.erase(r);
                count_locked(hash, -1);
            }
            break;
        }
        case 'F': {
            std::string hash(rd.str());
            uint64_t conn = rd.u64();
            auto frame = rd.str();
            if (!rd.ok) return host_.add(m_bad_);
            auto r = n.rooms.find(hash);
            if (r != n.rooms.end())
                if (auto m = r->second.find(conn); m != r->second.end())
                    m->second.farewell = std::string(frame);
            break;
        }
        case 'H': {
            rd.u64(); // heartbeat number (diagnostics)
            bool full = rd.u8() == 1;
            if (!full) break;
            std::unordered_map<std::string, std::unordered_map<uint64_t, RemoteMember>> rooms;
            uint32_t nrooms = rd.u32();
            for (uint32_t i = 0; rd.ok && i < nrooms; ++i) {
                std::string hash(rd.str());
                uint32_t nm = rd.u32();
                auto& dst = rooms[hash];
                for (uint32_t j = 0; rd.ok && j < nm; ++j) {
                    uint64_t conn = rd.u64();
                    auto label = rd.str();
                    auto fwf = rd.str();
                    dst[conn] = RemoteMember{std::string(label), std::string(fwf)};
                }
            }
            if (!rd.ok) return host_.add(m_bad_);
            // Reconcile: members we missed appear; members gone without a leave get their
            // farewell (a lost leave event); counts follow.
            std::vector<std::pair<std::string, uint64_t>> gone;
            for (auto& [hash, members] : n.rooms)
                for (auto& [conn, _] : members) {
                    auto r = rooms.find(hash);
                    if (r == rooms.end() || !r->second.count(conn)) gone.emplace_back(hash, conn);
                }
            for (auto& [hash, conn] : gone)
                drop_members_locked(n, hash, conn, fw);
            for (auto& [hash, members] : rooms)
                for (auto& [conn, m] : members) {
                    auto [it, added] = n.rooms[hash].insert_or_assign(conn, std::move(m));
                    (void)it;
                    if (added) count_locked(hash, +1);
                }
            break;
        }
        case 'X': { // clean shutdown: its connections were closed, their leaves were sent
            std::vector<std::pair<std::string, uint64_t>> gone;
            for (auto& [hash, members] : n.rooms)
                for (auto& [conn, _] : members)
                    gone.emplace_back(hash, conn);
            for (auto& [hash, conn] : gone)
                drop_members_locked(n, hash, conn, fw);
            nodes_.erase(nit);
            host_.set(m_nodes_, int64_t(nodes_.size()));
            break;
        }
        default:
            return host_.add(m_bad_);
        }
    }
    inject_farewells(fw);
}

} // namespace parley::cluster
