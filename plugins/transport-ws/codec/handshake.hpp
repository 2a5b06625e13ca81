// The server's half of the RFC 6455 opening handshake (section 4.2): checking the upgrade
// request and computing Sec-WebSocket-Accept.
#pragma once

#include <string>
#include <string_view>

namespace parley::ws {

class HttpRequestHead;

enum class HandshakeError {
    None,
    MethodNotGet,        // 405, with Allow: GET
    HttpVersionTooOld,   // 400: HTTP/1.0 has no Upgrade
    NoUpgradeWebSocket,  // 400: Upgrade does not list "websocket"
    NoConnectionUpgrade, // 400: Connection does not list "upgrade"
    UnsupportedVersion,  // 426, with Sec-WebSocket-Version: 13
    BadKey,              // 400: Sec-WebSocket-Key is not base64 of 16 bytes, or repeated
};

// Header values as received; a Connection made of several fields must be joined with commas.
// Host is left to the HTTP layer (HttpRequestHead requires it for HTTP/1.1).
struct HandshakeRequest {
    std::string_view method;
    std::string_view upgrade;
    std::string_view connection;
    std::string_view version; // Sec-WebSocket-Version
    std::string_view key;     // Sec-WebSocket-Key
};

HandshakeError check_handshake(const HandshakeRequest& request);
// Also checks the HTTP version, reads Upgrade and Connection across repeated fields and
// rejects a repeated Sec-WebSocket-Key or Sec-WebSocket-Version.
HandshakeError check_handshake(const HttpRequestHead& head);

// 0 for None.
int http_status(HandshakeError error);
// Extra response header lines (each ending in CRLF) that the status calls for, or empty.
std::string_view extra_headers(HandshakeError error);
std::string_view describe(HandshakeError error);

// Whether `key` is the base64 of 16 bytes, as section 4.1 requires.
bool is_valid_websocket_key(std::string_view key);
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_key(std::string_view key);
// The whole "101 Switching Protocols" response head, ending with the empty line. Each of
// `extra_header_lines` (e.g. Sec-WebSocket-Protocol) must end in CRLF.
std::string handshake_response(std::string_view key, std::string_view extra_header_lines = {});

} // namespace parley::ws
