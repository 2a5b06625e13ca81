#include "relay_core.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <vector>

namespace parley::relay {

bool crypto_init() {
    return sodium_init() >= 0;
}

std::string b64_encode(std::string_view raw) {
    const int variant = sodium_base64_VARIANT_ORIGINAL;
    std::string out(sodium_base64_ENCODED_LEN(raw.size(), variant), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                      raw.size(), variant);
    out.resize(out.size() - 1); // the terminating NUL
    return out;
}

std::optional<std::string> b64_decode(std::string_view text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    for (int variant :
         {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING}) {
        size_t len = 0;
        const char* end = nullptr;
        if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                              text.size(), nullptr, &len, &end, variant) == 0 &&
            end == text.data() + text.size()) {
            out.resize(len);
            return out;
        }
    }
    return std::nullopt;
}

std::string hex_encode(std::string_view raw) {
    std::string out(raw.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                   raw.size());
    out.pop_back();
    return out;
}

std::string sha256_hex(std::string_view data) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    return hex_encode(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
}

std::string key_hash_of_public_key(std::string_view raw_ed25519_pk) {
    return sha256_hex(b64_encode(raw_ed25519_pk));
}

std::optional<std::string> key_hash_of_b64(std::string_view b64_pk) {
    auto raw = b64_decode(b64_pk);
    if (!raw || raw->size() != crypto_sign_PUBLICKEYBYTES) return std::nullopt;
    return key_hash_of_public_key(*raw);
}

bool is_key_hash(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

int64_t utc_midnight_ms(int64_t now_ms) {
    int64_t d = now_ms / kDayMs;
    if (now_ms < 0 && now_ms % kDayMs != 0) --d; // floor, for completeness
    return d * kDayMs;
}

int64_t expiry_ms(int64_t now_ms, uint32_t jitter_minutes) {
    if (jitter_minutes > kExpiryJitterMinutes) jitter_minutes = kExpiryJitterMinutes;
    return utc_midnight_ms(now_ms) + kExpiryBaseMs + int64_t(jitter_minutes) * 60 * 1000;
}

int64_t random_expiry_ms(int64_t now_ms) {
    return expiry_ms(now_ms, randombytes_uniform(kExpiryJitterMinutes + 1));
}

std::string iso_utc_ms(int64_t ms) {
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        --secs;
    }
    std::time_t t = std::time_t(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(rem));
    return buf;
}

std::string proof_message(std::string_view method, std::string_view path, std::string_view query,
                          std::string_view timestamp, std::string_view body) {
    std::string m;
    m.reserve(method.size() + path.size() + query.size() + timestamp.size() + 72);
    m.append(method).append("\n").append(path);
    if (!query.empty()) m.append("?").append(query);
    m.append("\n").append(timestamp).append("\n").append(sha256_hex(body));
    return m;
}

bool verify_ed25519(std::string_view pk, std::string_view sig, std::string_view message) {
    if (pk.size() != crypto_sign_PUBLICKEYBYTES || sig.size() != crypto_sign_BYTES) return false;
    return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(),
                                       reinterpret_cast<const unsigned char*>(pk.data())) == 0;
}

namespace {

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string url_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 &&
                   hexval(s[i + 2]) >= 0) {
            out += char(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Adds one array item (a hash string or a record) to `out`.
bool add_item(simdjson::dom::element item, std::set<std::string>& out, std::string& error) {
    std::string_view s;
    if (item.is_string()) {
        s = item.get_string().value();
        std::string h = lower(s);
        if (!is_key_hash(h)) {
            error = "an allowlist entry is not a 64-digit hex key hash";
            return false;
        }
        out.insert(std::move(h));
        return true;
    }
    if (item.is_object()) {
        auto obj = item.get_object().value();
        for (const char* k : {"keyHash", "key_hash", "hash"}) {
            if (obj[k].get_string().get(s) == simdjson::SUCCESS) {
                std::string h = lower(s);
                if (!is_key_hash(h)) {
                    error = "an allowlist record's keyHash is not 64 hex digits";
                    return false;
                }
                out.insert(std::move(h));
                return true;
            }
        }
        for (const char* k : {"publicKey", "signingPublicKey", "public_key"}) {
            if (obj[k].get_string().get(s) == simdjson::SUCCESS) {
                auto h = key_hash_of_b64(s);
                if (!h) {
                    error = "an allowlist record's public key is not a base64 Ed25519 key";
                    return false;
                }
                out.insert(std::move(*h));
                return true;
            }
        }
        error = "an allowlist record has neither keyHash nor publicKey";
        return false;
    }
    error = "an allowlist entry is neither a string nor an object";
    return false;
}

bool add_array(simdjson::dom::array arr, std::set<std::string>& out, std::string& error) {
    for (auto item : arr)
        if (!add_item(item, out, error)) return false;
    return true;
}

} // namespace

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view part = query.substr(0, amp);
        query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
        size_t eq = part.find('=');
        std::string_view k = part.substr(0, eq);
        if (url_decode(k) == name)
            return eq == part.npos ? std::string() : url_decode(part.substr(eq + 1));
    }
    return std::nullopt;
}

std::optional<std::set<std::string>> parse_allowlist(std::string_view json, std::string& error) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(json);
    simdjson::dom::element root;
    if (auto e = parser.parse(padded).get(root); e != simdjson::SUCCESS) {
        error = std::string("not valid JSON: ") + simdjson::error_message(e);
        return std::nullopt;
    }
    std::set<std::string> out;
    if (root.is_array()) {
        if (!add_array(root.get_array().value(), out, error)) return std::nullopt;
        return out;
    }
    if (root.is_object()) {
        auto obj = root.get_object().value();
        simdjson::dom::array arr;
        for (const char* k : {"keyHashes", "allowedKeys", "allowed", "keys", "hashes", "members"}) {
            if (obj[k].get_array().get(arr) == simdjson::SUCCESS) {
                if (!add_array(arr, out, error)) return std::nullopt;
                return out;
            }
        }
        error = "no keyHashes array (expected {\"keyHashes\": [...]} or an array)";
        return std::nullopt;
    }
    error = "expected a JSON object or array";
    return std::nullopt;
}

} // namespace parley::relay
