// Authenticated federation envelopes; see federation_envelope.hpp and federation.cpp.
#include "federation_envelope.hpp"

#include <sodium.h>

namespace parley::federation::envelope {

namespace {

void put64(std::string& s, uint64_t v) {
    for (int i = 7; i >= 0; --i)
        s.push_back(char((v >> (8 * i)) & 0xff));
}

uint64_t get64(const char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | uint8_t(p[i]);
    return v;
}

void prehash(unsigned char out[64], std::string_view subject, std::string_view signed_part) {
    static constexpr std::string_view domain{"parley-fed-v1\0", 14};
    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 64);
    auto upd = [&](std::string_view s) {
        crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(s.data()), s.size());
    };
    upd(domain);
    upd(subject);
    upd(std::string_view("\0", 1));
    upd(signed_part);
    crypto_generichash_final(&st, out, 64);
}

} // namespace

static_assert(kSig == crypto_sign_BYTES && kKey == crypto_sign_PUBLICKEYBYTES);

bool parse(std::string_view d, Envelope& e) {
    if (d.size() < kHeader + kSig || d.substr(0, 3) != kMagic) return false;
    e.kind = d[3];
    e.origin = d.substr(4, kKey);
    e.seq = get64(d.data() + 36);
    e.ts = int64_t(get64(d.data() + 44));
    e.body = d.substr(kHeader, d.size() - kHeader - kSig);
    e.sig = d.substr(d.size() - kSig);
    e.signed_part = d.substr(0, d.size() - kSig);
    return true;
}

std::string unsigned_envelope(char kind, std::string_view origin, uint64_t seq, int64_t ts_ms,
                              std::string_view body) {
    std::string env;
    env.reserve(kHeader + body.size() + kSig);
    env.append(kMagic);
    env.push_back(kind);
    env.append(origin);
    put64(env, seq);
    put64(env, uint64_t(ts_ms));
    env.append(body);
    return env;
}

void sign(std::string& env, std::string_view subject, const unsigned char* secret_key) {
    unsigned char h[64], sig[kSig];
    prehash(h, subject, env);
    crypto_sign_detached(sig, nullptr, h, sizeof h, secret_key);
    env.append(reinterpret_cast<char*>(sig), sizeof sig);
}

bool verify(std::string_view subject, const Envelope& e) {
    if (e.origin.size() != kKey || e.sig.size() != kSig) return false;
    unsigned char h[64];
    prehash(h, subject, e.signed_part);
    return crypto_sign_verify_detached(
               reinterpret_cast<const unsigned char*>(e.sig.data()), h, sizeof h,
               reinterpret_cast<const unsigned char*>(e.origin.data())) == 0;
}

bool within_skew(int64_t now_ms, int64_t ts_ms, int64_t max_skew_ms) {
    // The distance in uint64_t: now - ts can overflow int64_t for a signed INT64_MIN.
    uint64_t d =
        now_ms >= ts_ms ? uint64_t(now_ms) - uint64_t(ts_ms) : uint64_t(ts_ms) - uint64_t(now_ms);
    return max_skew_ms >= 0 && d <= uint64_t(max_skew_ms);
}

std::string_view subject_hash(std::string_view subject) {
    auto dot = subject.rfind('.');
    return dot == subject.npos ? std::string_view{} : subject.substr(dot + 1);
}

std::string room_hash(std::string_view room, std::string_view salt) {
    unsigned char out[16];
    std::string in = "parley-fed-room\n" + std::string(room);
    crypto_generichash(
        out, sizeof out, reinterpret_cast<const unsigned char*>(in.data()), in.size(),
        salt.empty() ? nullptr : reinterpret_cast<const unsigned char*>(salt.data()), salt.size());
    std::string hex(sizeof out * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), out, sizeof out);
    hex.pop_back();
    return hex;
}

std::string token_id(std::string_view digest) {
    static constexpr std::string_view key = "parley-fed-pair-id";
    unsigned char out[16];
    crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(digest.data()),
                       digest.size(), reinterpret_cast<const unsigned char*>(key.data()),
                       key.size());
    return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string hmac(std::string_view key, std::initializer_list<std::string_view> parts) {
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()),
                                key.size());
    for (auto p : parts)
        crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(p.data()),
                                      p.size());
    unsigned char out[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&st, out);
    return std::string(reinterpret_cast<char*>(out), sizeof out);
}

bool same(std::string_view a, std::string_view b) {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool parse_claim(std::string_view body, Claim& c) {
    if (body.size() < 16 + 32 + 1) return false;
    c = Claim{body.substr(0, 16), body.substr(16, 32), body.substr(48)};
    return true;
}

bool parse_approve(std::string_view body, Approve& a) {
    if (body.size() < 32 + 32) return false;
    a = Approve{body.substr(0, 32), body.substr(32, 32), body.substr(64)};
    return true;
}

bool parse_reject(std::string_view body, Reject& r) {
    if (body.size() < 32 + 16) return false;
    r = Reject{body.substr(0, 32), body.substr(32, 16), body.substr(48)};
    return true;
}

std::string claim_proof(std::string_view digest, std::string_view claimer_key,
                        std::string_view hash) {
    return hmac(digest, {"claim", std::string_view("\0", 1), claimer_key, hash});
}

std::string approve_proof(std::string_view digest, std::string_view approver_key,
                          std::string_view claimer_key, std::string_view hash) {
    return hmac(digest, {"approve", std::string_view("\0", 1), approver_key, claimer_key, hash});
}

bool Window::accept(uint64_t seq) {
    if (seq > max) {
        uint64_t shift = seq - max;
        bits = shift >= 64 ? 0 : bits << shift;
        bits |= 1;
        max = seq;
        return true;
    }
    uint64_t diff = max - seq;
    if (diff >= 64 || (bits & (uint64_t(1) << diff))) return false;
    bits |= uint64_t(1) << diff;
    return true;
}

const char* text(Verdict v) {
    switch (v) {
    case Verdict::ok:
        return "ok";
    case Verdict::malformed:
        return "malformed";
    case Verdict::own:
        return "own";
    case Verdict::unpaired:
        return "unpaired";
    case Verdict::bad_signature:
        return "bad_signature";
    case Verdict::stale:
        return "stale";
    case Verdict::replay:
        return "replay";
    }
    return "?";
}

Verdict Receiver::room(std::string_view subject, std::string_view data, int64_t now_ms,
                       const Paired& paired, Envelope& e) {
    if (!parse(data, e) || e.kind != 'M') return Verdict::malformed;
    if (e.origin == self_) return Verdict::own; // our own frame, echoed by NATS
    if (!paired(subject_hash(subject), e.origin)) return Verdict::unpaired;
    if (!verify(subject, e)) return Verdict::bad_signature;
    return fresh(e, now_ms, true);
}

Verdict Receiver::pair(std::string_view subject, std::string_view data, int64_t now_ms,
                       Envelope& e) {
    if (!parse(data, e)) return Verdict::malformed;
    if (e.origin == self_) return Verdict::own;
    if (!verify(subject, e)) return Verdict::bad_signature;
    return fresh(e, now_ms, false);
}

Verdict Receiver::fresh(const Envelope& e, int64_t now_ms, bool paired) {
    if (!within_skew(now_ms, e.ts, max_skew_)) return Verdict::stale;
    std::lock_guard lk(mu_);
    auto& windows = paired ? windows_ : pair_windows_;
    auto it = windows.find(std::string(e.origin));
    if (it == windows.end()) {
        if (!paired && windows.size() >= max_origins_) windows.erase(windows.begin());
        it = windows.emplace(std::string(e.origin), Window{}).first;
    }
    return it->second.accept(e.seq) ? Verdict::ok : Verdict::replay;
}

} // namespace parley::federation::envelope
