#include "rooms.hpp"

#include "frame.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

namespace parley::kernel {

namespace {
constexpr size_t kMaxRoomName = 256;
constexpr size_t kMaxLabel = 128;

uint64_t clock_seed() {
    return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}
} // namespace

struct Rooms::AckCtx {
    Rooms* rooms;
    std::string room;
    uint64_t seq;
    parley_t_store_done_fn done;
    void* user;
};

Rooms::Rooms(RoomLimits& limits) : limits_(limits), seq_(clock_seed()) {}

Rooms::~Rooms() {
    for (auto& sh : room_shards_)
        for (auto& [_, r] : sh.rooms)
            for (auto& p : r.pending)
                frame_release(p.frame);
}

parley_t_conn_id Rooms::conn_open(Instance* transport, uint64_t tag) {
    if (conn_count_.load() >= limits_.max_connections.load()) return 0;
    parley_t_conn_id id = next_conn_.fetch_add(1);
    auto& sh = shard_of(id);
    std::lock_guard lk(sh.mu);
    sh.conns.emplace(id, Conn{transport, tag, {}});
    conn_count_.fetch_add(1);
    return id;
}

void Rooms::conn_closed(parley_t_conn_id id) {
    std::vector<std::string> rooms;
    {
        auto& sh = shard_of(id);
        std::lock_guard lk(sh.mu);
        auto it = sh.conns.find(id);
        if (it == sh.conns.end()) return;
        rooms = std::move(it->second.rooms);
        sh.conns.erase(it);
        conn_count_.fetch_sub(1);
    }
    for (auto& room : rooms) {
        uint32_t local = 0;
        bool removed = false;
        {
            auto& rs = shard_of(std::string_view(room));
            std::lock_guard lk(rs.mu);
            auto it = rs.rooms.find(room);
            if (it == rs.rooms.end()) continue;
            auto& m = it->second.members;
            auto before = m.size();
            m.erase(
                std::remove_if(m.begin(), m.end(), [&](const Member& x) { return x.conn == id; }),
                m.end());
            removed = m.size() != before;
            local = uint32_t(m.size());
            maybe_free(rs, it);
        }
        if (removed)
            with_bridge([&](const parley_t_room_bridge& b) {
                b.left(b.user, parley_t_bytes{room.data(), room.size()}, id, local);
            });
    }
}

void Rooms::conn_close(parley_t_conn_id id, uint16_t code, std::string_view reason) {
    Instance* transport = nullptr;
    uint64_t tag = 0;
    {
        auto& sh = shard_of(id);
        std::lock_guard lk(sh.mu);
        auto it = sh.conns.find(id);
        if (it == sh.conns.end()) return;
        transport = it->second.transport;
        tag = it->second.tag;
    }
    if (transport->live.load() && transport->vt.close_conn)
        transport->vt.close_conn(transport->inst, parley_t_delivery{id, tag}, code,
                                 parley_t_bytes{reason.data(), reason.size()});
}

void Rooms::forget_transport(Instance* transport) {
    std::vector<parley_t_conn_id> ids;
    for (auto& sh : conn_shards_) {
        std::lock_guard lk(sh.mu);
        for (auto& [id, c] : sh.conns)
            if (c.transport == transport) ids.push_back(id);
    }
    for (auto id : ids)
        conn_closed(id);
}

parley_t_status Rooms::join(parley_t_conn_id conn, std::string_view room, std::string_view label,
                            parley_t_join_result* out) {
    if (room.empty() || room.size() > kMaxRoomName || label.size() > kMaxLabel)
        return PARLEY_ERR_INVALID;
    Instance* transport = nullptr;
    uint64_t tag = 0;
    {
        auto& cs = shard_of(conn);
        std::lock_guard lk(cs.mu);
        auto it = cs.conns.find(conn);
        if (it == cs.conns.end()) return PARLEY_ERR_NOT_FOUND;
        auto& c = it->second;
        if (std::find(c.rooms.begin(), c.rooms.end(), room) != c.rooms.end())
            return PARLEY_ERR_EXISTS;
        if (c.rooms.size() >= limits_.rooms_per_connection.load()) return PARLEY_ERR_LIMIT;
        transport = c.transport;
        tag = c.tag;
    }
    uint32_t members = 0;
    bool created = false;
    uint64_t join_seq = seq_.load();
    {
        auto& rs = shard_of(room);
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) {
            if (room_count_.load() >= limits_.max_rooms.load()) return PARLEY_ERR_LIMIT;
            it = rs.rooms.emplace(std::string(room), Room{}).first;
            room_count_.fetch_add(1);
            created = true;
        }
        auto& r = it->second;
        if (r.members.size() >= limits_.members_per_room.load()) {
            maybe_free(rs, it);
            return PARLEY_ERR_LIMIT;
        }
        // Read under the lock: every pending publish with a larger sequence will see us.
        join_seq = join_mark();
        created = created || (r.members.empty() && r.meta.empty());
        r.empty_since = {};
        r.members.push_back(Member{conn, tag, transport, std::string(label), join_seq});
        members = uint32_t(r.members.size());
    }
    {
        auto& cs = shard_of(conn);
        std::lock_guard lk(cs.mu);
        auto it = cs.conns.find(conn);
        if (it != cs.conns.end()) it->second.rooms.emplace_back(room);
    }
    uint32_t local = members;
    with_bridge([&](const parley_t_room_bridge& b) {
        parley_t_bytes r{room.data(), room.size()};
        b.joined(b.user, r, conn, parley_t_bytes{label.data(), label.size()}, local);
        uint32_t remote = b.remote_members(b.user, r);
        members += remote;
        created = created && remote == 0; // first joiner of the whole cluster
    });
    if (out) {
        out->members = members;
        out->created = created ? 1 : 0;
        out->join_seq = join_seq;
    }
    return PARLEY_OK;
}

parley_t_status Rooms::leave(parley_t_conn_id conn, std::string_view room, uint32_t* left) {
    {
        auto& cs = shard_of(conn);
        std::lock_guard lk(cs.mu);
        auto it = cs.conns.find(conn);
        if (it != cs.conns.end()) {
            auto& v = it->second.rooms;
            v.erase(std::remove(v.begin(), v.end(), room), v.end());
        }
    }
    uint32_t local = 0;
    bool was_member = false;
    {
        auto& rs = shard_of(room);
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
        auto& m = it->second.members;
        auto before = m.size();
        m.erase(std::remove_if(m.begin(), m.end(), [&](const Member& x) { return x.conn == conn; }),
                m.end());
        local = uint32_t(m.size());
        was_member = m.size() != before;
        maybe_free(rs, it);
    }
    uint32_t total = local;
    if (was_member)
        with_bridge([&](const parley_t_room_bridge& b) {
            parley_t_bytes r{room.data(), room.size()};
            b.left(b.user, r, conn, local);
            total += b.remote_members(b.user, r);
        });
    if (left) *left = total;
    return was_member ? PARLEY_OK : PARLEY_ERR_NOT_FOUND;
}

void Rooms::maybe_free(RoomShard& sh, decltype(RoomShard::rooms)::iterator it) {
    auto& r = it->second;
    if (!r.members.empty() || !r.pending.empty()) return;
    if (limits_.retain_empty_ms.load() > 0) {
        if (r.empty_since == Clock::time_point{}) r.empty_since = Clock::now();
        return;
    }
    sh.rooms.erase(it);
    room_count_.fetch_sub(1);
}

void Rooms::sweep() {
    auto retain = std::chrono::milliseconds(limits_.retain_empty_ms.load());
    auto now = Clock::now();
    for (auto& sh : room_shards_) {
        std::lock_guard lk(sh.mu);
        for (auto it = sh.rooms.begin(); it != sh.rooms.end();) {
            auto& r = it->second;
            bool idle = r.members.empty() && r.pending.empty() &&
                        (r.empty_since == Clock::time_point{} || now - r.empty_since >= retain);
            if (idle) {
                it = sh.rooms.erase(it);
                room_count_.fetch_sub(1);
            } else {
                if (!r.members.empty()) r.empty_since = {};
                ++it;
            }
        }
    }
}

void Rooms::deliver(std::vector<Recipient>& rcpts, parley_t_frame* frame) {
    if (rcpts.empty()) return;
    // Group by transport so each transport gets one call with a contiguous array. Usually there
    // is one transport: the scan spares the sort's buffer allocation on every publish.
    auto by_transport = [](const Recipient& a, const Recipient& b) {
        return a.transport < b.transport;
    };
    if (!std::is_sorted(rcpts.begin(), rcpts.end(), by_transport))
        std::stable_sort(rcpts.begin(), rcpts.end(), by_transport);
    thread_local std::vector<parley_t_delivery> batch;
    size_t i = 0;
    while (i < rcpts.size()) {
        Instance* t = rcpts[i].transport;
        batch.clear();
        for (; i < rcpts.size() && rcpts[i].transport == t; ++i)
            batch.push_back(rcpts[i].to);
        if (t->live.load(std::memory_order_acquire) && t->vt.deliver)
            t->vt.deliver(t->inst, batch.data(), batch.size(), frame);
    }
    rcpts.clear();
}

parley_t_status Rooms::publish(std::string_view room, parley_t_frame* frame,
                               parley_t_conn_id except) {
    thread_local std::vector<Recipient> rcpts;
    rcpts.clear();
    parley_t_status st = PARLEY_OK;
    {
        auto& rs = shard_of(room);
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it != rs.rooms.end()) {
            rcpts.reserve(it->second.members.size());
            for (auto& m : it->second.members)
                if (m.conn != except) rcpts.push_back({m.transport, {m.conn, m.tag}});
        } else {
            st = PARLEY_ERR_NOT_FOUND;
        }
    }
    deliver(rcpts, frame);
    // Also when the room just emptied here: the last local member's leave notice is for the
    // members on other nodes.
    with_bridge([&](const parley_t_room_bridge& b) {
        auto bst =
            b.publish(b.user, parley_t_bytes{room.data(), room.size()}, parley_t_bytes{}, frame, 0);
        if (st == PARLEY_ERR_NOT_FOUND) st = bst;
    });
    return st;
}

parley_t_status Rooms::publish_persist(std::string_view room, parley_t_frame* frame,
                                       parley_t_conn_id except, std::string_view record,
                                       parley_t_store_done_fn done, void* user) {
    Instance* store = store_.load();
    if (!store || !store->live.load() || !store->vt.history_append) return PARLEY_ERR_UNAVAILABLE;
    auto& rs = shard_of(room);
    std::lock_guard submit(rs.submit);
    uint64_t seq;
    {
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
        seq = next_seq();
        frame_retain(frame);
        it->second.pending.push_back(Pending{seq, frame, except});
    }
    auto ctx = std::make_unique<AckCtx>(AckCtx{this, std::string(room), seq, done, user});
    store->vt.history_append(
        store->inst, parley_t_bytes{room.data(), room.size()}, seq,
        parley_t_bytes{record.data(), record.size()},
        [](void* u, parley_t_status st) {
            std::unique_ptr<AckCtx> c(static_cast<AckCtx*>(u));
            c->rooms->on_ack(c->room, c->seq, st);
            if (c->done) c->done(c->user, st);
        },
        ctx.release()); // the store owns it until the completion runs, exactly once
    return PARLEY_OK;
}

void Rooms::on_ack(const std::string& room, uint64_t seq, parley_t_status status) {
    struct Ready {
        parley_t_frame* frame;
        std::vector<Recipient> rc;
        uint64_t seq;
        bool ok;
    };
    thread_local std::vector<Ready> ready;
    ready.clear();
    {
        auto& rs = shard_of(std::string_view(room));
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) return;
        auto& r = it->second;
        for (auto& p : r.pending)
            if (p.seq == seq) {
                p.acked = true;
                p.status = status;
            }
        // Fan out in sequence order: a later ack waits for every earlier one.
        while (!r.pending.empty() && r.pending.front().acked) {
            Pending p = r.pending.front();
            r.pending.pop_front();
            std::vector<Recipient> rc;
            if (p.status == PARLEY_OK)
                for (auto& m : r.members)
                    if (m.conn != p.except && m.join_seq < p.seq)
                        rc.push_back({m.transport, {m.conn, m.tag}});
            ready.push_back(Ready{p.frame, std::move(rc), p.seq, p.status == PARLEY_OK});
        }
        maybe_free(rs, it);
    }
    for (auto& r : ready) {
        deliver(r.rc, r.frame);
        if (r.ok)
            with_bridge([&](const parley_t_room_bridge& b) {
                b.publish(b.user, parley_t_bytes{room.data(), room.size()}, parley_t_bytes{},
                          r.frame, r.seq);
            });
        frame_release(r.frame);
    }
    ready.clear();
}

parley_t_status Rooms::history_fetch(std::string_view room, uint32_t max, uint64_t upto,
                                     parley_t_history_fn fn, void* user) {
    Instance* store = store_.load();
    if (!store || !store->live.load() || !store->vt.history_fetch) return PARLEY_ERR_UNAVAILABLE;
    auto& rs = shard_of(room);
    std::lock_guard submit(rs.submit); // after every append already assigned a sequence
    store->vt.history_fetch(store->inst, parley_t_bytes{room.data(), room.size()}, max, upto, fn,
                            user);
    return PARLEY_OK;
}

parley_t_status Rooms::send_to(parley_t_conn_id conn, parley_t_frame* frame) {
    std::vector<Recipient> rc;
    {
        auto& cs = shard_of(conn);
        std::lock_guard lk(cs.mu);
        auto it = cs.conns.find(conn);
        if (it == cs.conns.end()) return PARLEY_ERR_NOT_FOUND;
        rc.push_back({it->second.transport, {conn, it->second.tag}});
    }
    deliver(rc, frame);
    return PARLEY_OK;
}

parley_t_status Rooms::send_to_member(std::string_view room, std::string_view label,
                                      parley_t_frame* frame) {
    std::vector<Recipient> rc;
    {
        auto& rs = shard_of(room);
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
        for (auto& m : it->second.members)
            if (m.label == label) rc.push_back({m.transport, {m.conn, m.tag}});
    }
    if (rc.empty()) {
        // Not here: maybe on another node.
        parley_t_status st = PARLEY_ERR_NOT_FOUND;
        with_bridge([&](const parley_t_room_bridge& b) {
            st = b.publish(b.user, parley_t_bytes{room.data(), room.size()},
                           parley_t_bytes{label.data(), label.size()}, frame, 0);
        });
        return st;
    }
    deliver(rc, frame);
    return PARLEY_OK;
}

uint32_t Rooms::members(std::string_view room, parley_t_member_fn fn, void* user) {
    auto& rs = shard_of(room);
    std::lock_guard lk(rs.mu);
    auto it = rs.rooms.find(room);
    if (it == rs.rooms.end()) return 0;
    if (fn)
        for (auto& m : it->second.members)
            if (fn(user, m.conn, parley_t_bytes{m.label.data(), m.label.size()})) break;
    return uint32_t(it->second.members.size());
}

parley_t_status Rooms::meta_get(std::string_view room, uint32_t key, char* out, size_t cap,
                                size_t* out_len) {
    auto& rs = shard_of(room);
    std::lock_guard lk(rs.mu);
    auto it = rs.rooms.find(room);
    if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
    auto m = it->second.meta.find(key);
    if (m == it->second.meta.end()) return PARLEY_ERR_NOT_FOUND;
    if (out_len) *out_len = m->second.size();
    if (out) std::copy_n(m->second.data(), std::min(cap, m->second.size()), out);
    return PARLEY_OK;
}

parley_t_status Rooms::meta_set(std::string_view room, uint32_t key, std::string_view value,
                                uint32_t flags) {
    auto& rs = shard_of(room);
    std::lock_guard lk(rs.mu);
    auto it = rs.rooms.find(room);
    if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
    auto& meta = it->second.meta;
    if ((flags & PARLEY_META_SET_ONCE) && meta.count(key)) return PARLEY_ERR_EXISTS;
    if (value.empty())
        meta.erase(key);
    else
        meta[key] = std::string(value);
    return PARLEY_OK;
}

uint64_t Rooms::next_seq() {
    if (slot_.load(std::memory_order_relaxed) < 0) return seq_.fetch_add(1) + 1;
    uint64_t slot = uint64_t(slot_.load());
    uint64_t now = clock_seed();
    uint64_t cur = seq_.load();
    uint64_t val;
    do {
        val = (std::max((cur >> 8) + 1, now) << 8) | slot;
    } while (!seq_.compare_exchange_weak(cur, val));
    return val;
}

uint64_t Rooms::join_mark() {
    if (slot_.load(std::memory_order_relaxed) < 0) return seq_.load();
    // The whole current microsecond: history (from every node) up to now, live after it.
    uint64_t now = clock_seed();
    uint64_t cur = seq_.load();
    uint64_t mark;
    do {
        mark = (std::max(cur >> 8, now) << 8) | 0xff;
    } while (!seq_.compare_exchange_weak(cur, std::max(cur, mark)));
    return mark;
}

parley_t_status Rooms::set_bridge(Instance* owner, const parley_t_room_bridge* b) {
    if (!b) {
        // New calls stop taking the read lock first, so busy publishers cannot starve us.
        std::lock_guard owner_lk(bridge_set_mu_);
        if (bridge_owner_ != owner) return PARLEY_OK;
        bridge_on_.store(false, std::memory_order_release);
        std::unique_lock lk(bridge_mu_); // waits for hooks running under a read lock
        bridge_owner_ = nullptr;
        bridge_ = {};
        slot_.store(-1); // sequences stay above every slotted one: the counter goes on
        return PARLEY_OK;
    }
    std::lock_guard owner_lk(bridge_set_mu_);
    if (bridge_owner_ && bridge_owner_ != owner) return PARLEY_ERR_EXISTS;
    std::unique_lock lk(bridge_mu_);
    parley_t_room_bridge copy{};
    std::memcpy(&copy, b, std::min<size_t>(b->struct_size, sizeof copy));
    copy.struct_size = sizeof copy;
    if (copy.node_slot > 255 || !copy.joined || !copy.left || !copy.publish || !copy.remote_members)
        return PARLEY_ERR_INVALID;
    bridge_ = copy;
    bridge_owner_ = owner;
    slot_.store(int(copy.node_slot));
    bridge_on_.store(true, std::memory_order_release);
    return PARLEY_OK;
}

parley_t_status Rooms::inject(std::string_view room, std::string_view label, parley_t_frame* frame,
                              uint64_t seq) {
    thread_local std::vector<Recipient> rcpts;
    rcpts.clear();
    {
        auto& rs = shard_of(room);
        std::lock_guard lk(rs.mu);
        auto it = rs.rooms.find(room);
        if (it == rs.rooms.end()) return PARLEY_ERR_NOT_FOUND;
        for (auto& m : it->second.members)
            if ((label.empty() || m.label == label) && (seq == 0 || m.join_seq < seq))
                rcpts.push_back({m.transport, {m.conn, m.tag}});
    }
    if (rcpts.empty() && !label.empty()) return PARLEY_ERR_NOT_FOUND;
    deliver(rcpts, frame);
    return PARLEY_OK;
}

parley_t_status Rooms::farewell(parley_t_conn_id conn, std::string_view room,
                                parley_t_frame* frame) {
    with_bridge([&](const parley_t_room_bridge& b) {
        if (b.farewell) b.farewell(b.user, parley_t_bytes{room.data(), room.size()}, conn, frame);
    });
    return PARLEY_OK;
}

parley_t_status Rooms::meta_set_async(std::string_view room, uint32_t key, std::string_view value,
                                      uint32_t flags, parley_t_meta_done_fn done, void* user) {
    bool bridged = false;
    parley_t_status st = PARLEY_OK;
    if (flags & PARLEY_META_SET_ONCE)
        with_bridge([&](const parley_t_room_bridge& b) {
            if (!b.meta_set_once) return;
            bridged = true;
            {
                auto& rs = shard_of(room);
                std::lock_guard lk(rs.mu);
                if (!rs.rooms.count(room)) {
                    st = PARLEY_ERR_NOT_FOUND;
                    return;
                }
            }
            st = b.meta_set_once(b.user, parley_t_bytes{room.data(), room.size()}, key,
                                 parley_t_bytes{value.data(), value.size()}, done, user);
        });
    if (bridged) return st;
    st = meta_set(room, key, value, flags);
    if (st != PARLEY_OK && st != PARLEY_ERR_EXISTS) return st;
    if (done) done(user, st);
    return PARLEY_OK;
}

std::map<std::string, size_t> Rooms::size_histogram() const {
    std::map<std::string, size_t> h;
    for (auto& sh : room_shards_) {
        std::lock_guard lk(sh.mu);
        for (auto& [_, r] : sh.rooms) {
            size_t n = r.members.size();
            const char* bucket = n == 0      ? "0"
                                 : n == 1    ? "1"
                                 : n <= 10   ? "2-10"
                                 : n <= 100  ? "11-100"
                                 : n <= 1000 ? "101-1000"
                                             : ">1000";
            h[bucket]++;
        }
    }
    return h;
}

} // namespace parley::kernel
