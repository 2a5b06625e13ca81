// Unit tests for plugins/transport-ws/codec: framing rules (one test per close code path),
// UTF-8, masking, encoder, handshake, SHA-1, base64, the HTTP request head parser and the
// chunked body decoder.
#include "base64.hpp"
#include "chunked_body.hpp"
#include "handshake.hpp"
#include "http_request_head.hpp"
#include "sha1.hpp"
#include "utf8.hpp"
#include "ws_codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace parley::ws {
namespace {

using namespace std::string_literals;
using Bytes = std::vector<uint8_t>;

// ------------------------------------------------------------------------------ helpers

constexpr uint8_t kOpContinuation = 0x0, kOpText = 0x1, kOpBinary = 0x2, kOpClose = 0x8,
                  kOpPing = 0x9, kOpPong = 0xA;
constexpr uint8_t kRsv1 = 0x40, kRsv2 = 0x20, kRsv3 = 0x10;

// A client frame as a test wants it, including ones that break the rules.
struct ClientFrame {
    uint8_t opcode = kOpText;
    std::string payload;
    bool fin = true;
    uint8_t rsv = 0;
    bool masked = true;
    int length_bytes = -1; // -1: minimal encoding; else 0, 2 or 8 extended length bytes
    std::array<uint8_t, 4> key{0x37, 0xfa, 0x21, 0x3d};
};

Bytes encode_length(uint8_t mask_bit, uint64_t length, int length_bytes) {
    if (length_bytes < 0) length_bytes = length < 126 ? 0 : length <= 0xFFFF ? 2 : 8;
    Bytes out;
    if (length_bytes == 0) {
        out.push_back(uint8_t(mask_bit | length));
    } else {
        out.push_back(uint8_t(mask_bit | (length_bytes == 2 ? 126 : 127)));
        for (int i = length_bytes - 1; i >= 0; --i)
            out.push_back(uint8_t(length >> (8 * i)));
    }
    return out;
}

Bytes encode(const ClientFrame& f) {
    Bytes out{uint8_t((f.fin ? 0x80 : 0) | f.rsv | f.opcode)};
    const Bytes length = encode_length(f.masked ? 0x80 : 0, f.payload.size(), f.length_bytes);
    out.insert(out.end(), length.begin(), length.end());
    if (f.masked) out.insert(out.end(), f.key.begin(), f.key.end());
    for (size_t i = 0; i < f.payload.size(); ++i)
        out.push_back(uint8_t(f.payload[i]) ^ (f.masked ? f.key[i % 4] : 0));
    return out;
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

ClientFrame text(std::string payload, bool fin = true) {
    return {.opcode = kOpText, .payload = std::move(payload), .fin = fin};
}
ClientFrame binary(std::string payload, bool fin = true) {
    return {.opcode = kOpBinary, .payload = std::move(payload), .fin = fin};
}
ClientFrame continuation(std::string payload, bool fin = true) {
    return {.opcode = kOpContinuation, .payload = std::move(payload), .fin = fin};
}
ClientFrame control(uint8_t opcode, std::string payload = {}) {
    return {.opcode = opcode, .payload = std::move(payload)};
}
std::string close_payload(uint16_t code, std::string_view reason = {}) {
    return std::string{char(code >> 8), char(code & 0xFF)} + std::string(reason);
}

// An owned copy of an Event, comparable and printable.
struct Seen {
    EventType type = EventType::None;
    Opcode opcode = Opcode::Continuation;
    std::string payload;
    uint16_t code = 0;
    std::string reason;
    bool operator==(const Seen&) const = default;
};

void PrintTo(const Seen& s, std::ostream* os) {
    static const char* const kNames[] = {"None", "Message", "Ping", "Pong", "Close", "Error"};
    *os << kNames[int(s.type)] << "{opcode=" << int(s.opcode) << " payload=" << s.payload.size()
        << "B code=" << s.code << " reason=\"" << s.reason << "\"}";
}

Seen record(const Event& e) {
    return {e.type, e.opcode, std::string(e.payload), e.code, std::string(e.reason)};
}

// Feeds `bytes` in pieces of `chunk` bytes, each in its own buffer as a socket read would be.
std::vector<Seen> run(FrameParser& parser, const Bytes& bytes, size_t chunk = SIZE_MAX) {
    std::vector<Seen> seen;
    for (size_t offset = 0; offset < bytes.size();) {
        const size_t n = std::min(chunk, bytes.size() - offset);
        Bytes piece(bytes.begin() + long(offset), bytes.begin() + long(offset + n));
        parser.feed(piece.data(), piece.size(), [&](const Event& e) { seen.push_back(record(e)); });
        offset += n;
    }
    return seen;
}

std::vector<Seen> run(const Bytes& bytes, size_t chunk = SIZE_MAX,
                      uint64_t max_message_size = kDefaultMaxMessageSize) {
    FrameParser parser(max_message_size);
    return run(parser, bytes, chunk);
}

Seen message(Opcode opcode, std::string payload) {
    return {.type = EventType::Message, .opcode = opcode, .payload = std::move(payload)};
}
Seen ping(std::string payload) {
    return {.type = EventType::Ping, .payload = std::move(payload)};
}
Seen pong(std::string payload) {
    return {.type = EventType::Pong, .payload = std::move(payload)};
}
Seen closed(uint16_t code, std::string reason = {}) {
    return {.type = EventType::Close, .code = code, .reason = std::move(reason)};
}

// The events of `bytes` must end in an Error with `code`, and be the same however the input is
// split.
void expect_error(const Bytes& bytes, uint16_t code, uint64_t max = kDefaultMaxMessageSize) {
    const std::vector<Seen> whole = run(bytes, SIZE_MAX, max);
    ASSERT_FALSE(whole.empty());
    EXPECT_EQ(whole.back().type, EventType::Error);
    EXPECT_EQ(whole.back().code, code) << whole.back().reason;
    for (size_t chunk : {size_t(1), size_t(3)})
        EXPECT_EQ(run(bytes, chunk, max), whole) << "chunk " << chunk;
}

std::string hex(std::span<const uint8_t> bytes) {
    static const char* const kDigits = "0123456789abcdef";
    std::string out;
    for (uint8_t b : bytes) {
        out += kDigits[b >> 4];
        out += kDigits[b & 15];
    }
    return out;
}

Bytes bytes_of(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

// ---------------------------------------------------------------------------- framing

TEST(FrameParser, Rfc6455MaskedTextExample) {
    // RFC 6455 section 5.7: a single-frame masked text message containing "Hello".
    const Bytes frame{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    EXPECT_EQ(run(frame), std::vector<Seen>{message(Opcode::Text, "Hello")});
}

TEST(FrameParser, Rfc6455MaskedPingExample) {
    const Bytes frame{0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    EXPECT_EQ(run(frame), std::vector<Seen>{ping("Hello")});
}

TEST(FrameParser, WholeMessageIsUnmaskedInPlace) {
    Bytes frame = encode(binary("zero copy"));
    FrameParser parser;
    Event event;
    EXPECT_EQ(parser.parse(frame.data(), frame.size(), event), frame.size());
    ASSERT_EQ(event.type, EventType::Message);
    EXPECT_EQ(event.payload, "zero copy");
    EXPECT_EQ(static_cast<const void*>(event.payload.data()), frame.data() + 6);
}

TEST(FrameParser, EmptyMessagesAndControlFrames) {
    const Bytes stream = concat({encode(text("")), encode(binary("")), encode(control(kOpPing)),
                                 encode(control(kOpPong)), encode(text("", false)),
                                 encode(continuation("", false)), encode(continuation(""))});
    const std::vector<Seen> expected{message(Opcode::Text, ""), message(Opcode::Binary, ""),
                                     ping(""), pong(""), message(Opcode::Text, "")};
    EXPECT_EQ(run(stream), expected);
    EXPECT_EQ(run(stream, 1), expected);
}

TEST(FrameParser, UnmaskedClientFrameIs1002) {
    ClientFrame f = text("hi");
    f.masked = false;
    expect_error(encode(f), close_code::kProtocolError);
}

TEST(FrameParser, RsvBitsAre1002) {
    for (uint8_t rsv : {kRsv1, kRsv2, kRsv3, uint8_t(kRsv1 | kRsv3)}) {
        ClientFrame f = text("hi");
        f.rsv = rsv;
        expect_error(encode(f), close_code::kProtocolError);
        ClientFrame p = control(kOpPing);
        p.rsv = rsv;
        expect_error(encode(p), close_code::kProtocolError);
    }
}

TEST(FrameParser, ReservedOpcodesAre1002) {
    for (uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF})
        expect_error(encode(control(op, "x")), close_code::kProtocolError);
}

TEST(FrameParser, ControlFrameOver125BytesIs1002) {
    expect_error(encode(control(kOpPing, std::string(126, 'p'))), close_code::kProtocolError);
    expect_error(encode(control(kOpClose, close_payload(1000, std::string(124, 'r')))),
                 close_code::kProtocolError);
    // Detected from the first two bytes, before any length or payload arrives.
    const Bytes head{0x89, 0x80 | 126};
    EXPECT_EQ(run(head).back().code, close_code::kProtocolError);
}

TEST(FrameParser, ControlFrameOf125BytesIsFine) {
    EXPECT_EQ(run(encode(control(kOpPing, std::string(125, 'p')))),
              std::vector<Seen>{ping(std::string(125, 'p'))});
}

TEST(FrameParser, FragmentedControlFrameIs1002) {
    for (uint8_t op : {kOpPing, kOpPong, kOpClose}) {
        ClientFrame f = control(op);
        f.fin = false;
        expect_error(encode(f), close_code::kProtocolError);
    }
}

TEST(FrameParser, ContinuationWithoutMessageIs1002) {
    expect_error(encode(continuation("orphan")), close_code::kProtocolError);
    // Also right after a complete message.
    expect_error(concat({encode(text("done")), encode(continuation("more"))}),
                 close_code::kProtocolError);
}

TEST(FrameParser, NewDataFrameInsideFragmentedMessageIs1002) {
    expect_error(concat({encode(text("part", false)), encode(text("new"))}),
                 close_code::kProtocolError);
    expect_error(concat({encode(binary("part", false)), encode(binary("new", false))}),
                 close_code::kProtocolError);
}

TEST(FrameParser, NonMinimalLengthIs1002) {
    ClientFrame short16 = binary(std::string(125, 'x'));
    short16.length_bytes = 2;
    expect_error(encode(short16), close_code::kProtocolError);
    ClientFrame short64 = binary(std::string(0xFFFF, 'x'));
    short64.length_bytes = 8;
    expect_error(encode(short64), close_code::kProtocolError);
    ClientFrame tiny64 = binary("x");
    tiny64.length_bytes = 8;
    expect_error(encode(tiny64), close_code::kProtocolError);
    // The smallest lengths of each form are fine.
    ClientFrame min16 = binary(std::string(126, 'x'));
    EXPECT_EQ(run(encode(min16)).back().type, EventType::Message);
    ClientFrame min64 = binary(std::string(0x10000, 'x'));
    EXPECT_EQ(run(encode(min64)).back().type, EventType::Message);
}

TEST(FrameParser, LengthWithMostSignificantBitIs1002) {
    const Bytes header{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    // Not 1009: the length is malformed before it is too big.
    expect_error(header, close_code::kProtocolError, UINT64_MAX);
}

TEST(FrameParser, InvalidUtf8TextIs1007) {
    expect_error(encode(text("\xC0\xAF")), close_code::kInvalidPayload);
    expect_error(encode(text("ok\xFF")), close_code::kInvalidPayload);
    // Binary messages are not UTF-8 checked.
    EXPECT_EQ(run(encode(binary("\xC0\xAF"))),
              std::vector<Seen>{message(Opcode::Binary, "\xC0\xAF")});
}

TEST(FrameParser, TextEndingInsideCodePointIs1007) {
    expect_error(encode(text("abc\xE2\x82")), close_code::kInvalidPayload);
    expect_error(concat({encode(text("abc\xF0\x9F", false)), encode(continuation("\x98"))}),
                 close_code::kInvalidPayload);
}

TEST(FrameParser, InvalidUtf8FailsBeforeTheMessageEnds) {
    // The first fragment is already bad; its message never finishes.
    const Bytes first = encode(text("good \xED\xA0\x80 bad", false));
    EXPECT_EQ(run(first).back().code, close_code::kInvalidPayload);
    // Within one frame, as soon as the bad byte arrives.
    const Bytes frame = encode(text("abc\xFF" + std::string(1000, 'z')));
    const Bytes partial(frame.begin(), frame.begin() + 4 + 4 + 4); // header + mask + 4 bytes
    const std::vector<Seen> seen = run(partial);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].code, close_code::kInvalidPayload);
}

TEST(FrameParser, MessageOverLimitIs1009FromTheHeader) {
    // Only the header is sent: the announced size alone must trigger it.
    const Bytes frame = encode(binary(std::string(101, 'x')));
    const Bytes header(frame.begin(), frame.begin() + 6);
    expect_error(header, close_code::kMessageTooBig, 100);
    EXPECT_EQ(run(encode(binary(std::string(100, 'x'))), SIZE_MAX, 100),
              std::vector<Seen>{message(Opcode::Binary, std::string(100, 'x'))});
}

TEST(FrameParser, FragmentedMessageOverLimitIs1009) {
    const Bytes ok = concat(
        {encode(text(std::string(60, 'a'), false)), encode(continuation(std::string(40, 'b')))});
    EXPECT_EQ(run(ok, SIZE_MAX, 100).back(),
              message(Opcode::Text, std::string(60, 'a') + std::string(40, 'b')));
    const Bytes over = concat(
        {encode(text(std::string(60, 'a'), false)), encode(continuation(std::string(41, 'b')))});
    const Bytes over_header(over.begin(), over.end() - 41);
    expect_error(over_header, close_code::kMessageTooBig, 100);
}

TEST(FrameParser, HugeAnnouncedLengthIs1009) {
    const Bytes header{0x82, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4}; // 2^40 bytes
    expect_error(header, close_code::kMessageTooBig);
}

TEST(FrameParser, HugeFrameWithoutLimitReservesOnlyAhead) {
    // With no limit a 2^40-byte frame is legal; reserving it whole would throw bad_alloc.
    Bytes stream{0x82, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    stream.resize(stream.size() + 100000, 0x55);
    FrameParser parser(UINT64_MAX);
    EXPECT_TRUE(run(parser, stream, 4096).empty());
    EXPECT_TRUE(parser.in_message());
    EXPECT_FALSE(parser.finished());
}

TEST(FrameParser, CloseWithoutPayloadReports1005) {
    EXPECT_EQ(run(encode(control(kOpClose))), std::vector<Seen>{closed(close_code::kNoStatus)});
}

TEST(FrameParser, CloseWithCodeAndReason) {
    EXPECT_EQ(run(encode(control(kOpClose, close_payload(1000, "bye")))),
              std::vector<Seen>{closed(1000, "bye")});
    EXPECT_EQ(run(encode(control(kOpClose, close_payload(4321, "κόσμε")))),
              std::vector<Seen>{closed(4321, "κόσμε")});
}

TEST(FrameParser, ClosePayloadOfOneByteIs1002) {
    expect_error(encode(control(kOpClose, "\x03")), close_code::kProtocolError);
}

TEST(FrameParser, InvalidCloseCodesAre1002) {
    for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        expect_error(encode(control(kOpClose, close_payload(code))), close_code::kProtocolError);
}

TEST(FrameParser, ValidCloseCodesAreReported) {
    for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                          3000, 3999, 4000, 4999})
        EXPECT_EQ(run(encode(control(kOpClose, close_payload(code)))),
                  std::vector<Seen>{closed(code)});
}

TEST(FrameParser, CloseReasonMustBeUtf8) {
    expect_error(encode(control(kOpClose, close_payload(1000, "\xCE\xBA\xE1"))),
                 close_code::kInvalidPayload);
    expect_error(encode(control(kOpClose, close_payload(1000, "\xED\xBF\xBF"))),
                 close_code::kInvalidPayload);
}

TEST(FrameParser, InputAfterCloseIsIgnored) {
    FrameParser parser;
    Bytes stream = concat({encode(control(kOpClose, close_payload(1001))), encode(text("late"))});
    std::vector<Seen> seen;
    const size_t used = parser.feed(stream.data(), stream.size(),
                                    [&](const Event& e) { seen.push_back(record(e)); });
    EXPECT_EQ(seen, std::vector<Seen>{closed(1001)});
    EXPECT_EQ(used, stream.size() - encode(text("late")).size());
    EXPECT_TRUE(parser.finished());
    Event event;
    EXPECT_EQ(parser.parse(stream.data(), stream.size(), event), stream.size());
    EXPECT_EQ(event.type, EventType::None);
}

TEST(FrameParser, InputAfterErrorIsIgnored) {
    FrameParser parser;
    Bytes bad = encode(continuation("x"));
    Event event;
    parser.parse(bad.data(), bad.size(), event);
    EXPECT_EQ(event.type, EventType::Error);
    Bytes good = encode(text("x"));
    EXPECT_EQ(parser.parse(good.data(), good.size(), event), good.size());
    EXPECT_EQ(event.type, EventType::None);
}

TEST(FrameParser, FragmentedMessageWithInterleavedControlFrames) {
    const Bytes stream = concat({
        encode(text("Hel", false)),
        encode(control(kOpPing, "p1")),
        encode(continuation("lo, ", false)),
        encode(control(kOpPong, "p2")),
        encode(control(kOpPing)),
        encode(continuation("world")),
        encode(binary("after")),
    });
    const std::vector<Seen> expected{ping("p1"), pong("p2"), ping(""),
                                     message(Opcode::Text, "Hello, world"),
                                     message(Opcode::Binary, "after")};
    for (size_t chunk : {SIZE_MAX, size_t(1), size_t(2), size_t(5), size_t(7)})
        EXPECT_EQ(run(stream, chunk), expected) << "chunk " << chunk;
}

TEST(FrameParser, CloseInsideFragmentedMessage) {
    const Bytes stream =
        concat({encode(binary("part", false)), encode(control(kOpClose, close_payload(1000)))});
    EXPECT_EQ(run(stream), std::vector<Seen>{closed(1000)});
}

TEST(FrameParser, Utf8SplitAcrossFragmentsIsValid) {
    const std::string sample = "a\xC2\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF z";
    // Every split point, including inside each multi-byte sequence.
    for (size_t cut = 0; cut <= sample.size(); ++cut) {
        const Bytes stream = concat(
            {encode(text(sample.substr(0, cut), false)), encode(continuation(sample.substr(cut)))});
        EXPECT_EQ(run(stream), std::vector<Seen>{message(Opcode::Text, sample)}) << cut;
    }
    // Split over three fragments, one byte each.
    const Bytes three = concat({encode(text("\xF0", false)), encode(continuation("\x9F", false)),
                                encode(continuation("\x98\x80"))});
    EXPECT_EQ(run(three), std::vector<Seen>{message(Opcode::Text, "\xF0\x9F\x98\x80")});
}

TEST(FrameParser, Utf8SplitAcrossFragmentsIsInvalid) {
    const std::vector<std::string> bad{"\xC0\x80",
                                       "\xC1\xBF",
                                       "\xE0\x80\xAF",
                                       "\xE0\x9F\xBF", // overlong
                                       "\xF0\x80\x80\xAF",
                                       "\xF0\x8F\xBF\xBF", // overlong
                                       "\xED\xA0\x80",
                                       "\xED\xAD\xBF",
                                       "\xED\xBF\xBF", // surrogates
                                       "\xF4\x90\x80\x80",
                                       "\xF5\x80\x80\x80",
                                       "\xF7\xBF\xBF\xBF", // > U+10FFFF
                                       "\x80",
                                       "\xC2\x41",
                                       "\xFE",
                                       "\xFF"};
    for (const std::string& seq : bad) {
        const std::string sample = "ok " + seq + " tail";
        for (size_t cut = 3; cut <= 3 + seq.size(); ++cut) {
            const Bytes stream = concat({encode(text(sample.substr(0, cut), false)),
                                         encode(continuation(sample.substr(cut)))});
            const std::vector<Seen> seen = run(stream);
            ASSERT_EQ(seen.size(), 1u) << hex(bytes_of(seq));
            EXPECT_EQ(seen[0].code, close_code::kInvalidPayload)
                << hex(bytes_of(seq)) << " " << cut;
        }
    }
}

Bytes mixed_stream() {
    std::string big(70000, '\0');
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = char('a' + i % 26);
    ClientFrame odd_key = binary(std::string(300, '\x5A'));
    odd_key.key = {0x00, 0xFF, 0x10, 0x80};
    return concat({
        encode(text("Hello")),
        encode(control(kOpPing, "are you there")),
        encode(binary(big)),
        encode(text("frag-\xE2\x82", false)),
        encode(control(kOpPong)),
        encode(continuation("\xAC-", false)),
        encode(continuation(std::string(200, 'x'))),
        encode(odd_key),
        encode(text("")),
        encode(control(kOpClose, close_payload(1000, "done"))),
    });
}

TEST(FrameParser, ByteAtATimeEqualsOneShot) {
    const Bytes stream = mixed_stream();
    const std::vector<Seen> whole = run(stream);
    ASSERT_EQ(whole.size(), 8u);
    EXPECT_EQ(whole.back(), closed(1000, "done"));
    EXPECT_EQ(run(stream, 1), whole);
    std::mt19937 rng(42);
    for (int round = 0; round < 20; ++round) {
        FrameParser parser;
        std::vector<Seen> seen;
        for (size_t offset = 0; offset < stream.size();) {
            const size_t n = std::min<size_t>(stream.size() - offset, 1 + rng() % 2000);
            Bytes piece(stream.begin() + long(offset), stream.begin() + long(offset + n));
            parser.feed(piece.data(), n, [&](const Event& e) { seen.push_back(record(e)); });
            offset += n;
        }
        EXPECT_EQ(seen, whole) << "round " << round;
    }
}

TEST(FrameParser, ParseReturnsOneEventAtATime) {
    Bytes stream = concat({encode(text("one")), encode(text("two"))});
    FrameParser parser;
    Event event;
    const size_t first = parser.parse(stream.data(), stream.size(), event);
    EXPECT_EQ(first, encode(text("one")).size());
    EXPECT_EQ(event.payload, "one");
    EXPECT_EQ(parser.parse(stream.data() + first, stream.size() - first, event),
              stream.size() - first);
    EXPECT_EQ(event.payload, "two");
    EXPECT_EQ(parser.parse(stream.data(), 0, event), 0u);
    EXPECT_EQ(event.type, EventType::None);
}

TEST(FrameParser, Large64BitLengthFrames) {
    std::string payload(300000, '\0');
    std::mt19937 rng(7);
    for (char& c : payload)
        c = char(rng());
    const Bytes frame = encode(binary(payload));
    ASSERT_EQ(frame[1], 0x80 | 127);
    EXPECT_EQ(run(frame), std::vector<Seen>{message(Opcode::Binary, payload)});
    EXPECT_EQ(run(frame, 4096), std::vector<Seen>{message(Opcode::Binary, payload)});
    EXPECT_EQ(run(frame, 999), std::vector<Seen>{message(Opcode::Binary, payload)});
}

TEST(FrameParser, ParserIsMovable) {
    FrameParser parser;
    const Bytes frame = encode(text("moved along"));
    Bytes first(frame.begin(), frame.begin() + 9);
    run(parser, first);
    FrameParser moved = std::move(parser);
    EXPECT_EQ(run(moved, Bytes(frame.begin() + 9, frame.end())),
              std::vector<Seen>{message(Opcode::Text, "moved along")});
}

// ------------------------------------------------------------------------ close codes

TEST(CloseCode, MatchesRfc6455AndIanaRegistry) {
    for (uint32_t code = 0; code <= 0xFFFF; ++code) {
        const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                              (code >= 3000 && code <= 4999);
        EXPECT_EQ(is_valid_close_code(uint16_t(code)), expected) << code;
    }
}

// ---------------------------------------------------------------------------- masking

TEST(ApplyMask, MatchesBytewiseXorForAllOffsetsAndAlignments) {
    const std::array<uint8_t, 4> key{0xDE, 0xAD, 0xBE, 0xEF};
    Bytes source(200);
    for (size_t i = 0; i < source.size(); ++i)
        source[i] = uint8_t(i * 7 + 3);
    for (size_t align = 0; align < 8; ++align) {
        for (size_t size : {0, 1, 3, 7, 8, 9, 31, 32, 33, 64, 100, 191}) {
            for (size_t offset = 0; offset < 4; ++offset) {
                Bytes expected(size), out(size + 8);
                for (size_t i = 0; i < size; ++i)
                    expected[i] = source[align + i] ^ key[(offset + i) % 4];
                apply_mask(out.data() + align, source.data() + align, size, key, offset);
                EXPECT_TRUE(
                    std::equal(expected.begin(), expected.end(), out.begin() + long(align)));
                Bytes in_place(source);
                apply_mask(in_place.data() + align, in_place.data() + align, size, key, offset);
                EXPECT_TRUE(
                    std::equal(expected.begin(), expected.end(), in_place.begin() + long(align)));
            }
        }
    }
}

// ---------------------------------------------------------------------------- encoder

TEST(Encoder, HeaderLengthForms) {
    uint8_t out[kMaxServerHeaderSize];
    EXPECT_EQ(encode_header(out, Opcode::Text, 0), 2u);
    EXPECT_EQ(hex({out, 2}), "8100");
    EXPECT_EQ(encode_header(out, Opcode::Binary, 125), 2u);
    EXPECT_EQ(hex({out, 2}), "827d");
    EXPECT_EQ(encode_header(out, Opcode::Text, 126), 4u);
    EXPECT_EQ(hex({out, 4}), "817e007e");
    EXPECT_EQ(encode_header(out, Opcode::Text, 0xFFFF), 4u);
    EXPECT_EQ(hex({out, 4}), "817effff");
    EXPECT_EQ(encode_header(out, Opcode::Binary, 0x10000), 10u);
    EXPECT_EQ(hex({out, 10}), "827f0000000000010000");
    EXPECT_EQ(encode_header(out, Opcode::Text, 0x123456789AULL, false), 10u);
    EXPECT_EQ(hex({out, 10}), "017f000000123456789a");
    EXPECT_EQ(encode_header(out, Opcode::Continuation, 5, true), 2u);
    EXPECT_EQ(hex({out, 2}), "8005");
}

TEST(Encoder, ControlFrames) {
    EXPECT_EQ(hex(ping_frame().bytes()), "8900");
    EXPECT_EQ(hex(pong_frame("Hello").bytes()), "8a0548656c6c6f");
    EXPECT_EQ(hex(close_frame(1000).bytes()), "880203e8");
    EXPECT_EQ(close_frame(1001, "bye").view(), "\x88\x05\x03\xE9"s + "bye");
    EXPECT_EQ(ping_frame(std::string(200, 'p')).size(), 2u + 125u);
}

TEST(Encoder, CloseFrameWithCodeThatMustNotBeSentIsEmpty) {
    for (uint16_t code : {1004, 1005, 1006, 1015, 0, 5000})
        EXPECT_EQ(hex(close_frame(code, "why").bytes()), "8800") << code;
}

TEST(Encoder, CloseReasonIsCutAtCodePointBoundary) {
    // 61 two-byte code points are 122 bytes; one more would make 124 > 123.
    std::string reason;
    for (int i = 0; i < 70; ++i)
        reason += "\xCE\xBA";
    const ControlFrame frame = close_frame(1000, reason);
    ASSERT_EQ(frame.size(), 2u + 2u + 122u);
    EXPECT_TRUE(is_valid_utf8(frame.view().substr(4)));
    // A reason that is not UTF-8 is left out rather than sent broken.
    EXPECT_EQ(close_frame(1000, "\xFF").size(), 4u);
}

TEST(Encoder, ServerFramesParseBackWhenMasked) {
    // What we send, masked the way a client would, reads back as sent.
    for (uint64_t size : {0, 1, 125, 126, 65535, 65536, 70000}) {
        const std::string payload(size, 'q');
        uint8_t header[kMaxServerHeaderSize];
        const size_t header_size = encode_header(header, Opcode::Binary, size);
        ClientFrame f = binary(payload);
        Bytes expected = encode(f);
        // Same bytes apart from the mask bit and key.
        EXPECT_EQ(header[0], expected[0]);
        EXPECT_EQ(header[1] | 0x80, expected[1]);
        EXPECT_TRUE(std::equal(header + 2, header + header_size, expected.begin() + 2));
    }
    const ControlFrame frame = close_frame(1000, "done");
    Bytes close(frame.bytes().begin(), frame.bytes().end());
    close[1] |= 0x80;
    close.insert(close.begin() + 2, {0, 0, 0, 0}); // an all-zero key leaves the payload as is
    EXPECT_EQ(run(close), std::vector<Seen>{closed(1000, "done")});
}

// ------------------------------------------------------------------------------- UTF-8

// Straightforward decoder per Unicode table 3-7, to check the DFA against.
bool reference_is_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = uint8_t(s[i]);
        size_t length;
        uint32_t cp;
        if (b < 0x80) {
            ++i;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            length = 2, cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            length = 3, cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            length = 4, cp = b & 0x07;
        } else {
            return false;
        }
        if (i + length > s.size()) return false;
        for (size_t k = 1; k < length; ++k) {
            const auto c = uint8_t(s[i + k]);
            if ((c & 0xC0) != 0x80) return false;
            cp = cp << 6 | (c & 0x3F);
        }
        static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += length;
    }
    return true;
}

std::string encode_code_point(uint32_t cp) {
    if (cp < 0x80) return {char(cp)};
    if (cp < 0x800) return {char(0xC0 | cp >> 6), char(0x80 | (cp & 0x3F))};
    if (cp < 0x10000)
        return {char(0xE0 | cp >> 12), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
    return {char(0xF0 | cp >> 18), char(0x80 | ((cp >> 12) & 0x3F)),
            char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
}

TEST(Utf8, EveryCodePoint) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        const Utf8Status status = validate_utf8(encode_code_point(cp));
        if (surrogate != (status == Utf8Status::Invalid)) FAIL() << std::hex << cp;
    }
    EXPECT_EQ(validate_utf8("\xF4\x90\x80\x80"), Utf8Status::Invalid); // U+110000
}

TEST(Utf8, AllSequencesUpToThreeBytesMatchReference) {
    char buffer[3];
    for (uint32_t n = 0; n < (1u << 24); ++n) {
        buffer[0] = char(n >> 16), buffer[1] = char(n >> 8), buffer[2] = char(n);
        const std::string_view s(buffer, 3);
        if ((validate_utf8(s) == Utf8Status::Complete) != reference_is_utf8(s))
            FAIL() << hex(bytes_of(s));
    }
    for (uint32_t n = 0; n < (1u << 16); ++n) {
        buffer[0] = char(n >> 8), buffer[1] = char(n);
        const std::string_view s(buffer, 2);
        if ((validate_utf8(s) == Utf8Status::Complete) != reference_is_utf8(s))
            FAIL() << hex(bytes_of(s));
    }
}

TEST(Utf8, RandomTextsMatchReferenceWhenSplitAnywhere) {
    std::mt19937 rng(1234);
    const auto interesting_byte = [&]() -> char {
        switch (rng() % 4) {
        case 0:
            return char(rng() % 0x80);
        case 1:
            return char(0x80 + rng() % 0x40);
        default:
            return char(0xC0 + rng() % 0x40);
        }
    };
    for (int round = 0; round < 20000; ++round) {
        std::string s;
        for (size_t n = rng() % 24; n > 0; --n) {
            if (rng() % 3 == 0)
                s += encode_code_point(rng() % 0x110000);
            else
                s += interesting_byte();
        }
        const bool expected = reference_is_utf8(s);
        EXPECT_EQ(validate_utf8(s) == Utf8Status::Complete, expected) << hex(bytes_of(s));
        Utf8Validator pieces;
        for (size_t i = 0; i < s.size();) {
            const size_t n = std::min<size_t>(s.size() - i, 1 + rng() % 5);
            pieces.feed(std::string_view(s).substr(i, n));
            i += n;
        }
        EXPECT_EQ(pieces.status() == Utf8Status::Complete, expected) << hex(bytes_of(s));
    }
}

TEST(Utf8, IncompleteIsNotInvalid) {
    Utf8Validator v;
    EXPECT_EQ(v.feed("abc\xF0"), Utf8Status::Incomplete);
    EXPECT_EQ(v.feed("\x9F"), Utf8Status::Incomplete);
    EXPECT_EQ(v.feed("\x98"), Utf8Status::Incomplete);
    EXPECT_EQ(v.feed("\x80"), Utf8Status::Complete);
    EXPECT_EQ(v.feed("\xE2\x82"), Utf8Status::Incomplete);
    EXPECT_EQ(v.feed("x"), Utf8Status::Invalid);
    EXPECT_EQ(v.feed("valid again?"), Utf8Status::Invalid); // sticky
    v.reset();
    EXPECT_EQ(v.feed("yes"), Utf8Status::Complete);
    // Fails on the first impossible byte, not at the end of the sequence.
    EXPECT_EQ(validate_utf8("\xED\xA0"), Utf8Status::Invalid);
    EXPECT_EQ(validate_utf8("\xE0\x80"), Utf8Status::Invalid);
    EXPECT_EQ(validate_utf8("\xF4\x90"), Utf8Status::Invalid);
    EXPECT_EQ(validate_utf8("\xF0\x8F"), Utf8Status::Invalid);
    EXPECT_EQ(validate_utf8(""), Utf8Status::Complete);
    EXPECT_EQ(validate_utf8(std::string(1000, 'a') + "\xC3"), Utf8Status::Incomplete);
}

// ------------------------------------------------------------------------------ SHA-1

TEST(Sha1, KnownVectors) {
    EXPECT_EQ(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    EXPECT_EQ(hex(sha1(std::string(1000000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Sha1, PiecewiseEqualsWhole) {
    std::string data(1000, '\0');
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = char(i * 31);
    for (size_t length : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000}) {
        const std::string_view s = std::string_view(data).substr(0, length);
        for (size_t cut : {size_t(0), length / 3, length}) {
            Sha1 hasher;
            hasher.update(s.substr(0, cut));
            hasher.update(s.substr(cut));
            EXPECT_EQ(hasher.finish(), sha1(s)) << length << " " << cut;
        }
    }
}

// ----------------------------------------------------------------------------- base64

TEST(Base64, Rfc4648Vectors) {
    const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded);
        EXPECT_EQ(base64_decode(encoded), bytes_of(plain));
        std::string unpadded = encoded;
        unpadded.erase(std::remove(unpadded.begin(), unpadded.end(), '='), unpadded.end());
        EXPECT_EQ(base64url_encode(plain), unpadded);
        EXPECT_EQ(base64url_encode(plain, true), encoded);
        EXPECT_EQ(base64url_decode(unpadded), bytes_of(plain));
    }
}

TEST(Base64, AlphabetsDiffer) {
    const Bytes data{0xFB, 0xFF, 0xBF};
    EXPECT_EQ(base64_encode(data), "+/+/");
    EXPECT_EQ(base64url_encode(data), "-_-_");
    EXPECT_EQ(base64_decode("+/+/"), data);
    EXPECT_EQ(base64url_decode("-_-_"), data);
    EXPECT_FALSE(base64_decode("-_-_"));
    EXPECT_FALSE(base64url_decode("+/+/"));
}

TEST(Base64, RoundTripsRandomData) {
    std::mt19937 rng(99);
    for (size_t length = 0; length < 200; ++length) {
        Bytes data(length);
        for (uint8_t& b : data)
            b = uint8_t(rng());
        EXPECT_EQ(base64_decode(base64_encode(data)), data);
        EXPECT_EQ(base64url_decode(base64url_encode(data)), data);
        EXPECT_EQ(base64url_decode(base64url_encode(data, true), Base64Padding::Required), data);
        EXPECT_EQ(base64_decode(base64_encode(data), Base64Padding::Optional), data);
    }
}

TEST(Base64, StrictRejects) {
    for (const char* bad : {"Zg=", "Zg", "Z===", "Zm9v=", "Zm 9v", "Zm9v\n", " Zm9v", "Zm=v",
                            "=Zm9", "====", "A===", "Zh==", "Zm9=", "Zm-v", "Zm_v", "Zm9vY"})
        EXPECT_FALSE(base64_decode(bad)) << bad;
    EXPECT_FALSE(base64_decode(std::string_view("Zm9v\0AAA", 8)));
    // Non-zero bits past the data: "Zh" and "Zm9" would decode, but are not canonical.
    EXPECT_FALSE(base64url_decode("Zh"));
    EXPECT_FALSE(base64url_decode("Zm9"));
    EXPECT_TRUE(base64url_decode("Zg"));
    EXPECT_TRUE(base64url_decode("Zm8"));
    // Padding policies.
    EXPECT_FALSE(base64url_decode("Zg=="));
    EXPECT_TRUE(base64url_decode("Zg==", Base64Padding::Optional));
    EXPECT_TRUE(base64url_decode("Zg", Base64Padding::Optional));
    EXPECT_FALSE(base64url_decode("Zg=", Base64Padding::Optional));
    EXPECT_FALSE(base64_decode("Zg", Base64Padding::Required));
    EXPECT_FALSE(base64_decode("Zg==", Base64Padding::Forbidden));
    EXPECT_FALSE(base64url_decode("A")); // one leftover character is never a byte
    EXPECT_FALSE(base64url_decode("AAAAA"));
    EXPECT_TRUE(base64_decode(""));
}

// -------------------------------------------------------------------------- handshake

TEST(Handshake, Rfc6455AcceptKeyExample) {
    // RFC 6455 section 1.3 (and 4.2.2).
    EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_EQ(accept_key("wDqumtseNBJdhkihL6PW7w=="), "0FFP+2nmNIf/h+4BP36k9uzrYGk=");
}

HandshakeRequest good_request() {
    return {.method = "GET",
            .upgrade = "websocket",
            .connection = "Upgrade",
            .version = "13",
            .key = "dGhlIHNhbXBsZSBub25jZQ=="};
}

TEST(Handshake, AcceptsValidRequest) {
    EXPECT_EQ(check_handshake(good_request()), HandshakeError::None);
    HandshakeRequest r = good_request();
    r.connection = "keep-alive, Upgrade";
    r.upgrade = "WebSocket";
    EXPECT_EQ(check_handshake(r), HandshakeError::None);
    r.connection = "keep-alive,upgrade";
    EXPECT_EQ(check_handshake(r), HandshakeError::None);
    r.connection = "UPGRADE";
    EXPECT_EQ(check_handshake(r), HandshakeError::None);
}

TEST(Handshake, RejectsWithSpecificErrors) {
    HandshakeRequest r = good_request();
    r.method = "POST";
    EXPECT_EQ(check_handshake(r), HandshakeError::MethodNotGet);
    EXPECT_EQ(http_status(HandshakeError::MethodNotGet), 405);
    r = good_request();
    r.method = "get";
    EXPECT_EQ(check_handshake(r), HandshakeError::MethodNotGet);

    r = good_request();
    r.upgrade = "h2c";
    EXPECT_EQ(check_handshake(r), HandshakeError::NoUpgradeWebSocket);
    r.upgrade = "";
    EXPECT_EQ(check_handshake(r), HandshakeError::NoUpgradeWebSocket);

    r = good_request();
    r.connection = "keep-alive";
    EXPECT_EQ(check_handshake(r), HandshakeError::NoConnectionUpgrade);
    r.connection = "upgrades";
    EXPECT_EQ(check_handshake(r), HandshakeError::NoConnectionUpgrade);

    for (std::string_view version : {"8", "", "13, 8", "14"}) {
        r = good_request();
        r.version = version;
        EXPECT_EQ(check_handshake(r), HandshakeError::UnsupportedVersion) << version;
    }
    EXPECT_EQ(http_status(HandshakeError::UnsupportedVersion), 426);
    EXPECT_EQ(extra_headers(HandshakeError::UnsupportedVersion), "Sec-WebSocket-Version: 13\r\n");

    for (std::string_view key :
         {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZSE=",
          "dGhlIHNhbXBsZSBub25j", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ==="}) {
        r = good_request();
        r.key = key;
        EXPECT_EQ(check_handshake(r), HandshakeError::BadKey) << key;
    }
    EXPECT_EQ(http_status(HandshakeError::BadKey), 400);
    EXPECT_EQ(http_status(HandshakeError::None), 0);
}

TEST(Handshake, KeyValidation) {
    EXPECT_TRUE(is_valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_TRUE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
    EXPECT_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAAA=")); // 17 bytes
    EXPECT_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAA"));     // 15 bytes
    EXPECT_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAAAB==")); // not canonical
    EXPECT_FALSE(is_valid_websocket_key("AAAAAAAAAAAAAAAAAAAA-A==")); // base64url alphabet
}

HttpRequestHead parse_head(std::string_view text) {
    HttpRequestHead head;
    const HttpParseResult result = head.feed(text);
    EXPECT_EQ(result.status, HttpParseStatus::Complete) << result.error;
    return head;
}

constexpr std::string_view kUpgradeRequest = "GET /ws?room=1 HTTP/1.1\r\n"
                                             "Host: example.com\r\n"
                                             "Upgrade: websocket\r\n"
                                             "Connection: keep-alive, Upgrade\r\n"
                                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                             "Sec-WebSocket-Version: 13\r\n"
                                             "\r\n";

TEST(Handshake, FromParsedHead) {
    EXPECT_EQ(check_handshake(parse_head(kUpgradeRequest)), HandshakeError::None);
    // Connection tokens spread over two fields.
    EXPECT_EQ(check_handshake(parse_head("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
                                         "Connection: upgrade\r\nUpgrade: websocket\r\n"
                                         "Sec-WebSocket-Version: 13\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")),
              HandshakeError::None);
    EXPECT_EQ(check_handshake(parse_head("GET / HTTP/1.0\r\nUpgrade: websocket\r\n"
                                         "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")),
              HandshakeError::HttpVersionTooOld);
    EXPECT_EQ(check_handshake(parse_head("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                         "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                         "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n")),
              HandshakeError::BadKey);
    EXPECT_EQ(check_handshake(parse_head("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                         "Connection: upgrade\r\n"
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")),
              HandshakeError::UnsupportedVersion);
}

TEST(Handshake, Response) {
    EXPECT_EQ(handshake_response("dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: chat\r\n"),
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Protocol: chat\r\n"
              "\r\n");
}

// ------------------------------------------------------------------------ HTTP heads

TEST(HttpRequestHead, ParsesRequest) {
    const HttpRequestHead head = parse_head(kUpgradeRequest);
    EXPECT_EQ(head.method(), "GET");
    EXPECT_EQ(head.target(), "/ws?room=1");
    EXPECT_EQ(head.path(), "/ws");
    EXPECT_EQ(head.query(), "room=1");
    EXPECT_EQ(head.version_major(), 1);
    EXPECT_EQ(head.version_minor(), 1);
    EXPECT_EQ(head.headers().size(), 5u);
    EXPECT_EQ(head.header("HOST"), "example.com");
    EXPECT_EQ(head.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
    EXPECT_EQ(head.header("missing"), std::nullopt);
    EXPECT_TRUE(head.has_token("connection", "UPGRADE"));
    EXPECT_TRUE(head.has_token("Connection", "keep-alive"));
    EXPECT_FALSE(head.has_token("connection", "close"));
    EXPECT_TRUE(head.keep_alive());
    EXPECT_EQ(head.content_length(), std::nullopt);
}

TEST(HttpRequestHead, KeepsBytesAfterTheHead) {
    const std::string input = std::string(kUpgradeRequest) + "\x81\x85rest";
    HttpRequestHead head;
    const HttpParseResult result = head.feed(input);
    ASSERT_EQ(result.status, HttpParseStatus::Complete);
    EXPECT_EQ(result.consumed, kUpgradeRequest.size());
    EXPECT_EQ(input.substr(result.consumed), "\x81\x85rest");
    // Nothing more is taken until reset().
    EXPECT_EQ(head.feed("more").consumed, 0u);
}

TEST(HttpRequestHead, ByteAtATimeEqualsOneShot) {
    const std::string input = std::string(kUpgradeRequest) + "BODY";
    HttpRequestHead head;
    size_t offset = 0;
    HttpParseResult result;
    while (offset < input.size()) {
        result = head.feed(std::string_view(input).substr(offset, 1));
        offset += result.consumed;
        if (result.status != HttpParseStatus::NeedMore) break;
    }
    ASSERT_EQ(result.status, HttpParseStatus::Complete);
    EXPECT_EQ(offset, kUpgradeRequest.size());
    EXPECT_EQ(head.headers().size(), 5u);
    EXPECT_EQ(head.header("upgrade"), "websocket");
}

TEST(HttpRequestHead, ViewsSurviveMoveAndInputGoingAway) {
    HttpRequestHead moved;
    {
        std::string input = "GET / HTTP/1.0\r\n\r\n";
        HttpRequestHead head;
        ASSERT_EQ(head.feed(input).status, HttpParseStatus::Complete);
        input.assign(input.size(), 'X');
        moved = std::move(head);
    }
    EXPECT_EQ(moved.method(), "GET");
    EXPECT_EQ(moved.target(), "/");
    EXPECT_FALSE(moved.keep_alive());
}

TEST(HttpRequestHead, SkipsEmptyLinesBeforeRequestLine) {
    HttpRequestHead head;
    const HttpParseResult result = head.feed("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(result.status, HttpParseStatus::Complete);
    EXPECT_EQ(result.consumed, 4u + 16u + 9u + 2u);
}

TEST(HttpRequestHead, ValuesAreTrimmedAndMayBeEmpty) {
    const HttpRequestHead head = parse_head("GET / HTTP/1.1\r\nHost:a\r\nX-Empty:\r\n"
                                            "X-Pad: \t padded value \t\r\n\r\n");
    EXPECT_EQ(head.header("host"), "a");
    EXPECT_EQ(head.header("x-empty"), "");
    EXPECT_EQ(head.header("x-pad"), "padded value");
}

TEST(HttpRequestHead, ResetReadsNextRequest) {
    HttpRequestHead head;
    ASSERT_EQ(head.feed("GET /a HTTP/1.1\r\nHost: h\r\n\r\n").status, HttpParseStatus::Complete);
    head.reset();
    EXPECT_EQ(head.feed("GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").status,
              HttpParseStatus::Complete);
    EXPECT_EQ(head.target(), "/b");
    EXPECT_FALSE(head.keep_alive());
}

TEST(HttpRequestHead, AbsoluteFormTargetIsRoutedByItsPath) {
    for (auto [line, path, query] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"GET http://127.0.0.1:8080/health?x=1 HTTP/1.1", "/health", "x=1"},
             {"GET HTTPS://example.org/ws/room HTTP/1.1", "/ws/room", ""},
             {"GET http://example.org HTTP/1.1", "/", ""},
             {"OPTIONS * HTTP/1.1", "*", ""},
             {"GET /plain HTTP/1.1", "/plain", ""},
         }) {
        HttpRequestHead head;
        std::string in = line + "\r\nHost: h\r\n\r\n";
        ASSERT_EQ(head.feed(in).status, HttpParseStatus::Complete) << line;
        EXPECT_EQ(head.path(), path) << line;
        EXPECT_EQ(head.query(), query) << line;
    }
    HttpRequestHead bad;
    std::string in = "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n";
    EXPECT_EQ(bad.feed(in).status, HttpParseStatus::Error);
}

TEST(HttpRequestHead, ContentLength) {
    EXPECT_EQ(
        parse_head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n").content_length(),
        42u);
    EXPECT_EQ(parse_head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
                         "content-length: 7\r\n\r\n")
                  .content_length(),
              7u);
}

void expect_head_error(std::string_view input, int status, HttpHeadLimits limits = {}) {
    for (size_t chunk : {input.size(), size_t(1)}) {
        HttpRequestHead head(limits);
        HttpParseResult result;
        for (size_t offset = 0; offset < input.size(); offset += chunk) {
            result = head.feed(input.substr(offset, chunk));
            if (result.status != HttpParseStatus::NeedMore) break;
        }
        EXPECT_EQ(result.status, HttpParseStatus::Error) << input;
        EXPECT_EQ(result.error_status, status) << input << ": " << result.error;
    }
}

TEST(HttpRequestHead, Errors) {
    expect_head_error("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);              // bare LF
    expect_head_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400);      // bare CR
    expect_head_error("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400); // obs-fold
    expect_head_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);           // space before colon
    expect_head_error("GET / HTTP/1.1\r\nHost h\r\n\r\n", 400);             // no colon
    expect_head_error("GET / HTTP/1.1\r\n: h\r\n\r\n", 400);                // empty name
    expect_head_error("GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n", 400);        // control byte
    expect_head_error("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);           // double space
    expect_head_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_head_error("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
    expect_head_error("GET\r\nHost: h\r\n\r\n", 400);
    expect_head_error("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_head_error("GET / HTTP/1.11\r\nHost: h\r\n\r\n", 400);
    expect_head_error("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
    expect_head_error("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
    expect_head_error("GET / HTTP/1.1\r\n\r\n", 400);                       // no Host
    expect_head_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400); // two Hosts
    expect_head_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                      "Content-Length: 2\r\n\r\n",
                      400);
    expect_head_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 400);
    expect_head_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", 400);
    expect_head_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
                      400);
    expect_head_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n",
                      400);
}

TEST(HttpRequestHead, Limits) {
    const std::string long_target = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n";
    expect_head_error(long_target, 414);
    std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 64; ++i)
        many += "X-" + std::to_string(i) + ": v\r\n";
    expect_head_error(many + "\r\n", 431);
    std::string big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(8200, 'v') + "\r\n\r\n";
    expect_head_error(big, 431);
    // Exactly at the limit is fine.
    const std::string exact_prefix = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    const std::string exact =
        exact_prefix + std::string(100 - exact_prefix.size() - 4, 'v') + "\r\n\r\n";
    ASSERT_EQ(exact.size(), 100u);
    HttpRequestHead head({.max_head_size = 100, .max_headers = 2});
    EXPECT_EQ(head.feed(exact).status, HttpParseStatus::Complete);
    expect_head_error(exact_prefix + std::string(100 - exact_prefix.size() - 3, 'v') + "\r\n\r\n",
                      431, {.max_head_size = 100, .max_headers = 2});
    // Endless empty lines count against the limit too.
    std::string empty_lines;
    for (int i = 0; i < 5000; ++i)
        empty_lines += "\r\n";
    expect_head_error(empty_lines, 400);
}

// ---- ChunkedBody

struct Decoded {
    ChunkedBody::Status status;
    std::string body, rest;
};

// Feeds `wire` in pieces of `step` bytes (0: whole), as a socket would deliver it.
Decoded decode_chunked(const std::string& wire, size_t step = 0, size_t limit = 1 << 20) {
    ChunkedBody cb(limit);
    std::string in;
    auto st = ChunkedBody::Status::NeedMore;
    for (size_t off = 0; off < wire.size() && st == ChunkedBody::Status::NeedMore;) {
        size_t n = step ? std::min(step, wire.size() - off) : wire.size();
        in.append(wire, off, n);
        off += n;
        st = cb.feed(in);
    }
    if (st == ChunkedBody::Status::NeedMore) in.clear();
    return {st, cb.body(), in};
}

TEST(ChunkedBody, WholeAndInPieces) {
    const std::string wire = "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
                             "0\r\n\r\nGET /next";
    for (size_t step : {0, 1, 2, 3, 7}) {
        auto d = decode_chunked(wire, step);
        EXPECT_EQ(d.status, ChunkedBody::Status::Done) << "step " << step;
        EXPECT_EQ(d.body, "Wikipedia in\r\n\r\nchunks.") << "step " << step;
        // Only what was fed before Done is left: whole, the pipelined request follows.
        if (step == 0) {
            EXPECT_EQ(d.rest, "GET /next");
        }
    }
}

TEST(ChunkedBody, TrailersAndHexCase) {
    auto d = decode_chunked("a\r\n0123456789\r\nA \t;x\r\nabcdefghij\r\n000\r\n"
                            "Expires: never\r\nX-Sum: 1\r\n\r\n");
    EXPECT_EQ(d.status, ChunkedBody::Status::Done);
    EXPECT_EQ(d.body, "0123456789abcdefghij");
    EXPECT_EQ(decode_chunked("0\r\n\r\n").body, "");
}

TEST(ChunkedBody, NeedsMoreUntilTheEmptyLine) {
    ChunkedBody cb(100);
    std::string in = "3\r\nabc\r\n0\r\n";
    EXPECT_EQ(cb.feed(in), ChunkedBody::Status::NeedMore);
    EXPECT_EQ(cb.consumed(), 11u);
    in += "\r\n";
    EXPECT_EQ(cb.feed(in), ChunkedBody::Status::Done);
    EXPECT_EQ(cb.body(), "abc");
}

TEST(ChunkedBody, Malformed) {
    for (const std::string& wire : std::vector<std::string>{
             "\r\n",                               // no size
             "x\r\nabc\r\n0\r\n\r\n",              // not hex
             "-1\r\n",                             // sign
             "3 4\r\nabc\r\n",                     // junk after the size
             "3\r\nabcd\r\n0\r\n\r\n",             // more data than the size
             "3\r\nabc0\r\n\r\n",                  // no CRLF after the data
             "0\r\nno colon here\r\n\r\n",         // trailer that is no field
             "10000000000000000\r\n",              // 17 hex digits: over 64 bits
             "3;a\nb\r\nabc\r\n0\r\n\r\n",         // bare LF in an extension
             "3\r" + std::string(5000, '0') + "\n" // a size line over the limit
         }) {
        for (size_t step : {0, 1}) {
            EXPECT_EQ(decode_chunked(wire, step).status, ChunkedBody::Status::Malformed)
                << "step " << step << ": " << wire.substr(0, 40);
        }
    }
}

TEST(ChunkedBody, Limits) {
    EXPECT_EQ(decode_chunked("5\r\nhello\r\n0\r\n\r\n", 0, 5).status, ChunkedBody::Status::Done);
    EXPECT_EQ(decode_chunked("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n", 0, 5).status,
              ChunkedBody::Status::TooLarge);
    // Refused from the size line, before any of its data arrived.
    ChunkedBody cb(10);
    std::string in = "ffffffff\r\n";
    EXPECT_EQ(cb.feed(in), ChunkedBody::Status::TooLarge);
    std::string more = "abc";
    EXPECT_EQ(cb.feed(more), ChunkedBody::Status::TooLarge) << "failure is sticky";
    std::string trailers = "0\r\n";
    for (int i = 0; i < 1000; ++i)
        trailers += "X-Trailer-" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(decode_chunked(trailers + "\r\n").status, ChunkedBody::Status::TooLarge);
}

} // namespace
} // namespace parley::ws
