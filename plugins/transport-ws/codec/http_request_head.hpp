// Incremental parser for an HTTP/1.x request head (RFC 9112), for reactors that read the upgrade
// request themselves. Strict where leniency enables request smuggling: CRLF line ends only, no
// obs-fold, no space before the colon, one Host, no conflicting Content-Length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::ws {

struct HttpHeader {
    std::string_view name;  // as sent
    std::string_view value; // without surrounding whitespace
};

enum class HttpParseStatus { NeedMore, Complete, Error };

struct HttpParseResult {
    HttpParseStatus status = HttpParseStatus::NeedMore;
    // Bytes of this call's input that belong to the head. With Complete, the body or the first
    // WebSocket frames start at input[consumed].
    size_t consumed = 0;
    int error_status = 0;   // Error: the status to answer with (400, 414, 431 or 505)
    std::string_view error; // Error: what was wrong, for logs
};

struct HttpHeadLimits {
    size_t max_head_size = 8 * 1024; // request line, fields and the empty line
    size_t max_headers = 64;
};

// Views returned by the accessors point into storage the object owns; they stay valid until
// reset() or destruction, and survive moves.
class HttpRequestHead {
  public:
    explicit HttpRequestHead(HttpHeadLimits limits = {}) : limits_(limits) {}

    // Feed bytes as they arrive. After Complete or Error, further calls return the same status
    // and consume nothing until reset().
    HttpParseResult feed(std::string_view input);
    // Forget this request, e.g. to read the next one on a kept-alive connection.
    void reset();

    bool complete() const { return status_ == HttpParseStatus::Complete; }
    std::string_view method() const { return method_; }
    std::string_view target() const { return target_; }
    std::string_view path() const { return target_.substr(0, target_.find('?')); }
    // What follows '?', or empty.
    std::string_view query() const;
    int version_major() const { return version_major_; }
    int version_minor() const { return version_minor_; }

    const std::vector<HttpHeader>& headers() const { return headers_; }
    // The first field called `name` (compared case-insensitively), if any.
    std::optional<std::string_view> header(std::string_view name) const;
    size_t header_count(std::string_view name) const;
    // Whether any field called `name` lists `token` (case-insensitively) in its comma-separated
    // value, as in "Connection: keep-alive, Upgrade".
    bool has_token(std::string_view name, std::string_view token) const;
    std::optional<uint64_t> content_length() const { return content_length_; }
    // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    bool keep_alive() const;

  private:
    bool reject(int status, std::string_view why); // records the error; returns false
    HttpParseResult fail(int status, std::string_view why);
    HttpParseResult error_result() const { return {status_, 0, error_status_, error_}; }
    HttpParseResult parse_head(size_t consumed);
    bool parse_request_line(std::string_view line);
    bool parse_field(std::string_view line);
    bool check_framing_fields();

    HttpHeadLimits limits_;
    HttpParseStatus status_ = HttpParseStatus::NeedMore;
    int error_status_ = 0;
    std::string_view error_;

    std::string pending_;          // the head so far, while it arrives
    size_t line_start_ = 0;        // in pending_
    size_t skipped_ = 0;           // empty lines before the request line (counted in the limit)
    bool skipping_cr_ = false;     // a CR of such a line was seen
    std::unique_ptr<char[]> head_; // the complete head, where the views point

    std::string_view method_;
    std::string_view target_;
    int version_major_ = 0;
    int version_minor_ = 0;
    std::vector<HttpHeader> headers_;
    std::optional<uint64_t> content_length_;
};

bool iequals(std::string_view a, std::string_view b);
// Whether the comma-separated `list` contains `token`, case-insensitively.
bool has_token(std::string_view list, std::string_view token);

} // namespace parley::ws
