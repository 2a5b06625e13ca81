// store-pg: the store contract (capped, expiring room history and expiring blobs) on
// PostgreSQL through libpq.
//
// Threads. `connections` executor threads each own one PGconn and one ZeroMQ inproc PULL socket.
// Hooks never block: they copy their arguments into an Op, push its pointer through the
// executor's PUSH socket (one per executor, guarded by a mutex: ZeroMQ sockets are not
// thread-safe) and return. Completions run on the executor thread (the contract allows it).
//
// Order. Every operation of one room goes to executor hash(room) % connections, whose queue is
// FIFO and which completes operations one after another, so operations on one room complete in
// submission order. Blob operations go to hash(recipient) (put, list) or hash(id) (get, delete).
// Consecutive appends an executor finds queued are written in one pipelined transaction (one
// round trip, one commit) and acknowledged in order after COMMIT returned.
//
// Failure. An executor whose connection broke fails what it dequeues with
// PARLEY_ERR_UNAVAILABLE at once and reconnects in the background (non-blocking connect,
// 100 ms back-off doubling to 5 s). Queues are bounded (`queue` operations, `queue_bytes`
// bytes); past either bound an operation completes at once with PARLEY_ERR_LIMIT.
#include "pg.hpp"

#include <parley/sdk.hpp>

#include <sodium.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace parley::store_pg;
using parley::sdk::key;
using parley::sdk::key_range;
using std::chrono::milliseconds;

constexpr int64_t kDay = 86400LL * 1000;

constexpr parley_t_config_key kConfig[] = {
    key("conninfo", PARLEY_CFG_STRING, nullptr,
        "libpq connection string or URI (e.g. \"host=/run/postgresql dbname=parley\"). Keep "
        "passwords in ~/.pgpass or PGPASSFILE rather than here.",
        PARLEY_CFG_REQUIRED | PARLEY_CFG_SECRET | PARLEY_CFG_RESTART),
    key_range("connections", PARLEY_CFG_INT, "2", 1, 64,
              "Executor threads, each with its own connection; a room always uses the same one.",
              PARLEY_CFG_RESTART),
    key_range("history_limit", PARLEY_CFG_INT, "10", 0, 100000,
              "Messages kept per room (Secure Chat keeps 10, ByteChat 512); 0 keeps none."),
    key_range("history_ttl", PARLEY_CFG_DURATION, "24h", 1000, 365 * kDay,
              "Every history record expires after this; nothing lives forever."),
    key_range("max_record", PARLEY_CFG_SIZE, "1M", 16, int64_t(256) << 20,
              "Largest single history record or blob."),
    key_range("sweep_interval", PARLEY_CFG_DURATION, "60s", 100, kDay,
              "How often expired records and blobs are deleted (in batches of 1000 rows)."),
    key_range("queue", PARLEY_CFG_INT, "10000", 1, 1000000,
              "Operations waiting for the database; beyond it they fail at once (limit).",
              PARLEY_CFG_RESTART),
    key_range("queue_bytes", PARLEY_CFG_SIZE, "64M", 1024, int64_t(16) << 30,
              "Bytes of records and blobs waiting for the database; beyond it writes fail at "
              "once (limit)."),
    key_range("connect_timeout", PARLEY_CFG_DURATION, "5s", 100, 300000,
              "Bound on each connection attempt; start fails if the first one does not succeed "
              "within it.",
              PARLEY_CFG_RESTART),
};

constexpr int kSchemaVersion = 1;
constexpr size_t kMaxBatch = 64;      // operations taken from a queue per wake-up
constexpr int64_t kSweepBatch = 1000; // rows per DELETE statement
constexpr int kSweepMaxRounds = 100;  // statements per table per sweep; the rest waits
constexpr milliseconds kBackoffMin{100};
constexpr milliseconds kBackoffMax{5000};

// ---- SQL (values always travel as parameters) ----

// Migration N brings the schema from version N-1 to N. Static DDL, no values.
const char* const kMigrations[] = {
    // 1: history and blobs. Records are ciphertext: compressing them is wasted work.
    "CREATE TABLE IF NOT EXISTS history ("
    "  room text NOT NULL,"
    "  seq bigint NOT NULL,"
    "  record bytea NOT NULL,"
    "  expires_at timestamptz NOT NULL,"
    "  PRIMARY KEY (room, seq));"
    "ALTER TABLE history ALTER COLUMN record SET STORAGE EXTERNAL;"
    "CREATE INDEX IF NOT EXISTS history_expires_at_idx ON history (expires_at);"
    "CREATE TABLE IF NOT EXISTS blobs ("
    "  id text PRIMARY KEY,"
    "  recipient text NOT NULL,"
    "  data bytea NOT NULL,"
    "  expires_at timestamptz NOT NULL);"
    "ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;"
    "CREATE INDEX IF NOT EXISTS blobs_recipient_expires_at_idx ON blobs (recipient, expires_at);"
    "CREATE INDEX IF NOT EXISTS blobs_expires_at_idx ON blobs (expires_at);",
};

constexpr const char* kInsertHistory =
    "INSERT INTO history (room, seq, record, expires_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (room, seq) DO UPDATE SET record = EXCLUDED.record, "
    "expires_at = EXCLUDED.expires_at";
// Keeps the $2 newest rows of room $1.
constexpr const char* kTrimHistory =
    "DELETE FROM history WHERE room = $1 AND seq <= "
    "(SELECT seq FROM history WHERE room = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)";
constexpr const char* kFetchHistory =
    "SELECT seq, record FROM (SELECT seq, record FROM history "
    "WHERE room = $1 AND seq <= $2 AND expires_at > $3 ORDER BY seq DESC LIMIT $4) AS newest "
    "ORDER BY seq";
constexpr const char* kClearHistory = "DELETE FROM history WHERE room = $1";
constexpr const char* kSweepHistory =
    "DELETE FROM history WHERE (room, seq) IN "
    "(SELECT room, seq FROM history WHERE expires_at <= $1 LIMIT $2)";
constexpr const char* kInsertBlob =
    "INSERT INTO blobs (id, recipient, data, expires_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (id) DO NOTHING";
constexpr const char* kListBlobs =
    "SELECT id, recipient, data, expires_at FROM blobs WHERE recipient = $1 AND expires_at > $2 "
    "ORDER BY expires_at, id COLLATE \"C\" OFFSET $3 LIMIT $4";
constexpr const char* kGetBlob =
    "SELECT id, recipient, data, expires_at FROM blobs WHERE id = $1 AND expires_at > $2";
constexpr const char* kDeleteBlob = "DELETE FROM blobs WHERE id = $1";
constexpr const char* kSweepBlobs = "DELETE FROM blobs WHERE id IN "
                                    "(SELECT id FROM blobs WHERE expires_at <= $1 LIMIT $2)";

int64_t unix_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ULL;
    return h;
}

bool is_blob_id(std::string_view id) {
    return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// ---- one queued operation ----

enum class Kind : uint8_t { Append, Fetch, Clear, BlobPut, BlobList, BlobGet, BlobDelete, Sweep };

struct Op {
    Kind kind;
    std::string key;  // room, recipient or blob id
    std::string data; // record or blob bytes
    uint64_t seq = 0;
    uint64_t upto = 0;
    uint32_t max = 0;
    uint32_t offset = 0;
    uint32_t limit = 0;
    int64_t expires_ms = 0;
    parley_t_status pre = PARLEY_OK; // decided at submission, still completed in queue order
    parley_t_store_done_fn done = nullptr;
    parley_t_history_fn history = nullptr;
    parley_t_blob_put_fn put = nullptr;
    parley_t_blob_list_fn list = nullptr;
    void* user = nullptr;
    // Release/acquire pair around the hand-off. libzmq's queue already orders it, but it is
    // not instrumented, so without this ThreadSanitizer cannot see the hand-off.
    std::atomic<bool> published{false};

    // Completes without a payload (errors, and the done-style operations).
    void complete(parley_t_status st) const {
        switch (kind) {
        case Kind::Append:
        case Kind::Clear:
        case Kind::BlobDelete:
            if (done) done(user, st);
            break;
        case Kind::Fetch:
            if (history) history(user, st, nullptr, 0);
            break;
        case Kind::BlobPut:
            if (put) put(user, st, parley_t_bytes{nullptr, 0});
            break;
        case Kind::BlobList:
        case Kind::BlobGet:
            if (list) list(user, st, nullptr, 0);
            break;
        case Kind::Sweep:
            break;
        }
    }
};
using OpPtr = std::unique_ptr<Op>;

class PgStore;

// ---- executor: one thread, one connection, one FIFO queue ----

class Executor {
  public:
    Executor(PgStore& store, zmq::context_t& zmq, int index, int hwm, Conn initial);
    ~Executor() { join(); }
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    void start() {
        thread_ = std::thread([this] { run(); });
    }
    // Caller side: queues `op`, or hands it back with the reason it could not be queued.
    OpPtr push(OpPtr op, parley_t_status& why);
    // Refuses further pushes and queues the stop marker behind everything already queued.
    void close();
    void join() {
        if (thread_.joinable()) thread_.join();
    }

  private:
    enum class State { Down, Connecting, Up };

    void run();
    void wait(std::vector<OpPtr>& batch, bool& stop);
    void process(std::vector<OpPtr>& batch);

    // Connection state machine (executor thread only).
    void begin_connect();
    void advance_connect();
    void connected(Conn c);
    void connect_failed(const std::string& why);
    void check_idle();
    void lost(const std::string& why);
    void set_state(State s);
    // After an exception mid-pipeline the protocol state is unknown: start over.
    void abandon_pipeline() {
        if (conn_ && PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) lost("pipeline abandoned");
    }
    // Logs a failed statement, drops the connection when it is unusable, maps the status.
    parley_t_status failure(const PGresult* r, const char* what, bool log = true);

    void appends(std::vector<OpPtr>& batch, size_t begin, size_t end);
    parley_t_status append_pipeline(const std::vector<Op*>& ops, int64_t limit, bool log);
    void run_one(OpPtr& slot);
    void fetch(OpPtr& slot);
    void blob_put(OpPtr& slot);
    void blob_rows(OpPtr& slot, Result r);
    void sweep();

    // Completes the op in `slot` (moved out first, so it can never complete twice).
    void finish(OpPtr& slot, parley_t_status st);

    PgStore& s_;
    int index_;
    std::string endpoint_;
    zmq::socket_t pull_;
    std::mutex push_mu_;
    zmq::socket_t push_;
    bool closed_ = false; // guarded by push_mu_
    std::thread thread_;

    // Executor thread only (handed over before the thread starts).
    Conn conn_;
    Connector connector_;
    State state_ = State::Down;
    Clock::time_point next_attempt_{};
    Clock::time_point connect_deadline_{};
    milliseconds backoff_ = kBackoffMin;
    bool reported_down_ = false; // one warning per outage, details at debug
};

// ---- the plugin instance ----

class PgStore final : public parley::sdk::Plugin {
  public:
    explicit PgStore(parley::sdk::Host host) : Plugin(host) {
        if (sodium_init() < 0) throw std::runtime_error("store-pg: libsodium init failed");
        params_ = std::make_unique<ConnParams>(host.config_string("conninfo"));
        connections_ = int(host.config_int("connections", 2));
        queue_limit_ = host.config_int("queue", 10000);
        connect_timeout_ = milliseconds(host.config_int("connect_timeout", 5000));
        load_config();
        m_ops_ = host.counter("parley_store_pg_ops_total", "Store operations completed.");
        m_errors_ = host.counter("parley_store_pg_errors_total",
                                 "Store operations completed with an error (not found excluded).");
        m_queue_ = host.gauge("parley_store_pg_queue", "Operations queued or running.");
        m_up_ = host.gauge("parley_store_pg_up", "1 when every connection to PostgreSQL is up.");
        m_conns_ = host.gauge("parley_store_pg_connections", "Connections to PostgreSQL up.");
        m_expired_ = host.counter("parley_store_pg_expired_total",
                                  "History records and blobs deleted by the sweeper.");
        host.set(m_up_, 0);
    }
    ~PgStore() override {
        stop();
        execs_.clear(); // sockets close before the ZeroMQ context does
    }

    parley_t_status start() override {
        std::string why;
        Conn first = connect_blocking(*params_, connect_timeout_, why);
        if (!first) {
            host().set_error("store-pg: cannot connect to PostgreSQL (" + params_->target() +
                             ") within " + std::to_string(connect_timeout_.count()) +
                             " ms: " + why);
            return PARLEY_ERR_UNAVAILABLE;
        }
        if (!migrate(first.get(), why)) {
            host().set_error("store-pg: cannot prepare the schema: " + why);
            return PARLEY_ERR;
        }
        std::vector<Conn> conns;
        conns.push_back(std::move(first));
        for (int i = 1; i < connections_; ++i) {
            Conn c = connect_blocking(*params_, connect_timeout_, why);
            if (!c)
                host().logf(PARLEY_LOG_WARN,
                            "store-pg: connection %d not up yet (%s); retrying in the background",
                            i, why.c_str());
            conns.push_back(std::move(c));
        }
        int hwm = int(std::min<int64_t>(queue_limit_ + 16, INT_MAX));
        for (int i = 0; i < connections_; ++i)
            execs_.push_back(
                std::make_unique<Executor>(*this, zmq_, i, hwm, std::move(conns[size_t(i)])));
        for (auto& e : execs_)
            e->start();
        accepting_.store(true, std::memory_order_release);
        start_timer();
        host().logf(PARLEY_LOG_INFO,
                    "store-pg: ready (%s, %d connections, schema version %d, history_limit %lld)",
                    params_->target().c_str(), connections_, kSchemaVersion,
                    static_cast<long long>(history_limit_.load()));
        return PARLEY_OK;
    }

    void stop() override {
        if (timer_) host().table()->timer_cancel(host().ctx(), timer_);
        timer_ = 0;
        accepting_.store(false, std::memory_order_release);
        // Each executor finishes what was queued before its stop marker, then exits.
        for (auto& e : execs_)
            e->close();
        for (auto& e : execs_)
            e->join();
    }

    parley_t_status reload() override {
        int64_t old_interval = sweep_interval_;
        load_config();
        if (timer_ && sweep_interval_ != old_interval) {
            host().table()->timer_cancel(host().ctx(), timer_);
            start_timer();
        }
        return PARLEY_OK;
    }

    // ---- store hooks: validate, copy, enqueue, return ----

    void history_append(std::string_view room, uint64_t seq, std::string_view record,
                        parley_t_store_done_fn fn, void* user) override {
        auto op = make_op(Kind::Append, room, user);
        op->done = fn;
        op->seq = seq;
        if (record.size() > size_t(max_record_.load()))
            op->pre = PARLEY_ERR_LIMIT;
        else if (seq > uint64_t(INT64_MAX))
            op->pre = PARLEY_ERR_INVALID;
        else
            op->data.assign(record);
        submit(fnv1a(room), std::move(op));
    }

    void history_fetch(std::string_view room, uint32_t max, uint64_t upto, parley_t_history_fn fn,
                       void* user) override {
        auto op = make_op(Kind::Fetch, room, user);
        op->history = fn;
        op->max = max;
        op->upto = upto;
        submit(fnv1a(room), std::move(op));
    }

    void history_clear(std::string_view room, parley_t_store_done_fn fn, void* user) override {
        auto op = make_op(Kind::Clear, room, user);
        op->done = fn;
        submit(fnv1a(room), std::move(op));
    }

    void blob_put(std::string_view recipient, std::string_view data, int64_t expires_at_ms,
                  parley_t_blob_put_fn fn, void* user) override {
        auto op = make_op(Kind::BlobPut, recipient, user);
        op->put = fn;
        if (data.size() > size_t(max_record_.load())) return finish_now(*op, PARLEY_ERR_LIMIT);
        op->data.assign(data);
        op->expires_ms = expires_at_ms;
        submit(fnv1a(recipient), std::move(op));
    }

    void blob_list(std::string_view recipient, uint32_t offset, uint32_t limit,
                   parley_t_blob_list_fn fn, void* user) override {
        auto op = make_op(Kind::BlobList, recipient, user);
        op->list = fn;
        op->offset = offset;
        op->limit = limit;
        submit(fnv1a(recipient), std::move(op));
    }

    void blob_get(std::string_view id, parley_t_blob_list_fn fn, void* user) override {
        auto op = make_op(Kind::BlobGet, id, user);
        op->list = fn;
        if (!is_blob_id(id)) return finish_now(*op, PARLEY_ERR_NOT_FOUND);
        submit(fnv1a(id), std::move(op));
    }

    void blob_delete(std::string_view id, parley_t_store_done_fn fn, void* user) override {
        auto op = make_op(Kind::BlobDelete, id, user);
        op->done = fn;
        if (!is_blob_id(id)) return finish_now(*op, PARLEY_ERR_NOT_FOUND);
        submit(fnv1a(id), std::move(op));
    }

    // ---- shared with the executors ----

    const ConnParams& params() const { return *params_; }
    milliseconds connect_timeout() const { return connect_timeout_; }
    int64_t history_limit() const { return history_limit_.load(); }
    int64_t history_ttl() const { return history_ttl_.load(); }

    // An op left the queue with `st`; called just before its callback runs.
    void account(const Op& op, parley_t_status st, bool queued) {
        if (op.kind == Kind::Sweep) {
            sweep_pending_.store(false);
            return;
        }
        if (queued) {
            queued_bytes_.fetch_sub(int64_t(op.data.size()));
            host().set(m_queue_, queued_.fetch_sub(1) - 1);
        }
        host().add(m_ops_);
        if (st != PARLEY_OK && st != PARLEY_ERR_NOT_FOUND) host().add(m_errors_);
    }
    void connection_up(bool up) {
        int n = up_count_.fetch_add(up ? 1 : -1) + (up ? 1 : -1);
        host().set(m_conns_, n);
        host().set(m_up_, n == connections_ ? 1 : 0);
    }
    void expired(int64_t n) { host().add(m_expired_, n); }

  private:
    OpPtr make_op(Kind kind, std::string_view key, void* user) {
        auto op = std::make_unique<Op>();
        op->kind = kind;
        op->key.assign(key);
        op->user = user;
        return op;
    }

    void finish_now(const Op& op, parley_t_status st) {
        account(op, st, false);
        op.complete(st);
    }

    void submit(uint64_t hash, OpPtr op) {
        if (!accepting_.load(std::memory_order_acquire))
            return finish_now(*op, PARLEY_ERR_UNAVAILABLE);
        auto bytes = int64_t(op->data.size());
        if (queued_.fetch_add(1) >= queue_limit_) {
            queued_.fetch_sub(1);
            return finish_now(*op, PARLEY_ERR_LIMIT);
        }
        if (queued_bytes_.fetch_add(bytes) + bytes > queue_bytes_.load() && bytes > 0) {
            queued_bytes_.fetch_sub(bytes);
            queued_.fetch_sub(1);
            return finish_now(*op, PARLEY_ERR_LIMIT);
        }
        host().set(m_queue_, queued_.load());
        parley_t_status why = PARLEY_OK;
        OpPtr back = execs_[hash % execs_.size()]->push(std::move(op), why);
        if (back) {
            queued_bytes_.fetch_sub(bytes);
            host().set(m_queue_, queued_.fetch_sub(1) - 1);
            finish_now(*back, why);
        }
    }

    void start_timer() {
        timer_ = host().table()->timer_start(
            host().ctx(), uint64_t(sweep_interval_), uint64_t(sweep_interval_),
            [](void* self) { static_cast<PgStore*>(self)->on_sweep_timer(); }, this);
    }

    // Timer thread: never blocks; at most one sweep is queued at a time.
    void on_sweep_timer() {
        if (!accepting_.load(std::memory_order_acquire) || sweep_pending_.exchange(true)) return;
        auto op = std::make_unique<Op>();
        op->kind = Kind::Sweep;
        parley_t_status why = PARLEY_OK;
        size_t i = sweep_next_.fetch_add(1) % execs_.size();
        if (execs_[i]->push(std::move(op), why)) sweep_pending_.store(false);
    }

    void load_config() {
        history_limit_.store(host().config_int("history_limit", 10));
        history_ttl_.store(host().config_int("history_ttl", kDay));
        max_record_.store(host().config_int("max_record", 1 << 20));
        queue_bytes_.store(host().config_int("queue_bytes", int64_t(64) << 20));
        sweep_interval_ = host().config_int("sweep_interval", 60000);
    }

    // Creates or upgrades the schema under an advisory lock, so several parleyd nodes starting
    // at once against one database do not race.
    bool migrate(PGconn* c, std::string& why) {
        auto run = [&](const char* sql) {
            Result r(PQexec(c, sql));
            if (ok(r.get())) return true;
            why = describe_error(c, r.get());
            return false;
        };
        auto rollback = [&] {
            if (PQstatus(c) == CONNECTION_OK) Result rb(PQexec(c, "ROLLBACK"));
            return false;
        };
        if (!run("BEGIN")) return false;
        if (!run("SELECT pg_advisory_xact_lock(7020961330154644331)") ||
            !run("CREATE TABLE IF NOT EXISTS parley_schema_version ("
                 "  version integer NOT NULL,"
                 "  applied_at timestamptz NOT NULL DEFAULT now())"))
            return rollback();
        Result v(PQexec(c, "SELECT coalesce(max(version), 0) FROM parley_schema_version"));
        if (!ok(v.get()) || PQntuples(v.get()) != 1) {
            why = describe_error(c, v.get());
            return rollback();
        }
        int current = std::atoi(PQgetvalue(v.get(), 0, 0));
        if (current > kSchemaVersion) {
            why = "the database has schema version " + std::to_string(current) +
                  ", newer than this plugin's " + std::to_string(kSchemaVersion);
            return rollback();
        }
        for (int next = current + 1; next <= kSchemaVersion; ++next) {
            if (!run(kMigrations[next - 1])) return rollback();
            Params p;
            p.int8(next);
            Result r = exec(c, "INSERT INTO parley_schema_version (version) VALUES ($1)", p);
            if (!ok(r.get())) {
                why = describe_error(c, r.get());
                return rollback();
            }
            host().logf(PARLEY_LOG_INFO, "store-pg: schema migrated to version %d", next);
        }
        return run("COMMIT");
    }

    zmq::context_t zmq_{0}; // inproc only: no I/O threads needed
    std::vector<std::unique_ptr<Executor>> execs_;
    std::unique_ptr<ConnParams> params_;
    int connections_ = 2;
    int64_t queue_limit_ = 10000;
    milliseconds connect_timeout_{5000};
    int64_t sweep_interval_ = 60000;
    std::atomic<int64_t> history_limit_{10};
    std::atomic<int64_t> history_ttl_{kDay};
    std::atomic<int64_t> max_record_{1 << 20};
    std::atomic<int64_t> queue_bytes_{int64_t(64) << 20};

    std::atomic<bool> accepting_{false};
    std::atomic<int64_t> queued_{0};
    std::atomic<int64_t> queued_bytes_{0};
    std::atomic<int> up_count_{0};
    std::atomic<bool> sweep_pending_{false};
    std::atomic<size_t> sweep_next_{0};
    uint64_t timer_ = 0;
    parley_t_metric_hptr m_ops_, m_errors_, m_queue_, m_up_, m_conns_, m_expired_;
};

// ---- Executor ----

Executor::Executor(PgStore& store, zmq::context_t& zmq, int index, int hwm, Conn initial)
    : s_(store), index_(index), endpoint_("inproc://store-pg-" + std::to_string(index)),
      pull_(zmq, zmq::socket_type::pull), push_(zmq, zmq::socket_type::push) {
    pull_.set(zmq::sockopt::rcvhwm, hwm);
    pull_.set(zmq::sockopt::linger, 0);
    pull_.bind(endpoint_);
    push_.set(zmq::sockopt::sndhwm, hwm);
    push_.set(zmq::sockopt::linger, 0);
    push_.connect(endpoint_);
    if (initial) {
        conn_ = std::move(initial);
        set_state(State::Up);
    } else {
        next_attempt_ = Clock::now();
    }
}

OpPtr Executor::push(OpPtr op, parley_t_status& why) {
    std::lock_guard lk(push_mu_);
    if (closed_) {
        why = PARLEY_ERR_UNAVAILABLE;
        return op;
    }
    Op* raw = op.get();
    raw->published.store(true, std::memory_order_release);
    try {
        if (!push_.send(zmq::const_buffer(&raw, sizeof raw), zmq::send_flags::dontwait)) {
            why = PARLEY_ERR_LIMIT;
            return op;
        }
    } catch (const zmq::error_t&) {
        why = PARLEY_ERR_UNAVAILABLE;
        return op;
    }
    static_cast<void>(op.release()); // the queue owns it until the executor re-adopts it
    return nullptr;
}

void Executor::close() {
    std::lock_guard lk(push_mu_);
    if (closed_) return;
    closed_ = true;
    Op* marker = nullptr;
    try {
        // Blocking send: the high-water mark leaves room above the operation bound.
        static_cast<void>(push_.send(zmq::const_buffer(&marker, sizeof marker)));
    } catch (const zmq::error_t&) {
    }
}

void Executor::run() {
    std::vector<OpPtr> batch;
    batch.reserve(kMaxBatch);
    bool stop = false;
    while (!stop) {
        try {
            wait(batch, stop);
            process(batch);
        } catch (const std::exception& e) {
            s_.host().logf(PARLEY_LOG_ERROR, "store-pg: executor %d: %s", index_, e.what());
            abandon_pipeline();
        } catch (...) {
            s_.host().logf(PARLEY_LOG_ERROR, "store-pg: executor %d: unknown exception", index_);
            abandon_pipeline();
        }
        // Whatever an exception interrupted still completes, exactly once.
        for (auto& slot : batch)
            if (slot) finish(slot, PARLEY_ERR);
        batch.clear();
    }
    connector_.reset();
    if (state_ == State::Up) set_state(State::Down);
    conn_.reset();
}

// Waits for queued operations or connection events; handles the latter.
void Executor::wait(std::vector<OpPtr>& batch, bool& stop) {
    zmq::pollitem_t items[2] = {{pull_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, -1, 0, 0}};
    size_t n = 1;
    auto now = Clock::now();
    auto until = [&](Clock::time_point t) {
        return std::max<int64_t>(0, std::chrono::duration_cast<milliseconds>(t - now).count() + 1);
    };
    milliseconds timeout{-1};
    if (state_ == State::Up && conn_) {
        items[1] = {nullptr, PQsocket(conn_.get()), ZMQ_POLLIN, 0};
        n = 2;
    } else if (state_ == State::Connecting) {
        items[1] = {nullptr, connector_.fd(),
                    short(connector_.want_write() ? ZMQ_POLLOUT : ZMQ_POLLIN), 0};
        n = 2;
        timeout = milliseconds(until(connect_deadline_));
    } else {
        timeout = milliseconds(until(next_attempt_));
    }
    try {
        zmq::poll(items, n, timeout);
    } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
        return;
    }
    now = Clock::now();
    if (state_ == State::Connecting) {
        if (items[1].revents)
            advance_connect();
        else if (now >= connect_deadline_)
            connect_failed("timed out after " + std::to_string(s_.connect_timeout().count()) +
                           " ms");
    } else if (state_ == State::Down) {
        if (now >= next_attempt_) begin_connect();
    } else if (n == 2 && items[1].revents) {
        check_idle();
    }
    if (!(items[0].revents & ZMQ_POLLIN)) return;
    while (batch.size() < kMaxBatch) {
        zmq::message_t msg;
        if (!pull_.recv(msg, zmq::recv_flags::dontwait)) break;
        if (msg.size() != sizeof(Op*)) continue;
        Op* raw = nullptr;
        std::memcpy(&raw, msg.data(), sizeof raw);
        if (!raw) { // stop marker: nothing was queued behind it
            stop = true;
            break;
        }
        static_cast<void>(raw->published.load(std::memory_order_acquire));
        batch.emplace_back(raw); // re-adopt what push() released
    }
}

void Executor::process(std::vector<OpPtr>& batch) {
    size_t i = 0;
    while (i < batch.size()) {
        if (batch[i]->kind == Kind::Append) {
            size_t j = i;
            while (j < batch.size() && batch[j]->kind == Kind::Append)
                ++j;
            appends(batch, i, j);
            i = j;
        } else {
            run_one(batch[i]);
            ++i;
        }
    }
}

void Executor::finish(OpPtr& slot, parley_t_status st) {
    OpPtr op = std::move(slot);
    s_.account(*op, st, true);
    op->complete(st);
}

// ---- connection state machine ----

void Executor::set_state(State s) {
    bool was_up = state_ == State::Up;
    state_ = s;
    if (was_up != (s == State::Up)) s_.connection_up(s == State::Up);
}

void Executor::begin_connect() {
    if (connector_.begin(s_.params()) == Connector::Step::Failed)
        return connect_failed(connector_.error());
    connect_deadline_ = Clock::now() + s_.connect_timeout();
    set_state(State::Connecting);
}

void Executor::advance_connect() {
    switch (connector_.advance()) {
    case Connector::Step::Wait:
        if (Clock::now() >= connect_deadline_)
            connect_failed("timed out after " + std::to_string(s_.connect_timeout().count()) +
                           " ms");
        return;
    case Connector::Step::Failed:
        return connect_failed(connector_.error());
    case Connector::Step::Done:
        return connected(connector_.take());
    }
}

void Executor::connected(Conn c) {
    std::string why;
    if (!prepare_session(c.get(), why)) return connect_failed(why);
    conn_ = std::move(c);
    backoff_ = kBackoffMin;
    set_state(State::Up);
    if (reported_down_)
        s_.host().logf(PARLEY_LOG_INFO, "store-pg: connection %d to PostgreSQL is back", index_);
    reported_down_ = false;
}

void Executor::connect_failed(const std::string& why) {
    connector_.reset();
    set_state(State::Down);
    next_attempt_ = Clock::now() + backoff_;
    auto lvl = reported_down_ ? PARLEY_LOG_DEBUG : PARLEY_LOG_WARN;
    s_.host().logf(lvl, "store-pg: connection %d: cannot connect (%s); retrying in %lld ms", index_,
                   why.c_str(), static_cast<long long>(backoff_.count()));
    reported_down_ = true;
    backoff_ = std::min(backoff_ * 2, kBackoffMax);
}

void Executor::lost(const std::string& why) {
    conn_.reset();
    set_state(State::Down);
    next_attempt_ = Clock::now(); // first retry at once; back-off applies to failed attempts
    backoff_ = kBackoffMin;
    s_.host().logf(PARLEY_LOG_WARN,
                   "store-pg: connection %d to PostgreSQL lost (%s); operations fail with "
                   "'unavailable' until it is back",
                   index_, why.c_str());
    reported_down_ = true;
}

// The idle connection's socket became readable: a notice, or the server going away.
void Executor::check_idle() {
    PGconn* c = conn_.get();
    if (PQconsumeInput(c) == 0 || PQstatus(c) == CONNECTION_BAD) return lost(conn_error(c));
    while (PGnotify* n = PQnotifies(c))
        PQfreemem(n);
}

parley_t_status Executor::failure(const PGresult* r, const char* what, bool log) {
    PGconn* c = conn_.get();
    parley_t_status st = status_of(c, r);
    std::string why = describe_error(c, r);
    if (must_reconnect(c, r))
        lost(why);
    else if (log)
        s_.host().logf(PARLEY_LOG_WARN, "store-pg: %s failed: %s", what, why.c_str());
    return st;
}

// ---- operations ----

void Executor::appends(std::vector<OpPtr>& batch, size_t begin, size_t end) {
    int64_t limit = s_.history_limit();
    std::vector<parley_t_status> st(end - begin, PARLEY_OK);
    std::vector<Op*> todo;
    std::vector<size_t> todo_at;
    for (size_t i = begin; i < end; ++i) {
        Op& op = *batch[i];
        if (op.pre != PARLEY_OK)
            st[i - begin] = op.pre;
        else if (limit == 0)
            st[i - begin] = PARLEY_OK; // history disabled: acknowledged, nothing kept
        else if (state_ != State::Up)
            st[i - begin] = PARLEY_ERR_UNAVAILABLE;
        else {
            todo.push_back(&op);
            todo_at.push_back(i - begin);
        }
    }
    if (!todo.empty()) {
        // A failed batch is retried op by op below, which logs what fails for real.
        parley_t_status all = append_pipeline(todo, limit, todo.size() == 1);
        if (all != PARLEY_OK && todo.size() > 1 && state_ == State::Up) {
            // One bad record must not fail its neighbours: retry one transaction each.
            for (size_t k = 0; k < todo.size(); ++k)
                st[todo_at[k]] = state_ == State::Up ? append_pipeline({todo[k]}, limit, true)
                                                     : PARLEY_ERR_UNAVAILABLE;
        } else {
            for (size_t at : todo_at)
                st[at] = all;
        }
    }
    // Acknowledged in submission order, after COMMIT returned.
    for (size_t i = begin; i < end; ++i)
        finish(batch[i], st[i - begin]);
}

// INSERT + trim for each op, one implicit transaction committed at the pipeline's sync point:
// one round trip and one commit for the whole run.
parley_t_status Executor::append_pipeline(const std::vector<Op*>& ops, int64_t limit, bool log) {
    PGconn* c = conn_.get();
    if (PQenterPipelineMode(c) != 1) return failure(nullptr, "append");
    int64_t expires = unix_ms() + s_.history_ttl();
    size_t sent = 0;
    bool queued = true;
    for (Op* op : ops) {
        Params ins;
        ins.text(op->key);
        ins.int8(int64_t(op->seq));
        ins.bytea(op->data);
        ins.timestamptz_ms(expires);
        Params trim;
        trim.text(op->key);
        trim.int8(limit);
        for (auto* q : {&ins, &trim}) {
            const char* sql = q == &ins ? kInsertHistory : kTrimHistory;
            if (!PQsendQueryParams(c, sql, q->count(), q->types(), q->values(), q->lengths(),
                                   q->formats(), 1)) {
                queued = false;
                break;
            }
            ++sent;
        }
        if (!queued) break;
    }
    if (!queued || PQpipelineSync(c) != 1) {
        // Nothing was committed (no sync reached the server); the connection is suspect.
        lost(conn_error(c));
        return PARLEY_ERR_UNAVAILABLE;
    }
    parley_t_status st = PARLEY_OK;
    Result first_error;
    for (size_t k = 0; k < sent; ++k) {
        Result r(PQgetResult(c));
        if (!r || PQstatus(c) == CONNECTION_BAD) {
            lost(conn_error(c));
            return PARLEY_ERR_UNAVAILABLE;
        }
        if (PQresultStatus(r.get()) != PGRES_PIPELINE_ABORTED && !ok(r.get()) && !first_error)
            first_error = std::move(r);
        Result end(PQgetResult(c)); // each statement's results end with NULL
        if (end) {
            lost("unexpected result in pipeline");
            return PARLEY_ERR_UNAVAILABLE;
        }
    }
    Result sync(PQgetResult(c));
    if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
        lost(sync ? describe_error(c, sync.get()) : conn_error(c));
        return PARLEY_ERR_UNAVAILABLE;
    }
    if (PQexitPipelineMode(c) != 1) {
        lost("cannot leave pipeline mode");
        return PARLEY_ERR_UNAVAILABLE;
    }
    if (first_error) return failure(first_error.get(), "append", log);
    if (ops.size() > 1 && s_.host().log_enabled(PARLEY_LOG_TRACE))
        s_.host().logf(PARLEY_LOG_TRACE, "store-pg: connection %d committed %zu appends at once",
                       index_, ops.size());
    return st;
}

void Executor::run_one(OpPtr& slot) {
    Op& op = *slot;
    if (op.kind == Kind::Sweep) {
        if (state_ == State::Up) sweep();
        return finish(slot, PARLEY_OK);
    }
    if (op.pre != PARLEY_OK) return finish(slot, op.pre);
    if (state_ != State::Up) return finish(slot, PARLEY_ERR_UNAVAILABLE);
    PGconn* c = conn_.get();
    switch (op.kind) {
    case Kind::Fetch:
        return fetch(slot);
    case Kind::Clear: {
        Params p;
        p.text(op.key);
        Result r = exec(c, kClearHistory, p);
        return finish(slot, ok(r.get()) ? PARLEY_OK : failure(r.get(), "history clear"));
    }
    case Kind::BlobPut:
        return blob_put(slot);
    case Kind::BlobList: {
        Params p;
        p.text(op.key);
        p.timestamptz_ms(unix_ms());
        p.int8(op.offset);
        p.int8(op.limit ? int64_t(op.limit) : INT64_MAX);
        return blob_rows(slot, exec(c, kListBlobs, p));
    }
    case Kind::BlobGet: {
        Params p;
        p.text(op.key);
        p.timestamptz_ms(unix_ms());
        return blob_rows(slot, exec(c, kGetBlob, p));
    }
    case Kind::BlobDelete: {
        Params p;
        p.text(op.key);
        Result r = exec(c, kDeleteBlob, p);
        if (!ok(r.get())) return finish(slot, failure(r.get(), "blob delete"));
        return finish(slot, affected(r.get()) > 0 ? PARLEY_OK : PARLEY_ERR_NOT_FOUND);
    }
    default:
        return finish(slot, PARLEY_ERR);
    }
}

void Executor::fetch(OpPtr& slot) {
    Op& op = *slot;
    Params p;
    p.text(op.key);
    p.int8(op.upto == 0 || op.upto > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(op.upto));
    p.timestamptz_ms(unix_ms());
    p.int8(op.max ? int64_t(op.max) : INT64_MAX);
    Result r = exec(conn_.get(), kFetchHistory, p);
    if (!ok(r.get())) return finish(slot, failure(r.get(), "history fetch"));
    int rows = PQntuples(r.get());
    std::vector<parley_t_history_entry> out(size_t(rows), parley_t_history_entry{});
    for (int i = 0; i < rows; ++i) {
        auto rec = get_bytes(r.get(), i, 1);
        out[size_t(i)] = {uint64_t(get_int8(r.get(), i, 0)), {rec.data(), rec.size()}};
    }
    OpPtr done = std::move(slot);
    s_.account(*done, PARLEY_OK, true);
    done->history(done->user, PARLEY_OK, out.data(), out.size()); // borrows r's memory
}

void Executor::blob_put(OpPtr& slot) {
    Op& op = *slot;
    for (int attempt = 0; attempt < 3; ++attempt) {
        unsigned char raw[16];
        randombytes_buf(raw, sizeof raw);
        char id[33];
        sodium_bin2hex(id, sizeof id, raw, sizeof raw);
        Params p;
        p.text(std::string_view(id, 32));
        p.text(op.key);
        p.bytea(op.data);
        p.timestamptz_ms(op.expires_ms);
        Result r = exec(conn_.get(), kInsertBlob, p);
        if (!ok(r.get())) return finish(slot, failure(r.get(), "blob put"));
        if (affected(r.get()) == 1) {
            OpPtr done = std::move(slot);
            s_.account(*done, PARLEY_OK, true);
            if (done->put) done->put(done->user, PARLEY_OK, parley_t_bytes{id, 32});
            return;
        }
        // A 128-bit id collided: draw another.
    }
    finish(slot, PARLEY_ERR);
}

void Executor::blob_rows(OpPtr& slot, Result r) {
    const char* what = slot->kind == Kind::BlobGet ? "blob get" : "blob list";
    if (!ok(r.get())) return finish(slot, failure(r.get(), what));
    int rows = PQntuples(r.get());
    if (rows == 0 && slot->kind == Kind::BlobGet) return finish(slot, PARLEY_ERR_NOT_FOUND);
    std::vector<parley_t_blob> out(size_t(rows), parley_t_blob{});
    for (int i = 0; i < rows; ++i) {
        auto id = get_bytes(r.get(), i, 0), rcpt = get_bytes(r.get(), i, 1),
             data = get_bytes(r.get(), i, 2);
        out[size_t(i)] = {{id.data(), id.size()},
                          {rcpt.data(), rcpt.size()},
                          {data.data(), data.size()},
                          get_timestamptz_ms(r.get(), i, 3)};
    }
    OpPtr done = std::move(slot);
    s_.account(*done, PARLEY_OK, true);
    done->list(done->user, PARLEY_OK, out.data(), out.size()); // borrows r's memory
}

// Deletes expired rows, kSweepBatch per statement so no statement holds many locks or runs
// long; other operations of this executor wait at most one statement between rounds.
void Executor::sweep() {
    int64_t now = unix_ms(), total = 0;
    for (const char* sql : {kSweepHistory, kSweepBlobs}) {
        for (int round = 0; round < kSweepMaxRounds && state_ == State::Up; ++round) {
            Params p;
            p.timestamptz_ms(now);
            p.int8(kSweepBatch);
            Result r = exec(conn_.get(), sql, p);
            if (!ok(r.get())) {
                failure(r.get(), "sweep");
                break;
            }
            int64_t n = affected(r.get());
            total += n;
            if (n < kSweepBatch) break;
        }
    }
    if (total) s_.expired(total);
}

} // namespace

PARLEY_PLUGIN(PgStore, "store-pg", PARLEY_KIND_STORE, "0.1.0",
              "Expiring room history and blobs in PostgreSQL (libpq), acknowledged after COMMIT.",
              kConfig)
