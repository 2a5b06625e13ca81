// `parley chat` crypto against the shared link-room vectors: every AES-GCM vector decrypts and
// re-encrypts (with its IV) to the same ciphertext, and display names match names.js.
#include "link_crypto.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <string>

using namespace parley::cli::link;

namespace {

simdjson::dom::element load(simdjson::dom::parser& parser, const std::string& file) {
    auto doc = parser.load(std::string(PARLEY_LINK_VECTORS_DIR) + "/" + file);
    EXPECT_FALSE(doc.error()) << file << ": " << simdjson::error_message(doc.error());
    return doc.value();
}

std::string str(simdjson::dom::element e, const char* key) {
    std::string_view v;
    EXPECT_FALSE(e[key].get_string().get(v)) << key;
    return std::string(v);
}

Iv iv_from(const std::string& b64url) {
    // The IV is public: decoding it through a RoomKey-free path keeps the test honest.
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    Iv iv{};
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (char c : b64url) {
        acc = acc << 6 | uint32_t(alphabet.find(c));
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < iv.size()) iv[n] = uint8_t(acc >> bits);
            ++n;
        }
    }
    EXPECT_EQ(n, iv.size());
    return iv;
}

class LinkCrypto : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { ASSERT_TRUE(init()); }
};

TEST_F(LinkCrypto, AesGcmVectors) {
    simdjson::dom::parser parser;
    auto root = load(parser, "link-aesgcm.json");
    simdjson::dom::array vectors;
    ASSERT_FALSE(root["vectors"].get_array().get(vectors));
    size_t count = 0;
    for (auto v : vectors) {
        const auto name = str(v, "name");
        SCOPED_TRACE(name);
        auto key = RoomKey::from_base64url(str(v, "keyB64url"));
        ASSERT_TRUE(key);
        const auto iv = str(v, "ivB64url");
        const auto ct = str(v, "ciphertextB64url");
        const auto pt = str(v, "plaintext");

        auto opened = decrypt(*key, iv, ct);
        ASSERT_TRUE(opened);
        EXPECT_EQ(*opened, pt);

        auto sealed = encrypt(*key, pt, iv_from(iv));
        EXPECT_EQ(sealed.iv, iv);
        EXPECT_EQ(sealed.ciphertext, ct);

        // Any flipped bit of the ciphertext or tag, or of the IV, must be rejected.
        std::string bad = ct;
        bad[bad.size() / 2] = bad[bad.size() / 2] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(decrypt(*key, iv, bad));
        std::string bad_iv = iv;
        bad_iv[0] = bad_iv[0] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(decrypt(*key, bad_iv, ct));
        ++count;
    }
    EXPECT_EQ(count, 3u);
}

TEST_F(LinkCrypto, ChatMessageVectorIsWhatSealMessageWrites) {
    simdjson::dom::parser parser;
    auto root = load(parser, "link-aesgcm.json");
    simdjson::dom::array vectors;
    ASSERT_FALSE(root["vectors"].get_array().get(vectors));
    for (auto v : vectors) {
        if (str(v, "name") != "chat-message-json") continue;
        auto key = RoomKey::from_base64url(str(v, "keyB64url"));
        ASSERT_TRUE(key);
        auto msg = open_message(*key, str(v, "ivB64url"), str(v, "ciphertextB64url"));
        ASSERT_TRUE(msg);
        EXPECT_EQ(msg->text, "hello, parley");
        EXPECT_EQ(msg->name, "Brave Otter");
        EXPECT_EQ(msg->id, "AAECAwQFBgcICQoL");
        EXPECT_EQ(msg->ts, 1735689600000);
        // Byte for byte the JSON.stringify output the browser sealed.
        EXPECT_EQ(message_json(*msg), str(v, "plaintext"));
        return;
    }
    FAIL() << "no chat-message-json vector";
}

TEST_F(LinkCrypto, WrongKeyAndMalformedInputFail) {
    simdjson::dom::parser parser;
    auto root = load(parser, "link-aesgcm.json");
    simdjson::dom::element v;
    ASSERT_FALSE(root["vectors"].at(0).get(v));
    std::array<uint8_t, kKeyBytes> zero{};
    auto other = RoomKey::from_bytes(zero);
    ASSERT_TRUE(other);
    EXPECT_FALSE(decrypt(*other, str(v, "ivB64url"), str(v, "ciphertextB64url")));
    auto key = RoomKey::from_base64url(str(v, "keyB64url"));
    ASSERT_TRUE(key);
    EXPECT_FALSE(decrypt(*key, "short", str(v, "ciphertextB64url")));
    EXPECT_FALSE(decrypt(*key, str(v, "ivB64url"), "not+base64url/"));
    EXPECT_FALSE(decrypt(*key, str(v, "ivB64url"), "AAAA")); // shorter than the tag

    EXPECT_FALSE(RoomKey::from_base64url("AAEC"));                   // too short
    EXPECT_FALSE(RoomKey::from_base64url(std::string(43, '!')));     // not base64url
    EXPECT_TRUE(RoomKey::from_base64url(str(v, "keyB64url") + "=")); // padding tolerated
}

TEST_F(LinkCrypto, SealOpenRoundTripAndValidation) {
    std::array<uint8_t, kKeyBytes> raw{};
    for (size_t i = 0; i < raw.size(); ++i)
        raw[i] = uint8_t(i * 7);
    auto key = RoomKey::from_bytes(raw);
    ASSERT_TRUE(key);

    const std::string text = "line \"one\"\n\ttwo \xF0\x9F\x91\x8B \\ \x01";
    auto sealed = seal_message(*key, text, "Brave Otter");
    ASSERT_TRUE(sealed);
    EXPECT_EQ(sealed->wire.iv.size(), 16u);
    EXPECT_EQ(sealed->msg.id.size(), 16u);
    auto opened = open_message(*key, sealed->wire.iv, sealed->wire.ciphertext);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->text, text);
    EXPECT_EQ(opened->name, "Brave Otter");
    EXPECT_EQ(opened->id, sealed->msg.id);
    EXPECT_EQ(opened->ts, sealed->msg.ts);
    // A fresh IV every time.
    auto again = seal_message(*key, text, "x");
    ASSERT_TRUE(again);
    EXPECT_NE(again->wire.iv, sealed->wire.iv);

    EXPECT_FALSE(seal_message(*key, "", "n"));
    EXPECT_FALSE(seal_message(*key, "\xC3", "n")); // not UTF-8
    EXPECT_TRUE(seal_message(*key, std::string(kMaxText, 'a'), "n"));
    EXPECT_FALSE(seal_message(*key, std::string(kMaxText + 1, 'a'), "n"));
    // 2000 emoji are 4000 UTF-16 units, like JavaScript counts them.
    std::string emoji;
    for (int i = 0; i < 2000; ++i)
        emoji += "\xF0\x9F\x98\x80";
    EXPECT_TRUE(seal_message(*key, emoji, "n"));
    EXPECT_FALSE(seal_message(*key, emoji + "a", "n"));
    // Names are cut to 64 UTF-16 units.
    auto long_name = seal_message(*key, "hi", std::string(100, 'n'));
    ASSERT_TRUE(long_name);
    EXPECT_EQ(long_name->msg.name, std::string(64, 'n'));

    // openMessage's checks: object, string text, id pattern, finite number ts.
    auto opens = [&](const std::string& json) {
        auto w = encrypt(*key, json);
        return open_message(*key, w.iv, w.ciphertext).has_value();
    };
    EXPECT_TRUE(opens(R"({"text":"","id":"abcdefgh","ts":1})"));
    EXPECT_TRUE(opens(R"({"text":"t","id":"abcdefgh","ts":1.5e12,"extra":true})"));
    EXPECT_FALSE(opens(R"(["text"])"));
    EXPECT_FALSE(opens(R"({"text":1,"id":"abcdefgh","ts":1})"));
    EXPECT_FALSE(opens(R"({"text":"t","id":"short","ts":1})"));
    EXPECT_FALSE(opens(R"({"text":"t","id":"has space!","ts":1})"));
    EXPECT_FALSE(opens(R"({"text":"t","id":"abcdefgh","ts":"1"})"));
    EXPECT_FALSE(opens(R"({"text":"t","id":"abcdefgh"})"));
    EXPECT_FALSE(opens("not json"));
    // JSON.parse keeps the last of repeated keys.
    auto w = encrypt(*key, R"({"text":"first","text":"last","id":"abcdefgh","ts":1})");
    auto dup = open_message(*key, w.iv, w.ciphertext);
    ASSERT_TRUE(dup);
    EXPECT_EQ(dup->text, "last");
}

TEST_F(LinkCrypto, JsonQuoteMatchesJsonStringify) {
    EXPECT_EQ(json_quote("a\"b\\c"), R"("a\"b\\c")");
    EXPECT_EQ(json_quote("\b\f\n\r\t"), R"("\b\f\n\r\t")");
    EXPECT_EQ(json_quote(std::string("\x00\x1f\x7f", 3)), "\"\\u0000\\u001f\x7f\"");
    EXPECT_EQ(json_quote("\xE2\x80\xA8 \xC3\xA9"), "\"\xE2\x80\xA8 \xC3\xA9\""); // raw UTF-8
}

TEST_F(LinkCrypto, NameVectors) {
    simdjson::dom::parser parser;
    auto root = load(parser, "link-names.json");
    simdjson::dom::array vectors;
    ASSERT_FALSE(root["vectors"].get_array().get(vectors));
    size_t count = 0;
    for (auto v : vectors) {
        const auto id = str(v, "clientId");
        SCOPED_TRACE(id);
        uint64_t h = 0, hue = 0;
        ASSERT_FALSE(v["fnv1a32"].get_uint64().get(h));
        ASSERT_FALSE(v["hue"].get_uint64().get(hue));
        EXPECT_EQ(fnv1a32(id), h);
        EXPECT_EQ(display_name(id), str(v, "name"));
        EXPECT_EQ(hue_index(id), hue);
        ++count;
    }
    EXPECT_GE(count, 5u);
}

TEST_F(LinkCrypto, RandomClientIds) {
    for (int i = 0; i < 100; ++i) {
        auto id = random_client_id();
        ASSERT_EQ(id.size(), 8u);
        for (char c : id)
            EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << id;
    }
}

TEST_F(LinkCrypto, Utf16Helpers) {
    EXPECT_EQ(utf16_length("abc"), 3u);
    EXPECT_EQ(utf16_length("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x91\x8B"), 4u); // é € 👋
    EXPECT_EQ(utf16_prefix("ab\xF0\x9F\x91\x8B", 3), "ab");              // no half emoji
    EXPECT_EQ(utf16_prefix("ab\xF0\x9F\x91\x8B", 4), "ab\xF0\x9F\x91\x8B");
}

} // namespace
