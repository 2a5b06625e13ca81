// Cluster mode: several parleyd nodes with one profile share every room through NATS.
//
// The kernel's room bridge (plugin.h, ABI 0.2) hands this class every local join, leave and
// fan-out; it carries them to the other nodes and injects theirs into local rooms (room_inject
// never comes back to the bridge, so nothing loops). See README-cluster.md for the design.
//
// Threads: bridge hooks run on reactors and store workers and only take `mu_` and queue on the
// shared nats::Client (bounded, never blocks). Incoming messages run on a cnats thread. JetStream
// KV (set-once room metadata, node slots) needs request/reply round trips, so it has its own
// connection and thread (`kv_`); its watcher has another. Heartbeats and node expiry run on a
// kernel timer.
#pragma once

#include "nats_client.hpp"

#include <nats/nats.h>
#include <parley/sdk.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace parley::cluster {

class Cluster {
  public:
    // Reads the `cluster.*` keys; subscribes on `nc` (before it starts).
    Cluster(const sdk::Host& host, nats::Client& nc);
    ~Cluster();
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    // After the client started: KV connection, node slot, bridge, heartbeat timer.
    parley_t_status start();
    // Before the client stops: unregister the bridge, stop the threads.
    void stop();

  private:
    using Clock = std::chrono::steady_clock;
    struct LocalMember {
        std::string label;
        std::string farewell;
    };
    struct LocalRoom {
        std::string hash;
        std::unordered_map<parley_t_conn_id, LocalMember> members;
    };
    struct RemoteMember {
        std::string label;
        std::string farewell;
    };
    struct Node {
        Clock::time_point seen;
        std::unordered_map<std::string, std::unordered_map<uint64_t, RemoteMember>> rooms;
    };
    struct Farewell {
        std::string room;
        std::string frame;
    };

    // ---- bridge hooks (C trampolines) ----
    static void b_joined(void* u, parley_t_bytes room, parley_t_conn_id conn, parley_t_bytes label,
                         uint32_t local);
    static void b_left(void* u, parley_t_bytes room, parley_t_conn_id conn, uint32_t local);
    static parley_t_status b_publish(void* u, parley_t_bytes room, parley_t_bytes label,
                                     parley_t_frame_hptr frame, uint64_t seq);
    static uint32_t b_remote(void* u, parley_t_bytes room);
    static parley_t_status b_meta_once(void* u, parley_t_bytes room, uint32_t key,
                                       parley_t_bytes value, parley_t_meta_done_fn done,
                                       void* done_user);
    static void b_farewell(void* u, parley_t_bytes room, parley_t_conn_id conn,
                           parley_t_frame_hptr frame);

    std::string hash_of(std::string_view room) const;
    void on_message(std::string_view subject, std::string_view data);
    void on_tick();
    // Our NATS connection went down or came back (cnats thread).
    void on_link(bool up);
    std::string heartbeat_locked();
    // Removes a node's members (expiry or reconciliation) and collects farewells to inject.
    void drop_members_locked(Node& n, const std::string& hash, uint64_t conn,
                             std::vector<Farewell>& out);
    void inject_farewells(const std::vector<Farewell>& fw);
    void count_locked(const std::string& hash, int delta);
    void send(std::string subject, std::string data);

    // ---- JetStream KV (own connection, own thread) ----
    bool kv_connect(std::string& err);
    bool claim_slot(std::string& err);
    void kv_loop();
    void watch_loop();
    void kv_submit(std::function<void()> job);
    void forget_meta(const std::string& hash);

    const sdk::Host host_;
    nats::Client& nc_;
    std::string name_, prefix_, room_key_;
    std::chrono::milliseconds heartbeat_{1000}, ttl_{5000};
    // After our reconnect, how long the others may still be in their reconnect back-off.
    std::chrono::milliseconds reconnect_grace_{6250};
    int64_t slot_cfg_ = -1;
    uint32_t slot_ = 0;
    std::string node_; // 16 random bytes (hex): a restarted node is a new node
    uint64_t hb_seq_ = 0;

    mutable std::mutex mu_;
    std::unordered_map<std::string, LocalRoom> local_;   // room -> members here
    std::unordered_map<std::string, std::string> names_; // hash -> room (local rooms only)
    std::unordered_map<std::string, Node> nodes_;
    bool online_ = false; // our NATS connection is up: silence of the others means something
    std::unordered_map<std::string, uint32_t> remote_; // hash -> members on other nodes
    // Set-once values of every room, mirrored from the KV watcher: hash -> key -> value.
    std::unordered_map<std::string, std::map<uint32_t, std::string>> meta_;

    parley_t_room_bridge bridge_{};
    bool bridged_ = false;
    uint64_t timer_ = 0;

    natsOptions* kv_opts_ = nullptr;
    natsConnection* kv_nc_ = nullptr;
    jsCtx* js_ = nullptr;
    kvStore* kv_meta_ = nullptr;
    kvStore* kv_nodes_ = nullptr;
    kvWatcher* watcher_ = nullptr;
    std::mutex kv_mu_;
    std::condition_variable kv_cv_;
    std::deque<std::function<void()>> kv_jobs_;
    std::atomic<bool> stopping_{false};
    std::thread kv_thread_, watch_thread_;

    parley_t_metric_hptr m_nodes_, m_remote_, m_in_, m_out_, m_dropped_, m_bad_, m_expired_,
        m_kv_errors_, m_set_once_won_, m_set_once_lost_;
};

} // namespace parley::cluster
