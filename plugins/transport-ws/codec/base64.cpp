#include "base64.hpp"

#include <array>

namespace parley::ws {

namespace {

constexpr std::string_view kStandardAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr uint8_t kInvalid = 0xFF;

constexpr std::array<uint8_t, 256> make_decode_table(std::string_view alphabet) {
    std::array<uint8_t, 256> table{};
    table.fill(kInvalid);
    for (size_t i = 0; i < alphabet.size(); ++i)
        table[uint8_t(alphabet[i])] = uint8_t(i);
    return table;
}

constexpr auto kStandardDecode = make_decode_table(kStandardAlphabet);
constexpr auto kUrlDecode = make_decode_table(kUrlAlphabet);

std::string encode(const uint8_t* data, size_t size, std::string_view alphabet, bool pad) {
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8 | data[i + 2];
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    const size_t rest = size - i;
    if (rest == 1) {
        const uint32_t v = uint32_t(data[i]) << 16;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        if (pad) out += "==";
    } else if (rest == 2) {
        const uint32_t v = uint32_t(data[i]) << 16 | uint32_t(data[i + 1]) << 8;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        if (pad) out += '=';
    }
    return out;
}

// Length of `text` without its padding, or nullopt if the padding breaks the policy. Characters
// are not checked here.
std::optional<size_t> unpadded_length(std::string_view text, Base64Padding padding) {
    size_t pads = 0;
    while (pads < text.size() && pads < 2 && text[text.size() - 1 - pads] == '=')
        ++pads;
    const size_t data_len = text.size() - pads;
    if (pads > 0) {
        if (padding == Base64Padding::Forbidden || text.size() % 4 != 0) return std::nullopt;
    } else if (padding == Base64Padding::Required && text.size() % 4 != 0) {
        return std::nullopt;
    }
    // One leftover character carries only 6 bits: never a whole byte.
    if (data_len % 4 == 1) return std::nullopt;
    return data_len;
}

std::optional<std::vector<uint8_t>> decode(std::string_view text, Base64Padding padding,
                                           const std::array<uint8_t, 256>& table) {
    const auto data_len = unpadded_length(text, padding);
    if (!data_len) return std::nullopt;
    std::vector<uint8_t> out;
    out.reserve(*data_len / 4 * 3 + 2);

    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    size_t i = 0;
    for (; i + 4 <= *data_len; i += 4) {
        const uint8_t a = table[p[i]], b = table[p[i + 1]], c = table[p[i + 2]],
                      d = table[p[i + 3]];
        // Valid values are below 64, so any kInvalid sets the top bits.
        if ((a | b | c | d) & 0xC0) return std::nullopt;
        const uint32_t v = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6 | d;
        out.push_back(uint8_t(v >> 16));
        out.push_back(uint8_t(v >> 8));
        out.push_back(uint8_t(v));
    }
    const size_t rest = *data_len - i;
    if (rest == 2) {
        const uint8_t a = table[p[i]], b = table[p[i + 1]];
        if (a == kInvalid || b == kInvalid || (b & 0x0F)) return std::nullopt;
        out.push_back(uint8_t(a << 2 | b >> 4));
    } else if (rest == 3) {
        const uint8_t a = table[p[i]], b = table[p[i + 1]], c = table[p[i + 2]];
        if (a == kInvalid || b == kInvalid || c == kInvalid || (c & 0x03)) return std::nullopt;
        out.push_back(uint8_t(a << 2 | b >> 4));
        out.push_back(uint8_t(b << 4 | c >> 2));
    }
    return out;
}

const uint8_t* bytes_of(std::string_view s) {
    return reinterpret_cast<const uint8_t*>(s.data());
}

} // namespace

std::string base64_encode(std::span<const uint8_t> data) {
    return encode(data.data(), data.size(), kStandardAlphabet, true);
}

std::string base64_encode(std::string_view data) {
    return encode(bytes_of(data), data.size(), kStandardAlphabet, true);
}

std::string base64url_encode(std::span<const uint8_t> data, bool pad) {
    return encode(data.data(), data.size(), kUrlAlphabet, pad);
}

std::string base64url_encode(std::string_view data, bool pad) {
    return encode(bytes_of(data), data.size(), kUrlAlphabet, pad);
}

std::optional<std::vector<uint8_t>> base64_decode(std::string_view text, Base64Padding padding) {
    return decode(text, padding, kStandardDecode);
}

std::optional<std::vector<uint8_t>> base64url_decode(std::string_view text, Base64Padding padding) {
    return decode(text, padding, kUrlDecode);
}

} // namespace parley::ws
