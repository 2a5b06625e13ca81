// transport-nats: parley over NATS. One plugin instance owns one NATS connection (nats_client)
// and serves federation between benches (federation*.cpp, compat.cpp) and cluster mode
// (cluster.cpp, when built). See README.md for the configuration, commands and metrics.
#include "federation.hpp"
#include "nats_client.hpp"

#ifdef PARLEY_NATS_CLUSTER
#include "cluster.hpp"
#endif

#include <parley/sdk.hpp>

#include <sodium.h>

#include <memory>

namespace {

using namespace parley;

constexpr parley_t_config_key kTls[] = {
    sdk::key("enabled", PARLEY_CFG_BOOL, "false", "connect with TLS (tls:// URLs imply it)"),
    sdk::key("ca", PARLEY_CFG_STRING, nullptr, "CA bundle (PEM) that signed the NATS servers"),
    sdk::key("cert", PARLEY_CFG_STRING, nullptr, "client certificate (PEM) for mutual TLS"),
    sdk::key("key", PARLEY_CFG_STRING, nullptr, "client private key (PEM) for mutual TLS"),
    sdk::key("hostname", PARLEY_CFG_STRING, nullptr,
             "expected server name in its certificate, when it differs from the URL host"),
};
constexpr parley_t_config_key kReconnect[] = {
    sdk::key("wait", PARLEY_CFG_DURATION, "100ms", "first reconnect back-off step"),
    sdk::key("max_wait", PARLEY_CFG_DURATION, "5s", "reconnect back-off ceiling"),
    sdk::key("buffer", PARLEY_CFG_SIZE, "8M", "bytes kept for NATS while disconnected"),
};
constexpr parley_t_config_key kOutbound[] = {
    sdk::key("max_bytes", PARLEY_CFG_SIZE, "64M",
             "outbound queue limit in bytes; beyond it messages are dropped and counted"),
    sdk::key_range("max_msgs", PARLEY_CFG_INT, "100000", 1, 10000000, "outbound queue limit"),
};
constexpr parley_t_config_key kInbound[] = {
    sdk::key_range("pending_msgs", PARLEY_CFG_INT, "65536", 1, 10000000,
                   "per subscription; beyond it NATS reports a slow consumer and drops"),
    sdk::key("pending_bytes", PARLEY_CFG_SIZE, "256M", "per subscription pending bytes"),
};
constexpr parley_t_config_key kFederation[] = {
    sdk::key("enabled", PARLEY_CFG_BOOL, "false",
             "federate bench public rooms with paired benches of the park"),
    sdk::key_enum("mode", "authenticated|benchtalks", "authenticated",
                  "authenticated: signed, paired by key; benchtalks: BenchTalks 1.2.0's own "
                  "subjects and payloads, UNAUTHENTICATED"),
    sdk::key("token_ttl", PARLEY_CFG_DURATION, "5m", "lifetime of a pairing token"),
    sdk::key("max_skew", PARLEY_CFG_DURATION, "5m",
             "federated messages older or newer than this are dropped (replay bound)"),
    sdk::key("subject_prefix", PARLEY_CFG_STRING, "parley.fed.v1",
             "NATS subject prefix of authenticated federation"),
    sdk::key("room_salt", PARLEY_CFG_STRING, nullptr,
             "optional park-wide secret (16-64 bytes) keying room hashes on subjects",
             PARLEY_CFG_SECRET),
    sdk::key("key_file", PARLEY_CFG_STRING, nullptr,
             "Ed25519 identity key; default <state_dir>/<instance>.key (created 0600)"),
    sdk::key("max_frame", PARLEY_CFG_SIZE, "16M", "largest federated frame"),
};
constexpr parley_t_config_key kCluster[] = {
    // Cluster keys: the nats-cluster side adds its keys to this block only.
    sdk::key("enabled", PARLEY_CFG_BOOL, "false", "share all rooms with the other nodes"),
    sdk::key("name", PARLEY_CFG_STRING, "parley",
             "cluster name ([A-Za-z0-9_-]{1,32}): subject prefix parley.cluster.<name> and "
             "JetStream KV buckets parley_cluster_<name>_meta/_nodes"),
    sdk::key_range("heartbeat", PARLEY_CFG_DURATION, "1s", 50, 60000,
                   "how often a node announces itself and its members"),
    sdk::key_range("node_ttl", PARLEY_CFG_DURATION, "5s", 100, 600000,
                   "a node silent this long is dead: its members leave (at least 2 heartbeats)"),
    sdk::key_range("node_slot", PARLEY_CFG_INT, "-1", -1, 255,
                   "low byte of this node's history sequences; -1 claims a free one in KV"),
    sdk::key("room_key", PARLEY_CFG_STRING, nullptr,
             "optional cluster-wide secret keying the room hashes on subjects and KV keys",
             PARLEY_CFG_SECRET),
};
constexpr parley_t_config_key kConfig[] = {
    sdk::key_list("servers", PARLEY_CFG_STRING,
                  "NATS URLs (nats://host:port, tls://host:port); default nats://127.0.0.1:4222"),
    sdk::key("name", PARLEY_CFG_STRING, "parley", "client name shown by the NATS server"),
    sdk::key("user", PARLEY_CFG_STRING, nullptr, "NATS user"),
    sdk::key("password", PARLEY_CFG_STRING, nullptr, "NATS password", PARLEY_CFG_SECRET),
    sdk::key("creds", PARLEY_CFG_STRING, nullptr, "NATS .creds file (JWT + NKey seed)"),
    sdk::key_map("tls", kTls, "TLS to the NATS servers"),
    sdk::key_map("reconnect", kReconnect, "reconnect with exponential back-off, forever"),
    sdk::key_map("outbound", kOutbound, "bounded outbound queue (never blocks a reactor)"),
    sdk::key_map("inbound", kInbound, "slow-consumer limits of each subscription"),
    sdk::key_map("federation", kFederation, "bench federation (issue 7)"),
    sdk::key_map("cluster", kCluster, "cluster mode (several parleyd nodes, one deployment)"),
};

class TransportNats final : public sdk::Plugin {
  public:
    explicit TransportNats(sdk::Host h) : Plugin(h) {
        if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
        nats::Options o;
        for (size_t i = 0, n = h.config_count("servers"); i < n; ++i)
            o.servers.push_back(h.config_string("servers." + std::to_string(i)));
        o.name = h.config_string("name", "parley");
        o.user = h.config_string("user");
        o.password = h.config_string("password");
        o.creds_file = h.config_string("creds");
        o.tls = h.config_bool("tls.enabled");
        for (auto& s : o.servers)
            if (s.starts_with("tls://")) o.tls = true;
        o.tls_ca = h.config_string("tls.ca");
        o.tls_cert = h.config_string("tls.cert");
        o.tls_key = h.config_string("tls.key");
        o.tls_hostname = h.config_string("tls.hostname");
        o.reconnect_wait_ms = h.config_int("reconnect.wait", o.reconnect_wait_ms);
        o.reconnect_max_wait_ms = h.config_int("reconnect.max_wait", o.reconnect_max_wait_ms);
        o.reconnect_buffer = h.config_int("reconnect.buffer", o.reconnect_buffer);
        o.outbound_max_bytes = h.config_int("outbound.max_bytes", o.outbound_max_bytes);
        o.outbound_max_msgs = h.config_int("outbound.max_msgs", o.outbound_max_msgs);
        o.inbound_pending_msgs = h.config_int("inbound.pending_msgs", o.inbound_pending_msgs);
        o.inbound_pending_bytes = h.config_int("inbound.pending_bytes", o.inbound_pending_bytes);
        if (o.user.empty() != o.password.empty())
            throw std::runtime_error("user and password go together");
        if (!o.user.empty() && !o.creds_file.empty())
            throw std::runtime_error("user/password and creds are exclusive");
        nc_ = std::make_unique<nats::Client>(h, std::move(o));

        if (h.config_bool("federation.enabled")) {
            federation::Config c;
            c.mode = h.config_string("federation.mode", c.mode);
            c.token_ttl = std::chrono::milliseconds(
                h.config_int("federation.token_ttl", c.token_ttl.count()));
            c.max_skew =
                std::chrono::milliseconds(h.config_int("federation.max_skew", c.max_skew.count()));
            c.prefix = h.config_string("federation.subject_prefix", c.prefix);
            c.room_salt = h.config_string("federation.room_salt");
            c.key_file = h.config_string("federation.key_file");
            c.max_frame = size_t(h.config_int("federation.max_frame", int64_t(c.max_frame)));
            if (!c.room_salt.empty() && (c.room_salt.size() < 16 || c.room_salt.size() > 64))
                throw std::runtime_error("federation.room_salt must be 16 to 64 bytes");
            std::string err;
            fed_ = c.mode == "benchtalks" ? federation::make_benchtalks(h, *nc_, c)
                                          : federation::make_authenticated(h, *nc_, c, err);
            if (!fed_) throw std::runtime_error(err);
            fed_->subscribe(*nc_);
        }
#ifdef PARLEY_NATS_CLUSTER
        // ---- cluster mode (cluster.hpp/.cpp, the nats-cluster side) ----
        // Contract: constructed here (before the connection starts, so it can subscribe on
        // *nc_), start() after the connection started, stop() before it stops.
        if (h.config_bool("cluster.enabled"))
            cluster_ = std::make_unique<cluster::Cluster>(h, *nc_);
#endif
    }

    parley_t_status start() override {
        const auto& h = host();
        std::string err;
        if (!nc_->start(err)) {
            h.set_error(err);
            return PARLEY_ERR;
        }
        if (fed_) {
            for (auto [name, fn] : {std::pair{"federation.publish", &TransportNats::cmd_publish},
                                    {"federation.pair_request", &TransportNats::cmd_pair_request},
                                    {"federation.pair_claim", &TransportNats::cmd_pair_claim},
                                    {"federation.status", &TransportNats::cmd_status}}) {
                if (h.table()->command_register(h.ctx(), sdk::bytes(name), fn, this) != PARLEY_OK) {
                    h.set_error(std::string("command already registered: ") + name);
                    return PARLEY_ERR;
                }
            }
        }
#ifdef PARLEY_NATS_CLUSTER
        if (cluster_) {
            auto st = cluster_->start();
            if (st != PARLEY_OK) return st;
        }
#endif
        return PARLEY_OK;
    }

    void stop() override {
#ifdef PARLEY_NATS_CLUSTER
        if (cluster_) cluster_->stop();
#endif
        nc_->stop();
    }

  private:
    static TransportNats* self(void* u) {
        return static_cast<TransportNats*>(u);
    }

    // args: "<bench id>\n<frame>"
    static parley_t_status cmd_publish(void* u, const parley_t_command_call* c) {
        auto a = federation::split_args(sdk::view(c->args), 2);
        if (a.size() != 2) return PARLEY_ERR_INVALID;
        return self(u)->fed_->publish(a[0], sdk::view(c->room), a[1]);
    }
    // args: "<bench id>\n<sender id>\n<claimer bench id>"; answers pair_token to c->conn
    static parley_t_status cmd_pair_request(void* u, const parley_t_command_call* c) {
        auto a = federation::split_args(sdk::view(c->args), 3);
        if (a.size() != 3) return PARLEY_ERR_INVALID;
        return self(u)->fed_->pair_request(c->conn, sdk::view(c->room), a[0], a[1], a[2]);
    }
    // args: "<bench id>\n<sender id>\n<token>"
    static parley_t_status cmd_pair_claim(void* u, const parley_t_command_call* c) {
        auto a = federation::split_args(sdk::view(c->args), 3);
        if (a.size() != 3) return PARLEY_ERR_INVALID;
        return self(u)->fed_->pair_claim(c->conn, sdk::view(c->room), a[0], a[1], a[2]);
    }
    // OK: federation is configured (BenchTalks' /health "federation": true). Connection state
    // is in the parley_nats_connected metric.
    static parley_t_status cmd_status(void*, const parley_t_command_call*) {
        return PARLEY_OK;
    }

    std::unique_ptr<nats::Client> nc_;
    std::unique_ptr<federation::Mode> fed_;
#ifdef PARLEY_NATS_CLUSTER
    std::unique_ptr<cluster::Cluster> cluster_;
#endif
};

} // namespace

PARLEY_PLUGIN(TransportNats, "transport-nats", PARLEY_KIND_SERVICE, "0.1.0",
              "NATS: federation between benches and cluster mode across parley nodes", kConfig)
