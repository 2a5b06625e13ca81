// test-bridge-leak: a SERVICE plugin that registers a room bridge in start() and, against the
// ABI's advice, never removes it. The kernel must drop the bridge itself when the instance
// stops: a later instance can register its own, and no hook reaches the removed one (each hook
// reports on stderr if it is called while no instance of this plugin is alive).
#include <parley/sdk.hpp>

#include <atomic>
#include <cstdio>

namespace {

using namespace parley::sdk;

std::atomic<int> g_alive{0};

void called(const char* hook) {
    if (g_alive.load() == 0)
        std::fprintf(stderr, "test-bridge-leak: %s hook called on a removed instance\n", hook);
}
void on_joined(void*, parley_t_bytes, parley_t_conn_id, parley_t_bytes, uint32_t) {
    called("joined");
}
void on_left(void*, parley_t_bytes, parley_t_conn_id, uint32_t) {
    called("left");
}
parley_t_status on_publish(void*, parley_t_bytes, parley_t_bytes, parley_t_frame_hptr, uint64_t) {
    called("publish");
    return PARLEY_OK;
}
uint32_t on_remote_members(void*, parley_t_bytes) {
    called("remote_members");
    return 0;
}
parley_t_status on_meta_set_once(void*, parley_t_bytes, uint32_t, parley_t_bytes,
                                 parley_t_meta_done_fn, void*) {
    called("meta_set_once");
    return PARLEY_ERR_UNAVAILABLE;
}
void on_farewell(void*, parley_t_bytes, parley_t_conn_id, parley_t_frame_hptr) {
    called("farewell");
}

constexpr parley_t_config_key kConfig[] = {
    key_range("node_slot", PARLEY_CFG_INT, "1", 0, 255, "Slot of the bridge."),
};

class BridgeLeak final : public Plugin {
  public:
    explicit BridgeLeak(Host h) : Plugin(h) { g_alive.fetch_add(1); }
    ~BridgeLeak() override { g_alive.fetch_sub(1); }

    parley_t_status start() override {
        bridge_.struct_size = sizeof bridge_;
        bridge_.node_slot = uint32_t(host().config_int("node_slot"));
        bridge_.joined = on_joined;
        bridge_.left = on_left;
        bridge_.publish = on_publish;
        bridge_.remote_members = on_remote_members;
        bridge_.meta_set_once = on_meta_set_once;
        bridge_.farewell = on_farewell;
        if (host().table()->room_bridge_set(host().ctx(), &bridge_) != PARLEY_OK) {
            host().set_error("a room bridge is already registered");
            return PARLEY_ERR_EXISTS;
        }
        return PARLEY_OK;
    }
    // No stop(): the bridge is deliberately left registered.

  private:
    parley_t_room_bridge bridge_{};
};

} // namespace

PARLEY_PLUGIN(BridgeLeak, "test-bridge-leak", PARLEY_KIND_SERVICE, "0.0.1",
              "Kernel test plugin: registers a room bridge and never removes it.", kConfig)
