// Link-room cryptography for `parley chat`, byte for byte what the web client does
// (plugins/transport-ws/web/link/crypto.js and names.js; vectors in tests/browser/vectors/):
//
//   key        32 bytes, base64url without padding in the invite link's fragment
//   iv         12 random bytes per message, base64url without padding
//   ciphertext AES-256-GCM, no AAD, the 16-byte tag appended (WebCrypto layout), base64url
//   plaintext  UTF-8 JSON.stringify({text, name, id, ts})
//
// AES-GCM comes from OpenSSL's EVP interface (libcrypto), not libsodium: libsodium only offers
// AES-256-GCM on CPUs with AES-NI and PCLMUL (crypto_aead_aes256gcm_is_available()), so a
// libsodium build would refuse to run on some VMs and non-x86 machines. OpenSSL uses the same
// hardware instructions when present and constant-time software otherwise. libsodium still
// provides the randomness and the locked, guarded memory for the key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace parley::cli::link {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kIvBytes = 12;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kMaxText = 4000; // UTF-16 code units, as JavaScript's String.length
inline constexpr size_t kMaxName = 64;   // UTF-16 code units

using Iv = std::array<uint8_t, kIvBytes>;

// Calls sodium_init(); false if libsodium cannot start (no entropy source).
bool init();

// The room key in libsodium's guarded, locked memory, wiped when destroyed. Move-only; it has
// no accessor that turns the key back into text.
class RoomKey {
  public:
    // nullopt unless `b64url` is the base64url (padding tolerated) of exactly 32 bytes.
    static std::optional<RoomKey> from_base64url(std::string_view b64url);
    static std::optional<RoomKey> from_bytes(std::span<const uint8_t> bytes);

    const uint8_t* data() const { return bytes_.get(); }

  private:
    struct Free {
        void operator()(uint8_t* p) const;
    };
    RoomKey() = default;
    std::unique_ptr<uint8_t, Free> bytes_;
};

struct Sealed {
    std::string iv;         // base64url
    std::string ciphertext; // base64url
};

// AES-256-GCM. `iv` is for test vectors only: reusing an IV with the same key breaks GCM, so
// real callers use the overload that draws a random one.
Sealed encrypt(const RoomKey& key, std::string_view plaintext, const Iv& iv);
Sealed encrypt(const RoomKey& key, std::string_view plaintext);
// nullopt on a malformed iv or ciphertext, a wrong key, tampering or a plaintext that is not
// UTF-8 (the browser's TextDecoder is fatal). A leading byte order mark is dropped, as
// TextDecoder does.
std::optional<std::string> decrypt(const RoomKey& key, std::string_view iv_b64url,
                                   std::string_view ciphertext_b64url);

struct ChatMessage {
    std::string text;
    std::string name;
    std::string id; // [A-Za-z0-9_-]{8,64}; 16 characters (12 random bytes) when we make it
    int64_t ts = 0; // milliseconds since the epoch, sender's clock
};

// JSON.stringify({text, name, id, ts}) of a message, the exact bytes the browser seals.
std::string message_json(const ChatMessage& msg);

// Builds a message like the browser's sealMessage: text must be valid UTF-8 of 1..4000 UTF-16
// units (nullopt otherwise), name is cut to 64 units, id is random and ts is now.
struct SealedMessage {
    Sealed wire;
    ChatMessage msg;
};
std::optional<SealedMessage> seal_message(const RoomKey& key, std::string_view text,
                                          std::string_view name);

// Decrypts and validates like the browser's openMessage: a JSON object with a string text of at
// most 4000 units, an id matching [A-Za-z0-9_-]{8,64} and a finite number ts; name is optional
// (else empty) and cut to 64 units. nullopt for anything else.
std::optional<ChatMessage> open_message(const RoomKey& key, std::string_view iv_b64url,
                                        std::string_view ciphertext_b64url);

// --- display names (names.js)

uint32_t fnv1a32(std::string_view bytes);
// "Brave Otter": ADJECTIVES[h % 32] + " " + ANIMALS[(h >> 8) % 32].
std::string display_name(std::string_view client_id);
// Index of the .hue-N colour class: (h >> 16) % 12.
unsigned hue_index(std::string_view client_id);

// --- helpers shared with the chat command

// [a-z0-9]{len}, every character equally likely.
std::string random_client_id(size_t len = 8);
// JavaScript's String.length of a UTF-8 text (code points above U+FFFF count twice).
size_t utf16_length(std::string_view utf8);
// The longest prefix of `utf8` that is at most `units` UTF-16 code units long.
std::string_view utf16_prefix(std::string_view utf8, size_t units);
// A JSON string literal exactly as JSON.stringify writes it (UTF-8 passes through).
std::string json_quote(std::string_view utf8);

} // namespace parley::cli::link
