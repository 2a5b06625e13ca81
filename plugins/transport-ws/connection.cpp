#include "connection.hpp"

#include "forwarded_for.hpp"
#include "handshake.hpp"

#include <span>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace parley::ws {

namespace {

constexpr size_t kMaxHead = 8192;
constexpr size_t kReadChunk = 64 * 1024;
constexpr auto kCloseLinger = std::chrono::seconds(2);
// After an HTTP answer that closes: at most this long and this much of the client's remaining
// input is read and dropped (a refused upload), then the connection goes regardless.
constexpr auto kHttpLinger = std::chrono::seconds(2);
constexpr size_t kHttpLingerBytes = size_t(4) << 20;

const char* reason_phrase(int status) {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

// Kernel-route responses may complete on any thread: they come back through the mailbox.
struct AsyncResponse {
    parley_t_http_response base; // first member: the kernel sees a parley_t_http_response*
    std::shared_ptr<dialect::Poster> poster;
    uint64_t tag;
    std::atomic<bool> done{false};
};

void async_respond(parley_t_http_response* self, int status, parley_t_bytes ct,
                   parley_t_bytes headers, parley_t_bytes body) {
    std::unique_ptr<AsyncResponse> r(reinterpret_cast<AsyncResponse*>(self));
    r->poster->post(r->tag, [status, ct = std::string(ct.ptr, ct.len),
                             h = std::string(headers.ptr, headers.len),
                             b = std::string(body.ptr, body.len)](dialect::Conn& c) {
        static_cast<Connection&>(c).respond_async(status, ct, h, b);
    });
}

} // namespace

Connection::Connection(Reactor& r, int fd, uint64_t tag, bool admin, std::string ip, bool via_proxy)
    : r_(r), t_(r.transport()), fd_(fd), tag_(tag), admin_(admin), ip_(std::move(ip)),
      proxy_ip_(via_proxy ? ip_ : std::string()), ip_held_(!admin && !via_proxy),
      peer_key_(ip_.empty() ? 0 : t_.peer_key(ip_)), created_(Clock::now()), last_rx_(created_),
      request_since_(created_), tokens_at_(created_) {}

void Connection::resolve_client() {
    if (proxy_ip_.empty() || ip_held_) return;
    // The last X-Forwarded-For field's last entry: what the trusted proxy appended.
    std::optional<std::string> client;
    for (const auto& h : head_.headers())
        if (iequals(h.name, "x-forwarded-for")) client = forwarded_client(h.value);
    ip_ = client.value_or(proxy_ip_);
    peer_key_ = t_.peer_key(ip_);
}

Connection::~Connection() {
    teardown();
    if (fd_ >= 0) ::close(fd_);
}

void Connection::teardown() {
    if (tore_down_) return;
    tore_down_ = true;
    auto* host = t_.host().table();
    if (session_ && id_) session_->on_close(*this);
    if (id_ && r_.settings()->log_client_addresses)
        t_.host().logf(PARLEY_LOG_INFO, "connection %llu from %s closed", (unsigned long long)id_,
                       ip_.c_str());
    if (id_) {
        host->conn_closed(t_.host().ctx(), id_);
        t_.host().add(t_.metrics().connections, -1);
    }
    session_.reset();
    for (auto& it : out_)
        host->frame_release(it.frame);
    for (auto* f : held_)
        host->frame_release(f);
    t_.queued_total().fetch_sub(int64_t(out_bytes_));
    out_.clear();
    held_.clear();
    out_bytes_ = 0;
    if (ip_held_) t_.ip_release(ip_);
    ip_held_ = false;
    ip_.clear();
    state_ = State::Dead;
}

// ---------------------------------------------------------------------------------------------
// Reading

void Connection::on_readable() {
    if (state_ == State::Dead) return;
    uint8_t buf[kReadChunk];
    for (int rounds = 0; rounds < 16; ++rounds) { // bounded: others on this loop get a turn
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            if (state_ == State::Lingering) {
                if (size_t(n) >= linger_left_) return teardown();
                linger_left_ -= size_t(n);
                if (size_t(n) < sizeof buf) return;
                continue;
            }
            last_rx_ = Clock::now();
            t_.host().add(t_.metrics().bytes_in, n);
            if (state_ == State::WebSocket || state_ == State::Closing) {
                on_ws_bytes(buf, size_t(n));
            } else if (state_ == State::Http) {
                if (!close_after_flush) { // else answered and closing: the rest is ignored
                    if (!request_pending_) {
                        request_pending_ = true;
                        request_since_ = last_rx_;
                    }
                    in_.append(reinterpret_cast<char*>(buf), size_t(n));
                    on_http();
                }
            } else if (state_ == State::HttpWaiting) {
                in_.append(reinterpret_cast<char*>(buf), size_t(n)); // pipelined: later
                if (in_.size() > kMaxHead + r_.settings()->max_http_body) return teardown();
            }
            if (state_ == State::Dead) return;
            if (size_t(n) < sizeof buf) return;
            continue;
        }
        if (n == 0) { // peer closed
            teardown();
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        teardown();
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

void Connection::on_http() {
    // Nothing after a response that ends the connection (an error, or Connection: close).
    while (state_ == State::Http && !in_.empty() && !close_after_flush) {
        if (!head_.complete()) {
            auto res = head_.feed(in_);
            if (res.status == HttpParseStatus::Error) {
                t_.host().add(t_.metrics().handshake_failures);
                return refuse_request(res.error_status ? res.error_status : 400, "bad request\n");
            }
            in_.erase(0, res.consumed);
            if (res.status == HttpParseStatus::NeedMore) return;
        }
        std::string body;
        const size_t max_body = r_.settings()->max_http_body;
        if (auto cl = head_.content_length()) {
            if (*cl > max_body) return refuse_request(413, "body too large\n");
            if (in_.size() < *cl) return await_body(in_.empty());
            body = in_.substr(0, size_t(*cl));
            in_.erase(0, size_t(*cl));
        } else if (auto te = head_.header("transfer-encoding")) {
            // Only "chunked" alone: another coding in front of it would need decoding.
            if (head_.header_count("transfer-encoding") != 1 || !iequals(*te, "chunked"))
                return refuse_request(501, "transfer coding not supported\n");
            if (!chunked_) chunked_ = std::make_unique<ChunkedBody>(max_body);
            switch (chunked_->feed(in_)) {
            case ChunkedBody::Status::NeedMore:
                return await_body(chunked_->consumed() == 0);
            case ChunkedBody::Status::Malformed:
                return refuse_request(400, "malformed chunked body\n");
            case ChunkedBody::Status::TooLarge:
                return refuse_request(413, "body too large\n");
            case ChunkedBody::Status::Done:
                body = std::move(chunked_->body());
                chunked_.reset();
                break;
            }
        }
        continue_sent_ = false;
        resolve_client();
        keep_alive_ = head_.keep_alive();
        t_.host().add(t_.metrics().http_requests);
        handle_request(head_, body);
        request_pending_ = !in_.empty(); // a pipelined request starts now
        request_since_ = Clock::now();
        if (state_ == State::Http) {
            head_.reset();
            if (!keep_alive_) close_after_flush = true;
        } else if (state_ == State::WebSocket || state_ == State::Closing) {
            // Upgraded: the head and the input buffer are never read again. Freeing them saves
            // about 0.5 KiB per idle connection (dialects copy what they keep at upgrade).
            head_.reset();
            if (in_.empty()) std::string().swap(in_);
        }
    }
}

void Connection::refuse_request(int status, std::string_view text) {
    // The request's framing is unusable or unwanted: answer, then end the connection.
    keep_alive_ = false;
    close_after_flush = true;
    send_http(status, "text/plain", text, "");
}

void Connection::await_body(bool nothing_yet) {
    // A client that sent "Expect: 100-continue" waits for this before sending the body (curl
    // for a second, then sends anyway; some never do). Not needed once body bytes arrived.
    if (continue_sent_ || !nothing_yet || head_.version_minor() < 1) return;
    auto expect = head_.header("expect");
    if (!expect) return;
    if (!iequals(*expect, "100-continue")) return refuse_request(417, "unsupported expectation\n");
    queue_raw("HTTP/1.1 100 Continue\r\n\r\n");
    continue_sent_ = true;
}

std::string Connection::security_headers(Transport& t) {
    // Security headers on every response, whatever produced it.
    return "Content-Security-Policy: " + t.dialect().csp() +
           "\r\n"
           "X-Frame-Options: DENY\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
           "X-Content-Type-Options: nosniff\r\nCross-Origin-Opener-Policy: same-origin\r\n"
           "Cross-Origin-Resource-Policy: same-origin\r\nPermissions-Policy: " +
           t.settings()->permissions_policy + "\r\n";
}

void Connection::send_http(int status, std::string_view content_type, std::string_view body,
                           std::string_view extra_headers, bool head_only) {
    // Decided before the header is written: a response that says keep-alive and then closes
    // makes a client reuse a dying connection (undici fails the next request).
    if (status >= 400) keep_alive_ = keep_alive_ && status != 400 && status != 431;
    std::string r;
    r.reserve(512 + body.size());
    r += "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
    r += "Content-Type: ";
    r += content_type;
    r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    r += security_headers(t_);
    r += extra_headers;
    r += keep_alive_ && !close_after_flush ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    r += "\r\n";
    if (!head_only) r += body;
    queue_raw(r);
}

void Connection::respond_async(int status, std::string_view ct, std::string_view headers,
                               std::string_view body) {
    if (state_ != State::HttpWaiting) return;
    state_ = State::Http;
    head_.reset(); // the answered request's head: the next one (maybe pipelined) starts afresh
    request_pending_ = !in_.empty();
    request_since_ = Clock::now();
    send_http(status, ct.empty() ? "application/octet-stream" : ct, body, headers);
    if (!keep_alive_) close_after_flush = true;
    on_http(); // pipelined requests that arrived meanwhile
}

void Connection::handle_request(const HttpRequestHead& head, std::string_view body) {
    auto target = head.target();
    auto qpos = target.find('?');
    std::string_view path = target.substr(0, qpos);
    std::string_view query = qpos == target.npos ? "" : target.substr(qpos + 1);
    bool is_head = head.method() == "HEAD";

    if (admin_) {
        if (path == "/metrics" && (head.method() == "GET" || is_head)) {
            auto* f = t_.host().table()->metrics_render(t_.host().ctx());
            std::string text(f->data, f->len);
            t_.host().table()->frame_release(f);
            send_http(200, "text/plain; version=0.0.4", text, "", is_head);
        } else if (path == "/healthz") {
            send_http(200, "text/plain", "ok", "", is_head);
        } else {
            send_http(404, "text/plain", "not found\n", "");
        }
        return;
    }
    if (head.header("upgrade")) {
        keep_alive_ = false; // a refused upgrade ends the connection, and its answer says so
        if (!try_upgrade(head, path, query)) close_after_flush = true;
        return;
    }
    if (path == "/healthz") return send_http(200, "text/plain", "ok", "", is_head);
    if (path == "/readyz")
        return t_.draining() ? send_http(503, "text/plain", "draining\n", "", is_head)
                             : send_http(200, "text/plain", "ready\n", "", is_head);

    dialect::HttpRequest req{
        head.method(),
        path,
        query,
        body,
        [&head](std::string_view n) { return head.header(n).value_or(std::string_view()); },
        peer_key_};
    if (head.method() == "GET" || is_head) {
        if (auto* f = t_.static_file(path))
            return send_http(200, f->content_type, f->body, "", is_head);
    }
    // Kernel routes (registered by service plugins, e.g. the relay blob API).
    auto resp = std::make_unique<AsyncResponse>();
    resp->base.struct_size = sizeof(parley_t_http_response);
    resp->base.respond = async_respond;
    resp->poster = r_.self_poster();
    resp->tag = tag_;
    auto header_fn = [](const parley_t_http_request* r, parley_t_bytes name,
                        parley_t_bytes* out) -> int {
        auto* h = static_cast<const HttpRequestHead*>(r->impl);
        auto v = h->header(std::string_view(name.ptr, name.len));
        if (!v) return 0;
        *out = {v->data(), v->size()};
        return 1;
    };
    parley_t_http_request kreq{
        sizeof(parley_t_http_request),      {head.method().data(), head.method().size()},
        {path.data(), path.size()},         {query.data(), query.size()},
        {body.data(), body.size()},         header_fn,
        const_cast<HttpRequestHead*>(&head)};
    state_ = State::HttpWaiting;
    auto* raw = resp.get();
    if (t_.host().table()->http_dispatch(t_.host().ctx(), &kreq, &raw->base) == PARLEY_OK) {
        resp.release(); // owned by async_respond from here
        return;
    }
    state_ = State::Http;
    dialect::HttpReply rep;
    if (t_.dialect().http(req, rep)) {
        if (!rep.file.empty()) {
            if (auto* f = t_.static_file("/" + rep.file))
                return send_http(200, f->content_type, f->body, rep.headers, is_head);
            return send_http(404, "text/plain", "web client not installed\n", "");
        }
        return send_http(rep.status, rep.content_type, rep.body, rep.headers, is_head);
    }
    send_http(404, "text/plain", "not found\n", "", is_head);
}

bool Connection::try_upgrade(const HttpRequestHead& head, std::string_view path,
                             std::string_view query) {
    auto s = r_.settings();
    auto refuse = [&](int status, std::string_view why, std::string_view extra = "") {
        t_.host().add(t_.metrics().handshake_failures);
        if (s->log_client_addresses)
            t_.host().logf(PARLEY_LOG_INFO, "upgrade from %s refused: %d", ip_.c_str(), status);
        send_http(status, "text/plain", std::string(why) + "\n", extra);
        return false;
    };
    auto check = check_handshake(head);
    if (check != HandshakeError::None)
        return refuse(http_status(check), describe(check), extra_headers(check));
    auto origin = head.header("origin").value_or(std::string_view());
    if (origin.empty()) {
        if (s->require_origin) return refuse(403, "origin required");
    } else if (s->origins.empty()) {
        // Same-origin only: the page we served connects back to us.
        auto host = head.header("host").value_or(std::string_view());
        if (origin != "http://" + std::string(host) && origin != "https://" + std::string(host))
            return refuse(403, "origin not allowed");
    } else if (std::find(s->origins.begin(), s->origins.end(), origin) == s->origins.end()) {
        return refuse(403, "origin not allowed");
    }
    if (t_.draining()) return refuse(503, "draining");
    dialect::HttpRequest req{
        head.method(),
        path,
        query,
        "",
        [&head](std::string_view n) { return head.header(n).value_or(std::string_view()); },
        peer_key_};
    dialect::HttpReply refusal;
    if (!proxy_ip_.empty() && !ip_held_) { // counted now that the client is known
        if (!t_.ip_acquire(ip_)) {
            t_.host().add(t_.metrics().per_ip_refused);
            return refuse(429, "too many connections from this address");
        }
        ip_held_ = true;
    }
    auto session = t_.dialect().upgrade(req, refusal);
    if (!session) return refuse(refusal.status, refusal.body);
    id_ = t_.host().table()->conn_open(t_.host().ctx(), tag_);
    if (!id_) return refuse(503, "server full or draining");
    t_.host().add(t_.metrics().connections, 1);
    queue_raw(handshake_response(head.header("sec-websocket-key").value_or("")));
    state_ = State::WebSocket;
    parser_ = std::make_unique<FrameParser>(s->max_message);
    tokens_ = s->burst;
    tokens_at_ = Clock::now();
    session_ = std::move(session);
    rewrite_out_ = session_->rewrites_out();
    observe_out_ = session_->observes_out();
    if (s->log_client_addresses)
        t_.host().logf(PARLEY_LOG_INFO, "connection %llu from %s opened", (unsigned long long)id_,
                       ip_.c_str());
    session_->on_open(*this);
    // Bytes that followed the request head belong to the WebSocket.
    if (!in_.empty() && state_ == State::WebSocket) {
        std::string rest;
        rest.swap(in_);
        on_ws_bytes(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// WebSocket

std::string Connection::address_note() const {
    return r_.settings()->log_client_addresses ? " from " + ip_ : std::string();
}

bool Connection::allow_message() {
    auto s = r_.settings();
    auto now = Clock::now();
    tokens_ = std::min(s->burst,
                       tokens_ + s->rate * std::chrono::duration<double>(now - tokens_at_).count());
    tokens_at_ = now;
    if (tokens_ >= 1) {
        tokens_ -= 1;
        rate_drops_ = 0;
        return true;
    }
    t_.host().add(t_.metrics().rate_limited);
    if (++rate_drops_ > 4 * s->burst) {
        t_.host().logf(PARLEY_LOG_INFO, "rate limit: closing connection %llu%s",
                       (unsigned long long)id_, address_note().c_str());
        close(1008, "rate limit exceeded");
        return false;
    }
    if (now - last_rate_notice_ > std::chrono::seconds(1)) {
        last_rate_notice_ = now;
        if (session_) session_->on_rate_limited(*this);
    }
    return false;
}

void Connection::on_ws_bytes(uint8_t* data, size_t len) {
    parser_->feed(data, len, [this](const Event& ev) {
        switch (ev.type) {
        case EventType::Message:
            ping_outstanding_ = false;
            if (state_ != State::WebSocket) return; // closing: data is ignored
            t_.host().add(t_.metrics().messages_in);
            if (!allow_message()) return;
            if (ev.opcode == Opcode::Text)
                session_->on_text(*this, ev.payload);
            else
                session_->on_binary(*this, ev.payload);
            return;
        case EventType::Ping:
            if (state_ == State::WebSocket) queue_raw(pong_frame(ev.payload).view());
            return;
        case EventType::Pong:
            ping_outstanding_ = false;
            return;
        case EventType::Close:
            if (state_ == State::WebSocket) {
                // Echo the peer's code (an empty close for "no status"), then hang up.
                queue_raw(close_frame(ev.code == close_code::kNoStatus ? 0 : ev.code).view());
                t_.count_close(ev.code);
            }
            state_ = State::Closing;
            close_after_flush = true;
            r_.mark_dirty(this);
            return;
        case EventType::Error:
            fail(ev.code, ev.reason);
            return;
        case EventType::None:
            return;
        }
    });
}

void Connection::fail(uint16_t code, std::string_view reason) {
    // Protocol error: close frame with the code, then the TCP connection; no more reading.
    if (state_ == State::Dead) return;
    t_.count_close(code);
    if (state_ == State::WebSocket) queue_raw(close_frame(code, reason).view());
    state_ = State::Closing;
    close_after_flush = true;
    close_deadline_ = Clock::now() + kCloseLinger;
    r_.mark_dirty(this);
}

void Connection::close(uint16_t code, std::string_view reason) {
    if (state_ == State::Closing || state_ == State::Lingering || state_ == State::Dead) return;
    if (state_ != State::WebSocket) {
        close_after_flush = true;
        r_.mark_dirty(this);
        return;
    }
    closed_by_us_ = true;
    t_.count_close(code);
    queue_raw(close_frame(code, reason).view());
    // Wait briefly for the client's close reply, then hang up regardless.
    state_ = State::Closing;
    close_deadline_ = Clock::now() + kCloseLinger;
    r_.mark_dirty(this);
}

void Connection::queue_raw(std::string_view bytes) {
    auto* f = t_.host().table()->frame_alloc(t_.host().ctx(), bytes.size());
    std::memcpy(f->data, bytes.data(), bytes.size());
    f->len = bytes.size();
    push(f, 0, true); // opcode 0: already a complete frame or HTTP response
}

void Connection::send_text(std::string_view text) {
    if (state_ != State::WebSocket) return;
    auto* f = t_.host().table()->frame_alloc(t_.host().ctx(), text.size());
    std::memcpy(f->data, text.data(), text.size());
    f->len = text.size();
    f->flags = PARLEY_FRAME_TEXT;
    push(f, 0x1, true);
}

void Connection::send_frame(parley_t_frame_hptr frame) {
    if (state_ != State::WebSocket) return;
    t_.host().table()->frame_retain(frame);
    push(frame, (frame->flags & PARLEY_FRAME_TEXT) ? 0x1 : 0x2, true);
}

void Connection::hold(bool on) {
    holding_ = on;
    if (on) return;
    auto held = std::move(held_);
    held_.clear();
    held_bytes_ = 0;
    for (auto* f : held) {
        if (state_ == State::WebSocket)
            push(f, (f->flags & PARLEY_FRAME_TEXT) ? 0x1 : 0x2, true);
        else
            t_.host().table()->frame_release(f); // cut while holding: nothing more goes out
    }
}

void Connection::enqueue(parley_t_frame_hptr frame, bool retained) {
    if (state_ != State::WebSocket) {
        if (retained) t_.host().table()->frame_release(frame);
        return;
    }
    int event = observe_out_ && session_
                    ? session_->out_event(std::string_view(frame->data, frame->len))
                    : 0;
    if (rewrite_out_ && session_) {
        // One copy per recipient, only for dialects that asked (Socket.IO's 42[...] framing).
        std::string text = session_->rewrite_out(std::string_view(frame->data, frame->len));
        if (retained) t_.host().table()->frame_release(frame);
        if (text.empty()) return;
        frame = t_.host().table()->frame_alloc(t_.host().ctx(), text.size());
        std::memcpy(frame->data, text.data(), text.size());
        frame->len = text.size();
        frame->flags = PARLEY_FRAME_TEXT;
        retained = true;
    }
    if (!retained) t_.host().table()->frame_retain(frame);
    if (holding_) {
        // Bounded like the queue itself: a client whose history never arrives is cut.
        held_bytes_ += frame->len;
        held_.push_back(frame);
        if (held_bytes_ > r_.settings()->send_queue) slow_consumer();
    } else {
        push(frame, (frame->flags & PARLEY_FRAME_TEXT) ? 0x1 : 0x2, true);
    }
    if (event && session_) session_->on_out(*this, event); // after the frame: a close follows it
}

void Connection::push(parley_t_frame_hptr frame, uint8_t opcode, bool) {
    OutItem it{frame, {}, 0, 0};
    if (opcode)
        it.hdr_len = uint8_t(encode_header(std::span<uint8_t, kMaxServerHeaderSize>(it.hdr),
                                           Opcode(opcode), frame->len));
    size_t bytes = it.hdr_len + frame->len;
    auto s = r_.settings();
    bool control = opcode >= 0x8 || opcode == 0;
    if (!control) {
        // Bounded queues: the connection's own, and the process-wide budget.
        auto over = [&] {
            return out_bytes_ + bytes > s->send_queue ||
                   t_.queued_total().load(std::memory_order_relaxed) + int64_t(bytes) >
                       s->send_budget;
        };
        // A burst queued within one loop iteration has not met the socket yet: offer it first,
        // so only a peer that really does not read is a slow consumer. A socket error is left
        // to flush(), which tears down outside the dialect's callbacks.
        if (over() && !out_.empty()) write_queued();
        if (over()) {
            t_.host().table()->frame_release(frame);
            slow_consumer();
            return;
        }
        if (!slow_warned_ && out_bytes_ + bytes > s->send_queue * 3 / 4) {
            slow_warned_ = true;
            t_.host().logf(PARLEY_LOG_DEBUG, "connection %llu is slow (queue over 75%%)",
                           (unsigned long long)id_);
        }
        ++r_.messages_out_; // added to the metric once per loop iteration
    }
    out_.push_back(it);
    out_bytes_ += bytes;
    t_.queued_total().fetch_add(int64_t(bytes), std::memory_order_relaxed);
    r_.mark_dirty(this);
}

void Connection::slow_consumer() {
    if (state_ != State::WebSocket) return;
    t_.host().add(t_.metrics().slow_consumers);
    t_.host().logf(PARLEY_LOG_INFO,
                   "slow consumer: closing connection %llu%s (queue over %zu bytes)",
                   (unsigned long long)id_, address_note().c_str(), r_.settings()->send_queue);
    // Drop what has not started to go out; the frame being written must finish first.
    auto* host = t_.host().table();
    while (out_.size() > 1 || (out_.size() == 1 && out_.front().off == 0)) {
        auto& b = out_.back();
        size_t bytes = b.hdr_len + b.frame->len;
        out_bytes_ -= bytes;
        t_.queued_total().fetch_sub(int64_t(bytes));
        host->frame_release(b.frame);
        out_.pop_back();
    }
    close(1013, "slow consumer");
    close_deadline_ = Clock::now() + std::chrono::seconds(1);
}

bool Connection::flush() {
    if (fd_ < 0 || state_ == State::Dead) return false;
    if (state_ == State::Lingering) return true; // answered; nothing more is written
    if (!write_queued()) {
        teardown();
        return false;
    }
    if (out_.empty()) slow_warned_ = false;
    if (out_.empty() && close_after_flush) {
        // Server closes the TCP connection first (RFC 6455 7.1.1); let the client see EOF.
        ::shutdown(fd_, SHUT_WR);
        if (state_ == State::Http) {
            // The client may still be sending the request we answered (a refused body).
            state_ = State::Lingering;
            linger_left_ = kHttpLingerBytes;
            close_deadline_ = Clock::now() + kHttpLinger;
            r_.update_interest(this);
            return true;
        }
        teardown();
        return false;
    }
    r_.update_interest(this);
    return true;
}

bool Connection::write_queued() {
    auto* host = t_.host().table();
    while (!out_.empty()) {
        iovec iov[128];
        int n = 0;
        for (auto it = out_.begin(); it != out_.end() && n < 126; ++it) {
            size_t off = it->off;
            if (off < it->hdr_len) {
                iov[n++] = {it->hdr + off, size_t(it->hdr_len - off)};
                off = it->hdr_len;
            }
            size_t poff = off - it->hdr_len;
            if (poff < it->frame->len) iov[n++] = {it->frame->data + poff, it->frame->len - poff};
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = size_t(n);
        ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return false;
        }
        r_.bytes_out_ += w;
        size_t left = size_t(w);
        while (left > 0 && !out_.empty()) {
            auto& f = out_.front();
            size_t total = f.hdr_len + f.frame->len;
            size_t rem = total - f.off;
            if (left >= rem) {
                left -= rem;
                out_bytes_ -= total;
                t_.queued_total().fetch_sub(int64_t(total), std::memory_order_relaxed);
                host->frame_release(f.frame);
                out_.pop_front();
            } else {
                f.off += left;
                left = 0;
            }
        }
    }
    return true;
}

void Connection::housekeeping(Clock::time_point now) {
    if (state_ == State::Dead) return;
    auto s = r_.settings();
    if (state_ == State::Http || state_ == State::HttpWaiting) {
        auto limit =
            std::chrono::milliseconds(state_ == State::Http ? s->handshake_timeout_ms : 30000);
        // Counted from the request's first byte however fast bytes trickle in (slowloris), or
        // for an idle keep-alive connection from its last request; HttpWaiting from dispatch.
        if (now - request_since_ > limit) {
            if (state_ == State::HttpWaiting) {
                state_ = State::Http;
                send_http(503, "text/plain", "timeout\n", "");
                close_after_flush = true;
            } else {
                teardown();
            }
        }
        return;
    }
    if (state_ == State::Closing || state_ == State::Lingering) {
        if (close_deadline_ != Clock::time_point{} && now > close_deadline_) teardown();
        return;
    }
    auto silent = now - last_rx_;
    if (silent > std::chrono::milliseconds(s->idle_timeout_ms)) {
        // Half-open or silent: no point in a close handshake.
        t_.count_close(1006);
        teardown();
        return;
    }
    if (!ping_outstanding_ && silent > std::chrono::milliseconds(s->ping_interval_ms)) {
        ping_outstanding_ = true;
        queue_raw(ping_frame().view());
    }
}

} // namespace parley::ws
