#include "pg.hpp"

#include <endian.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

namespace parley::store_pg {

namespace {

// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
constexpr int64_t kPgEpochUnixMs = 946684800000;
constexpr int64_t kMaxUnixMs = 253402300799999; // 9999-12-31T23:59:59.999Z

void put_be64(std::array<char, 8>& out, int64_t v) {
    uint64_t be = htobe64(uint64_t(v));
    std::memcpy(out.data(), &be, 8);
}

// Collapses libpq's multi-line messages into one line.
std::string one_line(const char* msg) {
    std::string out;
    bool space = false;
    for (const char* p = msg ? msg : ""; *p; ++p) {
        char c = *p;
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

const std::set<std::string>& known_keywords() {
    static const std::set<std::string> names = [] {
        std::set<std::string> s;
        if (PQconninfoOption* d = PQconndefaults()) {
            for (PQconninfoOption* o = d; o->keyword; ++o)
                s.insert(o->keyword);
            PQconninfoFree(d);
        }
        return s;
    }();
    return names;
}

// PQconninfoParse errors quote the offending token, which may be (part of) a password or a
// whole URI with one. Keep quoted option names, mask everything else.
std::string sanitize_parse_error(const char* msg) {
    std::string in = one_line(msg), out;
    size_t i = 0;
    while (i < in.size()) {
        size_t q = in.find('"', i);
        if (q == std::string::npos) {
            out.append(in, i, std::string::npos);
            break;
        }
        size_t e = in.find('"', q + 1);
        out.append(in, i, q - i);
        if (e == std::string::npos) {
            out += "\"...\"";
            break;
        }
        std::string inner = in.substr(q + 1, e - q - 1);
        out += '"';
        out += known_keywords().count(inner) ? inner : std::string("...");
        out += '"';
        i = e + 1;
    }
    return out;
}

const char* sqlstate(const PGresult* r) {
    return r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
}

bool starts_with(const char* s, std::string_view prefix) {
    return s && std::string_view(s).substr(0, prefix.size()) == prefix;
}

} // namespace

// ---- Params ----

void Params::add(Oid type, const char* p, size_t len) {
    if (n_ >= kMax) throw std::logic_error("store-pg: too many query parameters");
    types_[n_] = type;
    values_[n_] = p ? p : ""; // a NULL value pointer would mean SQL NULL
    lengths_[n_] = int(len);
    formats_[n_] = 1;
    ++n_;
}

void Params::int8(int64_t v) {
    if (n_ >= kMax) throw std::logic_error("store-pg: too many query parameters");
    put_be64(scratch_[n_], v);
    add(kInt8Oid, scratch_[n_].data(), 8);
}

void Params::timestamptz_ms(int64_t unix_ms) {
    if (n_ >= kMax) throw std::logic_error("store-pg: too many query parameters");
    unix_ms = std::clamp<int64_t>(unix_ms, 0, kMaxUnixMs);
    put_be64(scratch_[n_], (unix_ms - kPgEpochUnixMs) * 1000);
    add(kTimestamptzOid, scratch_[n_].data(), 8);
}

Result exec(PGconn* c, const char* sql, const Params& p) {
    return Result(PQexecParams(c, sql, p.count(), p.types(), p.values(), p.lengths(), p.formats(),
                               1 /* binary results */));
}

// ---- results ----

int64_t get_int8(const PGresult* r, int row, int col) {
    if (PQgetlength(r, row, col) != 8) return 0;
    uint64_t be;
    std::memcpy(&be, PQgetvalue(r, row, col), 8);
    return int64_t(be64toh(be));
}

int64_t get_timestamptz_ms(const PGresult* r, int row, int col) {
    int64_t us = get_int8(r, row, col);
    // Floor division keeps pre-2000 instants exact.
    int64_t ms = us / 1000 - ((us % 1000) < 0 ? 1 : 0);
    return ms + kPgEpochUnixMs;
}

std::string_view get_bytes(const PGresult* r, int row, int col) {
    return {PQgetvalue(r, row, col), size_t(PQgetlength(r, row, col))};
}

int64_t affected(const PGresult* r) {
    const char* n = PQcmdTuples(const_cast<PGresult*>(r));
    return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

bool ok(const PGresult* r) {
    if (!r) return false;
    auto s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_PIPELINE_SYNC;
}

parley_t_status status_of(PGconn* c, const PGresult* r) {
    if (!c || PQstatus(c) == CONNECTION_BAD) return PARLEY_ERR_UNAVAILABLE;
    const char* st = sqlstate(r);
    if (!st) return PARLEY_ERR_UNAVAILABLE; // client-side failure: no answer from the server
    if (starts_with(st, "08") || starts_with(st, "53") || starts_with(st, "57") ||
        starts_with(st, "58") || starts_with(st, "40") || std::strcmp(st, "25006") == 0 ||
        std::strcmp(st, "55P03") == 0)
        return PARLEY_ERR_UNAVAILABLE;
    if (starts_with(st, "22")) return PARLEY_ERR_INVALID;
    if (starts_with(st, "54")) return PARLEY_ERR_LIMIT;
    return PARLEY_ERR;
}

bool must_reconnect(PGconn* c, const PGresult* r) {
    if (!c || PQstatus(c) == CONNECTION_BAD) return true;
    const char* st = sqlstate(r);
    if (!st) return true;
    // Connection exceptions, admin/crash shutdown, and a read-only server (a demoted primary:
    // reconnecting lets target_session_attrs find the new one).
    return starts_with(st, "08") || starts_with(st, "57P") || std::strcmp(st, "25006") == 0;
}

std::string describe_error(PGconn* c, const PGresult* r) {
    const char* st = sqlstate(r);
    if (!st) return conn_error(c);
    std::string out = std::string("SQLSTATE ") + st;
    // Data and integrity errors may quote values (room names, ids): only the code for those.
    if (!starts_with(st, "22") && !starts_with(st, "23")) {
        const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (m) out += ": " + one_line(m);
    }
    return out;
}

std::string conn_error(PGconn* c) {
    if (!c) return "out of memory";
    std::string s = one_line(PQerrorMessage(c));
    return s.empty() ? "connection failed" : s;
}

// ---- connection parameters ----

ConnParams::ConnParams(const std::string& conninfo) {
    if (conninfo.find_first_not_of(" \t\r\n") == std::string::npos)
        throw std::runtime_error("store-pg: conninfo is empty");
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        std::string why = err ? sanitize_parse_error(err) : "out of memory";
        if (err) PQfreemem(err);
        throw std::runtime_error("store-pg: conninfo is not a valid libpq connection string or "
                                 "URI: " +
                                 why);
    }
    std::set<std::string> seen;
    for (PQconninfoOption* o = opts; o->keyword; ++o) {
        if (!o->val) continue;
        kw_.emplace_back(o->keyword);
        val_.emplace_back(o->val);
        seen.insert(o->keyword);
    }
    PQconninfoFree(opts);
    // Defaults the operator may override in conninfo: a name in pg_stat_activity and TCP
    // keepalives so a silently dead server is noticed within about a minute (unix sockets
    // ignore them).
    const std::pair<const char*, const char*> defaults[] = {
        {"fallback_application_name", "parleyd-store-pg"},
        {"keepalives", "1"},
        {"keepalives_idle", "30"},
        {"keepalives_interval", "10"},
        {"keepalives_count", "3"},
    };
    for (auto& [k, v] : defaults)
        if (!seen.count(k)) {
            kw_.emplace_back(k);
            val_.emplace_back(v);
        }
    for (size_t i = 0; i < kw_.size(); ++i) {
        kw_ptr_.push_back(kw_[i].c_str());
        val_ptr_.push_back(val_[i].c_str());
    }
    kw_ptr_.push_back(nullptr);
    val_ptr_.push_back(nullptr);
    for (size_t i = 0; i < kw_.size(); ++i)
        if (kw_[i] == "host" || kw_[i] == "hostaddr" || kw_[i] == "port" || kw_[i] == "dbname" ||
            kw_[i] == "user")
            target_ += (target_.empty() ? "" : " ") + kw_[i] + "=" + val_[i];
    if (target_.empty()) target_ = "libpq defaults";
}

// ---- connector ----

Connector::Step Connector::begin(const ConnParams& p) {
    error_.clear();
    conn_.reset(PQconnectStartParams(p.keywords(), p.values(), 0));
    if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
        error_ = conn_error(conn_.get());
        conn_.reset();
        return Step::Failed;
    }
    want_write_ = true; // as if PQconnectPoll had returned PGRES_POLLING_WRITING
    return Step::Wait;
}

Connector::Step Connector::advance() {
    if (!conn_) return Step::Failed;
    switch (PQconnectPoll(conn_.get())) {
    case PGRES_POLLING_READING:
        want_write_ = false;
        return Step::Wait;
    case PGRES_POLLING_WRITING:
        want_write_ = true;
        return Step::Wait;
    case PGRES_POLLING_OK:
        return Step::Done;
    default:
        error_ = conn_error(conn_.get());
        conn_.reset();
        return Step::Failed;
    }
}

Conn connect_blocking(const ConnParams& p, std::chrono::milliseconds timeout, std::string& error) {
    auto deadline = Clock::now() + timeout;
    Connector c;
    auto step = c.begin(p);
    while (step == Connector::Step::Wait) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            error = "timed out after " + std::to_string(timeout.count()) + " ms";
            return nullptr;
        }
        pollfd pfd{c.fd(), short(c.want_write() ? POLLOUT : POLLIN), 0};
        int n = ::poll(&pfd, 1, int(std::min<int64_t>(left, 1000)));
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return nullptr;
        }
        if (n > 0) step = c.advance();
    }
    if (step == Connector::Step::Failed) {
        error = c.error();
        return nullptr;
    }
    Conn conn = c.take();
    if (!prepare_session(conn.get(), error)) return nullptr;
    return conn;
}

bool prepare_session(PGconn* c, std::string& error) {
    PQsetNoticeProcessor(
        c, [](void*, const char*) {}, nullptr);
    Result r(PQexec(c, "SHOW synchronous_commit"));
    if (!ok(r.get()) || PQntuples(r.get()) != 1) {
        error = describe_error(c, r.get());
        return false;
    }
    if (std::string_view(PQgetvalue(r.get(), 0, 0)) == "off") {
        // An acknowledged write must survive a server crash.
        Result s(PQexec(c, "SET synchronous_commit TO on"));
        if (!ok(s.get())) {
            error = describe_error(c, s.get());
            return false;
        }
    }
    return true;
}

} // namespace parley::store_pg
