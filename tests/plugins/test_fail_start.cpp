// test-fail-start: a SERVICE plugin whose start() fails, for the kernel integration tests.
#include <parley/sdk.hpp>

namespace {

using namespace parley::sdk;

constexpr parley_t_config_key kConfig[] = {
    key("reason", PARLEY_CFG_STRING, "boom: port taken", "Error reported by start()."),
};

class FailStart final : public Plugin {
  public:
    explicit FailStart(Host h) : Plugin(h) {}
    parley_t_status start() override {
        host().set_error(host().config_string("reason"));
        return PARLEY_ERR;
    }
};

} // namespace

PARLEY_PLUGIN(FailStart, "test-fail-start", PARLEY_KIND_SERVICE, "0.0.1",
              "Kernel test plugin: start() always fails.", kConfig)
