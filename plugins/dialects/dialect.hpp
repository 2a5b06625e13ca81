// Dialects translate one wire protocol (Secure Chat's, BenchTalks', Relay's, or the minimal
// `raw` one used by tests) between client frames and kernel operations. They are a static
// library linked by every transport, so the same codec serves WebSocket clients and frames that
// arrive over NATS.
//
// Threading: a Session belongs to one connection and is only called on that connection's loop.
// Work that completes elsewhere (store callbacks, worker jobs) comes back with Conn::post.
#pragma once

#include <parley/sdk.hpp>

#include "json_escape.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace parley::dialect {

struct HttpRequest {
    std::string_view method;
    std::string_view path;  // percent-decoding is the dialect's business
    std::string_view query; // raw, without '?'
    std::string_view body;
    std::function<std::string_view(std::string_view)> header; // case-insensitive; "" if absent
    uint64_t peer_key = 0; // opaque per-client key for throttling, as Conn::peer_key()
};

struct HttpReply {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::string headers; // extra "Name: value\r\n" lines
    std::string file;    // serve this file of the web root instead of `body`
};

class Conn;

// Posts work back to a connection's loop from any thread; dropped if the connection is gone.
class Poster {
  public:
    virtual ~Poster() = default;
    virtual void post(uint64_t tag, std::function<void(Conn&)> fn) = 0;
};

// What a dialect may do with its connection. Valid only on the connection's loop.
class Conn {
  public:
    virtual ~Conn() = default;
    virtual parley_t_conn_id id() const = 0;
    virtual uint64_t tag() const = 0;
    // Shared so late completions (workers, stores) never outlive the transport's loops.
    virtual std::shared_ptr<Poster> poster() = 0;
    // Copies `text` into a new frame for this connection only.
    virtual void send_text(std::string_view text) = 0;
    // Shares a frame (retained while queued).
    virtual void send_frame(parley_t_frame_hptr frame) = 0;
    virtual void close(uint16_t code, std::string_view reason) = 0;
    virtual bool closing() const = 0;
    // While held, frames delivered to this connection by the router wait in a side queue, so a
    // dialect can send history before any live message that raced it. Released in order.
    virtual void hold(bool on) = 0;
    // Opaque per-client key for throttling (never logged, never an address in clear).
    virtual uint64_t peer_key() const = 0;
};

class Session {
  public:
    virtual ~Session() = default;
    virtual void on_open(Conn& c) = 0;
    virtual void on_text(Conn& c, std::string_view msg) = 0;
    virtual void on_binary(Conn& c, std::string_view) {
        c.close(1003, "binary frames not accepted");
    }
    // The transport dropped a message over the rate limit; tell the client in its dialect.
    virtual void on_rate_limited(Conn&) {}
    // The connection is gone; publish leave notices to others. Do not send to `c`.
    virtual void on_close(Conn& c) = 0;
    // Frames the kernel delivers (room_publish, send_to) are services' JSON; a dialect with
    // another wire format (Socket.IO) re-encodes them here. Read once at upgrade, so other
    // dialects pay nothing. Must not touch the session's state (it may run inside on_text).
    virtual bool rewrites_out() const { return false; }
    virtual std::string rewrite_out(std::string_view frame) { return std::string(frame); }
    // Kernel frames this dialect acts on when they reach its own connection (bench: an admin's
    // `deleted`/`kicked` from another cluster node). Read once at upgrade, so other dialects
    // pay nothing. out_event classifies a frame before it is queued (no copy, no state change:
    // it may run inside another session's on_text); nonzero makes the transport call on_out
    // with it right after the frame is queued, so a close queued there follows the frame.
    virtual bool observes_out() const { return false; }
    virtual int out_event(std::string_view) const { return 0; }
    virtual void on_out(Conn&, int) {}
};

class Dialect {
  public:
    virtual ~Dialect() = default;
    // Decide on a WebSocket upgrade already checked for RFC 6455 validity and Origin. Return a
    // session to accept, or nullptr with `refusal` filled (e.g. 400 with a reason).
    virtual std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) = 0;
    // Dialect HTTP routes (pages, APIs). False when not handled (the transport then tries
    // kernel routes, then static files, then its own 404).
    virtual bool http(const HttpRequest&, HttpReply&) { return false; }
    // Smallest `max_message` the dialect's configured payload caps need (0: no opinion). The
    // transport raises max_message to it (and send_queue to twice that) and logs it.
    virtual size_t min_message() const { return 0; }
    // Content-Security-Policy for this dialect's pages.
    virtual std::string csp() const {
        return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
               "object-src 'none'; require-trusted-types-for 'script'";
    }
};

struct Env {
    sdk::Host host;
    std::string instance;
};

// Config keys every dialect may read come from the transport's schema (see transport-ws).
std::unique_ptr<Dialect> make(std::string_view name, const Env& env);

// Small helpers shared by dialects.
using parley::json_escape;
bool is_base64url(std::string_view s);
int64_t unix_ms();

} // namespace parley::dialect
