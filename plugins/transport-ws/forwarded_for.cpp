#include "forwarded_for.hpp"

#include <arpa/inet.h>

namespace parley::ws {

std::string normalised_address(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') // "[::1]"
        text = text.substr(1, text.size() - 2);
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return {};
    std::string z(text);
    unsigned char raw[16];
    char out[INET6_ADDRSTRLEN] = {0};
    if (inet_pton(AF_INET, z.c_str(), raw) == 1)
        return inet_ntop(AF_INET, raw, out, sizeof out) ? out : "";
    if (inet_pton(AF_INET6, z.c_str(), raw) == 1)
        return inet_ntop(AF_INET6, raw, out, sizeof out) ? out : "";
    return {};
}

std::optional<std::string> forwarded_client(std::string_view xff) {
    auto comma = xff.rfind(',');
    auto last = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
    auto addr = normalised_address(last);
    if (addr.empty()) return std::nullopt;
    return addr;
}

} // namespace parley::ws
