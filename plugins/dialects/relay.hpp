// Pieces of the relay dialect that other code needs to agree on byte for byte: the string a
// client signs to prove its key, and the key hash (the same definition as `parley identities`
// and the relay plugin: lowercase hex(SHA-256(standard padded base64(raw Ed25519 public key)))).
#pragma once

#include "dialect.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace parley::dialect {

// The auth signature covers the UTF-8 bytes of this prefix followed by the challenge nonce
// exactly as the server sent it (its base64 text).
inline constexpr std::string_view kRelayAuthPrefix = "parley-relay-auth-v1\n";

std::string relay_auth_message(std::string_view nonce);
// Standard base64 with padding.
std::string relay_b64(std::string_view raw);
// Standard base64, padded or not (clients differ), into at most `max` bytes.
std::optional<std::string> relay_b64_decode(std::string_view in, size_t max);
std::string relay_key_hash(std::string_view raw_ed25519_pk);

// A client's answer to the challenge `nonce`: its Ed25519 public key and its signature over
// relay_auth_message(nonce), both base64 (padded or not). Shared by /ws and Socket.IO.
struct RelayProof {
    bool well_formed = false;  // both decode, to the sizes Ed25519 has
    bool signature_ok = false; // the signature verifies (only if well formed)
    std::string key_hash;      // of the presented key, whether or not it verifies
};
RelayProof relay_check_proof(std::string_view nonce, std::string_view pk_b64,
                             std::string_view sig_b64);

// Key hashes are compared in lowercase (Relay's clients send lowercase hex; case is not
// significant).
std::string relay_lower(std::string_view s);
// Whether the relay service allows `key_hash` (its `relay.allowed` command).
bool relay_allowed(const sdk::Host& host, parley_t_conn_id conn, const std::string& key_hash);
// Relay's positional event form {"args":[...]}: args[index] as a lowercase key hash, or "".
std::string relay_positional_hash(std::string_view msg, size_t index);

std::unique_ptr<Dialect> make_relay(const Env& env);

} // namespace parley::dialect
