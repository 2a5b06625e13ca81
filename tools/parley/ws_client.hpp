// A small blocking-with-deadlines HTTP/1.1 + WebSocket (RFC 6455) client for `parley chat`:
// plain TCP only (TLS belongs to the reverse proxy in front of parleyd), one connection, text
// messages. The client side of what plugins/transport-ws/codec does for the server: random
// Sec-WebSocket-Key and a checked Sec-WebSocket-Accept, every frame masked with a fresh random
// key, pings answered, fragmented server messages reassembled (and UTF-8 checked), and the
// closing handshake done both ways.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "utf8.hpp"

namespace parley::cli {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

// Milliseconds until `deadline` for poll(): -1 for kNoDeadline, 0 once it has passed.
int poll_timeout_ms(Deadline deadline);

// An open file descriptor, closed when destroyed.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset();

  private:
    int fd_ = -1;
};

// A non-blocking TCP connection to host:port (names resolved, every address tried).
Fd tcp_connect(const std::string& host, uint16_t port, Deadline deadline, std::string& err);

// "host" or "host:port" for a Host header (IPv6 literals in brackets, port 80 left out).
std::string host_header(const std::string& host, uint16_t port);

struct HttpResponse {
    int status = 0;
    std::string body;
};
// GET `target` over a fresh connection (Connection: close). nullopt on a network or protocol
// failure, described in `err`; any HTTP status is a response.
std::optional<HttpResponse> http_get(const std::string& host, uint16_t port,
                                     const std::string& target, Deadline deadline,
                                     std::string& err);

// Incremental parser for frames a server sends (RFC 6455 section 5): unmasked, RSV bits 0,
// known opcodes, control frames whole and at most 125 bytes, minimal length encodings.
class ServerFrameReader {
  public:
    enum class Kind { Message, Ping, Pong, Close, Error };
    struct Event {
        Kind kind = Kind::Message;
        bool binary = false;  // Message: a Binary message (else Text, UTF-8 checked)
        std::string payload;  // Message, Ping, Pong; Close: the reason
        uint16_t code = 1005; // Close: the peer's code (1005 when absent); Error: code to send
    };

    explicit ServerFrameReader(uint64_t max_message = 16u << 20) : max_message_(max_message) {}

    // Appends complete events for the bytes in `data` to `out`. After a Close or an Error
    // event, further input is ignored.
    void feed(std::string_view data, std::deque<Event>& out);
    bool finished() const { return finished_; }

  private:
    bool fail(std::deque<Event>& out, uint16_t code, std::string_view why);

    uint64_t max_message_;
    std::string buf_;
    bool finished_ = false;
    bool in_message_ = false;
    bool message_binary_ = false;
    std::string message_;
    ws::Utf8Validator utf8_;
};

// Builds one masked client frame (FIN set).
std::string client_frame(uint8_t opcode, std::string_view payload);

class WsClient {
  public:
    enum class State { Connecting, Open, Closing, Closed };

    // Connects and completes the opening handshake for `target` ("/ws/room?client=x").
    bool connect(const std::string& host, uint16_t port, const std::string& target,
                 Deadline deadline, std::string& err);

    int fd() const { return sock_.get(); }
    State state() const { return state_; }

    // Sends one text message; false if the connection is not open or the write failed.
    bool send_text(std::string_view text);

    // Call when fd() is readable. Returns the text messages that completed; answers pings and
    // the peer's Close by itself. state() tells whether the connection is still open.
    std::vector<std::string> read_available();

    // Starts the closing handshake (Open -> Closing). Keep calling read_available() until
    // Closed, or give up with abort() after a grace period.
    void close(uint16_t code = 1000, std::string_view reason = {});
    void abort();

    // Why the connection ended: the peer's close code and reason, or an error text.
    uint16_t close_code() const { return close_code_; }
    const std::string& close_reason() const { return close_reason_; }

  private:
    bool write_all(std::string_view bytes);
    void handle(ServerFrameReader::Event& ev, std::vector<std::string>& out);

    Fd sock_;
    State state_ = State::Closed;
    ServerFrameReader reader_;
    std::string pending_; // bytes that arrived with the handshake response
    uint16_t close_code_ = 1006;
    std::string close_reason_;
};

} // namespace parley::cli
