// TURN REST credentials for coturn's `use-auth-secret` mode (draft-uberti-behave-turn-rest):
// username "<unix expiry>:<opaque id>", password base64(HMAC-SHA1(secret, username)).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace parley::signaling {

struct TurnCredential {
    std::string username;
    std::string password;
};

// base64 (standard alphabet, padded) of HMAC-SHA1(secret, message).
std::string hmac_sha1_base64(std::string_view secret, std::string_view message);

// Credentials valid until `expiry_unix` (seconds) for the opaque `id` (no ':' allowed in it).
TurnCredential turn_credential(std::string_view secret, int64_t expiry_unix, std::string_view id);

// A fresh random opaque id (hex), so coturn's logs never carry a member's key hash.
std::string random_opaque_id();

} // namespace parley::signaling
