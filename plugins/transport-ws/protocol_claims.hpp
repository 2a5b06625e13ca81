// Which wire protocol each started listener of this process speaks. The kernel's room ids are
// one namespace, so a bench listener and a link listener in one parleyd would put a bench
// client and a link client who name the same room into one room: each would receive the
// other protocol's frames (a raw client could forge bench frames). Mixing is refused unless
// every listener involved opts in with shared_room_names (tests and benchmarks).
#pragma once

#include <string>

namespace parley::ws {

// Records that `owner` (a started listener) speaks `protocol`. Returns false, with the reason
// in `why`, when a listener of another protocol is running and either side did not opt in.
bool claim_protocol(const void* owner, const std::string& instance, const std::string& protocol,
                    bool shared_room_names, std::string& why);
void release_protocol(const void* owner);

} // namespace parley::ws
