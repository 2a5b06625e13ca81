// Pieces shared by both federation modes: command arguments, frame checks, pairing tokens.
#include "federation.hpp"

#include "json_escape.hpp"

#include <simdjson.h>
#include <sodium.h>

namespace parley::federation {

std::vector<std::string_view> split_args(std::string_view args, size_t n) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < n) {
        auto nl = args.find('\n');
        if (nl == args.npos) break;
        out.push_back(args.substr(0, nl));
        args.remove_prefix(nl + 1);
    }
    out.push_back(args);
    return out;
}

bool valid_bench_id(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

bool valid_room(std::string_view r) {
    if (r.empty() || r.size() > 64) return false;
    for (char c : r)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~'))
            return false;
    return true;
}

std::string bench_frame(std::string_view type, std::string_view payload, std::string_view sender) {
    return R"({"type":")" + json_escape(type) + R"(","payload":")" + json_escape(payload) +
           R"(","senderId":")" + json_escape(sender) + "\"}";
}

bool valid_federated_frame(std::string_view frame, size_t max) {
    if (frame.size() < 2 || frame.size() > max || frame.front() != '{') return false;
    thread_local simdjson::ondemand::parser parser;
    std::string buf(frame);
    buf.reserve(buf.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    simdjson::ondemand::object obj;
    if (parser.iterate(buf.data(), buf.size(), buf.capacity()).get(doc)) return false;
    if (doc.get_object().get(obj)) return false;
    std::string_view type;
    bool have_type = false, have_payload = false, have_sender = false;
    for (auto field : obj) {
        std::string_view k, v;
        if (field.unescaped_key().get(k)) return false;
        if (field.value().get_string().get(v)) return false;
        if (k == "type")
            type = v, have_type = true;
        else if (k == "payload")
            have_payload = true;
        else if (k == "senderId")
            have_sender = true;
        else
            return false;
    }
    const char* rest = nullptr;
    if (doc.current_location().get(rest) != simdjson::OUT_OF_BOUNDS) return false;
    if (!(have_type && have_payload && have_sender)) return false;
    for (std::string_view t : {"message", "image", "join", "leave", "made_public"})
        if (type == t) return true;
    return false;
}

std::string PairTokens::add(const std::string& room, const std::string& claimer) {
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    std::string key(reinterpret_cast<char*>(d), sizeof d);
    auto now = Clock::now();
    std::lock_guard lk(mu_);
    std::erase_if(tokens_, [&](auto& kv) { return kv.second.expires <= now || kv.second.used; });
    if (tokens_.size() >= max_) {
        auto oldest = tokens_.begin();
        for (auto it = tokens_.begin(); it != tokens_.end(); ++it)
            if (it->second.expires < oldest->second.expires) oldest = it;
        tokens_.erase(oldest);
    }
    tokens_[key] = Entry{room, claimer, now + ttl_};
    std::string out(b64);
    sodium_memzero(b64, sizeof b64);
    return out;
}

PairTokens::Verdict PairTokens::take(std::string_view digest, std::string_view room,
                                     std::string_view claimer) {
    std::lock_guard lk(mu_);
    auto it = tokens_.find(std::string(digest));
    if (it == tokens_.end()) return Verdict::Unknown;
    auto& e = it->second;
    if (e.used) return Verdict::Used;
    if (e.expires <= Clock::now()) return Verdict::Expired;
    if (e.room != room) return Verdict::WrongRoom;
    if (e.claimer != claimer) return Verdict::WrongClaimer;
    e.used = true; // kept (used) until pruned so a second claim reads "already used"
    return Verdict::Ok;
}

std::optional<std::pair<std::string, std::string>>
PairTokens::find_by_id(std::string_view id, std::string (*id_of)(std::string_view)) {
    std::lock_guard lk(mu_);
    for (auto& [digest, e] : tokens_)
        if (id_of(digest) == id) return std::make_pair(digest, e.room);
    return std::nullopt;
}

const char* PairTokens::text(Verdict v) {
    switch (v) {
    case Verdict::Ok:
        return "approved";
    case Verdict::Unknown:
        return "token not found";
    case Verdict::Used:
        return "token already used";
    case Verdict::Expired:
        return "token expired";
    case Verdict::WrongClaimer:
        return "bench id mismatch";
    case Verdict::WrongRoom:
        return "token is for another room";
    }
    return "rejected";
}

Metrics::Metrics(const sdk::Host& h) : host(h) {
    published = h.counter("parley_federation_published_total", "frames sent to the park");
    delivered = h.counter("parley_federation_delivered_total",
                          "frames from paired benches delivered to local rooms");
    paired = h.counter("parley_federation_pairings_total", "pairings completed");
    rejected = h.counter("parley_federation_pair_rejected_total", "pair claims rejected");
    auto drop = [&](const char* reason) {
        return h.counter(std::string("parley_federation_dropped_total{reason=\"") + reason + "\"}",
                         "NATS messages dropped by federation, by reason");
    };
    d_malformed = drop("malformed");
    d_signature = drop("bad_signature");
    d_unpaired = drop("unpaired");
    d_replay = drop("replay");
    d_stale = drop("stale");
    d_forged = drop("forged_approval");
}

} // namespace parley::federation
