// The kernel side of cluster mode (ABI 0.2 room bridge), against the kernel's Rooms with a fake
// transport, a hand-acked store and a recording bridge: what reaches the bridge, what comes
// back through inject, counts with remote members, set-once through the bridge, and sequences
// that two nodes sharing one store can never repeat.
#include "frame.hpp"
#include "rooms.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace parley::kernel;

namespace {

struct Delivered {
    parley_t_conn_id conn;
    std::string text;
};
std::vector<Delivered>* g_delivered = nullptr;

void fake_deliver(parley_t_instance_pptr, const parley_t_delivery* to, size_t n,
                  parley_t_frame_hptr f) {
    for (size_t i = 0; i < n; ++i)
        g_delivered->push_back({to[i].conn, std::string(f->data, f->len)});
}

struct PendingAppend {
    uint64_t seq;
    parley_t_store_done_fn fn;
    void* user;
};
std::deque<PendingAppend>* g_pending = nullptr;
void store_append(parley_t_instance_pptr, parley_t_bytes, uint64_t seq, parley_t_bytes,
                  parley_t_store_done_fn fn, void* user) {
    g_pending->push_back({seq, fn, user});
}

// Records every hook call; remote counts and set-once answers are set by the test.
struct Recorder {
    struct Pub {
        std::string room, label, text;
        uint64_t seq;
    };
    std::vector<std::string> events; // "join r label n", "leave r n", "farewell r text"
    std::vector<Pub> pubs;
    std::map<std::string, uint32_t> remote;
    std::vector<std::string> remote_labels;
    parley_t_meta_done_fn done = nullptr;
    void* done_user = nullptr;
    std::string once_value;
};

std::string s(parley_t_bytes b) {
    return {b.ptr ? b.ptr : "", b.len};
}

parley_t_room_bridge make_bridge(Recorder* r, uint32_t slot) {
    parley_t_room_bridge b{};
    b.struct_size = sizeof b;
    b.user = r;
    b.node_slot = slot;
    b.joined = [](void* u, parley_t_bytes room, parley_t_conn_id, parley_t_bytes label,
                  uint32_t n) {
        static_cast<Recorder*>(u)->events.push_back("join " + s(room) + " " + s(label) + " " +
                                                    std::to_string(n));
    };
    b.left = [](void* u, parley_t_bytes room, parley_t_conn_id, uint32_t n) {
        static_cast<Recorder*>(u)->events.push_back("leave " + s(room) + " " + std::to_string(n));
    };
    b.publish = [](void* u, parley_t_bytes room, parley_t_bytes label, parley_t_frame_hptr f,
                   uint64_t seq) {
        auto* r = static_cast<Recorder*>(u);
        if (label.len) {
            bool known = false;
            for (auto& l : r->remote_labels)
                known = known || l == s(label);
            if (!known) return PARLEY_ERR_NOT_FOUND;
        }
        r->pubs.push_back({s(room), s(label), std::string(f->data, f->len), seq});
        return PARLEY_OK;
    };
    b.remote_members = [](void* u, parley_t_bytes room) {
        auto* r = static_cast<Recorder*>(u);
        auto it = r->remote.find(s(room));
        return it == r->remote.end() ? 0u : it->second;
    };
    b.meta_set_once = [](void* u, parley_t_bytes, uint32_t, parley_t_bytes value,
                         parley_t_meta_done_fn done, void* du) {
        auto* r = static_cast<Recorder*>(u);
        r->done = done;
        r->done_user = du;
        r->once_value = s(value);
        return PARLEY_OK;
    };
    b.farewell = [](void* u, parley_t_bytes room, parley_t_conn_id, parley_t_frame_hptr f) {
        static_cast<Recorder*>(u)->events.push_back("farewell " + s(room) + " " +
                                                    std::string(f->data, f->len));
    };
    return b;
}

parley_t_frame* text_frame(const std::string& t) {
    auto* f = frame_alloc(t.size());
    std::copy(t.begin(), t.end(), f->data);
    f->len = t.size();
    return f;
}

class BridgeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        g_delivered = &delivered;
        g_pending = &pending;
        transport.vt.deliver = fake_deliver;
        transport.live = true;
        store.vt.history_append = store_append;
        store.live = true;
        rooms.set_store(&store);
    }
    void TearDown() override { rooms.set_bridge(&owner, nullptr); }
    parley_t_conn_id open() { return rooms.conn_open(&transport, 0); }
    std::vector<std::string> texts_for(parley_t_conn_id c) {
        std::vector<std::string> out;
        for (auto& d : delivered)
            if (d.conn == c) out.push_back(d.text);
        return out;
    }
    void ack_all() {
        while (!pending.empty()) {
            auto p = pending.front();
            pending.pop_front();
            p.fn(p.user, PARLEY_OK);
        }
    }

    RoomLimits limits;
    Rooms rooms{limits};
    Instance transport, store, owner, other;
    std::vector<Delivered> delivered;
    std::deque<PendingAppend> pending;
    Recorder rec;
};

TEST_F(BridgeTest, WithoutBridgeNothingChanges) {
    auto a = open();
    parley_t_join_result jr{sizeof jr};
    ASSERT_EQ(rooms.join(a, "r", "a", &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 1u);
    auto* f = text_frame("bye");
    EXPECT_EQ(rooms.farewell(a, "r", f), PARLEY_OK);
    EXPECT_EQ(rooms.send_to_member("r", "nobody", f), PARLEY_ERR_NOT_FOUND);
    frame_release(f);
    int calls = 0;
    EXPECT_EQ(rooms.meta_set_async(
                  "r", PARLEY_META_ADMIN_HASH, "h1", PARLEY_META_SET_ONCE,
                  [](void* u, parley_t_status st) {
                      EXPECT_EQ(st, PARLEY_OK);
                      ++*static_cast<int*>(u);
                  },
                  &calls),
              PARLEY_OK);
    EXPECT_EQ(calls, 1) << "completes before returning without a bridge";
    EXPECT_EQ(rooms.meta_set_async(
                  "r", PARLEY_META_ADMIN_HASH, "h2", PARLEY_META_SET_ONCE,
                  [](void* u, parley_t_status st) {
                      EXPECT_EQ(st, PARLEY_ERR_EXISTS);
                      ++*static_cast<int*>(u);
                  },
                  &calls),
              PARLEY_OK);
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(rooms.meta_set_async("nope", 1, "x", 0, nullptr, nullptr), PARLEY_ERR_NOT_FOUND);
}

TEST_F(BridgeTest, OnlyOneBridgeAndSlotChecked) {
    auto b = make_bridge(&rec, 3);
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    EXPECT_EQ(rooms.set_bridge(&other, &b), PARLEY_ERR_EXISTS);
    EXPECT_EQ(rooms.set_bridge(&other, nullptr), PARLEY_OK) << "not the owner: a no-op";
    auto bad = make_bridge(&rec, 256);
    EXPECT_EQ(rooms.set_bridge(&owner, &bad), PARLEY_ERR_INVALID);
    auto a = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    EXPECT_EQ(rec.events.size(), 1u) << "still bridged by the owner";
    ASSERT_EQ(rooms.set_bridge(&owner, nullptr), PARLEY_OK);
    ASSERT_EQ(rooms.join(open(), "r", "b", nullptr), PARLEY_OK);
    EXPECT_EQ(rec.events.size(), 1u) << "unregistered: no more hooks";
}

TEST_F(BridgeTest, JoinLeaveCountRemoteMembers) {
    auto b = make_bridge(&rec, 1);
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    rec.remote["r"] = 2;
    auto a = open(), c = open();
    parley_t_join_result jr{sizeof jr};
    ASSERT_EQ(rooms.join(a, "r", "a", &jr), PARLEY_OK);
    EXPECT_EQ(jr.members, 3u) << "one here, two elsewhere";
    EXPECT_EQ(jr.created, 0u) << "the room exists on other nodes";
    ASSERT_EQ(rooms.join(c, "fresh", "c", &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 1u);
    EXPECT_EQ(jr.members, 1u);
    uint32_t left = 0;
    ASSERT_EQ(rooms.leave(a, "r", &left), PARLEY_OK);
    EXPECT_EQ(left, 2u);
    rooms.conn_closed(c); // closed without a leave: the bridge hears it too
    EXPECT_EQ(rec.events, (std::vector<std::string>{"join r a 1", "join fresh c 1", "leave r 0",
                                                    "leave fresh 0"}));
    EXPECT_EQ(rooms.leave(a, "r", &left), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(rec.events.size(), 4u) << "a failed leave is not bridged";
}

TEST_F(BridgeTest, PublishGoesOutInjectComesInNeverLoops) {
    auto b = make_bridge(&rec, 1);
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    auto a = open(), c = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    ASSERT_EQ(rooms.join(c, "r", "c", nullptr), PARLEY_OK);
    auto* f = text_frame("local");
    ASSERT_EQ(rooms.publish("r", f, a), PARLEY_OK);
    frame_release(f);
    ASSERT_EQ(rec.pubs.size(), 1u);
    EXPECT_EQ(rec.pubs[0].text, "local");
    EXPECT_EQ(rec.pubs[0].seq, 0u);
    EXPECT_EQ(texts_for(c), std::vector<std::string>{"local"});

    auto* g = text_frame("remote");
    ASSERT_EQ(rooms.inject("r", "", g, 0), PARLEY_OK);
    EXPECT_EQ(rec.pubs.size(), 1u) << "injected frames are never handed back to the bridge";
    EXPECT_EQ(texts_for(a), std::vector<std::string>{"remote"});
    EXPECT_EQ(texts_for(c), (std::vector<std::string>{"local", "remote"}));
    ASSERT_EQ(rooms.inject("r", "c", g, 0), PARLEY_OK);
    EXPECT_EQ(texts_for(a).size(), 1u) << "directed inject reaches only that label";
    EXPECT_EQ(texts_for(c).size(), 3u);
    EXPECT_EQ(rooms.inject("r", "zz", g, 0), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(rooms.inject("gone", "", g, 0), PARLEY_ERR_NOT_FOUND);
    frame_release(g);

    // Directed to a member that is not here: the bridge decides.
    auto* h = text_frame("dm");
    EXPECT_EQ(rooms.send_to_member("r", "far", h), PARLEY_ERR_NOT_FOUND);
    rec.remote_labels.push_back("far");
    EXPECT_EQ(rooms.send_to_member("r", "far", h), PARLEY_OK);
    EXPECT_EQ(rec.pubs.back().label, "far");
    EXPECT_EQ(rooms.send_to_member("r", "c", h), PARLEY_OK);
    EXPECT_EQ(rec.pubs.size(), 2u) << "a local member is served locally";
    frame_release(h);

    // The last local member leaves, then its dialect announces it: the room is gone here, but
    // the notice still goes to the other nodes.
    rec.remote["r"] = 1;
    ASSERT_EQ(rooms.leave(c, "r", nullptr), PARLEY_OK);
    auto* gone = text_frame("c left");
    EXPECT_EQ(rooms.publish("r", gone, 0), PARLEY_OK);
    ASSERT_EQ(rooms.leave(a, "r", nullptr), PARLEY_OK);
    EXPECT_EQ(rooms.publish("r", gone, 0), PARLEY_OK);
    frame_release(gone);
    EXPECT_EQ(rec.pubs.back().text, "c left");
    EXPECT_EQ(rec.pubs.size(), 4u);

    auto* bye = text_frame("bye-a");
    EXPECT_EQ(rooms.farewell(a, "r", bye), PARLEY_OK);
    frame_release(bye);
    EXPECT_EQ(rec.events.back(), "farewell r bye-a") << "the bridge drops unknown members";
    EXPECT_EQ(frames_alive(), 0);
}

TEST_F(BridgeTest, PersistedFramesAreBridgedAfterAckWithTheirSequence) {
    auto b = make_bridge(&rec, 7);
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    auto a = open(), c = open();
    parley_t_join_result ja{sizeof ja}, jc{sizeof jc};
    ASSERT_EQ(rooms.join(a, "r", "a", &ja), PARLEY_OK);
    auto* f = text_frame("m1");
    ASSERT_EQ(rooms.publish_persist("r", f, a, "rec1", nullptr, nullptr), PARLEY_OK);
    frame_release(f);
    EXPECT_TRUE(rec.pubs.empty()) << "nothing leaves before the store acknowledged it";
    ASSERT_EQ(rooms.join(c, "r", "c", &jc), PARLEY_OK);
    ASSERT_EQ(pending.size(), 1u);
    uint64_t seq = pending.front().seq;
    EXPECT_EQ(seq & 0xff, 7u) << "the node slot is the low byte";
    EXPECT_GT(seq, ja.join_seq);
    EXPECT_GT(jc.join_seq, seq) << "a later joiner's history covers it";
    ack_all();
    ASSERT_EQ(rec.pubs.size(), 1u);
    EXPECT_EQ(rec.pubs[0].seq, seq);
    EXPECT_TRUE(texts_for(c).empty()) << "c got it from history, not live";

    // A remote frame older than c's join is in c's history already; a newer one is live.
    auto* old = text_frame("old");
    ASSERT_EQ(rooms.inject("r", "", old, jc.join_seq - 1), PARLEY_OK);
    auto* neu = text_frame("new");
    ASSERT_EQ(rooms.inject("r", "", neu, jc.join_seq + 1), PARLEY_OK);
    frame_release(old);
    frame_release(neu);
    EXPECT_EQ(texts_for(c), std::vector<std::string>{"new"});
    EXPECT_EQ(texts_for(a), (std::vector<std::string>{"old", "new"}));
}

// Two nodes (two Rooms, slots 1 and 2) publishing into one room at the same moments never
// assign the same sequence, and each keeps increasing.
TEST_F(BridgeTest, TwoNodesNeverShareASequence) {
    RoomLimits l2;
    Rooms node2{l2};
    node2.set_store(&store);
    Recorder rec2;
    auto b1 = make_bridge(&rec, 1), b2 = make_bridge(&rec2, 2);
    ASSERT_EQ(rooms.set_bridge(&owner, &b1), PARLEY_OK);
    ASSERT_EQ(node2.set_bridge(&owner, &b2), PARLEY_OK);
    auto a = open(), c = node2.conn_open(&transport, 0);
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    ASSERT_EQ(node2.join(c, "r", "c", nullptr), PARLEY_OK);
    auto* f = text_frame("x");
    for (int i = 0; i < 2000; ++i) {
        ASSERT_EQ(rooms.publish_persist("r", f, a, "x", nullptr, nullptr), PARLEY_OK);
        ASSERT_EQ(node2.publish_persist("r", f, c, "x", nullptr, nullptr), PARLEY_OK);
    }
    frame_release(f);
    std::set<uint64_t> seen;
    uint64_t last1 = 0, last2 = 0;
    for (auto& p : pending) {
        EXPECT_TRUE(seen.insert(p.seq).second) << "duplicate sequence " << p.seq;
        auto& last = (p.seq & 0xff) == 1 ? last1 : last2;
        EXPECT_GT(p.seq, last);
        last = p.seq;
    }
    EXPECT_EQ(seen.size(), 4000u);
    ack_all();
    node2.set_bridge(&owner, nullptr);
}

TEST_F(BridgeTest, SetOnceGoesThroughTheBridge) {
    auto b = make_bridge(&rec, 1);
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    auto a = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    parley_t_status got = PARLEY_ERR;
    ASSERT_EQ(rooms.meta_set_async(
                  "r", PARLEY_META_ADMIN_HASH, "mine", PARLEY_META_SET_ONCE,
                  [](void* u, parley_t_status st) { *static_cast<parley_t_status*>(u) = st; },
                  &got),
              PARLEY_OK);
    EXPECT_EQ(got, PARLEY_ERR) << "pending: the cluster has not answered";
    EXPECT_EQ(rec.once_value, "mine");
    char buf[16];
    size_t len = 0;
    EXPECT_EQ(rooms.meta_get("r", PARLEY_META_ADMIN_HASH, buf, sizeof buf, &len),
              PARLEY_ERR_NOT_FOUND)
        << "nothing local until the cluster decided";
    // The cluster says another node won: the bridge writes the winner, then completes.
    ASSERT_EQ(rooms.meta_set("r", PARLEY_META_ADMIN_HASH, "theirs", 0), PARLEY_OK);
    rec.done(rec.done_user, PARLEY_ERR_EXISTS);
    EXPECT_EQ(got, PARLEY_ERR_EXISTS);
    ASSERT_EQ(rooms.meta_get("r", PARLEY_META_ADMIN_HASH, buf, sizeof buf, &len), PARLEY_OK);
    EXPECT_EQ(std::string(buf, len), "theirs");
    // Plain (not set-once) values stay local and synchronous.
    EXPECT_EQ(rooms.meta_set_async("r", PARLEY_META_PUBLIC, "1", 0, nullptr, nullptr), PARLEY_OK);
    EXPECT_EQ(rooms.meta_set_async("nope", PARLEY_META_ADMIN_HASH, "x", PARLEY_META_SET_ONCE,
                                   nullptr, nullptr),
              PARLEY_ERR_NOT_FOUND);
}

// Hooks run on many threads; unregistering waits for the running ones.
TEST_F(BridgeTest, UnregisterWhilePublishing) {
    auto b = make_bridge(&rec, 1);
    b.publish = [](void*, parley_t_bytes, parley_t_bytes, parley_t_frame_hptr, uint64_t) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        return PARLEY_OK;
    };
    ASSERT_EQ(rooms.set_bridge(&owner, &b), PARLEY_OK);
    auto a = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i)
        ts.emplace_back([&] {
            auto* f = text_frame("p");
            while (!stop.load())
                rooms.publish("r", f, a);
            frame_release(f);
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_EQ(rooms.set_bridge(&owner, nullptr), PARLEY_OK);
    stop = true;
    for (auto& t : ts)
        t.join();
}

} // namespace
