#include "chunked_body.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace parley::ws {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// chunk-size [ chunk-ext ]: hex digits, then nothing, or BWS ";" and extensions we ignore.
bool parse_size_line(std::string_view line, size_t& size) {
    size_t i = 0;
    uint64_t v = 0;
    for (; i < line.size() && hex_value(line[i]) >= 0; ++i) {
        if (v >> 60) return false; // would overflow 64 bits
        v = v * 16 + uint64_t(hex_value(line[i]));
    }
    if (i == 0) return false;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
        ++i;
    if (i < line.size() && line[i] != ';') return false;
    for (; i < line.size(); ++i) // extensions: printable text only, no bare CR or LF
        if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0') return false;
    if (v > SIZE_MAX) return false;
    size = size_t(v);
    return true;
}

} // namespace

ChunkedBody::Status ChunkedBody::fail(Status s) {
    state_ = State::Failed;
    failure_ = s;
    return s;
}

ChunkedBody::Status ChunkedBody::feed(std::string& in) {
    size_t pos = 0;
    auto result = Status::NeedMore;
    while (result == Status::NeedMore) {
        if (state_ == State::Failed) {
            result = failure_;
            break;
        }
        if (state_ == State::Done) {
            result = Status::Done;
            break;
        }
        if (state_ == State::Data) {
            size_t n = std::min(left_, in.size() - pos);
            if (n == 0) break;
            body_.append(in, pos, n);
            pos += n;
            left_ -= n;
            if (left_ == 0) state_ = State::DataEnd;
            continue;
        }
        auto eol = in.find("\r\n", pos);
        if (eol == std::string::npos) {
            size_t pending = in.size() - pos;
            if (state_ == State::DataEnd && pending >= 2) {
                result = fail(Status::Malformed); // chunk data longer than its size
            } else if (state_ == State::Trailers) {
                if (trailers_ + pending > kMaxTrailers) result = fail(Status::TooLarge);
            } else if (pending > kMaxLine + 1) { // + 1: its CR may be here, the LF not yet
                result = fail(Status::Malformed);
            }
            break;
        }
        std::string_view line(in.data() + pos, eol - pos);
        pos = eol + 2;
        switch (state_) {
        case State::Size: {
            size_t size = 0;
            if (line.size() > kMaxLine || !parse_size_line(line, size)) {
                result = fail(Status::Malformed);
            } else if (size > limit_ - body_.size()) {
                result = fail(Status::TooLarge);
            } else if (size == 0) {
                state_ = State::Trailers;
            } else {
                left_ = size;
                state_ = State::Data;
            }
            break;
        }
        case State::DataEnd:
            if (!line.empty())
                result = fail(Status::Malformed); // chunk data longer than its size
            else
                state_ = State::Size;
            break;
        case State::Trailers:
            trailers_ += line.size() + 2;
            if (trailers_ > kMaxTrailers) {
                result = fail(Status::TooLarge);
            } else if (line.empty()) {
                state_ = State::Done;
            } else if (line.find(':') == std::string_view::npos) {
                result = fail(Status::Malformed);
            }
            break;
        default:
            break;
        }
    }
    consumed_ += pos;
    in.erase(0, pos);
    return result;
}

} // namespace parley::ws
