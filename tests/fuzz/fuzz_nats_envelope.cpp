// libFuzzer target for transport-nats' signed federation envelopes (federation_envelope.cpp):
// the parser and the receive checks the plugin runs on every NATS message (own echo, pairing by
// hashed subject, Ed25519 signature, timestamp skew, replay window), on a Receiver with a fixed
// clock. Fixed test identities (Ed25519 from constant seeds, the same in make_seeds.py):
//   P  paired with this bench for room "room1" (subject parley.fed.v1.room.<hash of room1>)
//   Q  a key nobody paired            S  this bench's own key
// Input: byte 0 & 3 picks the mode.
//   0 / 1  raw: byte 1 picks the subject (% 5, kSubjects), the rest is the NATS payload, given
//          to Receiver::room (0) or ::pair (1) twice.
//   2 / 3  script: records the harness signs as P, Q or S and may then corrupt, so that the
//          checks after the signature run on data that passes it:
//          [flags][kind][seq delta (int8)][ts delta (int16 BE, x100 ms)][pos (uint16 BE)][xor]
//          [body len] [8 bytes raw ts when flags bit 7] [body]
//          flags bits 0-1 signer (0 P, 1 Q, 2 S, 3 origin P signed by Q), bits 2-4 route
//          (kRoutes: subject signed for / subject delivered on), bit 5 xor the byte at pos,
//          bit 6 truncate to pos. kind & 7: 0-3 'M', 4 'C', 5 'A', 6 'R', 7 the raw byte.
//          Pairing kinds with kind bit 3: the harness writes the body's proof part, from the
//          pairing token's digest (bit 4: another digest), for the origin's key (bit 5:
//          another key) and room1's hash (bit 6: room2's); an approval names us (bit 7: Q) as
//          the claimer. The fuzzed body follows it.
// Checks (besides the sanitizers), against a model of its own (own prehash per the format in
// federation.cpp, own skew arithmetic, exact replay-window model):
//   - nothing is accepted unless it is byte for byte what the origin's key signed, for the
//     subject it arrived on, by a key that differs from ours (frames: paired P, kind 'M' only),
//     within the skew bound, and not accepted before from that origin;
//   - every such genuine message is accepted unless the window model says it is a replay, and
//     its verdict is exactly stale / replay / own / unpaired when the model says so;
//   - parse(unsigned_envelope + sign) gives back every field;
//   - an accepted pairing message's proof passes the plugin's check (claim_proof /
//     approve_proof under the token's digest, as this bench S holding the token for room1 would
//     run it) exactly when it was made from the right digest, key, room hash and claimer.
#include "federation_envelope.hpp"

#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "fuzz_check.hpp"

namespace {

using namespace parley::federation::envelope;

constexpr int64_t kNow = 1'700'000'000'000; // unix ms of the harness clock
constexpr int64_t kSkew = 5 * 60 * 1000;    // the plugin's default federation.max_skew
const std::string kPrefix = "parley.fed.v1";

struct Key {
    std::array<unsigned char, 32> pk{};
    std::array<unsigned char, 64> sk{};
    std::string pub() const { return std::string(reinterpret_cast<const char*>(pk.data()), 32); }
};

Key key_of(unsigned char fill) {
    Key k;
    std::array<unsigned char, 32> seed;
    seed.fill(fill);
    crypto_sign_seed_keypair(k.pk.data(), k.sk.data(), seed.data());
    return k;
}

struct Fixture {
    Key p = key_of('P'), q = key_of('Q'), s = key_of('S');
    std::string h1 = room_hash("room1", ""), h2 = room_hash("room2", "");
    std::string room1 = kPrefix + ".room." + h1, room2 = kPrefix + ".room." + h2;
    std::string pair1 = kPrefix + ".pair." + h1;
    std::string room1_upper; // same hash in uppercase hex: not the paired hash
    Fixture() {
        room1_upper = room1;
        for (auto& c : room1_upper)
            if (c >= 'a' && c <= 'f') c = char(c - 'a' + 'A');
    }
};

const Fixture& fx() {
    static const Fixture f = [] {
        CHECK(sodium_init() >= 0);
        return Fixture{};
    }();
    return f;
}

// Independent of federation_envelope.cpp: the signature as federation.cpp documents it.
bool signed_by(std::string_view pk, std::string_view subject, std::string_view data) {
    if (pk.size() != 32 || data.size() < kHeader + kSig) return false;
    std::string msg("parley-fed-v1\0", 14);
    msg.append(subject).push_back('\0');
    msg.append(data.substr(0, data.size() - kSig));
    unsigned char h[64];
    crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       nullptr, 0);
    return crypto_sign_verify_detached(
               reinterpret_cast<const unsigned char*>(data.data() + data.size() - kSig), h,
               sizeof h, reinterpret_cast<const unsigned char*>(pk.data())) == 0;
}

bool in_skew(int64_t ts) {
    return ts >= kNow - kSkew && ts <= kNow + kSkew;
}

// Replay-window model of one origin: the exact set of accepted sequence numbers.
struct Model {
    std::set<uint64_t> seen;
    bool accepts(uint64_t seq) const {
        if (seen.count(seq)) return false;
        return seen.empty() || seq > *seen.rbegin() || *seen.rbegin() - seq < 64;
    }
};

// The pairing token this bench issued for room1 (its SHA-256 is all a bench keeps).
std::string digest_of(char fill) {
    std::string token(32, fill);
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(token.data()), token.size());
    return std::string(reinterpret_cast<char*>(d), sizeof d);
}

bool paired(std::string_view hash, std::string_view origin) {
    return hash == fx().h1 && origin == fx().p.pub();
}

std::string subject(int which) {
    const auto& f = fx();
    switch (which % 5) {
    case 0:
        return f.room1;
    case 1:
        return f.room2;
    case 2:
        return f.pair1;
    case 3:
        return kPrefix + ".room."; // empty hash
    default:
        return "nodot";
    }
}

void raw(const uint8_t* data, size_t size, bool room) {
    if (size < 2) return;
    std::string subj = subject(data[1]);
    std::string msg(reinterpret_cast<const char*>(data + 2), size - 2); // own heap copy
    Receiver rx(fx().s.pub(), kSkew, 1);
    for (int round = 0; round < 2; ++round) {
        Envelope e;
        auto v = room ? rx.room(subj, msg, kNow, paired, e) : rx.pair(subj, msg, kNow, e);
        Envelope p;
        bool parsed = parse(msg, p);
        CHECK(parsed == (msg.size() >= kHeader + kSig && msg.compare(0, 3, kMagic) == 0));
        if (parsed) {
            CHECK(p.origin.size() == 32 && p.sig.size() == kSig);
            CHECK(p.signed_part.size() + p.sig.size() == msg.size());
            CHECK(p.body.size() == msg.size() - kHeader - kSig);
        }
        if (v != Verdict::ok) continue;
        CHECK(round == 0); // the same bytes twice: the second is a replay
        CHECK(parsed && e.origin != fx().s.pub() && in_skew(e.ts));
        CHECK(signed_by(e.origin, subj, msg));
        if (room) CHECK(e.kind == 'M' && e.origin == fx().p.pub() && subj == fx().room1);
    }
}

// What the plugin's on_claim / on_approve / on_reject check of an accepted pairing message,
// on bench S that issued the token kDigest for room1.
void check_pairing(const Envelope& e, bool made, bool right_digest, bool right_key, bool right_hash,
                   bool to_us) {
    bool right = right_digest && right_key && right_hash;
    const auto& f = fx();
    static const std::string kDigest = digest_of('T');
    std::string_view h = subject_hash(f.pair1);
    if (e.kind == 'C') {
        Claim c;
        bool ok = parse_claim(e.body, c);
        CHECK(ok == (e.body.size() >= 49));
        if (!ok) return;
        CHECK(c.token_id.size() == 16 && c.proof.size() == 32 && !c.bench.empty());
        CHECK(c.token_id.data() + 16 == c.proof.data() && c.proof.data() + 32 == c.bench.data());
        bool valid =
            c.token_id == token_id(kDigest) && same(c.proof, claim_proof(kDigest, e.origin, h));
        if (made) CHECK(valid == right);
    } else if (e.kind == 'A') {
        Approve a;
        bool ok = parse_approve(e.body, a);
        CHECK(ok == (e.body.size() >= 64));
        if (!ok) return;
        CHECK(a.claimer.size() == 32 && a.proof.size() == 32 &&
              a.bench.size() == e.body.size() - 64);
        bool valid =
            a.claimer == f.s.pub() && same(a.proof, approve_proof(kDigest, e.origin, f.s.pub(), h));
        if (made) CHECK(valid == (right && to_us));
    } else if (e.kind == 'R') {
        Reject r;
        bool ok = parse_reject(e.body, r);
        CHECK(ok == (e.body.size() >= 48));
        if (!ok) return;
        CHECK(r.claimer.size() == 32 && r.token_id.size() == 16);
        bool ours = r.claimer == f.s.pub() && same(r.token_id, token_id(kDigest));
        if (made) CHECK(ours == (to_us && right_digest));
    }
}

struct Route {
    int signed_for, delivered_on; // indexes into subjects below
};
// 0 room1, 1 room2, 2 pair1, 3 room1 in uppercase hex, 4 "nodot"
constexpr Route kRoutes[] = {{0, 0}, {1, 1}, {2, 2}, {0, 1}, {2, 0}, {0, 2}, {3, 3}, {4, 4}};

void script(const uint8_t* data, size_t size) {
    const auto& f = fx();
    const std::string subjects[] = {f.room1, f.room2, f.pair1, f.room1_upper, "nodot"};
    Receiver rx(f.s.pub(), kSkew, 1); // one pairing window: every new origin evicts the other
    Model room_model;                 // P's frames
    std::string pair_origin;          // whose pairing window the receiver holds
    Model pair_model;
    uint64_t last_seq[3] = {1000, 1000, 1000};
    size_t i = 1;
    for (int n = 0; n < 64 && i + 9 <= size; ++n) {
        const uint8_t* r = data + i;
        i += 9;
        int signer = r[0] & 3;
        Route route = kRoutes[(r[0] >> 2) & 7];
        bool flip = r[0] & 0x20, cut = r[0] & 0x40;
        char kind = "MMMMCAR"[std::min(r[1] & 7, 6)];
        if ((r[1] & 7) == 7) kind = char(r[1]);
        int slot = signer == 3 ? 0 : signer;
        uint64_t seq = last_seq[slot] + uint64_t(int64_t(int8_t(r[2])));
        last_seq[slot] = seq;
        int64_t ts = kNow + int64_t(int16_t(uint16_t(r[3] << 8 | r[4]))) * 100;
        size_t pos = size_t(r[5]) << 8 | r[6];
        uint8_t x = r[7] ? r[7] : 1;
        size_t len = r[8];
        if (r[0] & 0x80 && i + 8 <= size) {
            uint64_t t = 0;
            for (int k = 0; k < 8; ++k)
                t = t << 8 | data[i + k];
            ts = int64_t(t);
            i += 8;
        }
        len = std::min(len, size - i);
        std::string body(reinterpret_cast<const char*>(data + i), len);
        i += len;
        const Key& origin_key = signer == 1 ? f.q : signer == 2 ? f.s : f.p;
        // A pairing body with a proof part of the harness's making (see the header).
        static const std::string kDigest = digest_of('T'), kOther = digest_of('U');
        bool made = (r[1] & 7) >= 4 && (r[1] & 7) <= 6 && (r[1] & 8);
        bool right_digest = !(r[1] & 0x10), right_key = !(r[1] & 0x20), right_hash = !(r[1] & 0x40),
             to_us = !(r[1] & 0x80);
        if (made) {
            const std::string& d = right_digest ? kDigest : kOther;
            std::string bound = right_key                       ? origin_key.pub()
                                : origin_key.pub() == f.q.pub() ? f.p.pub()
                                                                : f.q.pub();
            const std::string& h = right_hash ? f.h1 : f.h2;
            std::string claimer = to_us ? f.s.pub() : f.q.pub();
            if (kind == 'C') body = token_id(d) + claim_proof(d, bound, h) + body + "b";
            if (kind == 'A') body = claimer + approve_proof(d, bound, claimer, h) + body;
            if (kind == 'R') body = claimer + token_id(d) + body;
        }

        const Key& signing_key = signer == 1 || signer == 3 ? f.q : signer == 2 ? f.s : f.p;
        const std::string& signed_subj = subjects[route.signed_for];
        const std::string& subj = subjects[route.delivered_on];
        std::string env = unsigned_envelope(kind, origin_key.pub(), seq, ts, body);
        sign(env, signed_subj, signing_key.sk.data());
        {
            Envelope e;
            CHECK(parse(env, e));
            CHECK(e.kind == kind && e.origin == origin_key.pub() && e.seq == seq && e.ts == ts &&
                  e.body == body && verify(signed_subj, e) == (signer != 3));
        }
        std::string msg = env;
        if (flip && !msg.empty()) msg[pos % msg.size()] = char(msg[pos % msg.size()] ^ x);
        if (cut && pos < msg.size()) msg.resize(pos);
        bool genuine = msg == env && signer != 3 && signed_subj == subj;
        bool on_room = route.delivered_on != 2;

        Envelope e;
        Verdict v = on_room ? rx.room(subj, msg, kNow, paired, e) : rx.pair(subj, msg, kNow, e);
        if (v == Verdict::ok) {
            CHECK(genuine && signer != 2 && in_skew(ts) && signed_by(e.origin, subj, msg));
            CHECK(e.origin == origin_key.pub() && e.seq == seq && e.body == body);
            if (on_room) CHECK(signer == 0 && kind == 'M' && subj == f.room1);
            if (!on_room) check_pairing(e, made, right_digest, right_key, right_hash, to_us);
        }
        CHECK(within_skew(kNow, ts, kSkew) == in_skew(ts));
        if (msg.size() < kHeader + kSig) CHECK(v == Verdict::malformed);
        if (on_room && kind != 'M') CHECK(v == Verdict::malformed);
        if (!genuine || (on_room && kind != 'M')) continue;
        // Genuine from here: the verdict is fully determined.
        Verdict want;
        if (signer == 2)
            want = Verdict::own;
        else if (on_room && !(signer == 0 && subj == f.room1))
            want = Verdict::unpaired;
        else if (!in_skew(ts))
            want = Verdict::stale;
        else if (on_room)
            want = room_model.accepts(seq) ? Verdict::ok : Verdict::replay;
        else {
            if (pair_origin != origin_key.pub()) pair_model = Model{}; // evicted
            want = pair_model.accepts(seq) ? Verdict::ok : Verdict::replay;
            pair_origin = origin_key.pub();
        }
        if (v != want) std::fprintf(stderr, "verdict %s, model %s\n", text(v), text(want));
        CHECK(v == want);
        if (v == Verdict::ok) (on_room ? room_model : pair_model).seen.insert(seq);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0 || size > 64 * 1024) return 0;
    (void)fx();
    switch (data[0] & 3) {
    case 0:
    case 1:
        raw(data, size, (data[0] & 3) == 0);
        break;
    default:
        script(data, size);
    }
    return 0;
}
