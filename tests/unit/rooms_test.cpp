// Router guarantees, tested against the kernel's Rooms with fake transports and a store whose
// acknowledgements the test releases by hand (as PostgreSQL would, later and from elsewhere).
#include "frame.hpp"
#include "rooms.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>
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
    std::string room;
    uint64_t seq;
    std::string record;
    parley_t_store_done_fn fn;
    void* user;
};

// A store that queues appends until the test acks them; fetch answers from acked records.
struct FakeStore {
    std::deque<PendingAppend> pending;
    std::map<std::string, std::map<uint64_t, std::string>> stored;
    std::vector<uint64_t> fetch_upto;

    void ack_next(parley_t_status st = PARLEY_OK) {
        auto p = pending.front();
        pending.pop_front();
        if (st == PARLEY_OK) stored[p.room][p.seq] = p.record;
        p.fn(p.user, st);
    }
};
FakeStore* g_store = nullptr;

void store_append(parley_t_instance_pptr, parley_t_bytes room, uint64_t seq, parley_t_bytes rec,
                  parley_t_store_done_fn fn, void* user) {
    g_store->pending.push_back(
        {std::string(room.ptr, room.len), seq, std::string(rec.ptr, rec.len), fn, user});
}
void store_fetch(parley_t_instance_pptr, parley_t_bytes room, uint32_t, uint64_t upto,
                 parley_t_history_fn fn, void* user) {
    g_store->fetch_upto.push_back(upto);
    std::vector<parley_t_history_entry> out;
    for (auto& [seq, rec] : g_store->stored[std::string(room.ptr, room.len)])
        if (upto == 0 || seq <= upto) out.push_back({seq, {rec.data(), rec.size()}});
    fn(user, PARLEY_OK, out.data(), out.size());
}

parley_t_frame* text_frame(const std::string& s) {
    auto* f = frame_alloc(s.size());
    std::copy(s.begin(), s.end(), f->data);
    f->len = s.size();
    return f;
}

class RoomsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        g_delivered = &delivered;
        g_store = &store;
        transport.vt.deliver = fake_deliver;
        transport.live = true;
        store_inst.vt.history_append = store_append;
        store_inst.vt.history_fetch = store_fetch;
        store_inst.live = true;
        rooms.set_store(&store_inst);
    }
    parley_t_conn_id open() { return rooms.conn_open(&transport, 0); }
    std::vector<std::string> texts_for(parley_t_conn_id c) {
        std::vector<std::string> out;
        for (auto& d : delivered)
            if (d.conn == c) out.push_back(d.text);
        return out;
    }
    std::vector<std::string> history_for(const std::string& room, uint64_t upto) {
        std::vector<std::string> out;
        rooms.history_fetch(
            room, 100, upto,
            [](void* u, parley_t_status, const parley_t_history_entry* e, size_t n) {
                for (size_t i = 0; i < n; ++i)
                    static_cast<std::vector<std::string>*>(u)->emplace_back(e[i].record.ptr,
                                                                            e[i].record.len);
            },
            &out);
        return out;
    }

    RoomLimits limits;
    Rooms rooms{limits};
    Instance transport;
    Instance store_inst;
    FakeStore store;
    std::vector<Delivered> delivered;
};

TEST_F(RoomsTest, PublishReachesOthersNotSender) {
    auto a = open(), b = open(), c = open();
    for (auto id : {a, b, c})
        ASSERT_EQ(rooms.join(id, "r", "x", nullptr), PARLEY_OK);
    auto* f = text_frame("hi");
    ASSERT_EQ(rooms.publish("r", f, a), PARLEY_OK);
    frame_release(f);
    EXPECT_TRUE(texts_for(a).empty());
    EXPECT_EQ(texts_for(b), std::vector<std::string>{"hi"});
    EXPECT_EQ(texts_for(c), std::vector<std::string>{"hi"});
    EXPECT_EQ(frames_alive(), 0);
}

// One deliver call per transport per publish, with that transport's members only, also when
// members of two transports joined interleaved (the router groups them).
std::vector<std::pair<parley_t_instance_pptr, std::vector<parley_t_conn_id>>>* g_batches = nullptr;
void batch_deliver(parley_t_instance_pptr inst, const parley_t_delivery* to, size_t n,
                   parley_t_frame_hptr) {
    std::vector<parley_t_conn_id> conns;
    for (size_t i = 0; i < n; ++i)
        conns.push_back(to[i].conn);
    g_batches->emplace_back(inst, std::move(conns));
}

TEST_F(RoomsTest, EachTransportGetsOneBatchOfItsOwnMembers) {
    std::vector<std::pair<parley_t_instance_pptr, std::vector<parley_t_conn_id>>> batches;
    g_batches = &batches;
    int tag_a = 0, tag_b = 0;
    Instance other;
    transport.vt.deliver = batch_deliver;
    transport.inst = reinterpret_cast<parley_t_instance_pptr>(&tag_a);
    other.vt.deliver = batch_deliver;
    other.inst = reinterpret_cast<parley_t_instance_pptr>(&tag_b);
    other.live = true;
    auto a1 = open(), b1 = rooms.conn_open(&other, 0), a2 = open(), b2 = rooms.conn_open(&other, 0);
    for (auto id : {a1, b1, a2, b2})
        ASSERT_EQ(rooms.join(id, "r", "x", nullptr), PARLEY_OK);
    auto* f = text_frame("hi");
    ASSERT_EQ(rooms.publish("r", f, 0), PARLEY_OK);
    ASSERT_EQ(batches.size(), 2u);
    std::map<parley_t_instance_pptr, std::vector<parley_t_conn_id>> got(batches.begin(),
                                                                        batches.end());
    EXPECT_EQ(got[transport.inst], (std::vector<parley_t_conn_id>{a1, a2}));
    EXPECT_EQ(got[other.inst], (std::vector<parley_t_conn_id>{b1, b2}));
    // One transport: one call with every member but the sender.
    batches.clear();
    for (auto id : {b1, b2})
        ASSERT_EQ(rooms.leave(id, "r", nullptr), PARLEY_OK);
    ASSERT_EQ(rooms.publish("r", f, a1), PARLEY_OK);
    ASSERT_EQ(batches.size(), 1u);
    EXPECT_EQ(batches[0].second, (std::vector<parley_t_conn_id>{a2}));
    frame_release(f);
    for (auto id : {a1, a2, b1, b2})
        rooms.conn_closed(id);
    g_batches = nullptr;
}

TEST_F(RoomsTest, FirstJoinerCreatesAndEmptyRoomVanishes) {
    auto a = open(), b = open();
    parley_t_join_result jr{sizeof jr};
    ASSERT_EQ(rooms.join(a, "r", "a", &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 1u);
    ASSERT_EQ(rooms.join(b, "r", "b", &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 0u);
    EXPECT_EQ(jr.members, 2u);
    EXPECT_EQ(rooms.join(b, "r", "b", &jr), PARLEY_ERR_EXISTS);
    rooms.conn_closed(a);
    uint32_t left = 9;
    EXPECT_EQ(rooms.leave(b, "r", &left), PARLEY_OK);
    EXPECT_EQ(left, 0u);
    EXPECT_EQ(rooms.room_count(), 0u);
    ASSERT_EQ(rooms.join(a = open(), "r", "a", &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 1u) << "the next first joiner creates the room again";
}

TEST_F(RoomsTest, LimitsAreEnforced) {
    limits.members_per_room = 2;
    limits.rooms_per_connection = 2;
    auto a = open(), b = open(), c = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    ASSERT_EQ(rooms.join(b, "r", "b", nullptr), PARLEY_OK);
    EXPECT_EQ(rooms.join(c, "r", "c", nullptr), PARLEY_ERR_LIMIT);
    ASSERT_EQ(rooms.join(a, "s", "a", nullptr), PARLEY_OK);
    EXPECT_EQ(rooms.join(a, "t", "a", nullptr), PARLEY_ERR_LIMIT);
    limits.max_connections = 3;
    EXPECT_EQ(open(), 0u) << "over max_connections";
    EXPECT_EQ(rooms.join(a, std::string(300, 'x'), "a", nullptr), PARLEY_ERR_INVALID);
}

TEST_F(RoomsTest, MetaSetOnce) {
    auto a = open();
    ASSERT_EQ(rooms.join(a, "r", "a", nullptr), PARLEY_OK);
    EXPECT_EQ(rooms.meta_set("r", PARLEY_META_ADMIN_HASH, "h1", PARLEY_META_SET_ONCE), PARLEY_OK);
    EXPECT_EQ(rooms.meta_set("r", PARLEY_META_ADMIN_HASH, "h2", PARLEY_META_SET_ONCE),
              PARLEY_ERR_EXISTS);
    char buf[8];
    size_t len = 0;
    ASSERT_EQ(rooms.meta_get("r", PARLEY_META_ADMIN_HASH, buf, sizeof buf, &len), PARLEY_OK);
    EXPECT_EQ(std::string(buf, len), "h1");
    EXPECT_EQ(rooms.meta_set("nope", PARLEY_META_ADMIN_HASH, "h", 0), PARLEY_ERR_NOT_FOUND);
}

TEST_F(RoomsTest, DirectedSendReachesOnlyThatMember) {
    auto a = open(), b = open(), c = open();
    rooms.join(a, "r", "alice", nullptr);
    rooms.join(b, "r", "bob", nullptr);
    rooms.join(c, "r", "carol", nullptr);
    auto* f = text_frame("psst");
    EXPECT_EQ(rooms.send_to_member("r", "bob", f), PARLEY_OK);
    EXPECT_EQ(rooms.send_to_member("r", "dave", f), PARLEY_ERR_NOT_FOUND);
    frame_release(f);
    EXPECT_EQ(texts_for(b), std::vector<std::string>{"psst"});
    EXPECT_TRUE(texts_for(c).empty());
}

// The property the link profile depends on: a joiner sees every persisted message exactly
// once, either in its history or live, even while appends are still unacknowledged.
TEST_F(RoomsTest, JoinerSeesEachPersistedMessageExactlyOnce) {
    auto a = open();
    rooms.join(a, "r", "a", nullptr);
    auto pub = [&](const std::string& s) {
        auto* f = text_frame(s);
        ASSERT_EQ(rooms.publish_persist("r", f, a, s, nullptr, nullptr), PARLEY_OK);
        frame_release(f);
    };
    pub("m1");
    store.ack_next(); // m1 durable before the join
    pub("m2");        // assigned, not yet durable
    auto b = open();
    parley_t_join_result jr{sizeof jr};
    ASSERT_EQ(rooms.join(b, "r", "b", &jr), PARLEY_OK);
    pub("m3");        // after the join
    store.ack_next(); // m2
    store.ack_next(); // m3
    // b's history: everything up to its join sequence; live: everything after.
    auto hist = history_for("r", jr.join_seq);
    auto live = texts_for(b);
    std::vector<std::string> seen = hist;
    seen.insert(seen.end(), live.begin(), live.end());
    EXPECT_EQ(seen, (std::vector<std::string>{"m1", "m2", "m3"}));
    EXPECT_EQ(live, std::vector<std::string>{"m3"});
}

TEST_F(RoomsTest, FanOutWaitsForAckAndKeepsOrder) {
    auto a = open(), b = open();
    rooms.join(a, "r", "a", nullptr);
    rooms.join(b, "r", "b", nullptr);
    for (auto s : {"1", "2", "3"}) {
        auto* f = text_frame(s);
        rooms.publish_persist("r", f, a, s, nullptr, nullptr);
        frame_release(f);
    }
    EXPECT_TRUE(texts_for(b).empty()) << "nothing goes out before the store acknowledges";
    store.ack_next();
    EXPECT_EQ(texts_for(b), std::vector<std::string>{"1"});
    store.ack_next(PARLEY_ERR_UNAVAILABLE); // "2" failed: never delivered
    store.ack_next();
    EXPECT_EQ(texts_for(b), (std::vector<std::string>{"1", "3"}));
    EXPECT_EQ(frames_alive(), 0);
}

TEST_F(RoomsTest, NoStoreMeansUnavailable) {
    rooms.set_store(nullptr);
    auto a = open();
    rooms.join(a, "r", "a", nullptr);
    auto* f = text_frame("x");
    EXPECT_EQ(rooms.publish_persist("r", f, a, "x", nullptr, nullptr), PARLEY_ERR_UNAVAILABLE);
    frame_release(f);
}

TEST_F(RoomsTest, RetainedEmptyRoomKeepsMetaUntilSwept) {
    limits.retain_empty_ms = 60000;
    auto a = open();
    rooms.join(a, "r", "a", nullptr);
    rooms.meta_set("r", PARLEY_META_PASSWORD_HASH, "hash", 0);
    rooms.conn_closed(a);
    EXPECT_EQ(rooms.room_count(), 1u);
    size_t len = 0;
    EXPECT_EQ(rooms.meta_get("r", PARLEY_META_PASSWORD_HASH, nullptr, 0, &len), PARLEY_OK);
    limits.retain_empty_ms = 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rooms.sweep();
    rooms.sweep();
    EXPECT_EQ(rooms.room_count(), 0u);
}

} // namespace
