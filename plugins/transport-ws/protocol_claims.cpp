#include "protocol_claims.hpp"

#include <map>
#include <mutex>

namespace parley::ws {

namespace {

struct Claim {
    std::string instance, protocol;
    bool shared;
};

std::mutex g_mu;
std::map<const void*, Claim>& claims() {
    static std::map<const void*, Claim> m; // every listener of every profile this process runs
    return m;
}

} // namespace

bool claim_protocol(const void* owner, const std::string& instance, const std::string& protocol,
                    bool shared_room_names, std::string& why) {
    std::lock_guard lk(g_mu);
    for (const auto& [other, c] : claims()) {
        if (other == owner || c.protocol == protocol || (c.shared && shared_room_names)) continue;
        why = "listener '" + instance + "' speaks " + protocol + " but listener '" + c.instance +
              "' in this process speaks " + c.protocol +
              ": room ids are one namespace, so members of both would share rooms and receive "
              "each other's frames. Run each protocol as its own profile (parleyd process), or "
              "set shared_room_names: true on both (tests, benchmarks)";
        return false;
    }
    claims()[owner] = Claim{instance, protocol, shared_room_names};
    return true;
}

void release_protocol(const void* owner) {
    std::lock_guard lk(g_mu);
    claims().erase(owner);
}

} // namespace parley::ws
