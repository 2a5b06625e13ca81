// Incremental UTF-8 validation (Unicode 15, table 3-7 "well-formed byte sequences"): rejects
// overlong forms, surrogates U+D800..U+DFFF and code points above U+10FFFF at the first byte
// that makes the sequence impossible, and can be fed a text in pieces split anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace parley::ws {

enum class Utf8Status {
    Complete,   // everything so far is valid and ends on a code point boundary
    Incomplete, // valid so far, but the last code point still needs continuation bytes
    Invalid,    // not UTF-8; stays so until reset()
};

class Utf8Validator {
  public:
    Utf8Status feed(const uint8_t* data, size_t size);
    Utf8Status feed(std::string_view text) {
        return feed(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    }
    Utf8Status status() const;
    void reset() { state_ = 0; }

  private:
    uint8_t state_ = 0;
};

Utf8Status validate_utf8(std::string_view text);
inline bool is_valid_utf8(std::string_view text) {
    return validate_utf8(text) == Utf8Status::Complete;
}

} // namespace parley::ws
