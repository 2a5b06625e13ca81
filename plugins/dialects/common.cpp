#include "dialect.hpp"

#include <chrono>

namespace parley::dialect {

bool is_base64url(std::string_view s) {
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::unique_ptr<Dialect> make_link(const Env& env);
std::unique_ptr<Dialect> make_bench(const Env& env);
std::unique_ptr<Dialect> make_raw(const Env& env);
std::unique_ptr<Dialect> make_relay(const Env& env);
std::unique_ptr<Dialect> make_socketio(const Env& env);

std::unique_ptr<Dialect> make(std::string_view name, const Env& env) {
    if (name == "link") return make_link(env);
    if (name == "bench") return make_bench(env);
    if (name == "raw") return make_raw(env);
    if (name == "relay") return make_relay(env);
    if (name == "socketio") return make_socketio(env); // fuzzing; profiles reach it via relay
    return nullptr;
}

} // namespace parley::dialect
