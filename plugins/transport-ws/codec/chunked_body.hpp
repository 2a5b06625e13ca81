// Incremental decoder of a chunked request body (RFC 9112 7.1). HTTP/1.1 servers must accept
// it (Node's http client and browsers' streaming fetch send it); parley's API routes want the
// whole body, so the decoder collects it up to a limit. Chunk extensions are ignored and
// trailer fields skipped; every line is bounded.
#pragma once

#include <cstddef>
#include <string>

namespace parley::ws {

class ChunkedBody {
  public:
    enum class Status { NeedMore, Done, Malformed, TooLarge };

    explicit ChunkedBody(size_t limit) : limit_(limit) {}

    // Consumes from the front of `in` what belongs to the body; after Done, `in` holds only
    // what follows it (a pipelined request).
    Status feed(std::string& in);
    // The decoded body (complete once feed returned Done).
    std::string& body() { return body_; }
    // Bytes of the encoded body seen so far (whether a client already sent some).
    size_t consumed() const { return consumed_; }

    static constexpr size_t kMaxLine = 4096;     // a chunk-size line with its extensions
    static constexpr size_t kMaxTrailers = 8192; // the whole trailer section

  private:
    enum class State { Size, Data, DataEnd, Trailers, Done, Failed };
    Status fail(Status s);

    State state_ = State::Size;
    size_t limit_;
    size_t left_ = 0;     // data bytes of the current chunk still to come
    size_t trailers_ = 0; // bytes of trailer section seen
    size_t consumed_ = 0;
    Status failure_ = Status::Malformed;
    std::string body_;
};

} // namespace parley::ws
