#include "link_crypto.hpp"

#include "base64.hpp"
#include "utf8.hpp"

#include <openssl/evp.h>
#include <simdjson.h>
#include <sodium.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace parley::cli::link {

namespace {

constexpr std::array<std::string_view, 32> kAdjectives = {
    "Brave",  "Calm",  "Clever", "Cosmic", "Curious", "Daring", "Eager",  "Fancy",
    "Gentle", "Happy", "Jolly",  "Kind",   "Lively",  "Lucky",  "Mellow", "Mighty",
    "Nimble", "Noble", "Polite", "Proud",  "Quick",   "Quiet",  "Rapid",  "Shiny",
    "Silly",  "Sunny", "Swift",  "Tidy",   "Vivid",   "Witty",  "Young",  "Zesty",
};

constexpr std::array<std::string_view, 32> kAnimals = {
    "Badger", "Bear",  "Beaver",  "Bison", "Crane",  "Dolphin", "Eagle",  "Falcon",
    "Ferret", "Fox",   "Gecko",   "Heron", "Ibis",   "Koala",   "Lemur",  "Lynx",
    "Marten", "Moose", "Narwhal", "Otter", "Owl",    "Panda",   "Puffin", "Quokka",
    "Raven",  "Seal",  "Sparrow", "Tiger", "Turtle", "Walrus",  "Wolf",   "Yak",
};

constexpr unsigned kHues = 12;

struct CtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// The browser's b64urlDecode: URL-safe alphabet, trailing '=' tolerated.
std::optional<std::vector<uint8_t>> b64url_decode(std::string_view s) {
    return ws::base64url_decode(s, ws::Base64Padding::Optional);
}

bool valid_id(std::string_view id) {
    if (id.size() < 8 || id.size() > 64) return false;
    for (char c : id)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Length in bytes of the UTF-8 sequence led by `b` (input is known to be valid UTF-8).
size_t seq_len(unsigned char b) {
    if (b < 0x80) return 1;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    return 4;
}

} // namespace

bool init() {
    return sodium_init() >= 0;
}

// ------------------------------------------------------------------------------------ RoomKey

void RoomKey::Free::operator()(uint8_t* p) const {
    sodium_free(p);
} // wipes, then unmaps

std::optional<RoomKey> RoomKey::from_bytes(std::span<const uint8_t> bytes) {
    if (bytes.size() != kKeyBytes) return std::nullopt;
    RoomKey k;
    k.bytes_.reset(static_cast<uint8_t*>(sodium_malloc(kKeyBytes)));
    if (!k.bytes_) return std::nullopt;
    std::memcpy(k.bytes_.get(), bytes.data(), kKeyBytes);
    sodium_mprotect_readonly(k.bytes_.get());
    return k;
}

std::optional<RoomKey> RoomKey::from_base64url(std::string_view b64url) {
    auto raw = b64url_decode(b64url);
    if (!raw) return std::nullopt;
    auto key = from_bytes(*raw);
    sodium_memzero(raw->data(), raw->size());
    return key;
}

// ------------------------------------------------------------------------- encrypt / decrypt

Sealed encrypt(const RoomKey& key, std::string_view plaintext, const Iv& iv) {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    std::vector<uint8_t> out(plaintext.size() + kTagBytes);
    int len = 0;
    bool ok =
        ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, int(kIvBytes), nullptr) == 1;
    ok = ok && EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), iv.data()) == 1;
    size_t written = 0;
    if (ok && !plaintext.empty()) {
        ok = EVP_EncryptUpdate(ctx.get(), out.data(), &len,
                               reinterpret_cast<const uint8_t*>(plaintext.data()),
                               int(plaintext.size())) == 1;
        written = size_t(len);
    }
    ok = ok && EVP_EncryptFinal_ex(ctx.get(), out.data() + written, &len) == 1;
    if (ok) written += size_t(len);
    ok = ok && written == plaintext.size() &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, int(kTagBytes),
                             out.data() + written) == 1;
    // Only an allocation failure inside OpenSSL gets here; sending nothing is the safe answer.
    if (!ok) throw std::runtime_error("AES-256-GCM encryption failed (OpenSSL)");
    return {ws::base64url_encode(std::span<const uint8_t>(iv)), ws::base64url_encode(out)};
}

Sealed encrypt(const RoomKey& key, std::string_view plaintext) {
    Iv iv;
    randombytes_buf(iv.data(), iv.size());
    return encrypt(key, plaintext, iv);
}

std::optional<std::string> decrypt(const RoomKey& key, std::string_view iv_b64url,
                                   std::string_view ciphertext_b64url) {
    auto iv = b64url_decode(iv_b64url);
    auto ct = b64url_decode(ciphertext_b64url);
    if (!iv || iv->size() != kIvBytes || !ct || ct->size() < kTagBytes ||
        ct->size() > size_t(INT32_MAX))
        return std::nullopt;
    const size_t body = ct->size() - kTagBytes;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    std::string pt(body, '\0');
    int len = 0;
    bool ok =
        ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, int(kIvBytes), nullptr) == 1;
    ok = ok && EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), iv->data()) == 1;
    size_t written = 0;
    if (ok && body > 0) {
        ok = EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(pt.data()), &len, ct->data(),
                               int(body)) == 1;
        written = size_t(len);
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, int(kTagBytes),
                                   ct->data() + body) == 1;
    // The tag is checked here: nothing decrypted is used unless this succeeds.
    ok = ok &&
         EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(pt.data()) + written, &len) == 1;
    if (!ok || !ws::is_valid_utf8(pt)) return std::nullopt;
    if (pt.starts_with("\xEF\xBB\xBF")) pt.erase(0, 3);
    return pt;
}

// ------------------------------------------------------------------------------- messages

std::string message_json(const ChatMessage& msg) {
    std::string out = "{\"text\":";
    out += json_quote(msg.text);
    out += ",\"name\":";
    out += json_quote(msg.name);
    out += ",\"id\":";
    out += json_quote(msg.id);
    out += ",\"ts\":";
    out += std::to_string(msg.ts);
    out += '}';
    return out;
}

std::optional<SealedMessage> seal_message(const RoomKey& key, std::string_view text,
                                          std::string_view name) {
    if (text.empty() || !ws::is_valid_utf8(text) || utf16_length(text) > kMaxText)
        return std::nullopt;
    if (!ws::is_valid_utf8(name)) name = {};
    std::array<uint8_t, 12> id;
    randombytes_buf(id.data(), id.size());
    ChatMessage msg{std::string(text), std::string(utf16_prefix(name, kMaxName)),
                    ws::base64url_encode(std::span<const uint8_t>(id)), now_ms()};
    auto wire = encrypt(key, message_json(msg));
    return SealedMessage{std::move(wire), std::move(msg)};
}

std::optional<ChatMessage> open_message(const RoomKey& key, std::string_view iv_b64url,
                                        std::string_view ciphertext_b64url) {
    auto pt = decrypt(key, iv_b64url, ciphertext_b64url);
    if (!pt) return std::nullopt;
    simdjson::dom::parser parser;
    simdjson::dom::object obj;
    if (parser.parse(*pt).get_object().get(obj)) return std::nullopt;
    // JSON.parse keeps the last of repeated keys, so read every field in order.
    std::optional<simdjson::dom::element> text, name, id, ts;
    for (auto field : obj) {
        if (field.key == "text")
            text = field.value;
        else if (field.key == "name")
            name = field.value;
        else if (field.key == "id")
            id = field.value;
        else if (field.key == "ts")
            ts = field.value;
    }
    ChatMessage msg;
    std::string_view sv;
    if (!text || text->get_string().get(sv) || utf16_length(sv) > kMaxText) return std::nullopt;
    msg.text = sv;
    if (!id || id->get_string().get(sv) || !valid_id(sv)) return std::nullopt;
    msg.id = sv;
    double t = 0;
    if (!ts || !ts->is_number() || ts->get_double().get(t) || !std::isfinite(t))
        return std::nullopt;
    // Display only; clamp so the conversion is defined for any finite number.
    msg.ts = int64_t(std::fmax(-8.64e15, std::fmin(8.64e15, t)));
    if (name && !name->get_string().get(sv)) msg.name = utf16_prefix(sv, kMaxName);
    return msg;
}

// ------------------------------------------------------------------------------------ names

uint32_t fnv1a32(std::string_view bytes) {
    uint32_t h = 0x811c9dc5u;
    for (unsigned char b : bytes) {
        h ^= b;
        h *= 0x01000193u;
    }
    return h;
}

std::string display_name(std::string_view client_id) {
    const uint32_t h = fnv1a32(client_id);
    std::string out(kAdjectives[h % 32]);
    out += ' ';
    out += kAnimals[(h >> 8) % 32];
    return out;
}

unsigned hue_index(std::string_view client_id) {
    return (fnv1a32(client_id) >> 16) % kHues;
}

// ---------------------------------------------------------------------------------- helpers

std::string random_client_id(size_t len) {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string out;
    out.reserve(len);
    while (out.size() < len)
        out += alphabet[randombytes_uniform(uint32_t(alphabet.size()))];
    return out;
}

size_t utf16_length(std::string_view utf8) {
    size_t units = 0;
    for (size_t i = 0; i < utf8.size();) {
        const size_t n = seq_len(static_cast<unsigned char>(utf8[i]));
        units += n == 4 ? 2 : 1;
        i += n;
    }
    return units;
}

std::string_view utf16_prefix(std::string_view utf8, size_t units) {
    size_t used = 0, i = 0;
    while (i < utf8.size()) {
        const size_t n = seq_len(static_cast<unsigned char>(utf8[i]));
        const size_t u = n == 4 ? 2 : 1;
        if (used + u > units || i + n > utf8.size()) break;
        used += u;
        i += n;
    }
    return utf8.substr(0, i);
}

std::string json_quote(std::string_view utf8) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(utf8.size() + 2);
    out += '"';
    for (char ch : utf8) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += ch;
            }
        }
    }
    out += '"';
    return out;
}

} // namespace parley::cli::link
