// One client connection: HTTP request/response until an upgrade, then a WebSocket.
#pragma once

#include "reactor.hpp"

#include "chunked_body.hpp"
#include "http_request_head.hpp"
#include "ws_codec.hpp"

#include <sys/uio.h>

namespace parley::ws {

class Connection final : public dialect::Conn {
  public:
    using Clock = std::chrono::steady_clock;
    // Lingering: an HTTP answer that ends the connection is written and our side is shut; what
    // the client still sends (the rest of a refused body) is read and dropped for a bounded
    // time, because closing with unread input sends RST and the client may lose the answer.
    enum class State { Http, HttpWaiting, WebSocket, Closing, Lingering, Dead };

    // `via_proxy`: `ip` is a trusted proxy's; the client's address comes with each request.
    Connection(Reactor& r, int fd, uint64_t tag, bool admin, std::string ip, bool via_proxy);
    ~Connection() override;

    // dialect::Conn
    parley_t_conn_id id() const override { return id_; }
    uint64_t tag() const override { return tag_; }
    std::shared_ptr<dialect::Poster> poster() override { return r_.self_poster(); }
    void send_text(std::string_view text) override;
    void send_frame(parley_t_frame_hptr frame) override;
    void close(uint16_t code, std::string_view reason) override;
    bool closing() const override {
        return state_ == State::Closing || state_ == State::Lingering || state_ == State::Dead;
    }
    void hold(bool on) override;
    uint64_t peer_key() const override { return peer_key_; }

    // Reactor-facing.
    int fd() const { return fd_; }
    State state() const { return state_; }
    void on_readable();
    // Writes as much as the socket takes. Returns false when the connection died.
    bool flush();
    // Writes queued frames until the socket is full; false on a socket error (no teardown).
    bool write_queued();
    bool wants_write() const { return !out_.empty(); }
    bool epollout_armed = false;
    bool dirty = false;
    void enqueue(parley_t_frame_hptr frame, bool retained); // router delivery
    void housekeeping(Clock::time_point now);
    void teardown(); // notify dialect and kernel; free queued frames
    void respond_async(int status, std::string_view ct, std::string_view headers,
                       std::string_view body);
    // Close immediately after what is queued is written (HTTP, failed handshakes).
    bool close_after_flush = false;
    const std::string& ip() const { return ip_; }
    // The header lines every HTTP response carries (also the reactor's early 429).
    static std::string security_headers(Transport& t);

  private:
    struct OutItem {
        parley_t_frame_hptr frame; // retained
        uint8_t hdr[10];
        uint8_t hdr_len;
        size_t off; // bytes of hdr+payload already written
    };

    void on_http();
    void refuse_request(int status, std::string_view text);
    void await_body(bool nothing_yet);
    void resolve_client(); // via a trusted proxy: ip_ and peer_key_ from X-Forwarded-For
    void handle_request(const HttpRequestHead& head, std::string_view body);
    void queue_raw(std::string_view bytes);
    bool try_upgrade(const HttpRequestHead& head, std::string_view path, std::string_view query);
    void send_http(int status, std::string_view content_type, std::string_view body,
                   std::string_view extra_headers, bool head_only = false);
    void on_ws_bytes(uint8_t* data, size_t len);
    void push(parley_t_frame_hptr frame, uint8_t opcode, bool retained);
    void slow_consumer();
    void fail(uint16_t code, std::string_view reason);
    bool allow_message();
    // " from <address>" when the operator opted in to log client addresses, else "".
    std::string address_note() const;

    Reactor& r_;
    Transport& t_;
    int fd_;
    uint64_t tag_;
    bool admin_;
    std::string ip_;
    const std::string proxy_ip_; // the trusted proxy this connection comes from, or ""
    bool ip_held_ = false;       // ip_ counts against connections_per_ip (released at teardown)
    uint64_t peer_key_;
    State state_ = State::Http;
    parley_t_conn_id id_ = 0;
    std::string in_; // input not yet consumed by the head parser (body, pipelined requests)
    HttpRequestHead head_;
    std::unique_ptr<ChunkedBody> chunked_; // the current request's chunked body, if any
    std::unique_ptr<FrameParser> parser_;
    std::unique_ptr<dialect::Session> session_;
    std::deque<OutItem> out_;
    size_t out_bytes_ = 0;
    std::vector<parley_t_frame_hptr> held_;
    size_t held_bytes_ = 0;
    bool holding_ = false;
    bool rewrite_out_ = false; // the session re-encodes kernel frames (Socket.IO)
    bool observe_out_ = false; // the session acts on some kernel frames (bench cluster mode)
    bool keep_alive_ = false;
    bool slow_warned_ = false;
    bool ping_outstanding_ = false;
    bool closed_by_us_ = false;
    bool continue_sent_ = false; // "100 Continue" answered the current request's Expect
    bool tore_down_ = false;
    Clock::time_point created_;
    Clock::time_point last_rx_;
    // HTTP: bytes of a request not yet dispatched have arrived. request_since_ is the first of
    // them, or when the connection last went idle; handshake_timeout counts from there, so a
    // request trickled in byte by byte still has to be whole in time.
    bool request_pending_ = false;
    Clock::time_point request_since_;
    Clock::time_point close_deadline_{};
    size_t linger_left_ = 0; // bytes still dropped while Lingering
    double tokens_ = 0;
    Clock::time_point tokens_at_;
    int rate_drops_ = 0;
    Clock::time_point last_rate_notice_{};
};

} // namespace parley::ws
