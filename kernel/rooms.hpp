// Room registry and router.
//
// Threading: rooms are spread over kShards shards, each guarded by its own mutex; any thread may
// call any operation. Deliveries are collected under the shard lock and handed to the owning
// transports' `deliver` hooks after it is released. Calls about one connection must come from
// one thread at a time (its transport's loop), which every transport does naturally.
//
// Persistent publishes get a sequence number from one process-wide counter seeded from the
// microsecond clock at start, so sequences keep increasing across restarts. A shard's `submit`
// mutex is held from assigning a sequence until the store has the write, and also around
// history fetches, so the store (FIFO per room) sees appends in sequence order and a fetch after
// every append with a smaller sequence: a joiner gets history up to its join sequence and live
// messages after it, each exactly once.
#pragma once

#include "instance.hpp"

#include <parley/plugin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parley::kernel {

struct RoomLimits {
    std::atomic<uint32_t> members_per_room{10000};
    std::atomic<uint32_t> rooms_per_connection{16};
    std::atomic<uint32_t> max_rooms{100000};
    std::atomic<uint32_t> max_connections{100000};
    std::atomic<int64_t> retain_empty_ms{0};
};

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Rooms {
  public:
    explicit Rooms(RoomLimits& limits);
    ~Rooms();

    void set_store(Instance* store) { store_.store(store); }
    Instance* store() const { return store_.load(); }

    parley_t_conn_id conn_open(Instance* transport, uint64_t tag);
    void conn_closed(parley_t_conn_id conn);
    void conn_close(parley_t_conn_id conn, uint16_t code, std::string_view reason);
    // Drops every connection of a transport being removed.
    void forget_transport(Instance* transport);

    parley_t_status join(parley_t_conn_id conn, std::string_view room, std::string_view label,
                         parley_t_join_result* out);
    parley_t_status leave(parley_t_conn_id conn, std::string_view room, uint32_t* left);
    parley_t_status publish(std::string_view room, parley_t_frame* frame, parley_t_conn_id except);
    parley_t_status publish_persist(std::string_view room, parley_t_frame* frame,
                                    parley_t_conn_id except, std::string_view record,
                                    parley_t_store_done_fn done, void* user);
    parley_t_status send_to(parley_t_conn_id conn, parley_t_frame* frame);
    parley_t_status send_to_member(std::string_view room, std::string_view label,
                                   parley_t_frame* frame);
    uint32_t members(std::string_view room, parley_t_member_fn fn, void* user);
    parley_t_status meta_get(std::string_view room, uint32_t key, char* out, size_t cap,
                             size_t* out_len);
    parley_t_status meta_set(std::string_view room, uint32_t key, std::string_view value,
                             uint32_t flags);

    parley_t_status history_fetch(std::string_view room, uint32_t max, uint64_t upto,
                                  parley_t_history_fn fn, void* user);

    // ---- 0.2: room bridge (cluster mode). See parley_t_room_bridge in plugin.h. ----
    // Registers (or with nullptr removes) the one bridge; removal waits for running hooks.
    parley_t_status set_bridge(Instance* owner, const parley_t_room_bridge* bridge);
    // Local members only, never bridged: frames that came from another node.
    parley_t_status inject(std::string_view room, std::string_view label, parley_t_frame* frame,
                           uint64_t seq);
    parley_t_status farewell(parley_t_conn_id conn, std::string_view room, parley_t_frame* frame);
    parley_t_status meta_set_async(std::string_view room, uint32_t key, std::string_view value,
                                   uint32_t flags, parley_t_meta_done_fn done, void* user);

    // Frees empty rooms idle for longer than retain_empty_ms. Called by a kernel timer.
    void sweep();

    size_t room_count() const { return room_count_.load(); }
    size_t conn_count() const { return conn_count_.load(); }
    // Histogram of room sizes for `rooms` (counts only, never names or content).
    std::map<std::string, size_t> size_histogram() const;

  private:
    static constexpr size_t kShards = 64;
    using Clock = std::chrono::steady_clock;

    struct Member {
        parley_t_conn_id conn;
        uint64_t tag;
        Instance* transport;
        std::string label;
        uint64_t join_seq;
    };
    struct Pending {
        uint64_t seq;
        parley_t_frame* frame; // retained
        parley_t_conn_id except;
        bool acked = false;
        parley_t_status status = PARLEY_OK;
    };
    struct Room {
        std::vector<Member> members;
        std::map<uint32_t, std::string> meta;
        std::deque<Pending> pending;
        Clock::time_point empty_since{};
    };
    struct RoomShard {
        std::mutex submit; // orders store submissions; taken before `mu`, never after
        mutable std::mutex mu;
        std::unordered_map<std::string, Room, StringHash, std::equal_to<>> rooms;
    };
    struct Conn {
        Instance* transport;
        uint64_t tag;
        std::vector<std::string> rooms;
    };
    struct ConnShard {
        mutable std::mutex mu;
        std::unordered_map<parley_t_conn_id, Conn> conns;
    };
    struct Recipient {
        Instance* transport;
        parley_t_delivery to;
    };
    struct AckCtx;

    RoomShard& shard_of(std::string_view room) {
        return room_shards_[StringHash{}(room) % kShards];
    }
    ConnShard& shard_of(parley_t_conn_id id) { return conn_shards_[id % kShards]; }
    static void deliver(std::vector<Recipient>& rcpts, parley_t_frame* frame);
    void on_ack(const std::string& room, uint64_t seq, parley_t_status status);
    uint64_t next_seq();  // a persistent publish's sequence
    uint64_t join_mark(); // a join's sequence: every later local publish is greater
    // Runs f(bridge table) under the bridge's read lock; a no-op (one atomic load) without one.
    template <class F> void with_bridge(F&& f) {
        if (!bridge_on_.load(std::memory_order_acquire)) return;
        std::shared_lock lk(bridge_mu_);
        if (bridge_owner_) f(bridge_);
    }
    void maybe_free(RoomShard& sh, decltype(RoomShard::rooms)::iterator it);

    RoomLimits& limits_;
    std::atomic<Instance*> store_{nullptr};
    RoomShard room_shards_[kShards];
    ConnShard conn_shards_[kShards];
    std::atomic<uint64_t> next_conn_{1};
    std::atomic<uint64_t> seq_;
    // Cluster mode: sequences are (µs clock << 8 | slot) so nodes never collide in one store.
    std::atomic<int> slot_{-1};
    std::atomic<bool> bridge_on_{false};
    std::shared_mutex bridge_mu_; // writers: set_bridge; readers: every bridge hook call
    std::mutex bridge_set_mu_;    // serialises set_bridge calls
    Instance* bridge_owner_ = nullptr;
    parley_t_room_bridge bridge_{};
    std::atomic<size_t> room_count_{0};
    std::atomic<size_t> conn_count_{0};
};

} // namespace parley::kernel
