// Scalar parsers for the typed config values: sizes, durations, booleans, integers.
#include "config/config.hpp"

#include <cctype>
#include <charconv>
#include <limits>

namespace parley::config {

namespace {

constexpr int kMaxFractionDigits = 9;

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
char lower(char c) {
    return char(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t k = 0; k < a.size(); ++k)
        if (lower(a[k]) != lower(b[k])) return false;
    return true;
}

std::optional<int64_t> fail(std::string* why, const char* reason) {
    if (why) *why = reason;
    return std::nullopt;
}

// A non-negative decimal number "12" or "1.25", kept exact as whole + frac / 10^digits.
struct Number {
    int64_t whole = 0;
    int64_t frac = 0;
    int digits = 0;
};

// Consumes a number from the front of `s`. Returns nullptr on success, else the reason.
const char* read_number(std::string_view& s, Number& n) {
    if (s.empty() || !is_digit(s.front())) return "expected a number";
    n = Number{};
    while (!s.empty() && is_digit(s.front())) {
        if (__builtin_mul_overflow(n.whole, 10, &n.whole) ||
            __builtin_add_overflow(n.whole, s.front() - '0', &n.whole))
            return "too large";
        s.remove_prefix(1);
    }
    if (!s.empty() && s.front() == '.') {
        s.remove_prefix(1);
        if (s.empty() || !is_digit(s.front())) return "expected digits after '.'";
        while (!s.empty() && is_digit(s.front())) {
            if (++n.digits > kMaxFractionDigits) return "too many decimal places";
            n.frac = n.frac * 10 + (s.front() - '0');
            s.remove_prefix(1);
        }
    }
    return nullptr;
}

// n * unit, exactly. Returns nullptr on success, else the reason.
const char* scale(const Number& n, int64_t unit, const char* not_whole, int64_t& out) {
    int64_t whole;
    if (__builtin_mul_overflow(n.whole, unit, &whole)) return "too large";
    if (n.digits == 0) {
        out = whole;
        return nullptr;
    }
    // frac < 10^9 and unit < 2^47, so the product fits easily in 128 bits.
    unsigned __int128 part = static_cast<unsigned __int128>(n.frac) * uint64_t(unit);
    uint64_t pow10 = 1;
    for (int k = 0; k < n.digits; ++k)
        pow10 *= 10;
    if (part % pow10 != 0) return not_whole;
    if (__builtin_add_overflow(whole, int64_t(part / pow10), &out)) return "too large";
    return nullptr;
}

void skip_spaces(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
}

std::string_view read_letters(std::string_view& s) {
    size_t k = 0;
    while (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k])))
        ++k;
    auto word = s.substr(0, k);
    s.remove_prefix(k);
    return word;
}

} // namespace

std::optional<int64_t> parse_int(std::string_view text, std::string* why) {
    std::string_view s = trim(text);
    // from_chars takes '-' but not '+'; strip it ourselves without letting "+-1" through.
    bool plus = !s.empty() && s.front() == '+';
    if (plus) s.remove_prefix(1);
    bool minus = !plus && s.size() > 1 && s.front() == '-';
    if (s.empty() || !is_digit(s[minus ? 1 : 0])) return fail(why, "not a decimal integer");
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec == std::errc::result_out_of_range) return fail(why, "out of range for a 64-bit integer");
    if (ec != std::errc() || end != s.data() + s.size()) return fail(why, "not a decimal integer");
    return v;
}

std::optional<bool> parse_bool(std::string_view text) {
    std::string_view s = trim(text);
    for (auto t : {"true", "yes", "on"})
        if (iequals(s, t)) return true;
    for (auto f : {"false", "no", "off"})
        if (iequals(s, f)) return false;
    return std::nullopt;
}

std::optional<int64_t> parse_size(std::string_view text, std::string* why) {
    std::string_view s = trim(text);
    if (s.empty()) return fail(why, "empty");
    if (s.front() == '-') return fail(why, "negative sizes are not allowed");
    Number n;
    if (const char* err = read_number(s, n)) return fail(why, err);
    skip_spaces(s);
    std::string_view unit = read_letters(s);
    if (!s.empty()) return fail(why, "unexpected characters after the number");
    int64_t mult = 0;
    if (unit.empty() || iequals(unit, "b")) {
        mult = 1;
    } else {
        constexpr std::string_view kPrefixes = "kmgt";
        size_t p = kPrefixes.find(lower(unit.front()));
        std::string_view rest = unit.substr(1);
        if (p != std::string_view::npos &&
            (rest.empty() || iequals(rest, "b") || iequals(rest, "ib")))
            mult = int64_t(1) << (10 * (p + 1));
    }
    if (mult == 0) return fail(why, "unknown unit");
    int64_t out = 0;
    if (const char* err = scale(n, mult, "not a whole number of bytes", out)) return fail(why, err);
    return out;
}

std::optional<int64_t> parse_duration(std::string_view text, std::string* why) {
    std::string_view s = trim(text);
    if (s.empty()) return fail(why, "empty");
    if (s.front() == '-') return fail(why, "negative durations are not allowed");
    int64_t total = 0;
    bool first = true;
    while (!s.empty()) {
        Number n;
        if (const char* err = read_number(s, n)) return fail(why, err);
        skip_spaces(s);
        std::string_view unit = read_letters(s);
        int64_t mult = 0;
        if (unit.empty()) {
            // Only a lone integer is milliseconds; "1h30" is more likely a typo than 1h + 30ms.
            if (!first || !s.empty() || n.digits != 0) return fail(why, "missing unit");
            mult = 1;
        } else if (iequals(unit, "ms")) {
            mult = 1;
        } else if (iequals(unit, "s")) {
            mult = 1000;
        } else if (iequals(unit, "m")) {
            mult = 60 * 1000;
        } else if (iequals(unit, "h")) {
            mult = 3600 * 1000;
        } else if (iequals(unit, "d")) {
            mult = 86400 * 1000;
        } else {
            return fail(why, "unknown unit");
        }
        int64_t part = 0;
        if (const char* err = scale(n, mult, "finer than a millisecond", part))
            return fail(why, err);
        if (__builtin_add_overflow(total, part, &total)) return fail(why, "too large");
        skip_spaces(s);
        first = false;
    }
    return total;
}

std::string format_size(int64_t bytes) {
    if (bytes > 0)
        for (int p = 4; p >= 1; --p) {
            int64_t unit = int64_t(1) << (10 * p);
            if (bytes % unit == 0) return std::to_string(bytes / unit) + "KMGT"[p - 1];
        }
    return std::to_string(bytes);
}

std::string format_duration(int64_t ms) {
    struct Unit {
        int64_t ms;
        const char* suffix;
    };
    constexpr Unit kUnits[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    if (ms > 0) {
        for (const auto& u : kUnits)
            if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.suffix;
        return std::to_string(ms) + "ms";
    }
    return std::to_string(ms);
}

std::string type_name(uint32_t type) {
    switch (type) {
    case PARLEY_CFG_STRING:
        return "string";
    case PARLEY_CFG_INT:
        return "int";
    case PARLEY_CFG_BOOL:
        return "bool";
    case PARLEY_CFG_SIZE:
        return "size";
    case PARLEY_CFG_DURATION:
        return "duration";
    case PARLEY_CFG_ENUM:
        return "enum";
    case PARLEY_CFG_LIST:
        return "list";
    case PARLEY_CFG_MAP:
        return "map";
    default:
        return "type " + std::to_string(type);
    }
}

} // namespace parley::config
