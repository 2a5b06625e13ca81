// Small libpq helpers for store-pg: RAII handles, binary query parameters and results, a
// non-blocking connector with a deadline, and the mapping of SQLSTATEs to parley statuses.
// Nothing here logs; error texts are built so they never contain the password.
#pragma once

#include <parley/plugin.h>

#include <libpq-fe.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace parley::store_pg {

using Clock = std::chrono::steady_clock;

struct ConnDeleter {
    void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

struct ResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Type OIDs of the parameters we send (pg_type.h is server-side only).
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kInt8Oid = 20;
inline constexpr Oid kTextOid = 25;
inline constexpr Oid kTimestamptzOid = 1184;

// Query parameters, all in binary format. Holds up to kMax parameters; views passed to text()
// and bytea() must outlive the query call.
class Params {
  public:
    static constexpr int kMax = 8;
    void text(std::string_view s) { add(kTextOid, s.data(), s.size()); }
    void bytea(std::string_view s) { add(kByteaOid, s.data(), s.size()); }
    void int8(int64_t v);
    // A timestamptz from unix milliseconds (clamped to years 1970..9999).
    void timestamptz_ms(int64_t unix_ms);

    int count() const { return n_; }
    const Oid* types() const { return types_.data(); }
    const char* const* values() const { return values_.data(); }
    const int* lengths() const { return lengths_.data(); }
    const int* formats() const { return formats_.data(); }

  private:
    void add(Oid type, const char* p, size_t len);
    int n_ = 0;
    std::array<Oid, kMax> types_{};
    std::array<const char*, kMax> values_{};
    std::array<int, kMax> lengths_{};
    std::array<int, kMax> formats_{};
    std::array<std::array<char, 8>, kMax> scratch_{};
};

// Runs one parameterised statement with binary results (blocking).
Result exec(PGconn* c, const char* sql, const Params& p);

// Binary result decoding.
int64_t get_int8(const PGresult* r, int row, int col);
int64_t get_timestamptz_ms(const PGresult* r, int row, int col);
std::string_view get_bytes(const PGresult* r, int row, int col);
// Rows affected by a DELETE/UPDATE/INSERT.
int64_t affected(const PGresult* r);

// True for results that represent success (COMMAND_OK, TUPLES_OK, PIPELINE_SYNC).
bool ok(const PGresult* r);

// Maps a failed result (or a broken connection) to a parley status:
// connection/shutdown/resource/read-only errors -> UNAVAILABLE, data exceptions -> INVALID,
// everything else -> ERR.
parley_t_status status_of(PGconn* c, const PGresult* r);
// Whether the connection must be dropped and re-established after this failure.
bool must_reconnect(PGconn* c, const PGresult* r);
// "SQLSTATE 23505" plus the primary message unless its class may echo values (22, 23).
std::string describe_error(PGconn* c, const PGresult* r);

// One-line version of PQerrorMessage (libpq never includes the password in it).
std::string conn_error(PGconn* c);

// Connection parameters parsed from a conninfo string or URI, plus parley's defaults for the
// keys the operator did not set (application name, TCP keepalives).
class ConnParams {
  public:
    // Throws std::runtime_error with a message that never echoes values from `conninfo`.
    explicit ConnParams(const std::string& conninfo);
    const char* const* keywords() const { return kw_ptr_.data(); }
    const char* const* values() const { return val_ptr_.data(); }
    // host/port/dbname/user for messages (never the password), e.g. "dbname=parley user=x".
    const std::string& target() const { return target_; }

  private:
    std::vector<std::string> kw_, val_;
    std::vector<const char*> kw_ptr_, val_ptr_;
    std::string target_;
};

// A non-blocking connection attempt (PQconnectStartParams + PQconnectPoll).
class Connector {
  public:
    enum class Step { Wait, Done, Failed };
    // Starts an attempt. Returns Wait (poll fd() for events()), or Failed.
    Step begin(const ConnParams& p);
    // Advances the handshake after the socket became ready (or to re-check).
    Step advance();
    int fd() const { return conn_ ? PQsocket(conn_.get()) : -1; }
    // Whether libpq waits for the socket to become writable (else readable).
    bool want_write() const { return want_write_; }
    bool active() const { return conn_ != nullptr; }
    Conn take() { return std::move(conn_); }
    void reset() { conn_.reset(); }
    const std::string& error() const { return error_; }

  private:
    Conn conn_;
    bool want_write_ = true;
    std::string error_;
};

// Connects within `timeout` (blocking, for start()). Returns null with `error` set on failure.
Conn connect_blocking(const ConnParams& p, std::chrono::milliseconds timeout, std::string& error);

// Per-session setup after a connection is made: silences libpq notices (a plugin never writes
// to stderr) and makes sure commits are durable (synchronous_commit off is raised to on).
bool prepare_session(PGconn* c, std::string& error);

} // namespace parley::store_pg
