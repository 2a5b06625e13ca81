// libFuzzer target for what transport-nats decodes from other benches without a signature
// check of its own: the federated frame filter (valid_federated_frame), the command argument
// splitter and the bench frame writer it pairs with (federation_common.cpp). Checks:
//   - split_args never returns more than n fields, and joining them with '\n' gives the input;
//   - a frame written by bench_frame from valid UTF-8 fields of an allowed type passes the
//     filter (escaping round trip), and nothing longer than `max` ever does.
// The signed envelope parser and its receive checks have their own target, fuzz_nats_envelope.
#include "federation.hpp"

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_check.hpp"

using namespace parley::federation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const size_t n = 1 + data[0] % 5;
    const size_t max = data[0] & 0x80 ? 64 : 1 << 20;
    std::string in(reinterpret_cast<const char*>(data + 1), size - 1); // own heap copy

    auto parts = split_args(in, n);
    CHECK(!parts.empty() && parts.size() <= n);
    std::string joined;
    for (size_t i = 0; i < parts.size(); ++i)
        joined += (i ? "\n" : "") + std::string(parts[i]);
    CHECK(joined == in);

    bool ok = valid_federated_frame(in, max);
    if (ok) CHECK(in.size() <= max && in.front() == '{');
    (void)valid_bench_id(in);
    (void)valid_room(in);

    if (parts.size() == 3) {
        static constexpr const char* kTypes[] = {"message", "image", "join", "leave",
                                                 "made_public"};
        std::string_view type = kTypes[data[0] % 5];
        bool utf8 = simdjson::validate_utf8(parts[1].data(), parts[1].size()) &&
                    simdjson::validate_utf8(parts[2].data(), parts[2].size());
        std::string frame = bench_frame(type, parts[1], parts[2]);
        if (utf8) CHECK(valid_federated_frame(frame, 1 << 22));
    }
    return 0;
}
