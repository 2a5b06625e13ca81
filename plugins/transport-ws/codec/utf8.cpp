#include "utf8.hpp"

#include <array>
#include <cstring>

namespace parley::ws {

namespace {

// Byte classes: bytes that behave alike in every state share a class.
enum ByteClass : uint8_t {
    kAscii,  // 00..7F
    kCont80, // 80..8F
    kCont90, // 90..9F
    kContA0, // A0..BF
    kNever,  // C0..C1 (overlong 2-byte leads), F5..FF (beyond U+10FFFF)
    kLead2,  // C2..DF
    kLeadE0, // E0: second byte A0..BF, else overlong
    kLead3,  // E1..EC, EE..EF
    kLeadED, // ED: second byte 80..9F, else a surrogate
    kLeadF0, // F0: second byte 90..BF, else overlong
    kLead4,  // F1..F3
    kLeadF4, // F4: second byte 80..8F, else beyond U+10FFFF
    kByteClassCount
};

// States: what the validator expects next.
enum State : uint8_t {
    kAccept,  // a lead byte or ASCII
    kReject,  // sink
    kNeed1,   // one continuation byte 80..BF
    kNeed2,   // two continuation bytes 80..BF
    kAfterE0, // A0..BF, then one more
    kAfterED, // 80..9F, then one more
    kAfterF0, // 90..BF, then two more
    kAfterF1, // 80..BF, then two more
    kAfterF4, // 80..8F, then two more
    kStateCount
};

constexpr std::array<uint8_t, 256> make_byte_classes() {
    std::array<uint8_t, 256> classes{};
    for (int b = 0; b < 256; ++b) {
        ByteClass c = kNever;
        if (b <= 0x7F)
            c = kAscii;
        else if (b <= 0x8F)
            c = kCont80;
        else if (b <= 0x9F)
            c = kCont90;
        else if (b <= 0xBF)
            c = kContA0;
        else if (b <= 0xC1)
            c = kNever;
        else if (b <= 0xDF)
            c = kLead2;
        else if (b == 0xE0)
            c = kLeadE0;
        else if (b == 0xED)
            c = kLeadED;
        else if (b <= 0xEF)
            c = kLead3;
        else if (b == 0xF0)
            c = kLeadF0;
        else if (b <= 0xF3)
            c = kLead4;
        else if (b == 0xF4)
            c = kLeadF4;
        classes[b] = c;
    }
    return classes;
}

using TransitionTable = std::array<std::array<uint8_t, kByteClassCount>, kStateCount>;

constexpr TransitionTable make_transitions() {
    TransitionTable t{};
    for (auto& row : t)
        row.fill(kReject);
    t[kAccept][kAscii] = kAccept;
    t[kAccept][kLead2] = kNeed1;
    t[kAccept][kLeadE0] = kAfterE0;
    t[kAccept][kLead3] = kNeed2;
    t[kAccept][kLeadED] = kAfterED;
    t[kAccept][kLeadF0] = kAfterF0;
    t[kAccept][kLead4] = kAfterF1;
    t[kAccept][kLeadF4] = kAfterF4;
    for (ByteClass c : {kCont80, kCont90, kContA0}) {
        t[kNeed1][c] = kAccept;
        t[kNeed2][c] = kNeed1;
        t[kAfterF1][c] = kNeed2;
    }
    t[kAfterE0][kContA0] = kNeed1;
    t[kAfterED][kCont80] = kNeed1;
    t[kAfterED][kCont90] = kNeed1;
    t[kAfterF0][kCont90] = kNeed2;
    t[kAfterF0][kContA0] = kNeed2;
    t[kAfterF4][kCont80] = kNeed2;
    return t;
}

constexpr auto kByteClasses = make_byte_classes();
constexpr auto kTransitions = make_transitions();

constexpr uint64_t kHighBits = 0x8080808080808080ull;

} // namespace

Utf8Status Utf8Validator::feed(const uint8_t* data, size_t size) {
    uint8_t state = state_;
    size_t i = 0;
    while (i < size && state != kReject) {
        if (state == kAccept) {
            // Chat text is mostly ASCII: skip it eight bytes at a time.
            uint64_t word;
            while (i + 8 <= size && (std::memcpy(&word, data + i, 8), (word & kHighBits) == 0))
                i += 8;
            while (i < size && data[i] < 0x80)
                ++i;
            if (i == size) break;
        }
        state = kTransitions[state][kByteClasses[data[i]]];
        ++i;
    }
    state_ = state;
    return status();
}

Utf8Status Utf8Validator::status() const {
    if (state_ == kAccept) return Utf8Status::Complete;
    if (state_ == kReject) return Utf8Status::Invalid;
    return Utf8Status::Incomplete;
}

Utf8Status validate_utf8(std::string_view text) {
    Utf8Validator validator;
    return validator.feed(text);
}

} // namespace parley::ws
