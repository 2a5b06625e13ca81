#include "ws_codec.hpp"

#include <algorithm>
#include <cstring>

namespace parley::ws {

namespace {

constexpr uint8_t kFinBit = 0x80;
constexpr uint8_t kRsvBits = 0x70;
constexpr uint8_t kOpcodeBits = 0x0F;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLengthBits = 0x7F;
constexpr uint8_t kLength16 = 126;
constexpr uint8_t kLength64 = 127;

// A reassembly buffer larger than this is freed once its message is delivered, so a connection
// that received one big message does not keep the memory while idle.
constexpr size_t kRetainedBufferSize = 16 * 1024;
constexpr size_t kMinBufferSize = 256;
constexpr uint64_t kMaxReserveAhead = 1 << 20;

bool is_control(Opcode opcode) {
    return (uint8_t(opcode) & 0x08) != 0;
}

bool is_known_opcode(uint8_t opcode) {
    return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

size_t header_size(uint8_t second_byte) {
    const uint8_t length = second_byte & kLengthBits;
    size_t size = (second_byte & kMaskBit) ? 2 + 4 : 2;
    if (length == kLength16)
        size += 2;
    else if (length == kLength64)
        size += 8;
    return size;
}

uint64_t load_be(const uint8_t* p, int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes; ++i)
        value = value << 8 | p[i];
    return value;
}

std::string_view as_chars(const uint8_t* p, size_t size) {
    return {reinterpret_cast<const char*>(p), size};
}

// Longest prefix of `text` of at most `limit` bytes that is whole UTF-8; empty if `text` is not
// UTF-8 up to there.
std::string_view utf8_prefix(std::string_view text, size_t limit) {
    if (text.size() > limit) {
        text = text.substr(0, limit);
        // The cut may split one code point of up to 4 bytes.
        for (int i = 0; i < 3 && validate_utf8(text) == Utf8Status::Incomplete; ++i)
            text.remove_suffix(1);
    }
    return is_valid_utf8(text) ? text : std::string_view{};
}

} // namespace

bool is_valid_close_code(uint16_t code) {
    if (code >= 3000 && code <= 4999) return true; // libraries (3xxx) and applications (4xxx)
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

size_t encode_header(std::span<uint8_t, kMaxServerHeaderSize> out, Opcode opcode,
                     uint64_t payload_size, bool fin) {
    out[0] = uint8_t((fin ? kFinBit : 0) | uint8_t(opcode));
    if (payload_size < kLength16) {
        out[1] = uint8_t(payload_size);
        return 2;
    }
    if (payload_size <= 0xFFFF) {
        out[1] = kLength16;
        out[2] = uint8_t(payload_size >> 8);
        out[3] = uint8_t(payload_size);
        return 4;
    }
    out[1] = kLength64;
    for (int i = 0; i < 8; ++i)
        out[2 + i] = uint8_t(payload_size >> (56 - 8 * i));
    return 10;
}

ControlFrame::ControlFrame(Opcode opcode, std::string_view payload) {
    payload = payload.substr(0, kMaxControlPayload);
    bytes_[0] = uint8_t(kFinBit | uint8_t(opcode));
    bytes_[1] = uint8_t(payload.size());
    if (!payload.empty()) std::memcpy(bytes_.data() + 2, payload.data(), payload.size());
    size_ = uint8_t(2 + payload.size());
}

ControlFrame ping_frame(std::string_view payload) {
    return {Opcode::Ping, payload};
}

ControlFrame pong_frame(std::string_view payload) {
    return {Opcode::Pong, payload};
}

ControlFrame close_frame(uint16_t code, std::string_view reason) {
    if (!is_valid_close_code(code)) return {Opcode::Close, {}};
    std::array<char, kMaxControlPayload> payload;
    payload[0] = char(code >> 8);
    payload[1] = char(code & 0xFF);
    reason = utf8_prefix(reason, kMaxCloseReason);
    if (!reason.empty()) std::memcpy(payload.data() + 2, reason.data(), reason.size());
    return {Opcode::Close, {payload.data(), 2 + reason.size()}};
}

void apply_mask(uint8_t* dst, const uint8_t* src, size_t size, std::array<uint8_t, 4> key,
                size_t key_offset) {
    uint8_t rotated[8];
    for (size_t i = 0; i < 8; ++i)
        rotated[i] = key[(key_offset + i) & 3];
    // Loads and stores go through memcpy: any alignment, no aliasing violations, and compilers
    // turn them into plain (often vector) moves.
    uint64_t mask;
    std::memcpy(&mask, rotated, 8);
    size_t i = 0;
    for (; i + 32 <= size; i += 32) {
        uint64_t words[4];
        std::memcpy(words, src + i, 32);
        words[0] ^= mask;
        words[1] ^= mask;
        words[2] ^= mask;
        words[3] ^= mask;
        std::memcpy(dst + i, words, 32);
    }
    for (; i + 8 <= size; i += 8) {
        uint64_t word;
        std::memcpy(&word, src + i, 8);
        word ^= mask;
        std::memcpy(dst + i, &word, 8);
    }
    for (; i < size; ++i)
        dst[i] = src[i] ^ rotated[i & 3];
}

size_t FrameParser::parse(uint8_t* data, size_t size, Event& event) {
    event = Event{};
    if (message_delivered_) {
        message_delivered_ = false;
        message_buffered_ = 0;
        if (message_capacity_ > kRetainedBufferSize) {
            message_buffer_.reset();
            message_capacity_ = 0;
        }
    }
    if (size == 0) return 0;

    size_t pos = 0;
    while (stage_ != Stage::Finished) {
        bool go_on;
        if (stage_ == Stage::Header)
            go_on = read_header(data, size, pos, event);
        else if (is_control(frame_opcode_))
            go_on = read_control_payload(data, size, pos, event);
        else
            go_on = read_data_payload(data, size, pos, event);
        if (!go_on) return pos;
    }
    return size; // after a Close or an Error nothing more is read
}

// The read_* steps return true to go on with the next step, false when the input ran out or an
// event is ready.

bool FrameParser::read_header(const uint8_t* data, size_t size, size_t& pos, Event& event) {
    const size_t available = size - pos;
    const uint8_t* header;
    if (header_have_ == 0 && available >= 2 && available >= header_size(data[pos + 1])) {
        header = data + pos;
        if (!check_first_bytes(header[0], header[1], event)) return false;
        pos += header_size(header[1]);
    } else {
        // Gather the header across calls; judge the first two bytes as soon as they are here.
        if (header_have_ < 2) {
            const size_t take = std::min<size_t>(2 - header_have_, available);
            std::memcpy(header_.data() + header_have_, data + pos, take);
            header_have_ = uint8_t(header_have_ + take);
            pos += take;
            if (header_have_ < 2) return false;
            if (!check_first_bytes(header_[0], header_[1], event)) return false;
        }
        const size_t need = header_size(header_[1]);
        const size_t take = std::min(need - header_have_, size - pos);
        std::memcpy(header_.data() + header_have_, data + pos, take);
        header_have_ = uint8_t(header_have_ + take);
        pos += take;
        if (header_have_ < need) return false;
        header_have_ = 0;
        header = header_.data();
    }
    return start_frame(header, event);
}

bool FrameParser::check_first_bytes(uint8_t b0, uint8_t b1, Event& event) {
    using namespace close_code;
    if (b0 & kRsvBits) return fail(event, kProtocolError, "reserved bits set");
    const uint8_t opcode = b0 & kOpcodeBits;
    if (!is_known_opcode(opcode)) return fail(event, kProtocolError, "reserved opcode");
    if (is_control(Opcode(opcode))) {
        if (!(b0 & kFinBit)) return fail(event, kProtocolError, "fragmented control frame");
        if ((b1 & kLengthBits) > kMaxControlPayload)
            return fail(event, kProtocolError, "control frame payload over 125 bytes");
    } else if (Opcode(opcode) == Opcode::Continuation) {
        if (!in_message_) return fail(event, kProtocolError, "continuation without a message");
    } else if (in_message_) {
        return fail(event, kProtocolError, "new message inside a fragmented message");
    }
    if (!(b1 & kMaskBit)) return fail(event, kProtocolError, "unmasked client frame");
    return true;
}

bool FrameParser::start_frame(const uint8_t* header, Event& event) {
    using namespace close_code;
    const uint8_t length_code = header[1] & kLengthBits;
    const uint8_t* rest = header + 2;
    uint64_t length = length_code;
    if (length_code == kLength16) {
        length = load_be(rest, 2);
        rest += 2;
        if (length < kLength16) return fail(event, kProtocolError, "non-minimal payload length");
    } else if (length_code == kLength64) {
        length = load_be(rest, 8);
        rest += 8;
        if (length >> 63) return fail(event, kProtocolError, "payload length over 2^63");
        if (length <= 0xFFFF) return fail(event, kProtocolError, "non-minimal payload length");
    }
    std::memcpy(mask_key_.data(), rest, 4);

    frame_opcode_ = Opcode(header[0] & kOpcodeBits);
    frame_fin_ = (header[0] & kFinBit) != 0;
    frame_remaining_ = length;
    mask_offset_ = 0;
    if (!is_control(frame_opcode_)) {
        if (frame_opcode_ != Opcode::Continuation) {
            in_message_ = true;
            message_opcode_ = frame_opcode_;
            message_size_ = 0;
            utf8_.reset();
        }
        if (length > max_message_size_ - message_size_)
            return fail(event, kMessageTooBig, "message too big");
    }
    stage_ = Stage::Payload;
    return true;
}

bool FrameParser::read_control_payload(uint8_t* data, size_t size, size_t& pos, Event& event) {
    const size_t available = size - pos;
    std::string_view payload;
    if (control_have_ == 0 && available >= frame_remaining_) {
        uint8_t* in_place = data + pos;
        apply_mask(in_place, in_place, frame_remaining_, mask_key_);
        payload = as_chars(in_place, frame_remaining_);
        pos += frame_remaining_;
    } else {
        const size_t take = std::min<uint64_t>(available, frame_remaining_);
        apply_mask(control_.data() + control_have_, data + pos, take, mask_key_, control_have_);
        control_have_ = uint8_t(control_have_ + take);
        frame_remaining_ -= take;
        pos += take;
        if (frame_remaining_ > 0) return false;
        payload = as_chars(control_.data(), control_have_);
        control_have_ = 0;
    }
    frame_remaining_ = 0;
    stage_ = Stage::Header;

    if (frame_opcode_ == Opcode::Close) return finish_close(payload, event);
    event.type = frame_opcode_ == Opcode::Ping ? EventType::Ping : EventType::Pong;
    event.payload = payload;
    return false;
}

bool FrameParser::read_data_payload(uint8_t* data, size_t size, size_t& pos, Event& event) {
    using namespace close_code;
    const size_t available = size - pos;
    const bool text = message_opcode_ == Opcode::Text;

    // The common case, a message that is one frame and all in this input, needs no copy.
    if (frame_fin_ && message_size_ == 0 && available >= frame_remaining_) {
        uint8_t* in_place = data + pos;
        const size_t length = frame_remaining_;
        apply_mask(in_place, in_place, length, mask_key_);
        if (text && utf8_.feed(in_place, length) != Utf8Status::Complete) return fail_utf8(event);
        pos += length;
        frame_remaining_ = 0;
        return deliver_message(as_chars(in_place, length), event);
    }

    const size_t take = std::min<uint64_t>(available, frame_remaining_);
    uint8_t* dst = grow_message(take);
    apply_mask(dst, data + pos, take, mask_key_, mask_offset_);
    // Validate as bytes arrive, so a bad text fails at its first bad byte.
    if (text && utf8_.feed(dst, take) == Utf8Status::Invalid) return fail_utf8(event);
    mask_offset_ = uint8_t((mask_offset_ + take) & 3);
    pos += take;
    frame_remaining_ -= take;
    message_size_ += take;
    if (frame_remaining_ > 0) return false;

    stage_ = Stage::Header;
    if (!frame_fin_) return true;
    if (text && utf8_.status() != Utf8Status::Complete) return fail_utf8(event);
    return deliver_message(as_chars(message_buffer_.get(), message_buffered_), event);
}

bool FrameParser::deliver_message(std::string_view payload, Event& event) {
    event.type = EventType::Message;
    event.opcode = message_opcode_;
    event.payload = payload;
    in_message_ = false;
    message_size_ = 0;
    message_delivered_ = true;
    stage_ = Stage::Header;
    return false;
}

bool FrameParser::finish_close(std::string_view payload, Event& event) {
    using namespace close_code;
    uint16_t code = kNoStatus;
    std::string_view reason;
    if (payload.size() == 1) return fail(event, kProtocolError, "close payload of 1 byte");
    if (payload.size() >= 2) {
        code = uint16_t(uint8_t(payload[0]) << 8 | uint8_t(payload[1]));
        if (!is_valid_close_code(code)) return fail(event, kProtocolError, "invalid close code");
        reason = payload.substr(2);
        if (!is_valid_utf8(reason)) return fail(event, kInvalidPayload, "close reason not UTF-8");
    }
    event.type = EventType::Close;
    event.code = code;
    event.reason = reason;
    stage_ = Stage::Finished;
    return false;
}

bool FrameParser::fail(Event& event, uint16_t code, std::string_view why) {
    event.type = EventType::Error;
    event.code = code;
    event.reason = why;
    stage_ = Stage::Finished;
    return false;
}

// The same reason whichever path found it, so the outcome never depends on how input was split.
bool FrameParser::fail_utf8(Event& event) {
    return fail(event, close_code::kInvalidPayload,
                utf8_.status() == Utf8Status::Invalid
                    ? "invalid UTF-8 in text message"
                    : "text message ends inside a UTF-8 sequence");
}

uint8_t* FrameParser::grow_message(size_t size) {
    const size_t needed = message_buffered_ + size;
    if (needed > message_capacity_) {
        // Room for the rest of the frame at once, so a frame arriving in pieces is not copied
        // again at every doubling. Pages never written cost no memory, and the frame is within
        // max_message_size_; the cap only guards a limit set absurdly high. Across fragments,
        // grow geometrically.
        const uint64_t frame_end = message_buffered_ + frame_remaining_;
        const uint64_t ahead = std::min<uint64_t>(frame_end, needed + kMaxReserveAhead);
        uint64_t capacity =
            std::max<uint64_t>({ahead, 2 * uint64_t(message_capacity_), kMinBufferSize});
        capacity = std::max<uint64_t>(needed, std::min(capacity, max_message_size_));
        auto bigger = std::make_unique_for_overwrite<uint8_t[]>(size_t(capacity));
        if (message_buffered_ > 0)
            std::memcpy(bigger.get(), message_buffer_.get(), message_buffered_);
        message_buffer_ = std::move(bigger);
        message_capacity_ = size_t(capacity);
    }
    uint8_t* space = message_buffer_.get() + message_buffered_;
    message_buffered_ = needed;
    return space;
}

} // namespace parley::ws
