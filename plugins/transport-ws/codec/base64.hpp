// Base64 and base64url (RFC 4648 sections 4 and 5) with strict decoding: no whitespace, no
// characters from the other alphabet, padding only where the caller's policy allows it, and
// the unused low bits of the last character must be zero, so every accepted text is the
// canonical encoding of its bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parley::ws {

enum class Base64Padding {
    Required,  // length is a multiple of 4, with 0-2 '=' at the end
    Forbidden, // no '=' at all
    Optional,  // either of the above
};

std::string base64_encode(std::span<const uint8_t> data);
std::string base64_encode(std::string_view data);
// base64url is normally written without padding (JWT, WebPush, parley's own link dialect).
std::string base64url_encode(std::span<const uint8_t> data, bool pad = false);
std::string base64url_encode(std::string_view data, bool pad = false);

// nullopt when `text` is not valid under the alphabet and padding policy.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text,
                                                  Base64Padding padding = Base64Padding::Required);
std::optional<std::vector<uint8_t>>
base64url_decode(std::string_view text, Base64Padding padding = Base64Padding::Forbidden);

} // namespace parley::ws
