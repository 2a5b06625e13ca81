// RFC 6455 WebSocket framing, server side: an incremental parser for client frames and an
// encoder for (never masked) server frames. No extensions are negotiated, so RSV1-3 must be 0.
#pragma once

#include "utf8.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace parley::ws {

enum class Opcode : uint8_t {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
};

// RFC 6455 section 7.4.1 and the IANA "WebSocket Close Code Number Registry".
namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kUnsupportedData = 1003;
inline constexpr uint16_t kNoStatus = 1005; // reported for an empty Close; never sent
inline constexpr uint16_t kAbnormal = 1006; // connection dropped without a Close; never sent
inline constexpr uint16_t kInvalidPayload = 1007;
inline constexpr uint16_t kPolicyViolation = 1008;
inline constexpr uint16_t kMessageTooBig = 1009;
inline constexpr uint16_t kMandatoryExtension = 1010;
inline constexpr uint16_t kInternalError = 1011;
inline constexpr uint16_t kServiceRestart = 1012;
inline constexpr uint16_t kTryAgainLater = 1013;
inline constexpr uint16_t kBadGateway = 1014;
} // namespace close_code

// Whether `code` may appear in a Close frame: 1000-1003, 1007-1014 and 3000-4999.
bool is_valid_close_code(uint16_t code);

inline constexpr size_t kMaxControlPayload = 125;
inline constexpr size_t kMaxCloseReason = kMaxControlPayload - 2;
inline constexpr size_t kMaxServerHeaderSize = 10;
inline constexpr uint64_t kDefaultMaxMessageSize = 1 << 20;

// Writes the header of an unmasked frame and returns its size (2, 4 or 10), so the caller can
// writev() it followed by a payload it shares between connections.
size_t encode_header(std::span<uint8_t, kMaxServerHeaderSize> out, Opcode opcode,
                     uint64_t payload_size, bool fin = true);

// A whole server control frame in a fixed buffer: building one never allocates.
class ControlFrame {
  public:
    // Payloads longer than 125 bytes are cut.
    ControlFrame(Opcode opcode, std::string_view payload);
    std::span<const uint8_t> bytes() const { return {bytes_.data(), size_}; }
    std::string_view view() const { return {reinterpret_cast<const char*>(bytes_.data()), size_}; }
    size_t size() const { return size_; }

  private:
    std::array<uint8_t, 2 + kMaxControlPayload> bytes_{};
    uint8_t size_ = 0;
};

// Payloads longer than 125 bytes are cut. A Ping payload the parser delivered is never longer,
// so echoing it in a Pong is always exact.
ControlFrame ping_frame(std::string_view payload = {});
ControlFrame pong_frame(std::string_view payload);
// The reason is cut to at most 123 bytes at a code point boundary, and left out if it is not
// UTF-8. A code that must not be sent (1005, 1006, 1015, ...) gives an empty Close, which the
// peer reads as 1005.
ControlFrame close_frame(uint16_t code, std::string_view reason = {});

// XORs `size` bytes with the 4-byte masking key, starting `key_offset` bytes into the key.
// `dst` may equal `src`.
void apply_mask(uint8_t* dst, const uint8_t* src, size_t size, std::array<uint8_t, 4> key,
                size_t key_offset = 0);

enum class EventType {
    None,    // the input ran out before anything else was complete
    Message, // a whole Text or Binary message, reassembled and unmasked
    Ping,    // answer with pong_frame(payload)
    Pong,
    Close, // answer with a Close (echo `code`, or 1000 for 1005), then close the connection
    Error, // send close_frame(code, reason), then close the connection
};

struct Event {
    EventType type = EventType::None;
    Opcode opcode = Opcode::Continuation; // Message: Text or Binary
    std::string_view payload;             // Message, Ping, Pong
    uint16_t code = 0;                    // Close: the peer's code; Error: the code to send
    std::string_view reason;              // Close: the peer's reason; Error: what went wrong
};

// One per connection. Views in an Event stay valid until the next call to parse() or feed(),
// and, when they point into the caller's input, as long as that input does.
class FrameParser {
  public:
    explicit FrameParser(uint64_t max_message_size = kDefaultMaxMessageSize)
        : max_message_size_(max_message_size) {}

    // Consumes input until one event is complete or the input runs out, and returns how many
    // bytes it consumed. Payloads are unmasked in place, so `data` is modified; a message that
    // arrives whole in one call is delivered from `data` without a copy. After a Close or an
    // Error event, further input is ignored.
    size_t parse(uint8_t* data, size_t size, Event& event);

    // Calls on_event(const Event&) for every event in the input. Returns the bytes consumed,
    // which is less than `size` only after a Close or an Error. on_event must not destroy the
    // parser; use parse() when it might.
    template <class OnEvent> size_t feed(uint8_t* data, size_t size, OnEvent&& on_event);

    // A Close or an Error has been reported.
    bool finished() const { return stage_ == Stage::Finished; }
    // A data frame has begun a message that is not complete yet.
    bool in_message() const { return in_message_; }
    uint64_t max_message_size() const { return max_message_size_; }

  private:
    enum class Stage : uint8_t { Header, Payload, Finished };

    bool read_header(const uint8_t* data, size_t size, size_t& pos, Event& event);
    bool check_first_bytes(uint8_t b0, uint8_t b1, Event& event);
    bool start_frame(const uint8_t* header, Event& event);
    bool read_control_payload(uint8_t* data, size_t size, size_t& pos, Event& event);
    bool read_data_payload(uint8_t* data, size_t size, size_t& pos, Event& event);
    bool finish_close(std::string_view payload, Event& event);
    bool deliver_message(std::string_view payload, Event& event);
    bool fail(Event& event, uint16_t code, std::string_view why);
    bool fail_utf8(Event& event);
    uint8_t* grow_message(size_t size);

    uint64_t max_message_size_;
    Stage stage_ = Stage::Header;

    // A header split across calls is gathered here: 2 bytes, 8 of length, 4 of mask at most.
    std::array<uint8_t, 14> header_{};
    uint8_t header_have_ = 0;

    Opcode frame_opcode_ = Opcode::Continuation;
    bool frame_fin_ = false;
    uint64_t frame_remaining_ = 0;
    std::array<uint8_t, 4> mask_key_{};
    uint8_t mask_offset_ = 0; // payload bytes of this frame already unmasked, mod 4

    // A control frame split across calls is gathered here, apart from any message in progress.
    std::array<uint8_t, kMaxControlPayload> control_{};
    uint8_t control_have_ = 0;

    bool in_message_ = false;
    bool message_delivered_ = false; // message_buffer_ may be viewed by the last Event
    Opcode message_opcode_ = Opcode::Text;
    uint64_t message_size_ = 0; // bytes of the current message so far
    Utf8Validator utf8_;
    // Messages that do not arrive whole in one call are reassembled here. Not std::vector, which
    // would zero every byte before it is overwritten.
    std::unique_ptr<uint8_t[]> message_buffer_;
    size_t message_capacity_ = 0;
    size_t message_buffered_ = 0;
};

template <class OnEvent> size_t FrameParser::feed(uint8_t* data, size_t size, OnEvent&& on_event) {
    size_t used = 0;
    while (used < size && !finished()) {
        Event event;
        used += parse(data + used, size - used, event);
        if (event.type == EventType::None) break;
        on_event(std::as_const(event));
    }
    return used;
}

} // namespace parley::ws
