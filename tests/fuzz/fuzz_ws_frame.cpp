// libFuzzer target for parley::ws::FrameParser. The first input byte picks a max message size
// and a chunking seed; the rest is the client byte stream. Besides the sanitizers it checks the
// parser's promises:
//   - feeding the stream in arbitrary pieces yields exactly the events of feeding it whole;
//   - text messages and close reasons are valid UTF-8, control payloads are at most 125 bytes,
//     messages respect the size limit, errors carry 1002, 1007 or 1009;
//   - nothing follows a Close or an Error.
#include "ws_codec.hpp"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace parley::ws;

struct Seen {
    EventType type;
    Opcode opcode;
    std::string payload;
    uint16_t code;
    std::string reason;
    bool operator==(const Seen&) const = default;
};

void check(bool ok) {
    if (!ok) std::abort();
}

void check_event(const Event& e, uint64_t max_message_size) {
    switch (e.type) {
    case EventType::Message:
        check(e.opcode == Opcode::Text || e.opcode == Opcode::Binary);
        check(e.payload.size() <= max_message_size);
        if (e.opcode == Opcode::Text) check(is_valid_utf8(e.payload));
        break;
    case EventType::Ping:
    case EventType::Pong:
        check(e.payload.size() <= kMaxControlPayload);
        break;
    case EventType::Close:
        check(e.code == close_code::kNoStatus || is_valid_close_code(e.code));
        check(e.reason.size() <= kMaxCloseReason && is_valid_utf8(e.reason));
        break;
    case EventType::Error:
        check(e.code == close_code::kProtocolError || e.code == close_code::kInvalidPayload ||
              e.code == close_code::kMessageTooBig);
        break;
    case EventType::None:
        check(false); // feed() never reports None
        break;
    }
}

std::vector<Seen> run(const uint8_t* data, size_t size, uint64_t max_message_size,
                      uint32_t chunk_seed) {
    FrameParser parser(max_message_size);
    std::vector<Seen> seen;
    uint32_t rng = chunk_seed | 1;
    for (size_t offset = 0; offset < size;) {
        size_t n = size - offset;
        if (chunk_seed != 0) {
            rng = rng * 1103515245u + 12345u;
            n = std::min<size_t>(n, 1 + (rng >> 16) % 17);
        }
        // Its own heap copy, so ASan catches reads past this piece.
        std::vector<uint8_t> piece(data + offset, data + offset + n);
        const size_t used = parser.feed(piece.data(), n, [&](const Event& e) {
            check(seen.empty() ||
                  (seen.back().type != EventType::Close && seen.back().type != EventType::Error));
            check_event(e, max_message_size);
            seen.push_back(
                {e.type, e.opcode, std::string(e.payload), e.code, std::string(e.reason)});
        });
        check(used <= n);
        check(used == n || parser.finished());
        offset += n;
    }
    if (!seen.empty() &&
        (seen.back().type == EventType::Close || seen.back().type == EventType::Error))
        check(parser.finished());
    return seen;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static constexpr uint64_t kLimits[] = {
        0, 1, 125, 126, 1000, 65536, kDefaultMaxMessageSize, UINT64_MAX};
    const uint64_t max_message_size = kLimits[data[0] & 7];
    const uint32_t chunk_seed = data[0] >> 3;
    ++data, --size;

    const std::vector<Seen> whole = run(data, size, max_message_size, 0);
    check(run(data, size, max_message_size, chunk_seed | 1) == whole);
    return 0;
}
