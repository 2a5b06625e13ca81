// JSON string escaping for server-built envelopes and API answers, shared by the dialects and
// the relay plugin. (tools/parley/link_crypto.cpp keeps its own: it must reproduce the
// browser's JSON.stringify byte for byte, \b and \f included.)
#pragma once

#include <string>
#include <string_view>

namespace parley {

inline std::string json_escape(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += char(c);
            }
        }
    }
    return out;
}

} // namespace parley
