// plugins/relay/relay_core: key hash, obfuscated expiry, ISO formatting, request proofs, query
// parsing and the accepted allowlist shapes.
#include "relay.hpp"
#include "relay_core.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

using namespace parley::relay;

namespace {

std::string raw(const unsigned char* p, size_t n) {
    return std::string(reinterpret_cast<const char*>(p), n);
}

std::string from_hex(std::string_view hex) {
    std::string out(hex.size() / 2, '\0');
    size_t len = 0;
    sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(), hex.size(),
                   nullptr, &len, nullptr);
    out.resize(len);
    return out;
}

class RelayCore : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(crypto_init()); }
};

TEST_F(RelayCore, KeyHashIsSha256OfBase64) {
    // hex(SHA-256("AAAA...A=")) for the all-zero key, computed with sha256sum.
    EXPECT_EQ(key_hash_of_public_key(std::string(32, '\0')),
              "51643eac9777b63a7b268174d1fd4276daedec9bc9ea0bc6e5abf69047bc54f6");
    std::string k;
    for (int i = 0; i < 32; ++i)
        k += char(i);
    EXPECT_EQ(b64_encode(k), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    EXPECT_EQ(key_hash_of_public_key(k),
              "905f28def18eaac05ae6f12b2c3452744afaf626da1343d57b395b544e0519b6");
    // From base64 text, padded or not; other lengths are refused.
    EXPECT_EQ(key_hash_of_b64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
              key_hash_of_public_key(k));
    EXPECT_EQ(key_hash_of_b64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
              key_hash_of_public_key(k));
    EXPECT_FALSE(key_hash_of_b64("AAEC"));
    EXPECT_FALSE(key_hash_of_b64("not base64!"));
    EXPECT_TRUE(is_key_hash(key_hash_of_public_key(k)));
    EXPECT_FALSE(is_key_hash("905F28DEF18EAAC05AE6F12B2C3452744AFAF626DA1343D57B395B544E0519B6"));
    EXPECT_FALSE(is_key_hash("abc"));
}

TEST_F(RelayCore, ExpiryIsMidnightPlus72hPlusJitter) {
    const int64_t now = 1714568862123; // 2024-05-01T13:07:42.123Z
    EXPECT_EQ(iso_utc_ms(now), "2024-05-01T13:07:42.123Z");
    EXPECT_EQ(iso_utc_ms(utc_midnight_ms(now)), "2024-05-01T00:00:00.000Z");
    EXPECT_EQ(iso_utc_ms(expiry_ms(now, 0)), "2024-05-04T00:00:00.000Z");
    EXPECT_EQ(iso_utc_ms(expiry_ms(now, 61)), "2024-05-04T01:01:00.000Z");
    EXPECT_EQ(iso_utc_ms(expiry_ms(now, 1440)), "2024-05-05T00:00:00.000Z");
    EXPECT_EQ(expiry_ms(now, 5000), expiry_ms(now, 1440)); // clamped
    // Every send time of one UTC day maps to the same window.
    EXPECT_EQ(expiry_ms(utc_midnight_ms(now), 7), expiry_ms(utc_midnight_ms(now) + kDayMs - 1, 7));
    EXPECT_EQ(iso_utc_ms(0), "1970-01-01T00:00:00.000Z");

    const int64_t lo = expiry_ms(now, 0), hi = expiry_ms(now, 1440);
    bool low_half = false, high_half = false;
    for (int i = 0; i < 2000; ++i) {
        int64_t e = random_expiry_ms(now);
        ASSERT_GE(e, lo);
        ASSERT_LE(e, hi);
        ASSERT_EQ(e % 60000, 0) << "minute granularity: no send-time bits";
        (e < lo + 720 * 60000 ? low_half : high_half) = true;
    }
    EXPECT_TRUE(low_half && high_half);
}

TEST_F(RelayCore, ProofMessageAndVerify) {
    EXPECT_EQ(proof_message("GET", "/api/blobs", "recipientKeyHash=ab", "1700000000", ""),
              "GET\n/api/blobs?recipientKeyHash=ab\n1700000000\n"
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(proof_message("DELETE", "/api/blobs/x", "", "1", "abc"),
              "DELETE\n/api/blobs/x\n1\n"
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    // RFC 8032 test 1 (empty message).
    std::string pk = from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    std::string sig = from_hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb"
                               "8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    EXPECT_TRUE(verify_ed25519(pk, sig, ""));
    EXPECT_FALSE(verify_ed25519(pk, sig, "x"));
    EXPECT_FALSE(verify_ed25519(pk.substr(1), sig, ""));

    unsigned char spk[crypto_sign_PUBLICKEYBYTES], ssk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(spk, ssk);
    std::string msg = proof_message("POST", "/api/blobs", "recipientKeyHash=ab", "5",
                                    std::string(kBlobSize, 'z'));
    unsigned char s[crypto_sign_BYTES];
    crypto_sign_detached(s, nullptr, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                         ssk);
    EXPECT_TRUE(verify_ed25519(raw(spk, sizeof spk), raw(s, sizeof s), msg));
    s[0] ^= 1;
    EXPECT_FALSE(verify_ed25519(raw(spk, sizeof spk), raw(s, sizeof s), msg));
}

TEST_F(RelayCore, QueryParam) {
    EXPECT_EQ(query_param("recipientKeyHash=ab&x=1", "recipientKeyHash"), "ab");
    EXPECT_EQ(query_param("x=1&recipientKeyHash=a%62", "recipientKeyHash"), "ab");
    EXPECT_EQ(query_param("recipientKeyHash=", "recipientKeyHash"), "");
    EXPECT_EQ(query_param("recipientKeyHash", "recipientKeyHash"), "");
    EXPECT_FALSE(query_param("", "recipientKeyHash"));
    EXPECT_FALSE(query_param("recipient=ab", "recipientKeyHash"));
    EXPECT_EQ(query_param("a=1&a=2", "a"), "1");
}

TEST_F(RelayCore, AllowlistShapes) {
    const std::string h1(64, 'a'), h2(64, 'b');
    std::string err;
    auto a = parse_allowlist(R"({"format":"parley-relay-allowlist","keyHashes":[")" + h1 +
                                 R"(",")" + h2 + R"("]})",
                             err);
    ASSERT_TRUE(a) << err;
    EXPECT_EQ(a->size(), 2u);
    a = parse_allowlist(R"([")" + std::string(64, 'A') + R"("])", err);
    ASSERT_TRUE(a) << err;
    EXPECT_EQ(a->count(h1), 1u) << "hashes are lowercased";
    a = parse_allowlist(R"([{"keyHash":")" + h1 + R"(","label":"x"},{"keyHash":")" + h2 + R"("}])",
                        err);
    ASSERT_TRUE(a) << err;
    EXPECT_EQ(a->size(), 2u);
    a = parse_allowlist(
        R"({"allowedKeys":[{"publicKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]})", err);
    ASSERT_TRUE(a) << err;
    EXPECT_EQ(a->count("905f28def18eaac05ae6f12b2c3452744afaf626da1343d57b395b544e0519b6"), 1u);
    EXPECT_TRUE(parse_allowlist("[]", err)->empty());

    EXPECT_FALSE(parse_allowlist("{", err));
    EXPECT_FALSE(parse_allowlist(R"(["short"])", err));
    EXPECT_FALSE(parse_allowlist(R"({"other":[]})", err));
    EXPECT_FALSE(parse_allowlist(R"([{"name":"x"}])", err));
    EXPECT_FALSE(parse_allowlist("42", err));
}

// The relay dialect computes key hashes on its own (it does not link relay_core): both must
// agree byte for byte, or admitted keys would not match the allowlist.
TEST_F(RelayCore, DialectKeyHashAndAuthMessage) {
    for (int i = 0; i < 50; ++i) {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        crypto_sign_keypair(pk, sk);
        EXPECT_EQ(parley::dialect::relay_key_hash(raw(pk, sizeof pk)),
                  key_hash_of_public_key(raw(pk, sizeof pk)));
    }
    std::string k;
    for (int i = 0; i < 32; ++i)
        k += char(i);
    EXPECT_EQ(parley::dialect::relay_key_hash(k),
              "905f28def18eaac05ae6f12b2c3452744afaf626da1343d57b395b544e0519b6");
    EXPECT_EQ(parley::dialect::relay_b64(k), b64_encode(k));
    EXPECT_EQ(parley::dialect::relay_auth_message("bm9uY2U="), "parley-relay-auth-v1\nbm9uY2U=");
}

// Relay's scripts/generate-20-identities.mjs writes allowed-keys-seed.json as
// JSON.stringify(hashes, null, 2): a pretty-printed array of lowercase hex strings, where each
// hash is hex(SHA-256(base64(raw P-256 public key))) -- the same formula over another key type.
TEST_F(RelayCore, RelaySeedFile) {
    std::string p256_b64 = b64_encode(std::string(1, '\x04') + std::string(64, '\x11'));
    std::string h1 = sha256_hex(p256_b64), h2 = sha256_hex("other");
    std::string seed = "[\n  \"" + h1 + "\",\n  \"" + h2 + "\"\n]";
    std::string err;
    auto a = parse_allowlist(seed, err);
    ASSERT_TRUE(a) << err;
    EXPECT_EQ(a->size(), 2u);
    EXPECT_EQ(a->count(h1), 1u);
}

} // namespace
