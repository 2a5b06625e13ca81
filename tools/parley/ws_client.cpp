#include "ws_client.hpp"

#include "base64.hpp"
#include "handshake.hpp"
#include "ws_codec.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace parley::cli {

namespace {

constexpr size_t kMaxHead = 16 * 1024;
constexpr size_t kMaxBody = 1 << 20;
constexpr auto kWriteTimeout = std::chrono::seconds(10);

// Waits for `events` on fd; false on timeout or error.
bool wait_fd(int fd, short events, Deadline deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, poll_timeout_ms(deadline));
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) return false;
    }
}

bool send_all(int fd, std::string_view bytes, Deadline deadline) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes.remove_prefix(size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline))
            continue;
        return false;
    }
    return true;
}

// Reads into `buf` until it holds `need` bytes, EOF or the deadline. Returns false on EOF,
// error or timeout (what arrived stays in buf).
bool recv_some(int fd, std::string& buf, Deadline deadline, std::string& err) {
    char tmp[16384];
    for (;;) {
        ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            buf.append(tmp, size_t(n));
            return true;
        }
        if (n == 0) {
            err = "connection closed by the server";
            return false;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            err = std::string("read failed: ") + std::strerror(errno);
            return false;
        }
        if (!wait_fd(fd, POLLIN, deadline)) {
            err = "timed out waiting for the server";
            return false;
        }
    }
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Whether the comma-separated header value lists `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        auto comma = value.find(',');
        if (lower(trim(value.substr(0, comma))) == token) return true;
        if (comma == value.npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

struct ResponseHead {
    int status = 0;
    std::map<std::string, std::string> headers; // lower-case names; repeats joined with ", "
    std::string rest;                           // bytes after the head
};

std::optional<ResponseHead> read_response_head(int fd, Deadline deadline, std::string& err) {
    std::string buf;
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == buf.npos) {
        if (buf.size() > kMaxHead) {
            err = "response head too large";
            return std::nullopt;
        }
        if (!recv_some(fd, buf, deadline, err)) return std::nullopt;
    }
    ResponseHead head;
    head.rest = buf.substr(end + 4);
    std::string_view text(buf.data(), end);
    auto eol = text.find("\r\n");
    std::string_view status_line = text.substr(0, eol);
    // "HTTP/1.1 101 Switching Protocols"
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ' ||
        !std::isdigit(static_cast<unsigned char>(status_line[9])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[10])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[11]))) {
        err = "not an HTTP response";
        return std::nullopt;
    }
    head.status =
        (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
    text = eol == text.npos ? std::string_view() : text.substr(eol + 2);
    while (!text.empty()) {
        eol = text.find("\r\n");
        auto line = text.substr(0, eol);
        text = eol == text.npos ? std::string_view() : text.substr(eol + 2);
        auto colon = line.find(':');
        if (colon == line.npos || colon == 0) {
            err = "malformed response header";
            return std::nullopt;
        }
        auto& v = head.headers[lower(line.substr(0, colon))];
        if (!v.empty()) v += ", ";
        v += trim(line.substr(colon + 1));
    }
    return head;
}

// Reads the body that follows `head` (Content-Length, chunked or until EOF), at most kMaxBody.
bool read_body(int fd, ResponseHead& head, Deadline deadline, std::string& body, std::string& err) {
    std::string buf = std::move(head.rest);
    auto te = head.headers.find("transfer-encoding");
    auto cl = head.headers.find("content-length");
    if (te != head.headers.end() && has_token(te->second, "chunked")) {
        size_t pos = 0;
        for (;;) {
            size_t eol;
            while ((eol = buf.find("\r\n", pos)) == buf.npos)
                if (buf.size() > kMaxBody || !recv_some(fd, buf, deadline, err)) return false;
            size_t size = 0;
            auto line = std::string_view(buf).substr(pos, eol - pos);
            line = line.substr(0, line.find(';'));
            if (line.empty() || line.size() > 8) return err = "bad chunk size", false;
            for (char c : line) {
                int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                        : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                    : -1;
                if (d < 0) return err = "bad chunk size", false;
                size = size * 16 + size_t(d);
            }
            if (body.size() + size > kMaxBody) return err = "response too large", false;
            while (buf.size() < eol + 2 + size + 2)
                if (!recv_some(fd, buf, deadline, err)) return false;
            if (size == 0) return true; // trailers, if any, are ignored
            body.append(buf, eol + 2, size);
            pos = eol + 2 + size + 2;
        }
    }
    if (cl != head.headers.end()) {
        size_t want = 0;
        for (char c : cl->second) {
            if (!std::isdigit(static_cast<unsigned char>(c)) || want > kMaxBody)
                return err = "bad Content-Length", false;
            want = want * 10 + size_t(c - '0');
        }
        if (want > kMaxBody) return err = "response too large", false;
        while (buf.size() < want)
            if (!recv_some(fd, buf, deadline, err)) return false;
        body = buf.substr(0, want);
        return true;
    }
    std::string ignored;
    while (buf.size() <= kMaxBody && recv_some(fd, buf, deadline, ignored)) {
    }
    if (buf.size() > kMaxBody) return err = "response too large", false;
    body = std::move(buf);
    return true;
}

} // namespace

int poll_timeout_ms(Deadline deadline) {
    if (deadline == kNoDeadline) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return int(std::clamp<int64_t>(left, 0, 24 * 3600 * 1000));
}

// ------------------------------------------------------------------------------------- Fd

Fd& Fd::operator=(Fd&& o) noexcept {
    if (this != &o) {
        reset();
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}

void Fd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

// ------------------------------------------------------------------------------ TCP, HTTP

Fd tcp_connect(const std::string& host, uint16_t port, Deadline deadline, std::string& err) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string where = host_header(host, port);
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        err = "cannot resolve " + host + ": " + ::gai_strerror(rc);
        return {};
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(res, &::freeaddrinfo);
    err = "cannot connect to " + where;
    for (auto* ai = res; ai; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol));
        if (!fd) continue;
        int r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            if (!wait_fd(fd.get(), POLLOUT, deadline)) {
                err = "timed out connecting to " + where;
                continue;
            }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
            r = soerr ? -1 : 0;
            errno = soerr;
        }
        if (r < 0) {
            err = "cannot connect to " + where + ": " + std::strerror(errno);
            continue;
        }
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        err.clear();
        return fd;
    }
    return {};
}

std::string host_header(const std::string& host, uint16_t port) {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != 80 && port != 0) h += ":" + std::to_string(port);
    return h;
}

std::optional<HttpResponse> http_get(const std::string& host, uint16_t port,
                                     const std::string& target, Deadline deadline,
                                     std::string& err) {
    Fd fd = tcp_connect(host, port, deadline, err);
    if (!fd) return std::nullopt;
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_header(host, port) +
                      "\r\nAccept: application/json\r\nUser-Agent: parley-chat\r\n"
                      "Connection: close\r\n\r\n";
    if (!send_all(fd.get(), req, deadline)) {
        err = "cannot send the request";
        return std::nullopt;
    }
    auto head = read_response_head(fd.get(), deadline, err);
    if (!head) return std::nullopt;
    HttpResponse out;
    out.status = head->status;
    if (!read_body(fd.get(), *head, deadline, out.body, err)) return std::nullopt;
    return out;
}

// -------------------------------------------------------------------------- frame reader

bool ServerFrameReader::fail(std::deque<Event>& out, uint16_t code, std::string_view why) {
    finished_ = true;
    buf_.clear();
    message_.clear();
    out.push_back({Kind::Error, false, std::string(why), code});
    return false;
}

void ServerFrameReader::feed(std::string_view data, std::deque<Event>& out) {
    if (finished_) return;
    buf_.append(data);
    size_t pos = 0;
    while (!finished_) {
        const size_t avail = buf_.size() - pos;
        if (avail < 2) break;
        const auto* p = reinterpret_cast<const uint8_t*>(buf_.data() + pos);
        const bool fin = p[0] & 0x80;
        const uint8_t op = p[0] & 0x0F;
        if (p[0] & 0x70) return void(fail(out, 1002, "reserved bits set"));
        if (p[1] & 0x80) return void(fail(out, 1002, "masked frame from the server"));
        if (!(op <= 2 || (op >= 8 && op <= 10))) return void(fail(out, 1002, "unknown opcode"));
        const bool control = op >= 8;
        uint64_t len = p[1] & 0x7F;
        size_t hlen = 2;
        if (len == 126) {
            if (avail < 4) break;
            hlen = 4;
            len = uint64_t(p[2]) << 8 | p[3];
            if (len < 126) return void(fail(out, 1002, "non-minimal frame length"));
        } else if (len == 127) {
            if (avail < 10) break;
            hlen = 10;
            len = 0;
            for (int i = 2; i < 10; ++i)
                len = len << 8 | p[i];
            if (len >> 63) return void(fail(out, 1002, "frame length out of range"));
            if (len <= 0xFFFF) return void(fail(out, 1002, "non-minimal frame length"));
        }
        if (control) {
            if (!fin) return void(fail(out, 1002, "fragmented control frame"));
            if (len > ws::kMaxControlPayload)
                return void(fail(out, 1002, "control frame too long"));
        } else {
            if (op == 0 && !in_message_)
                return void(fail(out, 1002, "continuation frame outside a message"));
            if (op != 0 && in_message_)
                return void(fail(out, 1002, "new message before the last one ended"));
            if ((op == 0 ? message_.size() : 0) + len > max_message_)
                return void(fail(out, 1009, "message too big"));
        }
        if (avail - hlen < len) break; // wait for the rest of the payload
        std::string_view payload(buf_.data() + pos + hlen, size_t(len));
        pos += hlen + size_t(len);
        switch (op) {
        case 0x9:
            out.push_back({Kind::Ping, false, std::string(payload), 0});
            break;
        case 0xA:
            out.push_back({Kind::Pong, false, std::string(payload), 0});
            break;
        case 0x8: {
            if (payload.size() == 1) return void(fail(out, 1002, "one-byte close payload"));
            uint16_t code = 1005;
            std::string_view reason;
            if (payload.size() >= 2) {
                code = uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1]));
                reason = payload.substr(2);
                if (!ws::is_valid_close_code(code))
                    return void(fail(out, 1002, "invalid close code"));
                if (!ws::is_valid_utf8(reason))
                    return void(fail(out, 1007, "close reason is not UTF-8"));
            }
            finished_ = true;
            out.push_back({Kind::Close, false, std::string(reason), code});
            break;
        }
        default: { // data
            if (op != 0) {
                in_message_ = true;
                message_binary_ = op == 2;
                message_.clear();
                utf8_.reset();
            }
            message_.append(payload);
            if (!message_binary_ && utf8_.feed(payload) == ws::Utf8Status::Invalid)
                return void(fail(out, 1007, "text message is not UTF-8"));
            if (fin) {
                if (!message_binary_ && utf8_.status() != ws::Utf8Status::Complete)
                    return void(fail(out, 1007, "text message is not UTF-8"));
                in_message_ = false;
                out.push_back({Kind::Message, message_binary_, std::move(message_), 0});
                message_.clear();
            }
        }
        }
    }
    if (!finished_) buf_.erase(0, pos);
}

std::string client_frame(uint8_t opcode, std::string_view payload) {
    std::string f;
    f.reserve(payload.size() + 14);
    f += char(0x80 | (opcode & 0x0F));
    const uint64_t n = payload.size();
    if (n < 126) {
        f += char(0x80 | n);
    } else if (n <= 0xFFFF) {
        f += char(0x80 | 126);
        f += char(n >> 8);
        f += char(n & 0xFF);
    } else {
        f += char(0x80 | 127);
        for (int i = 7; i >= 0; --i)
            f += char((n >> (8 * i)) & 0xFF);
    }
    std::array<uint8_t, 4> mask;
    randombytes_buf(mask.data(), mask.size()); // section 5.3: unpredictable, fresh per frame
    f.append(reinterpret_cast<const char*>(mask.data()), mask.size());
    const size_t at = f.size();
    f.resize(at + payload.size());
    ws::apply_mask(reinterpret_cast<uint8_t*>(f.data() + at),
                   reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), mask);
    return f;
}

// ----------------------------------------------------------------------------- WsClient

bool WsClient::connect(const std::string& host, uint16_t port, const std::string& target,
                       Deadline deadline, std::string& err) {
    state_ = State::Connecting;
    sock_ = tcp_connect(host, port, deadline, err);
    if (!sock_) {
        state_ = State::Closed;
        return false;
    }
    std::array<uint8_t, 16> nonce;
    randombytes_buf(nonce.data(), nonce.size());
    const std::string key = ws::base64_encode(std::span<const uint8_t>(nonce));
    // No Origin header: parleyd accepts native clients without one unless require_origin is set.
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_header(host, port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                      "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: parley-chat\r\n\r\n";
    auto fail = [&](std::string why) {
        err = std::move(why);
        sock_.reset();
        state_ = State::Closed;
        return false;
    };
    if (!send_all(sock_.get(), req, deadline)) return fail("cannot send the upgrade request");
    auto head = read_response_head(sock_.get(), deadline, err);
    if (!head) return fail("WebSocket handshake failed: " + err);
    if (head->status != 101) {
        std::string body, ignored;
        read_body(sock_.get(), *head, std::min(deadline, Clock::now() + std::chrono::seconds(2)),
                  body, ignored);
        body = body.substr(0, std::min(body.find('\n'), size_t(200)));
        return fail("the server refused the WebSocket upgrade: HTTP " +
                    std::to_string(head->status) + (body.empty() ? "" : " (" + body + ")"));
    }
    auto hdr = [&](const char* name) -> std::string {
        auto it = head->headers.find(name);
        return it == head->headers.end() ? std::string() : it->second;
    };
    if (lower(trim(hdr("upgrade"))) != "websocket" || !has_token(hdr("connection"), "upgrade"))
        return fail("WebSocket handshake failed: no Upgrade: websocket in the response");
    if (hdr("sec-websocket-accept") != ws::accept_key(key))
        return fail("WebSocket handshake failed: wrong Sec-WebSocket-Accept");
    // We asked for neither: a server that picks one anyway is not speaking our protocol.
    if (!hdr("sec-websocket-extensions").empty() || !hdr("sec-websocket-protocol").empty())
        return fail("WebSocket handshake failed: unrequested extension or subprotocol");
    pending_ = std::move(head->rest);
    state_ = State::Open;
    close_code_ = 1006;
    close_reason_.clear();
    return true;
}

bool WsClient::write_all(std::string_view bytes) {
    if (!sock_) return false;
    if (send_all(sock_.get(), bytes, Clock::now() + kWriteTimeout)) return true;
    close_code_ = 1006;
    close_reason_ = "write failed or timed out";
    abort();
    return false;
}

bool WsClient::send_text(std::string_view text) {
    if (state_ != State::Open) return false;
    return write_all(client_frame(0x1, text));
}

void WsClient::close(uint16_t code, std::string_view reason) {
    if (state_ != State::Open) return;
    std::string payload;
    payload += char(code >> 8);
    payload += char(code & 0xFF);
    payload += reason.substr(0, ws::kMaxCloseReason);
    state_ = State::Closing;
    write_all(client_frame(0x8, payload));
}

void WsClient::abort() {
    sock_.reset();
    state_ = State::Closed;
}

void WsClient::handle(ServerFrameReader::Event& ev, std::vector<std::string>& out) {
    using Kind = ServerFrameReader::Kind;
    switch (ev.kind) {
    case Kind::Message:
        if (!ev.binary) out.push_back(std::move(ev.payload)); // the link protocol is all text
        break;
    case Kind::Ping:
        if (state_ == State::Open) write_all(client_frame(0xA, ev.payload));
        break;
    case Kind::Pong:
        break;
    case Kind::Close: {
        if (state_ == State::Open) { // echo the code (section 5.5.1), then we are done
            std::string payload;
            if (ev.code != 1005) {
                payload += char(ev.code >> 8);
                payload += char(ev.code & 0xFF);
            }
            write_all(client_frame(0x8, payload));
        }
        close_code_ = ev.code;
        close_reason_ = std::move(ev.payload);
        if (sock_) ::shutdown(sock_.get(), SHUT_WR);
        abort();
        break;
    }
    case Kind::Error: {
        if (state_ == State::Open) {
            auto frame = ws::close_frame(ev.code, ev.payload);
            // close_frame() builds an unmasked server frame; resend its payload masked.
            auto bytes = frame.view();
            write_all(client_frame(0x8, bytes.substr(2)));
        }
        close_code_ = ev.code;
        close_reason_ = "protocol error: " + ev.payload;
        abort();
        break;
    }
    }
}

std::vector<std::string> WsClient::read_available() {
    std::vector<std::string> out;
    std::deque<ServerFrameReader::Event> events;
    if (!pending_.empty()) {
        reader_.feed(pending_, events);
        pending_.clear();
    }
    char tmp[65536];
    while (sock_ && !reader_.finished()) {
        ssize_t n = ::recv(sock_.get(), tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            reader_.feed(std::string_view(tmp, size_t(n)), events);
            if (size_t(n) < sizeof tmp) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        // EOF or a reset: whatever was parsed still counts, then the connection is gone.
        if (state_ != State::Closed && close_reason_.empty())
            close_reason_ = n == 0 ? "connection closed without a close frame"
                                   : std::string("connection error: ") + std::strerror(errno);
        sock_.reset();
        break;
    }
    for (auto& ev : events) {
        if (state_ == State::Closed) break;
        handle(ev, out);
    }
    if (!sock_) state_ = State::Closed;
    return out;
}

} // namespace parley::cli
