#include "handshake.hpp"

#include "base64.hpp"
#include "http_request_head.hpp"
#include "sha1.hpp"

namespace parley::ws {

namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kSupportedVersion = "13";

} // namespace

HandshakeError check_handshake(const HandshakeRequest& request) {
    // Methods are case-sensitive (RFC 9110 section 9.1).
    if (request.method != "GET") return HandshakeError::MethodNotGet;
    if (!has_token(request.upgrade, "websocket")) return HandshakeError::NoUpgradeWebSocket;
    if (!has_token(request.connection, "upgrade")) return HandshakeError::NoConnectionUpgrade;
    if (request.version != kSupportedVersion) return HandshakeError::UnsupportedVersion;
    if (!is_valid_websocket_key(request.key)) return HandshakeError::BadKey;
    return HandshakeError::None;
}

HandshakeError check_handshake(const HttpRequestHead& head) {
    if (head.method() != "GET") return HandshakeError::MethodNotGet;
    if (head.version_major() == 1 && head.version_minor() < 1)
        return HandshakeError::HttpVersionTooOld;
    if (!head.has_token("upgrade", "websocket")) return HandshakeError::NoUpgradeWebSocket;
    if (!head.has_token("connection", "upgrade")) return HandshakeError::NoConnectionUpgrade;
    if (head.header_count("sec-websocket-version") != 1 ||
        head.header("sec-websocket-version") != kSupportedVersion)
        return HandshakeError::UnsupportedVersion;
    const auto key = head.header("sec-websocket-key");
    if (head.header_count("sec-websocket-key") != 1 || !is_valid_websocket_key(*key))
        return HandshakeError::BadKey;
    return HandshakeError::None;
}

int http_status(HandshakeError error) {
    switch (error) {
    case HandshakeError::None:
        return 0;
    case HandshakeError::MethodNotGet:
        return 405;
    case HandshakeError::UnsupportedVersion:
        return 426;
    case HandshakeError::HttpVersionTooOld:
    case HandshakeError::NoUpgradeWebSocket:
    case HandshakeError::NoConnectionUpgrade:
    case HandshakeError::BadKey:
        break;
    }
    return 400;
}

std::string_view extra_headers(HandshakeError error) {
    if (error == HandshakeError::MethodNotGet) return "Allow: GET\r\n";
    // RFC 6455 section 4.4: tell the client which versions we speak.
    if (error == HandshakeError::UnsupportedVersion) return "Sec-WebSocket-Version: 13\r\n";
    return {};
}

std::string_view describe(HandshakeError error) {
    switch (error) {
    case HandshakeError::None:
        return "ok";
    case HandshakeError::MethodNotGet:
        return "WebSocket upgrade requires GET";
    case HandshakeError::HttpVersionTooOld:
        return "WebSocket upgrade requires HTTP/1.1";
    case HandshakeError::NoUpgradeWebSocket:
        return "Upgrade header must list websocket";
    case HandshakeError::NoConnectionUpgrade:
        return "Connection header must list upgrade";
    case HandshakeError::UnsupportedVersion:
        return "unsupported Sec-WebSocket-Version (13 required)";
    case HandshakeError::BadKey:
        return "Sec-WebSocket-Key must be base64 of 16 bytes";
    }
    return "unknown handshake error";
}

bool is_valid_websocket_key(std::string_view key) {
    // 16 bytes are exactly 24 base64 characters, the last two "==".
    if (key.size() != 24) return false;
    const auto bytes = base64_decode(key, Base64Padding::Required);
    return bytes && bytes->size() == 16;
}

std::string accept_key(std::string_view key) {
    Sha1 hasher;
    hasher.update(key);
    hasher.update(kAcceptGuid);
    const Sha1Digest digest = hasher.finish();
    return base64_encode(std::span<const uint8_t>(digest));
}

std::string handshake_response(std::string_view key, std::string_view extra_header_lines) {
    std::string response = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: ";
    response += accept_key(key);
    response += "\r\n";
    response += extra_header_lines;
    response += "\r\n";
    return response;
}

} // namespace parley::ws
