// Socket.IO for Relay's own app: Engine.IO v4 + Socket.IO v5 framing over WebSocket on the
// relay profile's listener (path /socket.io/), with the relay dialect's admission (challenge,
// Ed25519 auth, `relay.allowed`) carried as Socket.IO events. Relay's client starts with the
// WebSocket transport (transports: ["websocket", "polling"]), so long-polling is not served.
//
//   client -> GET /socket.io/?EIO=4&transport=websocket (upgrade)
//   server -> 0{"sid":"<conn id>","upgrades":[],"pingInterval":25000,"pingTimeout":20000,...}
//   client -> 40                          server -> 40{"sid":"<conn id>"}
//   server -> 42["challenge",{"nonce":"<base64>"}]
//   client -> 42["auth",{"publicKey":"<b64>","signature":"<b64>"}]  (as the relay dialect)
//   server -> 42["authed",{"keyHash":"<hex>"}] or 42["error",{"error":"authentication failed"}],
//             41 and close 1008
//   client -> 42["join_blob"] / 42["leave_blob"]   kernel room blob:<own key hash>
//   client -> 42["T",a1,a2,...]   kernel command call.T, args {"type":"T","args":[a1,a2,...]}
//   server <- kernel frames {"type":"T","args":[...]} become 42["T",...]; a frame without
//             "args" becomes 42["T",{the other fields}] (or 42["T"] when there are none)
//   server -> 2 every pingInterval        client -> 3
// The sid is the connection id, the same id the signaling service uses for members, so
// Relay's `id !== socket.id` checks hold.
#pragma once

#include "dialect.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace parley::dialect {

struct SocketIoOptions {
    int64_t auth_timeout_ms = 10000;
    int64_t ping_interval_ms = 25000;
    int64_t ping_timeout_ms = 20000;
    size_t max_payload = 1000000;
};

bool is_socketio_path(std::string_view path);

// The Socket.IO endpoint as a dialect of its own (make("socketio"), used by the fuzzer).
std::unique_ptr<Dialect> make_socketio(const Env& env);

// Checks the upgrade's query (EIO=4, transport=websocket); nullptr with `refusal` otherwise.
std::unique_ptr<Session> socketio_upgrade(const sdk::Host& host, const SocketIoOptions& opts,
                                          const HttpRequest& req, HttpReply& refusal);

// A service frame {"type":"T",...} as a Socket.IO EVENT packet ("42[...]"); empty if the
// frame is not such an object.
std::string socketio_encode_event(std::string_view json_frame);

// A Socket.IO EVENT payload ("[\"T\",a1,...]") as the service frame {"type":"T","args":[...]};
// `event` receives T. False when malformed.
bool socketio_decode_event(std::string_view payload, std::string& event, std::string& frame);

} // namespace parley::dialect
