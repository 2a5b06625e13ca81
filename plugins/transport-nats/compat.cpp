// BenchTalks compatibility mode (federation.mode: benchtalks): BenchTalks 1.2.0's own NATS
// subjects and JSON payloads, so a parley bench can join an existing BenchTalks park.
// UNAUTHENTICATED, like BenchTalks itself: anyone who can publish on the park's NATS can send
// as any bench id. Use it only on a NATS the operators trust (credentials + TLS).
//
//   room.public.<room>            {"benchId":ID,"payload":base64(server frame)}
//   bench.pair.verify.<room>      {"claimerBenchId":ID,"rawToken":TOKEN}
//   bench.pair.approved.<room>    {"claimerBenchId":ID,"approverBenchID":ID,"approved":true}
//   bench.pair.rejected.<room>    same, "approved":false
//
// As in BenchTalks: frames of a public room go out only once the room has a trusted peer; a
// frame from the park is delivered when its benchId is trusted for that room; every bench that
// hears a claim answers it (rejected when it does not hold the token).
#include "federation.hpp"

#include "json_escape.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <cctype>
#include <map>
#include <set>

namespace parley::federation {

namespace {

constexpr std::string_view kPublic = "room.public.", kVerify = "bench.pair.verify.",
                           kApproved = "bench.pair.approved.", kRejected = "bench.pair.rejected.";

// A flat JSON object of string and bool fields; Go's decoder matches names case-insensitively
// and ignores unknown ones. Returns false when `data` is not such an object.
bool parse_flat(std::string_view data, std::map<std::string, std::string>& strings,
                std::map<std::string, bool>& bools) {
    if (data.size() > (64u << 20)) return false;
    thread_local simdjson::ondemand::parser parser;
    std::string buf(data);
    buf.reserve(buf.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    if (parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc)) return false;
    if (doc.get_object().get(obj)) return false;
    for (auto field : obj) {
        std::string_view k;
        if (field.unescaped_key().get(k)) return false;
        std::string key;
        for (char c : k)
            key.push_back(char(std::tolower(static_cast<unsigned char>(c))));
        auto v = field.value();
        simdjson::ondemand::json_type t;
        if (v.type().get(t)) return false;
        if (t == simdjson::ondemand::json_type::string) {
            std::string_view s;
            if (v.get_string().get(s)) return false;
            strings[key] = std::string(s);
        } else if (t == simdjson::ondemand::json_type::boolean) {
            bool b = false;
            if (v.get_bool().get(b)) return false;
            bools[key] = b;
        } else if (t == simdjson::ondemand::json_type::null) {
            continue;
        } else {
            return false;
        }
    }
    const char* rest = nullptr;
    return doc.current_location().get(rest) == simdjson::OUT_OF_BOUNDS;
}

std::string b64(std::string_view s) {
    std::string out(sodium_base64_ENCODED_LEN(s.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(s.data()),
                      s.size(), sodium_base64_VARIANT_ORIGINAL);
    out.pop_back(); // the NUL
    return out;
}

bool unb64(std::string_view s, std::string& out) {
    out.assign(s.size() / 4 * 3 + 3, '\0');
    size_t n = 0;
    const char* end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), s.data(),
                          s.size(), nullptr, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s.data() + s.size())
        return false;
    out.resize(n);
    return true;
}

class Benchtalks final : public Mode {
  public:
    Benchtalks(const sdk::Host& h, nats::Client& nc, const Config& cfg)
        : host_(h), nc_(nc), cfg_(cfg), m_(h), tokens_(cfg.token_ttl, cfg.max_tokens) {
        host_.log(PARLEY_LOG_WARN,
                  "federation: BenchTalks compatibility mode: the park is UNAUTHENTICATED");
    }

    void subscribe(nats::Client& nc) override {
        nc.subscribe(std::string(kPublic) + "*",
                     [this](std::string_view s, std::string_view d) { on_public(s, d); });
        nc.subscribe(std::string(kVerify) + "*",
                     [this](std::string_view s, std::string_view d) { on_verify(s, d); });
        nc.subscribe(std::string(kApproved) + "*",
                     [this](std::string_view s, std::string_view d) { on_answer(s, d, true); });
        nc.subscribe(std::string(kRejected) + "*",
                     [this](std::string_view s, std::string_view d) { on_answer(s, d, false); });
    }

    parley_t_status publish(std::string_view bench, std::string_view room,
                            std::string_view frame) override {
        learn_bench(bench);
        if (frame.size() > cfg_.max_frame) return PARLEY_ERR_LIMIT;
        if (!subject_room(room)) return PARLEY_OK;
        {
            std::lock_guard lk(mu_);
            auto it = trust_.find(std::string(room));
            if (it == trust_.end() || it->second.empty()) return PARLEY_OK;
        }
        nc_.publish(std::string(kPublic) + std::string(room),
                    R"({"benchId":")" + json_escape(bench) + R"(","payload":")" + b64(frame) +
                        "\"}");
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

    parley_t_status pair_claim(parley_t_conn_id, std::string_view room, std::string_view bench,
                               std::string_view, std::string_view token) override {
        if (!valid_bench_id(bench) || !subject_room(room) || token.size() > 256)
            return PARLEY_ERR_INVALID;
        learn_bench(bench);
        nc_.publish(std::string(kVerify) + std::string(room),
                    R"({"claimerBenchId":")" + json_escape(bench) + R"(","rawToken":")" +
                        json_escape(token) + "\"}");
        return PARLEY_OK;
    }

  private:
    // A room id usable as one NATS subject token.
    static bool subject_room(std::string_view room) {
        return valid_room(room) && room.find('.') == room.npos;
    }

    void learn_bench(std::string_view bench) {
        if (!valid_bench_id(bench)) return;
        std::lock_guard lk(mu_);
        if (bench_ != bench) bench_ = std::string(bench);
    }
    std::string my_bench() {
        std::lock_guard lk(mu_);
        return bench_;
    }

    void on_public(std::string_view subject, std::string_view data) {
        std::map<std::string, std::string> s;
        std::map<std::string, bool> b;
        std::string room(subject.substr(kPublic.size()));
        std::string frame;
        if (!parse_flat(data, s, b) || !subject_room(room) || !unb64(s["payload"], frame))
            return host_.add(m_.d_malformed);
        auto& from = s["benchid"];
        if (from == my_bench()) return; // our own, echoed by NATS
        {
            std::lock_guard lk(mu_);
            auto it = trust_.find(room);
            if (it == trust_.end() || !it->second.count(from)) return host_.add(m_.d_unpaired);
        }
        if (!valid_federated_frame(frame, cfg_.max_frame)) return host_.add(m_.d_malformed);
        auto f = host_.frame_of(frame);
        host_.table()->room_publish(host_.ctx(), sdk::bytes(room), f.get(), 0);
        host_.add(m_.delivered);
    }

    void on_verify(std::string_view subject, std::string_view data) {
        std::map<std::string, std::string> s;
        std::map<std::string, bool> b;
        std::string room(subject.substr(kVerify.size()));
        if (!parse_flat(data, s, b) || !subject_room(room)) return host_.add(m_.d_malformed);
        auto& claimer = s["claimerbenchid"];
        auto v = PairTokens::Verdict::Unknown;
        std::string raw;
        if (unb64(s["rawtoken"], raw)) {
            unsigned char d[crypto_hash_sha256_BYTES];
            crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
            sodium_memzero(raw.data(), raw.size());
            v = tokens_.take(std::string_view(reinterpret_cast<char*>(d), sizeof d), room, claimer);
        }
        bool ok = v == PairTokens::Verdict::Ok;
        if (ok) {
            std::lock_guard lk(mu_);
            trust_[room].insert(claimer);
            host_.add(m_.paired);
            host_.log(PARLEY_LOG_INFO, "federation: pair claim approved (benchtalks mode)");
        } else if (v != PairTokens::Verdict::Unknown) {
            host_.add(m_.rejected);
            host_.logf(PARLEY_LOG_INFO, "federation: pair claim rejected: %s", PairTokens::text(v));
        }
        // BenchTalks answers every claim it hears, approved or not.
        nc_.publish(std::string(ok ? kApproved : kRejected) + room,
                    R"({"claimerBenchId":")" + json_escape(claimer) + R"(","approverBenchID":")" +
                        json_escape(my_bench()) + R"(","approved":)" + (ok ? "true" : "false") +
                        "}");
    }

    void on_answer(std::string_view subject, std::string_view data, bool approved) {
        std::map<std::string, std::string> s;
        std::map<std::string, bool> b;
        std::string room(subject.substr((approved ? kApproved : kRejected).size()));
        if (!parse_flat(data, s, b) || !subject_room(room)) return host_.add(m_.d_malformed);
        if (s["claimerbenchid"] != my_bench() || my_bench().empty()) return; // not our claim
        if (!approved) {
            host_.log(PARLEY_LOG_INFO, "federation: a bench of the park rejected our claim");
            return;
        }
        auto& approver = s["approverbenchid"];
        if (!valid_bench_id(approver)) return host_.add(m_.d_malformed);
        {
            std::lock_guard lk(mu_);
            trust_[room].insert(approver);
        }
        host_.add(m_.paired);
        auto f = host_.frame_of(bench_frame("pair_approved", approver, ""));
        host_.table()->room_publish(host_.ctx(), sdk::bytes(room), f.get(), 0);
    }

    const sdk::Host host_;
    nats::Client& nc_;
    const Config cfg_;
    Metrics m_;
    PairTokens tokens_;
    std::mutex mu_;
    std::unordered_map<std::string, std::set<std::string>> trust_; // room -> bench ids
    std::string bench_;
};

} // namespace

std::unique_ptr<Mode> make_benchtalks(const sdk::Host& h, nats::Client& nc, const Config& cfg) {
    return std::make_unique<Benchtalks>(h, nc, cfg);
}

} // namespace parley::federation
