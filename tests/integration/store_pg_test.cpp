// store-pg against a real, throwaway PostgreSQL (tests/integration/pg_env.sh starts it and sets
// PARLEY_TEST_PG). The built plugin .so is loaded through the SDK's FakeHost the way parleyd
// loads it, and driven through its vtable: ordering, caps, TTL + sweep, blobs, durability across
// an instance restart and a server crash, and behaviour while PostgreSQL is down.
#include <parley/sdk_testing.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifndef STORE_PG_PLUGIN
#error "STORE_PG_PLUGIN must name the built parley-store-pg.so"
#endif

namespace {

using namespace std::chrono_literals;
using parley::sdk::testing::BlobRecord;
using parley::sdk::testing::FakeHost;
using parley::sdk::testing::FakeInstance;
using parley::sdk::testing::HistoryRecord;
using parley::sdk::testing::State;
using Clock = std::chrono::steady_clock;

// Appended to every conninfo (the test cluster uses trust auth, so it is never checked): no log
// line or error may ever contain it.
constexpr const char* kPassword = "Pw-n3ver-L0gged-7f3a";

std::string pg() {
    const char* e = std::getenv("PARLEY_TEST_PG");
    return e ? e : "";
}
std::string conninfo() {
    return pg() + " password=" + kPassword;
}

parley_t_bytes by(std::string_view s) {
    return {s.data(), s.size()};
}

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_hex(size_t n) {
    static std::mt19937_64 rng{std::random_device{}()};
    static std::mutex mu;
    std::lock_guard lk(mu);
    std::string s;
    for (size_t i = 0; i < n; ++i)
        s += "0123456789abcdef"[rng() % 16];
    return s;
}

// Stops (as a crash: pg_ctl stop -m immediate) or starts the test cluster.
bool pg_ctl(const char* what) {
    const char* script = std::getenv("PARLEY_TEST_PG_ENV");
    if (!script) return false;
    std::string cmd = std::string("bash '") + script + "' --ctl " + what;
    return std::system(cmd.c_str()) == 0;
}

// One scalar from the test database (text protocol), or -1.
int64_t db_scalar(const char* sql, std::string_view param = {}) {
    PGconn* c = PQconnectdb(pg().c_str());
    int64_t v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        std::string p(param);
        const char* values[1] = {p.c_str()};
        PGresult* r = PQexecParams(c, sql, param.empty() ? 0 : 1, nullptr,
                                   param.empty() ? nullptr : values, nullptr, nullptr, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            v = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

template <typename F> bool eventually(F&& f, std::chrono::milliseconds within) {
    auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
        if (f()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return f();
}

// ---- completions ----

// One submitted operation. The fixture keeps every Call alive until the instance is gone, so a
// completion can never outlive what it writes to; TearDown checks each fired exactly once.
struct Call {
    std::mutex mu;
    std::condition_variable cv;
    int fired = 0;
    parley_t_status status = PARLEY_ERR;
    std::vector<HistoryRecord> history;
    std::vector<BlobRecord> blobs;
    std::string id;
    std::thread::id thread;
    std::function<void(Call&)> then; // runs inside the completion (for order checks)
    std::string what;

    void fire(parley_t_status st) {
        std::lock_guard lk(mu);
        ++fired;
        status = st;
        thread = std::this_thread::get_id();
        if (then) then(*this);
        cv.notify_all();
    }

    static void on_done(void* u, parley_t_status st) { static_cast<Call*>(u)->fire(st); }
    static void on_history(void* u, parley_t_status st, const parley_t_history_entry* e, size_t n) {
        auto* c = static_cast<Call*>(u);
        std::vector<HistoryRecord> h;
        for (size_t i = 0; i < n; ++i)
            h.push_back({e[i].seq, std::string(e[i].record.ptr, e[i].record.len)});
        {
            std::lock_guard lk(c->mu);
            c->history = std::move(h);
        }
        c->fire(st);
    }
    static void on_put(void* u, parley_t_status st, parley_t_bytes id) {
        auto* c = static_cast<Call*>(u);
        {
            std::lock_guard lk(c->mu);
            c->id.assign(id.ptr ? id.ptr : "", id.len);
        }
        c->fire(st);
    }
    static void on_list(void* u, parley_t_status st, const parley_t_blob* b, size_t n) {
        auto* c = static_cast<Call*>(u);
        std::vector<BlobRecord> v;
        for (size_t i = 0; i < n; ++i)
            v.push_back({std::string(b[i].id.ptr, b[i].id.len),
                         std::string(b[i].recipient.ptr, b[i].recipient.len),
                         std::string(b[i].data.ptr, b[i].data.len), b[i].expires_at_ms});
        {
            std::lock_guard lk(c->mu);
            c->blobs = std::move(v);
        }
        c->fire(st);
    }

    // Waits for the completion; returns false on timeout.
    bool wait(std::chrono::milliseconds t = 15s) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, t, [&] { return fired > 0; });
    }
};
using CallPtr = std::shared_ptr<Call>;

class StorePgTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (pg().empty()) GTEST_SKIP() << "PARLEY_TEST_PG not set (run through pg_env.sh)";
        if (std::getenv("PARLEY_TEST_ECHO")) fake_.echo_logs(true);
        fake_.set_config("conninfo", conninfo());
        fake_.set_config("connect_timeout", "3s");
        suffix_ = random_hex(8);
    }

    void TearDown() override {
        store_.destroy(); // joins the executors: every completion has run
        std::lock_guard lk(calls_mu_);
        for (auto& c : calls_) {
            std::lock_guard clk(c->mu);
            EXPECT_EQ(c->fired, 1)
                << "operation '" << c->what << "' completed " << c->fired << " times";
        }
        for (auto& v : fake_.violations())
            ADD_FAILURE() << "ABI violation: " << v;
        for (auto& l : fake_.logs())
            EXPECT_EQ(l.text.find(kPassword), std::string::npos) << "password logged: " << l.text;
        for (auto& e : fake_.errors())
            EXPECT_EQ(e.find(kPassword), std::string::npos) << "password in error: " << e;
    }

    std::string name(std::string_view base) { return std::string(base) + "-" + suffix_; }

    // Loads the .so and runs create + start.
    parley_t_status start() {
        store_ = fake_.load_library(STORE_PG_PLUGIN, "history");
        if (!store_.loaded()) {
            ADD_FAILURE() << store_.error();
            return PARLEY_ERR;
        }
        return store_.up();
    }
    void restart() {
        store_ = FakeInstance{}; // stop + destroy the old instance
        ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    }

    CallPtr track(std::string what) {
        auto c = std::make_shared<Call>();
        c->what = std::move(what);
        std::lock_guard lk(calls_mu_);
        calls_.push_back(c);
        return c;
    }
    const parley_t_plugin_vtable& vt() const { return store_.vtable(); }

    CallPtr append(std::string_view room, uint64_t seq, std::string_view rec) {
        auto c = track("append");
        vt().history_append(store_.handle(), by(room), seq, by(rec), &Call::on_done, c.get());
        return c;
    }
    CallPtr fetch(std::string_view room, uint32_t max = 0, uint64_t upto = 0) {
        auto c = track("fetch");
        vt().history_fetch(store_.handle(), by(room), max, upto, &Call::on_history, c.get());
        return c;
    }
    CallPtr clear(std::string_view room) {
        auto c = track("clear");
        vt().history_clear(store_.handle(), by(room), &Call::on_done, c.get());
        return c;
    }
    CallPtr put(std::string_view rcpt, std::string_view data, int64_t expires) {
        auto c = track("blob_put");
        vt().blob_put(store_.handle(), by(rcpt), by(data), expires, &Call::on_put, c.get());
        return c;
    }
    CallPtr list(std::string_view rcpt, uint32_t offset = 0, uint32_t limit = 0) {
        auto c = track("blob_list");
        vt().blob_list(store_.handle(), by(rcpt), offset, limit, &Call::on_list, c.get());
        return c;
    }
    CallPtr get(std::string_view id) {
        auto c = track("blob_get");
        vt().blob_get(store_.handle(), by(id), &Call::on_list, c.get());
        return c;
    }
    CallPtr del(std::string_view id) {
        auto c = track("blob_delete");
        vt().blob_delete(store_.handle(), by(id), &Call::on_done, c.get());
        return c;
    }

    // Submit and wait.
    parley_t_status st(const CallPtr& c) {
        if (!c->wait()) {
            ADD_FAILURE() << c->what << " did not complete";
            return PARLEY_ERR;
        }
        std::lock_guard lk(c->mu);
        return c->status;
    }
    std::vector<HistoryRecord> records(const CallPtr& c) {
        EXPECT_EQ(st(c), PARLEY_OK);
        std::lock_guard lk(c->mu);
        return c->history;
    }
    static std::vector<uint64_t> seqs(const std::vector<HistoryRecord>& h) {
        std::vector<uint64_t> out;
        for (auto& r : h)
            out.push_back(r.seq);
        return out;
    }
    std::vector<BlobRecord> blobs(const CallPtr& c) {
        EXPECT_EQ(st(c), PARLEY_OK);
        std::lock_guard lk(c->mu);
        return c->blobs;
    }
    int64_t metric(const char* n) { return fake_.metric(n).value_or(-1); }

    std::mutex calls_mu_;
    std::vector<CallPtr> calls_; // declared first: outlives the host and the instance
    FakeHost fake_;
    FakeInstance store_;
    std::string suffix_;
};

// ---- configuration and start ----

TEST_F(StorePgTest, ConninfoIsRequiredAndParseErrorsHideValues) {
    {
        FakeHost bare;
        auto inst = bare.load_library(STORE_PG_PLUGIN);
        ASSERT_TRUE(inst.loaded()) << inst.error();
        EXPECT_NE(inst.create(), PARLEY_OK);
        EXPECT_NE(inst.error().find("conninfo"), std::string::npos) << inst.error();
    }
    // A malformed URI whose text carries a password: the error names the problem, not it.
    fake_.set_config("conninfo", std::string("postgresql://u:") + kPassword + "@[::1/db");
    store_ = fake_.load_library(STORE_PG_PLUGIN);
    EXPECT_NE(store_.up(), PARLEY_OK);
    EXPECT_NE(store_.error().find("conninfo"), std::string::npos) << store_.error();
    EXPECT_EQ(store_.error().find(kPassword), std::string::npos) << store_.error();
    // Out-of-range values are refused before create, like parleyd does.
    fake_.set_config("conninfo", conninfo());
    fake_.set_config("connections", 0);
    store_ = fake_.load_library(STORE_PG_PLUGIN);
    EXPECT_NE(store_.up(), PARLEY_OK);
}

TEST_F(StorePgTest, StartFailsClearlyWhenTheServerIsUnreachable) {
    fake_.set_config("connect_timeout", "1s");
    fake_.set_config("conninfo", std::string("host=/nonexistent-parley-dir port=5 user=parley "
                                             "dbname=parley password=") +
                                     kPassword);
    auto t0 = Clock::now();
    EXPECT_NE(start(), PARLEY_OK);
    EXPECT_LT(Clock::now() - t0, 3s);
    std::string err = fake_.last_error();
    EXPECT_NE(err.find("cannot connect to PostgreSQL"), std::string::npos) << err;
    EXPECT_NE(err.find("nonexistent-parley-dir"), std::string::npos) << err;
    EXPECT_EQ(err.find(kPassword), std::string::npos) << err;

    // A server that accepts TCP but never answers the startup packet: bounded by
    // connect_timeout.
    int silent = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(silent, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(silent, 8), 0);
    ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    fake_.set_config("connect_timeout", "500ms");
    fake_.set_config("conninfo", "host=127.0.0.1 port=" + std::to_string(ntohs(addr.sin_port)) +
                                     " user=parley sslmode=disable password=" + kPassword);
    t0 = Clock::now();
    EXPECT_NE(start(), PARLEY_OK);
    auto took = Clock::now() - t0;
    ::close(silent);
    EXPECT_GE(took, 450ms);
    EXPECT_LT(took, 2500ms);
    err = fake_.last_error();
    EXPECT_NE(err.find("within 500 ms: timed out"), std::string::npos) << err;
    EXPECT_EQ(err.find(kPassword), std::string::npos) << err;
}

TEST_F(StorePgTest, SchemaIsCreatedOnceWithAVersion) {
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    restart(); // a second start finds the schema current
    EXPECT_EQ(db_scalar("SELECT max(version) FROM parley_schema_version"), 1);
    EXPECT_EQ(db_scalar("SELECT count(*) FROM parley_schema_version WHERE version = 1"), 1);
    EXPECT_EQ(db_scalar("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                        "('history_expires_at_idx', 'blobs_recipient_expires_at_idx', "
                        "'blobs_expires_at_idx')"),
              3);
    EXPECT_EQ(metric("parley_store_pg_up"), 1);
    EXPECT_EQ(metric("parley_store_pg_connections"), 2);
}

// ---- history ----

TEST_F(StorePgTest, AppendFetchOrderAndCap) {
    fake_.set_config("history_limit", 5);
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("cap");
    std::mutex mu;
    std::vector<uint64_t> acked;
    std::vector<CallPtr> calls;
    // Submitted back to back (the executor batches them); acknowledged in submission order.
    for (uint64_t s = 1; s <= 8; ++s) {
        auto c = track("append");
        c->then = [&, s](Call&) {
            std::lock_guard lk(mu);
            acked.push_back(s);
        };
        std::string rec = "rec-" + std::to_string(s) + std::string("\0\xff", 2);
        vt().history_append(store_.handle(), by(room), s, by(rec), &Call::on_done, c.get());
        calls.push_back(c);
    }
    for (auto& c : calls)
        EXPECT_EQ(st(c), PARLEY_OK);
    EXPECT_EQ(acked, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_NE(calls[0]->thread, std::this_thread::get_id()); // completed on an executor

    auto all = records(fetch(room));
    EXPECT_EQ(seqs(all), (std::vector<uint64_t>{4, 5, 6, 7, 8}));
    ASSERT_EQ(all.size(), 5u);
    EXPECT_EQ(all[0].record, "rec-4" + std::string("\0\xff", 2)); // binary-safe
    EXPECT_EQ(seqs(records(fetch(room, 3))), (std::vector<uint64_t>{6, 7, 8}));
    EXPECT_EQ(db_scalar("SELECT count(*) FROM history WHERE room = $1", room), 5);
    EXPECT_TRUE(records(fetch(name("never-used"))).empty());
    EXPECT_GE(metric("parley_store_pg_ops_total"), 11);
    EXPECT_TRUE(eventually([&] { return metric("parley_store_pg_queue") == 0; }, 2s));
}

TEST_F(StorePgTest, UptoFiltersNewestAtOrBelow) {
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("upto");
    for (uint64_t s : {10, 20, 30, 40, 50})
        EXPECT_EQ(st(append(room, s, "r")), PARLEY_OK);
    EXPECT_EQ(seqs(records(fetch(room, 2, 35))), (std::vector<uint64_t>{20, 30}));
    EXPECT_EQ(seqs(records(fetch(room, 0, 30))), (std::vector<uint64_t>{10, 20, 30}));
    EXPECT_EQ(seqs(records(fetch(room, 0, 40))), (std::vector<uint64_t>{10, 20, 30, 40}));
    EXPECT_TRUE(records(fetch(room, 0, 5)).empty());
    EXPECT_EQ(seqs(records(fetch(room, 10, 0))), (std::vector<uint64_t>{10, 20, 30, 40, 50}));
}

TEST_F(StorePgTest, ClearDeletesOnlyThatRoom) {
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string a = name("clear-a"), b = name("clear-b");
    EXPECT_EQ(st(append(a, 1, "x")), PARLEY_OK);
    EXPECT_EQ(st(append(b, 1, "y")), PARLEY_OK);
    EXPECT_EQ(st(clear(a)), PARLEY_OK);
    EXPECT_TRUE(records(fetch(a)).empty());
    EXPECT_EQ(records(fetch(b)).size(), 1u);
    EXPECT_EQ(st(clear(name("clear-none"))), PARLEY_OK);
}

TEST_F(StorePgTest, LimitsAndHistoryDisabled) {
    fake_.set_config("max_record", 16);
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("limits");
    EXPECT_EQ(st(append(room, 1, std::string(17, 'x'))), PARLEY_ERR_LIMIT);
    EXPECT_EQ(st(append(room, 2, std::string(16, 'x'))), PARLEY_OK);
    EXPECT_EQ(st(put(name("rcpt"), std::string(17, 'x'), wall_ms() + 60000)), PARLEY_ERR_LIMIT);
    EXPECT_EQ(seqs(records(fetch(room))), (std::vector<uint64_t>{2}));

    store_.set_config("history_limit", 0); // live reload: acknowledged, nothing kept
    ASSERT_EQ(store_.reload(), PARLEY_OK);
    EXPECT_EQ(st(append(room, 3, "y")), PARLEY_OK);
    EXPECT_EQ(seqs(records(fetch(room))), (std::vector<uint64_t>{2}));
    EXPECT_GE(metric("parley_store_pg_errors_total"), 2);
}

// Queued appends are committed together; one the server rejects (a room name that is not valid
// UTF-8) fails alone, and its value never reaches the logs.
TEST_F(StorePgTest, OneBadAppendDoesNotFailItsBatch) {
    fake_.set_config("connections", 1);
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("batch"), bad = name("bad-\xff\xfe-room");
    std::vector<CallPtr> calls;
    for (uint64_t s = 1; s <= 20; ++s)
        calls.push_back(append(s == 10 ? std::string_view(bad) : std::string_view(room), s, "r"));
    for (uint64_t s = 1; s <= 20; ++s)
        EXPECT_EQ(st(calls[s - 1]), s == 10 ? PARLEY_ERR_INVALID : PARLEY_OK) << "seq " << s;
    EXPECT_EQ(records(fetch(room)).size(), 10u); // history_limit
    EXPECT_EQ(seqs(records(fetch(room, 1))), (std::vector<uint64_t>{20}));
    EXPECT_EQ(fake_.count_logs("bad-"), 0u);
}

// Operations of one room complete in submission order, whatever mix of hooks, threads and
// executors; fetches see exactly the appends submitted before them.
TEST_F(StorePgTest, PerRoomFifoAcrossThreads) {
    fake_.set_config("connections", 3);
    fake_.set_config("history_limit", 100);
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    constexpr int kThreads = 4, kRoomsPerThread = 6;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int r = 0; r < kRoomsPerThread; ++r) {
                std::string room = name("fifo-" + std::to_string(t) + "-" + std::to_string(r));
                auto next = std::make_shared<std::atomic<int>>(0);
                int idx = 0;
                auto expect_turn = [&bad, next](int mine) {
                    return [&bad, next, mine](Call&) {
                        if (next->fetch_add(1) != mine) ++bad;
                    };
                };
                auto sub = [&](uint64_t s) {
                    auto c = track("append");
                    c->then = expect_turn(idx++);
                    vt().history_append(store_.handle(), by(room), s, by("m"), &Call::on_done,
                                        c.get());
                };
                auto fet = [&](size_t want) {
                    auto c = track("fetch");
                    auto turn = expect_turn(idx++);
                    c->then = [turn, want, &bad](Call& call) {
                        turn(call);
                        if (call.status != PARLEY_OK || call.history.size() != want) ++bad;
                    };
                    vt().history_fetch(store_.handle(), by(room), 0, 0, &Call::on_history, c.get());
                };
                auto clr = [&] {
                    auto c = track("clear");
                    c->then = expect_turn(idx++);
                    vt().history_clear(store_.handle(), by(room), &Call::on_done, c.get());
                };
                sub(1);
                fet(1);
                sub(2);
                sub(3);
                fet(3);
                clr();
                fet(0);
                sub(4);
                fet(1);
            }
        });
    for (auto& th : threads)
        th.join();
    std::vector<CallPtr> snapshot;
    {
        std::lock_guard lk(calls_mu_);
        snapshot = calls_;
    }
    for (auto& c : snapshot)
        ASSERT_TRUE(c->wait()) << c->what;
    EXPECT_EQ(bad.load(), 0);
}

TEST_F(StorePgTest, TtlExpiryAndSweep) {
    fake_.set_config("history_ttl", "1s");
    fake_.set_config("sweep_interval", "100ms");
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("ttl");
    EXPECT_EQ(st(append(room, 1, "short-lived")), PARLEY_OK);
    EXPECT_EQ(records(fetch(room)).size(), 1u);
    std::this_thread::sleep_for(1300ms);
    EXPECT_TRUE(records(fetch(room)).empty()); // expired rows are never returned
    // The sweeper (a host timer) deletes them from the table.
    int64_t before = metric("parley_store_pg_expired_total");
    fake_.advance(100);
    EXPECT_TRUE(eventually(
        [&] { return db_scalar("SELECT count(*) FROM history WHERE room = $1", room) == 0; }, 5s));
    EXPECT_TRUE(eventually([&] { return metric("parley_store_pg_expired_total") > before; }, 5s));
}

// ---- blobs ----

TEST_F(StorePgTest, BlobsPutListGetDeleteSorted) {
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string rcpt = name("alice"), other = name("bob");
    int64_t now = wall_ms();
    struct In {
        std::string data;
        int64_t exp;
    };
    std::vector<In> in = {{"third", now + 3 * 3600000},
                          {"first-a", now + 3600000},
                          {std::string("second\0bin", 10), now + 2 * 3600000},
                          {"first-b", now + 3600000}};
    std::vector<std::string> ids;
    for (auto& b : in) {
        auto c = put(rcpt, b.data, b.exp);
        ASSERT_EQ(st(c), PARLEY_OK);
        ASSERT_EQ(c->id.size(), 32u);
        EXPECT_EQ(c->id.find_first_not_of("0123456789abcdef"), std::string::npos) << c->id;
        ids.push_back(c->id);
    }
    EXPECT_NE(ids[0], ids[1]);
    ASSERT_EQ(st(put(other, "not-alice", now + 60000)), PARLEY_OK);

    auto all = blobs(list(rcpt));
    ASSERT_EQ(all.size(), 4u);
    // By expiry, then id for equal expiry.
    std::string lo = std::min(ids[1], ids[3]), hi = std::max(ids[1], ids[3]);
    EXPECT_EQ(all[0].id, lo);
    EXPECT_EQ(all[1].id, hi);
    EXPECT_EQ(all[2].id, ids[2]);
    EXPECT_EQ(all[2].data, in[2].data);
    EXPECT_EQ(all[2].expires_at_ms, in[2].exp);
    EXPECT_EQ(all[2].recipient, rcpt);
    EXPECT_EQ(all[3].id, ids[0]);

    auto page = blobs(list(rcpt, 1, 2));
    ASSERT_EQ(page.size(), 2u);
    EXPECT_EQ(page[0].id, hi);
    EXPECT_EQ(page[1].id, ids[2]);
    EXPECT_TRUE(blobs(list(rcpt, 10, 0)).empty());
    EXPECT_TRUE(blobs(list(name("nobody"))).empty());

    auto g = blobs(get(ids[0]));
    ASSERT_EQ(g.size(), 1u);
    EXPECT_EQ(g[0].data, "third");
    EXPECT_EQ(g[0].recipient, rcpt);
    EXPECT_EQ(g[0].expires_at_ms, in[0].exp);

    EXPECT_EQ(st(del(ids[0])), PARLEY_OK);
    EXPECT_EQ(st(del(ids[0])), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(st(get(ids[0])), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(st(get("not-an-id")), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(st(del("")), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(blobs(list(rcpt)).size(), 3u);
}

TEST_F(StorePgTest, BlobExpiryAndSweep) {
    fake_.set_config("sweep_interval", "100ms");
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string rcpt = name("expiring");
    auto keep = put(rcpt, "keep", wall_ms() + 3600000);
    auto gone = put(rcpt, "gone", wall_ms() + 300);
    ASSERT_EQ(st(keep), PARLEY_OK);
    ASSERT_EQ(st(gone), PARLEY_OK);
    EXPECT_EQ(blobs(list(rcpt)).size(), 2u);
    std::this_thread::sleep_for(500ms);
    auto left = blobs(list(rcpt));
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].id, keep->id);
    EXPECT_EQ(st(get(gone->id)), PARLEY_ERR_NOT_FOUND);
    fake_.advance(100);
    EXPECT_TRUE(eventually(
        [&] { return db_scalar("SELECT count(*) FROM blobs WHERE recipient = $1", rcpt) == 1; },
        5s));
}

TEST_F(StorePgTest, QueueBoundRefusesAtOnce) {
    fake_.set_config("queue", 1);
    fake_.set_config("connections", 1);
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::vector<CallPtr> calls;
    for (int i = 0; i < 200; ++i)
        calls.push_back(append(name("q-" + std::to_string(i)), 1, "x"));
    int ok = 0, limit = 0;
    for (auto& c : calls) {
        auto s = st(c);
        ok += s == PARLEY_OK;
        limit += s == PARLEY_ERR_LIMIT;
    }
    EXPECT_EQ(ok + limit, 200);
    EXPECT_GT(ok, 0);
    EXPECT_GT(limit, 0);
    EXPECT_TRUE(eventually([&] { return metric("parley_store_pg_queue") == 0; }, 2s));
}

// ---- durability and outages ----

TEST_F(StorePgTest, AckedAppendSurvivesInstanceRestart) {
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("durable");
    EXPECT_EQ(st(append(room, 42, "kept")), PARLEY_OK);
    restart();
    auto h = records(fetch(room));
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].seq, 42u);
    EXPECT_EQ(h[0].record, "kept");
}

TEST_F(StorePgTest, ServerDownThenBackWithoutRecreating) {
    if (!std::getenv("PARLEY_TEST_PG_ENV")) GTEST_SKIP() << "needs pg_env.sh --ctl";
    ASSERT_EQ(start(), PARLEY_OK) << store_.error();
    std::string room = name("outage"), rcpt = name("outage-rcpt");
    ASSERT_EQ(st(append(room, 1, "before-crash")), PARLEY_OK);

    // Make sure the cluster is started again whatever happens below.
    struct Restart {
        bool armed = true;
        ~Restart() {
            if (armed) pg_ctl("start");
        }
    } guard;
    ASSERT_TRUE(pg_ctl("stop")); // -m immediate: a crash, no checkpoint
    EXPECT_TRUE(eventually([&] { return metric("parley_store_pg_up") == 0; }, 5s));

    // Every kind of operation completes with 'unavailable', promptly.
    for (int round = 0; round < 3; ++round) {
        auto t0 = Clock::now();
        std::vector<CallPtr> calls = {
            append(room, 10 + round, "during"), fetch(room), clear(name("other")),
            put(rcpt, "b", wall_ms() + 60000),  list(rcpt),  get(std::string(32, 'a')),
            del(std::string(32, 'b'))};
        for (auto& c : calls) {
            ASSERT_TRUE(c->wait(3s)) << c->what << " did not complete while the server is down";
            EXPECT_EQ(c->status, PARLEY_ERR_UNAVAILABLE) << c->what;
        }
        EXPECT_LT(Clock::now() - t0, 3s);
        std::this_thread::sleep_for(300ms);
    }
    EXPECT_GE(metric("parley_store_pg_errors_total"), 21);

    guard.armed = false;
    ASSERT_TRUE(pg_ctl("start"));
    // Reconnects with back-off (at most 5 s apart): the same instance works again.
    bool back = eventually([&] { return st(append(room, 100, "after")) == PARLEY_OK; }, 20s);
    ASSERT_TRUE(back);
    EXPECT_TRUE(eventually([&] { return metric("parley_store_pg_up") == 1; }, 20s));
    // The append acknowledged before the crash survived it (fsync on).
    auto h = records(fetch(room));
    ASSERT_GE(h.size(), 2u);
    EXPECT_EQ(h.front().seq, 1u);
    EXPECT_EQ(h.front().record, "before-crash");
    EXPECT_EQ(h.back().seq, 100u);
    auto p = put(rcpt, "b", wall_ms() + 60000);
    EXPECT_EQ(st(p), PARLEY_OK);
    EXPECT_EQ(blobs(list(rcpt)).size(), 1u);
    EXPECT_TRUE(fake_.count_logs("lost", PARLEY_LOG_WARN) + fake_.count_logs("cannot connect") > 0);
}

} // namespace
