// Authenticated federation (the default mode).
//
// Every NATS message is an envelope signed by its origin bench's Ed25519 identity key:
//
//   "PF1" | kind (1) | origin public key (32) | seq (8, BE) | unix ms (8, BE) | body | sig (64)
//   sig = Ed25519(BLAKE2b-512("parley-fed-v1\0" | subject | "\0" | everything before sig))
//
// Subjects carry a 128-bit BLAKE2b of the room id (keyed by federation.room_salt when the park
// shares one), never the id: <prefix>.room.<hash> for frames, <prefix>.pair.<hash> for pairing.
// The signature covers the subject, so an envelope cannot be moved to another room.
//
// Pairing follows BenchTalks (admin of bench A asks for a token bound to bench B's id; B's
// admin claims it) but binds keys: B's claim carries B's key and an HMAC of it under the
// token's SHA-256, so only a holder of the token can claim, and an observer of NATS cannot
// replay the claim for another key; A's approval carries an HMAC over both keys under the same
// secret, so only A (which kept the SHA-256) can approve. The raw token never crosses NATS.
//   claim   body: token id (16) | HMAC(d, "claim\0" | claimer key | room hash) (32) | bench id
//   approve body: claimer key (32) | HMAC(d, "approve\0" | approver key | claimer key |
//                 room hash) (32) | bench id
//   reject  body: claimer key (32) | token id (16) | reason
// with d = SHA-256(token) and token id = BLAKE2b-128 keyed "parley-fed-pair-id" of d.
//
// Frames are accepted only from origins paired for that room, once (per-origin sequence window
// of 64 plus a timestamp skew bound, which also covers a restart of the receiver).
#include "federation.hpp"
#include "federation_envelope.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

namespace parley::federation {

namespace {

using envelope::Envelope;
using envelope::same;
using envelope::token_id;
using envelope::Verdict;
constexpr size_t kMaxPending = 1000;

std::string hex(const unsigned char* p, size_t n) {
    std::string out(n * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), p, n);
    out.pop_back();
    return out;
}

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class Authenticated final : public Mode {
  public:
    Authenticated(const sdk::Host& h, nats::Client& nc, const Config& cfg)
        : host_(h), nc_(nc), cfg_(cfg), m_(h), tokens_(cfg.token_ttl, cfg.max_tokens),
          seq_(uint64_t(unix_ms()) * 1000) {}

    bool load_identity(std::string& err) {
        std::string path = cfg_.key_file;
        if (path.empty()) path = host_.state_dir() + "/" + host_.instance_name() + ".key";
        unsigned char seed[crypto_sign_SEEDBYTES];
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
            if (st.st_mode & 077) {
                err = "federation key file is readable by others (chmod 600 it)";
                return false;
            }
            std::ifstream in(path);
            std::string text;
            std::getline(in, text);
            size_t n = 0;
            if (sodium_hex2bin(seed, sizeof seed, text.data(), text.size(), nullptr, &n, nullptr) !=
                    0 ||
                n != sizeof seed) {
                sodium_memzero(text.data(), text.size());
                err = "federation key file is not a 64-hex-digit Ed25519 seed";
                return false;
            }
            sodium_memzero(text.data(), text.size());
        } else {
            randombytes_buf(seed, sizeof seed);
            int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                err = "cannot create the federation key file in the state directory";
                return false;
            }
            std::string text = hex(seed, sizeof seed) + "\n";
            bool ok =
                ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
            sodium_memzero(text.data(), text.size());
            ::close(fd);
            if (!ok) {
                err = "cannot write the federation key file";
                return false;
            }
            host_.log(PARLEY_LOG_INFO, "federation: created a new bench identity key");
        }
        crypto_sign_seed_keypair(pk_.data(), sk_.data(), seed);
        sodium_memzero(seed, sizeof seed);
        pk_str_.assign(reinterpret_cast<char*>(pk_.data()), pk_.size());
        rx_ = std::make_unique<envelope::Receiver>(pk_str_, cfg_.max_skew.count());
        host_.logf(PARLEY_LOG_INFO, "federation: authenticated mode, identity %s",
                   hex(pk_.data(), 8).c_str());
        return true;
    }

    ~Authenticated() override { sodium_memzero(sk_.data(), sk_.size()); }

    void subscribe(nats::Client& nc) override {
        nc.subscribe(cfg_.prefix + ".room.*",
                     [this](std::string_view s, std::string_view d) { on_room(s, d); });
        nc.subscribe(cfg_.prefix + ".pair.*",
                     [this](std::string_view s, std::string_view d) { on_pair(s, d); });
    }

    parley_t_status publish(std::string_view bench, std::string_view room,
                            std::string_view frame) override {
        learn_bench(bench);
        if (frame.size() > cfg_.max_frame) return PARLEY_ERR_LIMIT;
        auto h = room_hash(room);
        {
            std::lock_guard lk(mu_);
            auto it = trust_.find(h);
            if (it == trust_.end() || it->second.peers.empty()) return PARLEY_OK; // no peers
        }
        send('M', cfg_.prefix + ".room." + h, std::string(frame));
        host_.add(m_.published);
        return PARLEY_OK;
    }

    parley_t_status pair_request(parley_t_conn_id conn, std::string_view room,
                                 std::string_view bench, std::string_view sender,
                                 std::string_view claimer) override {
        learn_bench(bench);
        if (!valid_bench_id(claimer) || !valid_room(room)) return PARLEY_ERR_INVALID;
        auto token = tokens_.add(std::string(room), std::string(claimer));
        auto f =
            host_.frame_of(bench_frame("pair_token", token + "|" + std::string(claimer), sender));
        sodium_memzero(token.data(), token.size());
        host_.table()->send_to(host_.ctx(), conn, f.get());
        return PARLEY_OK;
    }

    parley_t_status pair_claim(parley_t_conn_id conn, std::string_view room, std::string_view bench,
                               std::string_view sender, std::string_view token) override {
        if (!valid_room(room) || !valid_bench_id(bench)) return PARLEY_ERR_INVALID;
        learn_bench(bench);
        unsigned char raw[64];
        size_t n = 0;
        const char* end = nullptr;
        bool ok = false;
        for (int v : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING})
            if (sodium_base642bin(raw, sizeof raw, token.data(), token.size(), nullptr, &n, &end,
                                  v) == 0 &&
                end == token.data() + token.size() && n == 32) {
                ok = true;
                break;
            }
        if (!ok) return PARLEY_ERR_INVALID;
        unsigned char d[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(d, raw, n);
        sodium_memzero(raw, sizeof raw);
        std::string digest(reinterpret_cast<char*>(d), sizeof d);
        sodium_memzero(d, sizeof d);
        auto h = room_hash(room);
        auto tid = token_id(digest);
        std::string body = tid + envelope::claim_proof(digest, pk_str_, h);
        body.append(bench);
        {
            std::lock_guard lk(mu_);
            if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
            pending_[h] = Pending{std::string(room),
                                  digest,
                                  tid,
                                  conn,
                                  std::string(sender),
                                  Clock::now() + cfg_.token_ttl};
        }
        send('C', cfg_.prefix + ".pair." + h, std::move(body));
        return PARLEY_OK;
    }

  private:
    struct Room {
        std::string id;
        std::unordered_map<std::string, std::string> peers; // public key -> bench id
    };
    struct Pending {
        std::string room, digest, tid;
        parley_t_conn_id conn;
        std::string sender;
        Clock::time_point expires;
    };

    std::string room_hash(std::string_view room) const {
        return envelope::room_hash(room, cfg_.room_salt);
    }

    // Header now; the signature on the publisher thread (a 10 MB image takes milliseconds).
    void send(char kind, std::string subject, std::string body) {
        auto env = envelope::unsigned_envelope(kind, pk_str_, next_seq(), unix_ms(), body);
        nc_.publish(nats::Out{std::move(subject), std::move(env), [this](nats::Out& o) {
                                  envelope::sign(o.data, o.subject, sk_.data());
                              }});
    }

    // Sequence = max(previous + 1, unix microseconds): increasing across restarts of this
    // bench too, so receivers' replay windows never see an old number again.
    uint64_t next_seq() {
        uint64_t now = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
        uint64_t prev = seq_.load();
        uint64_t next;
        do {
            next = std::max(prev + 1, now);
        } while (!seq_.compare_exchange_weak(prev, next));
        return next;
    }

    // Drops counted by reason; true when the envelope goes on.
    bool admit(Verdict v) {
        switch (v) {
        case Verdict::ok:
            return true;
        case Verdict::own: // our own message, echoed by NATS
            return false;
        case Verdict::malformed:
            host_.add(m_.d_malformed);
            return false;
        case Verdict::unpaired:
            host_.add(m_.d_unpaired);
            return false;
        case Verdict::bad_signature:
            host_.add(m_.d_signature);
            return false;
        case Verdict::stale:
            host_.add(m_.d_stale);
            return false;
        case Verdict::replay:
            host_.add(m_.d_replay);
            return false;
        }
        return false;
    }

    void on_room(std::string_view subject, std::string_view data) {
        Envelope e;
        std::string room;
        auto paired = [&](std::string_view hash, std::string_view origin) {
            std::lock_guard lk(mu_);
            auto it = trust_.find(std::string(hash));
            if (it == trust_.end() || !it->second.peers.count(std::string(origin))) return false;
            room = it->second.id;
            return true;
        };
        if (!admit(rx_->room(subject, data, unix_ms(), paired, e))) return;
        if (!valid_federated_frame(e.body, cfg_.max_frame)) return host_.add(m_.d_malformed);
        auto f = host_.frame_of(e.body);
        host_.table()->room_publish(host_.ctx(), sdk::bytes(room), f.get(), 0);
        host_.add(m_.delivered);
    }

    void on_pair(std::string_view subject, std::string_view data) {
        Envelope e;
        if (!admit(rx_->pair(subject, data, unix_ms(), e))) return;
        std::string h(envelope::subject_hash(subject));
        switch (e.kind) {
        case 'C':
            return on_claim(subject, h, e);
        case 'A':
            return on_approve(h, e);
        case 'R':
            return on_reject(h, e);
        default:
            host_.add(m_.d_malformed);
        }
    }

    // On the bench that issued the token.
    void on_claim(std::string_view, const std::string& h, const Envelope& e) {
        envelope::Claim c;
        if (!envelope::parse_claim(e.body, c)) return host_.add(m_.d_malformed);
        auto tid = c.token_id;
        auto claimer = c.bench;
        auto found = tokens_.find_by_id(tid, &token_id);
        if (!found) return; // another bench's token: every bench of the park sees every claim
        auto& [digest, room] = *found;
        if (room_hash(room) != h || !same(c.proof, envelope::claim_proof(digest, e.origin, h))) {
            // Someone replays a claim's token id with another key or room: not the holder.
            host_.add(m_.d_forged);
            return;
        }
        auto v = tokens_.take(digest, room, claimer);
        std::string subject = cfg_.prefix + ".pair." + h;
        if (v != PairTokens::Verdict::Ok) {
            host_.add(m_.rejected);
            host_.logf(PARLEY_LOG_INFO, "federation: pair claim rejected: %s", PairTokens::text(v));
            std::string body(e.origin);
            body.append(tid).append(PairTokens::text(v));
            send('R', subject, std::move(body));
            return;
        }
        {
            std::lock_guard lk(mu_);
            auto& r = trust_[h];
            r.id = room;
            r.peers[std::string(e.origin)] = std::string(claimer);
        }
        std::string body(e.origin);
        body += envelope::approve_proof(digest, pk_str_, e.origin, h);
        body.append(my_bench());
        send('A', subject, std::move(body));
        host_.add(m_.paired);
        host_.logf(PARLEY_LOG_INFO, "federation: paired a room with bench key %s",
                   hex(reinterpret_cast<const unsigned char*>(e.origin.data()), 8).c_str());
    }

    // On the claiming bench.
    void on_approve(const std::string& h, const Envelope& e) {
        envelope::Approve a;
        if (!envelope::parse_approve(e.body, a)) return host_.add(m_.d_malformed);
        if (a.claimer != pk_str_) return; // another bench's approval
        auto approver = a.bench;
        Pending p;
        {
            std::lock_guard lk(mu_);
            auto it = pending_.find(h);
            if (it == pending_.end() || it->second.expires <= Clock::now() ||
                !same(a.proof, envelope::approve_proof(it->second.digest, e.origin, pk_str_, h))) {
                host_.add(m_.d_forged);
                return;
            }
            p = std::move(it->second);
            pending_.erase(it);
            auto& r = trust_[h];
            r.id = p.room;
            r.peers[std::string(e.origin)] = std::string(approver);
        }
        host_.add(m_.paired);
        host_.log(PARLEY_LOG_INFO, "federation: pairing approved by the other bench");
        std::string shown = valid_bench_id(approver) ? std::string(approver) : std::string();
        auto f = host_.frame_of(bench_frame("pair_approved", shown, ""));
        host_.table()->room_publish(host_.ctx(), sdk::bytes(p.room), f.get(), 0);
    }

    void on_reject(const std::string& h, const Envelope& e) {
        envelope::Reject rj;
        if (!envelope::parse_reject(e.body, rj)) return host_.add(m_.d_malformed);
        if (rj.claimer != pk_str_) return;
        parley_t_conn_id conn = 0;
        std::string sender;
        {
            std::lock_guard lk(mu_);
            auto it = pending_.find(h);
            if (it == pending_.end() || !same(it->second.tid, rj.token_id)) return;
            conn = it->second.conn;
            sender = it->second.sender;
        }
        std::string reason(rj.reason);
        for (auto& c : reason)
            if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
        if (reason.size() > 64) reason.resize(64);
        host_.add(m_.rejected);
        auto f = host_.frame_of(bench_frame("error", "pair claim rejected: " + reason, sender));
        host_.table()->send_to(host_.ctx(), conn, f.get());
    }

    std::string my_bench() {
        std::lock_guard lk(mu_);
        return bench_;
    }

  public:
    void learn_bench(std::string_view bench) {
        if (!valid_bench_id(bench)) return;
        std::lock_guard lk(mu_);
        if (bench_ != bench) bench_ = std::string(bench);
    }

  private:
    const sdk::Host host_;
    nats::Client& nc_;
    const Config cfg_;
    Metrics m_;
    PairTokens tokens_;
    std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk_{};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk_{};
    std::string pk_str_;
    std::atomic<uint64_t> seq_;
    std::unique_ptr<envelope::Receiver> rx_; // replay windows; made with the identity

    std::mutex mu_;
    std::unordered_map<std::string, Room> trust_;      // room hash -> room
    std::unordered_map<std::string, Pending> pending_; // room hash -> our claim
    std::string bench_;
};

} // namespace

std::unique_ptr<Mode> make_authenticated(const sdk::Host& h, nats::Client& nc, const Config& cfg,
                                         std::string& err) {
    auto m = std::make_unique<Authenticated>(h, nc, cfg);
    if (!m->load_identity(err)) return nullptr;
    return m;
}

} // namespace parley::federation
