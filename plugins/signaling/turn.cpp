#include "turn.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace parley::signaling {

std::string hmac_sha1_base64(std::string_view secret, std::string_view message) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha1(), secret.data(), int(secret.size()),
              reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
              &mac_len))
        throw std::runtime_error("HMAC-SHA1 failed");
    std::string out(4 * ((mac_len + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, int(mac_len));
    out.resize(size_t(n));
    return out;
}

TurnCredential turn_credential(std::string_view secret, int64_t expiry_unix, std::string_view id) {
    TurnCredential c;
    c.username = std::to_string(expiry_unix) + ":" + std::string(id);
    c.password = hmac_sha1_base64(secret, c.username);
    return c;
}

std::string random_opaque_id() {
    unsigned char raw[12];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : raw) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

} // namespace parley::signaling
