// SHA-1 (FIPS 180-4), only for the WebSocket handshake's Sec-WebSocket-Accept. SHA-1 is broken
// for collision resistance; do not use it for anything that needs a secure hash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace parley::ws {

using Sha1Digest = std::array<uint8_t, 20>;

class Sha1 {
  public:
    Sha1() { reset(); }
    void reset();
    void update(const void* data, size_t size);
    void update(std::string_view text) { update(text.data(), text.size()); }
    // Pads and returns the digest; call reset() before hashing anything else.
    Sha1Digest finish();

  private:
    void compress(const uint8_t* block);

    std::array<uint32_t, 5> state_{};
    std::array<uint8_t, 64> block_{};
    size_t block_used_ = 0;
    uint64_t total_bytes_ = 0;
};

Sha1Digest sha1(std::string_view data);

} // namespace parley::ws
