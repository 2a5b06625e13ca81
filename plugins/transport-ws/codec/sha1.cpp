#include "sha1.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace parley::ws {

namespace {

uint32_t load_be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

} // namespace

void Sha1::reset() {
    state_ = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    block_used_ = 0;
    total_bytes_ = 0;
}

void Sha1::compress(const uint8_t* block) {
    // 16-word circular message schedule instead of the textbook 80 words.
    uint32_t w[16];
    for (int i = 0; i < 16; ++i)
        w[i] = load_be32(block + 4 * i);

    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
    // Four loops of 20 rounds, so no round branches on which function it uses and the compiler
    // can unroll them (every handshake hashes two blocks).
    auto round = [&](int t, uint32_t f, uint32_t k) {
        if (t >= 16) {
            const uint32_t x = w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15];
            w[t & 15] = std::rotl(x, 1);
        }
        const uint32_t temp = std::rotl(a, 5) + f + e + k + w[t & 15];
        e = d;
        d = c;
        c = std::rotl(b, 30);
        b = a;
        a = temp;
    };
    for (int t = 0; t < 20; ++t)
        round(t, (b & c) | (~b & d), 0x5A827999);
    for (int t = 20; t < 40; ++t)
        round(t, b ^ c ^ d, 0x6ED9EBA1);
    for (int t = 40; t < 60; ++t)
        round(t, (b & c) | (b & d) | (c & d), 0x8F1BBCDC);
    for (int t = 60; t < 80; ++t)
        round(t, b ^ c ^ d, 0xCA62C1D6);
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
}

void Sha1::update(const void* data, size_t size) {
    auto p = static_cast<const uint8_t*>(data);
    total_bytes_ += size;
    if (block_used_ > 0) {
        const size_t take = std::min(size, block_.size() - block_used_);
        std::memcpy(block_.data() + block_used_, p, take);
        block_used_ += take;
        p += take;
        size -= take;
        if (block_used_ < block_.size()) return;
        compress(block_.data());
        block_used_ = 0;
    }
    for (; size >= 64; p += 64, size -= 64)
        compress(p);
    if (size > 0) {
        std::memcpy(block_.data(), p, size);
        block_used_ = size;
    }
}

Sha1Digest Sha1::finish() {
    const uint64_t bit_length = total_bytes_ * 8;
    uint8_t padding[72] = {0x80};
    // Pad to 56 mod 64, leaving room for the 64-bit big-endian length.
    const size_t pad_len = (block_used_ < 56 ? 56 : 120) - block_used_;
    for (int i = 0; i < 8; ++i)
        padding[pad_len + i] = uint8_t(bit_length >> (56 - 8 * i));
    update(padding, pad_len + 8);

    Sha1Digest digest;
    for (size_t i = 0; i < 5; ++i) {
        digest[4 * i] = uint8_t(state_[i] >> 24);
        digest[4 * i + 1] = uint8_t(state_[i] >> 16);
        digest[4 * i + 2] = uint8_t(state_[i] >> 8);
        digest[4 * i + 3] = uint8_t(state_[i]);
    }
    return digest;
}

Sha1Digest sha1(std::string_view data) {
    Sha1 hasher;
    hasher.update(data);
    return hasher.finish();
}

} // namespace parley::ws
