// The client address a trusted reverse proxy reports. parley listens on loopback without TLS,
// so deployments put nginx or another proxy in front; without this every client would share
// the proxy's address (one per-IP limit, one ban for everyone).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace parley::ws {

// The address a proxy appended last to X-Forwarded-For ("client, proxy1, ..." — the rightmost
// entry is the one the trusted proxy saw connect), normalised (inet_ntop form); nullopt when
// it is missing or not an IPv4/IPv6 address.
std::optional<std::string> forwarded_client(std::string_view x_forwarded_for);

// An address in the normalised form of a peer address ("127.0.0.1", "::1"), or "" if invalid.
std::string normalised_address(std::string_view text);

} // namespace parley::ws
