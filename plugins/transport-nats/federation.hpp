// Federation of bench public rooms over NATS (issue 7, deliverables 1 and 2).
//
// The bench dialect (in transport-ws) reaches federation only through the kernel command bus;
// see README.md for the command contract. Incoming federated frames go to local rooms with
// room_publish. Two modes share this interface:
//   authenticated  (default) Ed25519-signed envelopes, pairing bound to both benches' keys,
//                  replay window, hashed room ids on subjects (federation.cpp)
//   benchtalks     BenchTalks 1.2.0's own subjects and JSON payloads, unauthenticated, to join
//                  an existing BenchTalks park (compat.cpp)
#pragma once

#include "nats_client.hpp"

#include <parley/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace parley::federation {

using Clock = std::chrono::steady_clock;

struct Config {
    std::string mode = "authenticated";
    std::chrono::milliseconds token_ttl{5 * 60 * 1000};
    std::chrono::milliseconds max_skew{5 * 60 * 1000};
    std::string prefix = "parley.fed.v1";
    std::string room_salt; // optional park-wide secret keying the room hash
    std::string key_file;  // Ed25519 identity; default <state_dir>/<instance>.key
    size_t max_frame = 16 << 20;
    size_t max_tokens = 10000;
};

// Arguments of the federation.* commands: "\n"-separated fields (documented in README.md), the
// last one may contain anything (a frame).
std::vector<std::string_view> split_args(std::string_view args, size_t n);

bool valid_bench_id(std::string_view s);
bool valid_room(std::string_view r);

// {"type":T,"payload":P,"senderId":S}, as the bench dialect writes frames.
std::string bench_frame(std::string_view type, std::string_view payload, std::string_view sender);

// True when `frame` is a bench server frame that may come from another bench: a JSON object
// whose type is message, image, join, leave or made_public and whose fields are strings.
bool valid_federated_frame(std::string_view frame, size_t max);

// Pairing tokens: 32 random bytes given out once (standard base64); only their SHA-256 is
// kept, with the room, the claimer bench id and the expiry. Lost on restart.
class PairTokens {
  public:
    enum class Verdict { Ok, Unknown, Used, Expired, WrongClaimer, WrongRoom };
    PairTokens(std::chrono::milliseconds ttl, size_t max) : ttl_(ttl), max_(max) {}
    std::string add(const std::string& room, const std::string& claimer);
    // Looks a token up by its SHA-256 (32 bytes); burns it on Ok.
    Verdict take(std::string_view digest, std::string_view room, std::string_view claimer);
    // Authenticated mode looks tokens up by an id derived from the digest (see federation.cpp)
    // so the digest itself never travels. Returns the digest (and room) of the match.
    std::optional<std::pair<std::string, std::string>>
    find_by_id(std::string_view id, std::string (*id_of)(std::string_view digest));
    static const char* text(Verdict v);

  private:
    struct Entry {
        std::string room, claimer;
        Clock::time_point expires;
        bool used = false;
    };
    std::chrono::milliseconds ttl_;
    size_t max_;
    std::mutex mu_;
    std::unordered_map<std::string, Entry> tokens_; // key: SHA-256 of the raw token
};

// Metrics shared by both modes.
struct Metrics {
    explicit Metrics(const sdk::Host& h);
    const sdk::Host& host;
    parley_t_metric_hptr published, delivered, paired, rejected;
    parley_t_metric_hptr d_malformed, d_signature, d_unpaired, d_replay, d_stale, d_forged;
};

class Mode {
  public:
    virtual ~Mode() = default;
    // Before the connection starts: the NATS subscriptions this mode needs.
    virtual void subscribe(nats::Client& nc) = 0;
    // Commands (see README.md). @thread the caller's (a reactor): enqueue only.
    virtual parley_t_status publish(std::string_view bench, std::string_view room,
                                    std::string_view frame) = 0;
    virtual parley_t_status pair_request(parley_t_conn_id conn, std::string_view room,
                                         std::string_view bench, std::string_view sender,
                                         std::string_view claimer) = 0;
    virtual parley_t_status pair_claim(parley_t_conn_id conn, std::string_view room,
                                       std::string_view bench, std::string_view sender,
                                       std::string_view token) = 0;
};

std::unique_ptr<Mode> make_authenticated(const sdk::Host& h, nats::Client& nc, const Config& cfg,
                                         std::string& err);
std::unique_ptr<Mode> make_benchtalks(const sdk::Host& h, nats::Client& nc, const Config& cfg);

} // namespace parley::federation
