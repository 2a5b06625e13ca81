#include "http_request_head.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace parley::ws {

namespace {

// RFC 9110 section 5.6.2.
bool is_tchar(char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// Field values may hold visible ASCII, spaces, tabs and obs-text, never other control bytes.
bool is_field_value_char(char c) {
    const auto b = uint8_t(c);
    return b == '\t' || (b >= 0x20 && b != 0x7F);
}

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && is_ows(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back()))
        s.remove_suffix(1);
    return s;
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}

constexpr int kBadRequest = 400;
constexpr int kUriTooLong = 414;
constexpr int kFieldsTooLarge = 431;
constexpr int kVersionNotSupported = 505;

} // namespace

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const size_t comma = list.find(',');
        if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

HttpParseResult HttpRequestHead::feed(std::string_view input) {
    if (status_ != HttpParseStatus::NeedMore) return error_result();
    for (size_t i = 0; i < input.size(); ++i) {
        const char c = input[i];
        if (pending_.size() + skipped_ >= limits_.max_head_size) {
            if (pending_.empty()) return fail(kBadRequest, "too many empty lines");
            if (line_start_ == 0) return fail(kUriTooLong, "request line too long");
            return fail(kFieldsTooLarge, "request head too large");
        }
        if (pending_.empty()) {
            // RFC 9112 section 2.2: ignore empty lines before the request line.
            if (skipping_cr_) {
                if (c != '\n') return fail(kBadRequest, "bare CR");
                skipping_cr_ = false;
                ++skipped_;
                continue;
            }
            if (c == '\r') {
                skipping_cr_ = true;
                ++skipped_;
                continue;
            }
        }
        const bool after_cr = !pending_.empty() && pending_.back() == '\r';
        if (c == '\n') {
            if (!after_cr) return fail(kBadRequest, "bare LF");
            pending_ += c;
            if (pending_.size() - line_start_ == 2) return parse_head(i + 1);
            line_start_ = pending_.size();
        } else {
            if (after_cr) return fail(kBadRequest, "bare CR");
            if (pending_.empty()) pending_.reserve(std::min<size_t>(limits_.max_head_size, 1024));
            if (c == '\r') {
                pending_ += c;
                continue;
            }
            // The rest of the line up to the next CR or LF goes in with one append, not byte by
            // byte (churn parses a head per connection). Capped so that the size check above
            // still fires on the same byte as before.
            const size_t room = limits_.max_head_size - (pending_.size() + skipped_);
            size_t j = i + 1;
            while (j < input.size() && j - i < room && input[j] != '\r' && input[j] != '\n')
                ++j;
            pending_.append(input.data() + i, j - i);
            i = j - 1;
        }
    }
    return {HttpParseStatus::NeedMore, input.size(), 0, {}};
}

void HttpRequestHead::reset() {
    const HttpHeadLimits limits = limits_;
    *this = HttpRequestHead(limits);
}

std::string_view HttpRequestHead::query() const {
    const size_t mark = target_.find('?');
    return mark == std::string_view::npos ? std::string_view{} : target_.substr(mark + 1);
}

std::optional<std::string_view> HttpRequestHead::header(std::string_view name) const {
    for (const HttpHeader& h : headers_)
        if (iequals(h.name, name)) return h.value;
    return std::nullopt;
}

size_t HttpRequestHead::header_count(std::string_view name) const {
    return size_t(std::count_if(headers_.begin(), headers_.end(),
                                [&](const HttpHeader& h) { return iequals(h.name, name); }));
}

bool HttpRequestHead::has_token(std::string_view name, std::string_view token) const {
    return std::any_of(headers_.begin(), headers_.end(), [&](const HttpHeader& h) {
        return iequals(h.name, name) && ws::has_token(h.value, token);
    });
}

bool HttpRequestHead::keep_alive() const {
    if (version_major_ == 1 && version_minor_ == 0) return has_token("connection", "keep-alive");
    return !has_token("connection", "close");
}

bool HttpRequestHead::reject(int status, std::string_view why) {
    status_ = HttpParseStatus::Error;
    error_status_ = status;
    error_ = why;
    pending_ = {};
    return false;
}

HttpParseResult HttpRequestHead::fail(int status, std::string_view why) {
    reject(status, why);
    return error_result();
}

HttpParseResult HttpRequestHead::parse_head(size_t consumed) {
    // Move the head to storage that never moves, so views survive moving this object.
    head_ = std::make_unique_for_overwrite<char[]>(pending_.size());
    std::memcpy(head_.get(), pending_.data(), pending_.size());
    std::string_view rest(head_.get(), pending_.size());
    pending_ = {};

    size_t line_end = rest.find("\r\n");
    if (!parse_request_line(rest.substr(0, line_end))) return error_result();
    rest.remove_prefix(line_end + 2);
    while ((line_end = rest.find("\r\n")) != 0) {
        if (!parse_field(rest.substr(0, line_end))) return error_result();
        rest.remove_prefix(line_end + 2);
    }
    if (!check_framing_fields()) return error_result();
    status_ = HttpParseStatus::Complete;
    return {status_, consumed, 0, {}};
}

bool HttpRequestHead::parse_request_line(std::string_view line) {
    // method SP request-target SP HTTP-version, single spaces only.
    const size_t first_space = line.find(' ');
    const size_t last_space = line.rfind(' ');
    if (first_space == std::string_view::npos || first_space == last_space)
        return reject(kBadRequest, "malformed request line");
    method_ = line.substr(0, first_space);
    target_ = line.substr(first_space + 1, last_space - first_space - 1);
    const std::string_view version = line.substr(last_space + 1);
    if (!is_token(method_)) return reject(kBadRequest, "malformed method");
    const bool target_ok =
        !target_.empty() &&
        std::all_of(target_.begin(), target_.end(), [](char c) { return c > 0x20 && c < 0x7F; });
    if (!target_ok) return reject(kBadRequest, "malformed request target");
    // Absolute-form ("GET http://host/path", RFC 9112 3.2.2: servers must accept it): only the
    // path and query are routed.
    if (target_.front() != '/') {
        const size_t scheme_end = target_.find("://");
        if (scheme_end != std::string_view::npos &&
            (iequals(target_.substr(0, scheme_end), "http") ||
             iequals(target_.substr(0, scheme_end), "https"))) {
            const std::string_view rest = target_.substr(scheme_end + 3);
            const size_t slash = rest.find('/');
            if (rest.empty() || rest.front() == '/')
                return reject(kBadRequest, "malformed request target"); // no authority
            target_ = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
        }
    }
    const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) ||
        version[6] != '.' || !is_digit(version[7]))
        return reject(kBadRequest, "malformed HTTP version");
    version_major_ = version[5] - '0';
    version_minor_ = version[7] - '0';
    if (version_major_ != 1) return reject(kVersionNotSupported, "HTTP version not supported");
    return true;
}

bool HttpRequestHead::parse_field(std::string_view line) {
    if (is_ows(line.front())) return reject(kBadRequest, "obsolete line folding");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return reject(kBadRequest, "field without a colon");
    const std::string_view name = line.substr(0, colon);
    // A space before the colon is not a tchar, so this also rejects "Name : value".
    if (!is_token(name)) return reject(kBadRequest, "malformed field name");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), is_field_value_char))
        return reject(kBadRequest, "control character in field value");
    if (headers_.size() == limits_.max_headers)
        return reject(kFieldsTooLarge, "too many header fields");
    if (headers_.empty()) headers_.reserve(16); // one allocation for a browser's usual head
    headers_.push_back({name, value});
    return true;
}

// Fields whose misreading lets a proxy and this server disagree on where the request ends.
bool HttpRequestHead::check_framing_fields() {
    const size_t hosts = header_count("host");
    if (hosts > 1 || (hosts == 0 && version_minor_ >= 1))
        return reject(kBadRequest, "missing or repeated Host");
    for (const HttpHeader& h : headers_) {
        if (!iequals(h.name, "content-length")) continue;
        uint64_t length = 0;
        const char* end = h.value.data() + h.value.size();
        const auto [ptr, ec] = std::from_chars(h.value.data(), end, length);
        if (ec != std::errc{} || ptr != end) return reject(kBadRequest, "malformed Content-Length");
        if (content_length_ && *content_length_ != length)
            return reject(kBadRequest, "conflicting Content-Length");
        content_length_ = length;
    }
    if (content_length_ && header_count("transfer-encoding") > 0)
        return reject(kBadRequest, "both Content-Length and Transfer-Encoding");
    return true;
}

} // namespace parley::ws
