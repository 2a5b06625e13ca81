// Pure helpers of the relay profile, shared by the relay plugin, `parley identities` and the
// unit tests: key hashes, obfuscated expiry, the request-proof string, allowlist parsing.
// Nothing here logs or keeps state.
#pragma once

#include "json_escape.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace parley::relay {

inline constexpr size_t kBlobSize = 65536; // Relay's fixed blob size
inline constexpr int64_t kDayMs = 86400LL * 1000;
inline constexpr int64_t kExpiryBaseMs = 72LL * 3600 * 1000; // after the send day's midnight
inline constexpr uint32_t kExpiryJitterMinutes = 1440;       // inclusive upper bound

// Initialises libsodium (idempotent). Returns false if it cannot be used.
bool crypto_init();

// Standard base64 with padding (what Relay, Node's Buffer and btoa produce).
std::string b64_encode(std::string_view raw);
// Accepts standard base64 with or without padding; nullopt on anything else.
std::optional<std::string> b64_decode(std::string_view text);
std::string hex_encode(std::string_view raw);
std::string sha256_hex(std::string_view data);

// The key hash of a member: hex(SHA-256(base64(raw 32-byte Ed25519 public key))), lowercase.
std::string key_hash_of_public_key(std::string_view raw_ed25519_pk);
// Same, from the base64 text as sent (it is re-encoded canonically first, so padding-free and
// padded spellings of one key give one hash). nullopt if it is not a 32-byte key.
std::optional<std::string> key_hash_of_b64(std::string_view b64_pk);
// 64 lowercase hex digits.
bool is_key_hash(std::string_view s);

// Obfuscated expiry: UTC midnight of the day containing `now_ms` + 72 h + `jitter_minutes`.
int64_t utc_midnight_ms(int64_t now_ms);
int64_t expiry_ms(int64_t now_ms, uint32_t jitter_minutes);
// The same with jitter drawn uniformly from 0..1440 minutes (libsodium randombytes_uniform).
int64_t random_expiry_ms(int64_t now_ms);
// "2024-05-01T13:07:00.000Z".
std::string iso_utc_ms(int64_t ms);

// The string a request proof signs:
//   METHOD "\n" PATH ["?" QUERY] "\n" TIMESTAMP "\n" hex(SHA-256(body))
// "?" QUERY is present only when the raw query is non-empty; QUERY is byte-for-byte what the
// client sent (not re-encoded).
std::string proof_message(std::string_view method, std::string_view path, std::string_view query,
                          std::string_view timestamp, std::string_view body);
// Ed25519 detached verify. pk is 32 raw bytes, sig 64 raw bytes.
bool verify_ed25519(std::string_view pk, std::string_view sig, std::string_view message);

// Value of `name` in an application/x-www-form-urlencoded query, percent-decoded; nullopt when
// absent (the first occurrence wins).
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// Parses an allowlist file. Accepted shapes (see docs/relay-identities.md):
//   {"keyHashes": ["<hex>", ...]}                parley's allowlist.json
//   ["<hex>", ...]                                a bare array
//   [{"keyHash": "<hex>", ...}, ...]              array of records (Relay-style seed)
//   {"allowedKeys"|"allowed"|"keys"|"hashes"|"members": [ ...either array form... ]}
// Hashes are lowercased; each must be 64 hex digits. Records may instead carry a base64 Ed25519
// "publicKey" / "signingPublicKey", from which the hash is computed. nullopt + `error` on failure.
std::optional<std::set<std::string>> parse_allowlist(std::string_view json, std::string& error);

using parley::json_escape;

} // namespace parley::relay
