// The signed federation envelope of authenticated mode (format in federation.cpp): encoding,
// decoding and the checks a received one goes through (signature, own echo, pairing, skew,
// replay window), without NATS, threads of the plugin or wall clock, so that the fuzzer
// (tests/fuzz/fuzz_nats_envelope.cpp) runs exactly what the plugin runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace parley::federation::envelope {

inline constexpr std::string_view kMagic = "PF1";
inline constexpr size_t kHeader = 3 + 1 + 32 + 8 + 8;
inline constexpr size_t kKey = 32; // Ed25519 public key
inline constexpr size_t kSig = 64; // Ed25519 signature
inline constexpr size_t kMaxOrigins = 10000;

struct Envelope {
    char kind = 0;
    std::string_view origin; // 32 bytes
    uint64_t seq = 0;
    int64_t ts = 0; // unix ms, as the origin claims
    std::string_view body;
    std::string_view sig;
    std::string_view signed_part;
};

// Views point into `d`. False when too short or without the magic.
bool parse(std::string_view d, Envelope& e);

// Everything but the signature: magic | kind | origin key | seq | ts | body.
std::string unsigned_envelope(char kind, std::string_view origin, uint64_t seq, int64_t ts_ms,
                              std::string_view body);
// Appends the signature over BLAKE2b-512("parley-fed-v1\0" | subject | "\0" | env).
void sign(std::string& env, std::string_view subject, const unsigned char* secret_key);
// The signature is by e.origin over the subject the envelope arrived on.
bool verify(std::string_view subject, const Envelope& e);

// |now - ts| <= max_skew, without overflow for any ts an origin may sign.
bool within_skew(int64_t now_ms, int64_t ts_ms, int64_t max_skew_ms);

// The last dot-separated token of a subject (the room hash), or "" without a dot.
std::string_view subject_hash(std::string_view subject);
// 128-bit BLAKE2b of the room id, keyed by the park's salt when it has one; hex.
std::string room_hash(std::string_view room, std::string_view salt);

// Pairing proofs (see federation.cpp).
std::string token_id(std::string_view digest);
std::string hmac(std::string_view key, std::initializer_list<std::string_view> parts);
bool same(std::string_view a, std::string_view b); // constant time for equal sizes

// Pairing bodies (format in federation.cpp); views point into the body. False when too short.
struct Claim {
    std::string_view token_id, proof, bench; // 16 | 32 | at least 1
};
struct Approve {
    std::string_view claimer, proof, bench; // 32 | 32 | any
};
struct Reject {
    std::string_view claimer, token_id, reason; // 32 | 16 | any
};
bool parse_claim(std::string_view body, Claim& c);
bool parse_approve(std::string_view body, Approve& a);
bool parse_reject(std::string_view body, Reject& r);
// HMACs under the token's SHA-256 `digest`, bound to the keys and the room hash.
std::string claim_proof(std::string_view digest, std::string_view claimer_key,
                        std::string_view hash);
std::string approve_proof(std::string_view digest, std::string_view approver_key,
                          std::string_view claimer_key, std::string_view hash);

// Replay window per origin: the highest sequence seen and a bitmap of the 64 before it.
struct Window {
    uint64_t max = 0;
    uint64_t bits = 0;
    bool accept(uint64_t seq);
};

enum class Verdict { ok, malformed, own, unpaired, bad_signature, stale, replay };
const char* text(Verdict v);

// The receiving side of one bench. Thread-safe (its windows have their own lock); `paired`
// runs without it.
class Receiver {
  public:
    // Whether `origin` is paired for the room whose subject hash is `hash`.
    using Paired = std::function<bool(std::string_view hash, std::string_view origin)>;

    Receiver(std::string self_key, int64_t max_skew_ms, size_t max_origins = kMaxOrigins)
        : self_(std::move(self_key)), max_skew_(max_skew_ms), max_origins_(max_origins) {}

    // A frame on <prefix>.room.<hash>: kind 'M', from an origin paired for that hash.
    Verdict room(std::string_view subject, std::string_view data, int64_t now_ms,
                 const Paired& paired, Envelope& e);
    // A pairing message on <prefix>.pair.<hash>: any kind, any origin (the body is the proof).
    Verdict pair(std::string_view subject, std::string_view data, int64_t now_ms, Envelope& e);

  private:
    // Frames reach this only from paired origins, whose windows are never evicted (an attacker
    // flooding pairing subjects with fresh keys cannot make a paired bench's frames replayable);
    // pairing messages from any key get evictable windows (their tokens are single use anyway).
    Verdict fresh(const Envelope& e, int64_t now_ms, bool paired);

    const std::string self_;
    const int64_t max_skew_;
    const size_t max_origins_;
    std::mutex mu_;
    std::unordered_map<std::string, Window> windows_;      // paired origins' frames
    std::unordered_map<std::string, Window> pair_windows_; // pairing messages, any origin
};

} // namespace parley::federation::envelope
