// libFuzzer target for transport-ws's HTTP request-head parser and the RFC 6455 handshake check
// that runs on its result. Byte 0 picks head limits and a chunking seed; the rest is the client
// byte stream. Besides the sanitizers it checks the parser's promises:
//   - feeding the stream in arbitrary pieces gives the same outcome as feeding it whole
//     (status, error status, method, target, headers, bytes consumed);
//   - consumed never exceeds the input, errors carry 400/414/431/505 (or 501/413 for framing);
//   - a complete head respects the limits, and views stay valid after a move;
//   - reset() makes the object reusable for a pipelined request;
//   - a chunked body after the head decodes alike whole and in pieces, within its limit.
#include "chunked_body.hpp"
#include "handshake.hpp"
#include "http_request_head.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace {

using namespace parley::ws;

struct Outcome {
    HttpParseStatus status = HttpParseStatus::NeedMore;
    int error_status = 0;
    size_t head_bytes = 0; // bytes of the stream that belong to the head
    std::string method, target;
    std::vector<std::pair<std::string, std::string>> headers;
    bool operator==(const Outcome&) const = default;
};

Outcome run(const uint8_t* data, size_t size, HttpHeadLimits limits, uint32_t chunk_seed,
            HttpRequestHead& head) {
    Outcome o;
    uint32_t rng = chunk_seed | 1;
    size_t offset = 0;
    while (offset < size) {
        size_t n = size - offset;
        if (chunk_seed != 0) {
            rng = rng * 1103515245u + 12345u;
            n = std::min<size_t>(n, 1 + (rng >> 16) % 23);
        }
        std::string piece(reinterpret_cast<const char*>(data + offset), n); // own heap copy
        auto r = head.feed(piece);
        CHECK(r.consumed <= n);
        o.status = r.status;
        if (r.status == HttpParseStatus::Error) {
            CHECK(r.consumed == 0 && !r.error.empty());
            o.error_status = r.error_status;
            o.head_bytes = 0; // what earlier pieces consumed does not matter after an error
            break;
        }
        o.head_bytes += r.consumed;
        if (r.status == HttpParseStatus::Complete) break;
        CHECK(r.consumed == n);
        offset += n;
    }
    if (o.status == HttpParseStatus::Complete) {
        o.method = head.method();
        o.target = head.target();
        for (auto& h : head.headers())
            o.headers.emplace_back(h.name, h.value);
    }
    return o;
}

void check_complete(const HttpRequestHead& head, const HttpHeadLimits& limits) {
    CHECK(!head.method().empty() && !head.target().empty());
    CHECK(head.headers().size() <= limits.max_headers);
    CHECK(head.version_major() == 1);
    size_t total = head.method().size() + head.target().size();
    for (auto& h : head.headers()) {
        CHECK(!h.name.empty());
        CHECK(h.value.empty() || (h.value.front() != ' ' && h.value.back() != ' '));
        for (char c : h.name)
            CHECK(c != ':' && c != ' ' && c != '\r' && c != '\n');
        for (char c : h.value)
            CHECK(c != '\r' && c != '\n' && c != '\0');
        total += h.name.size() + h.value.size();
    }
    CHECK(total <= limits.max_head_size);
    CHECK(head.path().size() <= head.target().size());
    (void)head.query();
    (void)head.keep_alive();
    (void)head.content_length();
    (void)head.has_token("connection", "upgrade");
    auto verdict = check_handshake(head);
    CHECK((http_status(verdict) == 0) == (verdict == HandshakeError::None));
    if (verdict == HandshakeError::None) {
        auto key = head.header("sec-websocket-key");
        CHECK(key && is_valid_websocket_key(*key));
        auto resp = handshake_response(*key);
        CHECK(resp.starts_with("HTTP/1.1 101 ") && resp.ends_with("\r\n\r\n"));
    } else {
        (void)describe(verdict);
        (void)extra_headers(verdict);
    }
}

void check_chunked(const std::string& wire, size_t limit, uint32_t seed) {
    ChunkedBody whole(limit);
    std::string in = wire;
    const auto status = whole.feed(in);
    CHECK(whole.body().size() <= limit);
    CHECK(whole.consumed() + in.size() == wire.size());
    if (status == ChunkedBody::Status::Done) CHECK(in == wire.substr(whole.consumed()));

    ChunkedBody pieces(limit);
    std::string buf;
    auto piece_status = ChunkedBody::Status::NeedMore;
    uint32_t rng = seed | 1;
    for (size_t off = 0; off < wire.size() && piece_status == ChunkedBody::Status::NeedMore;) {
        rng = rng * 1103515245u + 12345u;
        size_t n = std::min<size_t>(wire.size() - off, 1 + (rng >> 16) % 23);
        buf.append(wire, off, n);
        off += n;
        piece_status = pieces.feed(buf);
    }
    CHECK(piece_status == status);
    if (status == ChunkedBody::Status::Done) {
        CHECK(pieces.body() == whole.body());
        CHECK(pieces.consumed() == whole.consumed());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static constexpr HttpHeadLimits kLimits[] = {{8 * 1024, 64}, {64, 4}, {512, 1}, {16384, 128}};
    const HttpHeadLimits limits = kLimits[data[0] & 3];
    const uint32_t chunk_seed = data[0] >> 2;
    ++data, --size;

    HttpRequestHead whole_head(limits);
    const Outcome whole = run(data, size, limits, 0, whole_head);
    if (whole.status == HttpParseStatus::Error)
        CHECK(whole.error_status == 400 || whole.error_status == 414 || whole.error_status == 431 ||
              whole.error_status == 505 || whole.error_status == 501 || whole.error_status == 413);
    if (whole.status == HttpParseStatus::Complete) {
        CHECK(whole.head_bytes <= size);
        check_complete(whole_head, limits);
        HttpRequestHead moved = std::move(whole_head); // views must survive the move
        CHECK(moved.method() == whole.method && moved.target() == whole.target);
        if (moved.header("transfer-encoding")) {
            std::string body(reinterpret_cast<const char*>(data + whole.head_bytes),
                             size - whole.head_bytes);
            check_chunked(body, limits.max_head_size, chunk_seed);
        }
        // Pipelining: the same object reads the next request after reset().
        moved.reset();
        HttpRequestHead& again = moved;
        Outcome next = run(data + whole.head_bytes, size - whole.head_bytes, limits, 0, again);
        if (next.status == HttpParseStatus::Complete) check_complete(again, limits);
    }

    HttpRequestHead chunked_head(limits);
    CHECK(run(data, size, limits, chunk_seed | 1, chunked_head) == whole);
    return 0;
}
