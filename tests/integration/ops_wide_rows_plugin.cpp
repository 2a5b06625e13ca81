// Test plugin for integration.ops_abi_rows: its config key rows are laid out as a newer header
// would (parley_t_config_key plus one trailing field, struct_size saying so). The kernel must
// walk them by their own struct_size, not by its sizeof(parley_t_config_key).
#include <parley/sdk.hpp>

namespace {

using parley::sdk::key;
using parley::sdk::key_range;

struct WideKey {
    parley_t_config_key k;
    uint64_t added_in_a_later_minor;
};

WideKey wide(parley_t_config_key k) {
    k.struct_size = sizeof(WideKey);
    return WideKey{k, 0x5eed5eed5eed5eedull};
}

WideKey g_children[2];
WideKey g_rows[3];

class Wide final : public parley::sdk::Plugin {
  public:
    explicit Wide(parley::sdk::Host h) : Plugin(h) {}
    parley_t_status start() override {
        host().logf(PARLEY_LOG_INFO, "wide rows: alpha=%s beta=%lld depth=%lld mode=%s",
                    host().config_string("alpha").c_str(),
                    static_cast<long long>(host().config_int("beta")),
                    static_cast<long long>(host().config_int("nested.depth")),
                    host().config_string("nested.mode").c_str());
        return PARLEY_OK;
    }
};

constexpr parley_t_plugin_vtable kVtable =
    parley::sdk::detail::Trampolines<Wide>::vtable(PARLEY_KIND_SERVICE);
parley_t_descriptor g_desc{};

} // namespace

extern "C" PARLEY_EXPORT const parley_t_descriptor*
parley_plugin_entry_v0(uint16_t host_major, uint16_t /*host_minor*/, const char** error) {
    if (host_major != PARLEY_ABI_MAJOR) {
        if (error) *error = "plugin built for another parley ABI major";
        return nullptr;
    }
    g_children[0] = wide(key_range("depth", PARLEY_CFG_INT, "3", 1, 9, "Nested int."));
    g_children[1] = wide(parley::sdk::key_enum("mode", "fast|safe", "safe", "Nested enum."));
    g_rows[0] = wide(key("alpha", PARLEY_CFG_STRING, "a", "First key."));
    g_rows[1] = wide(key_range("beta", PARLEY_CFG_INT, "7", 0, 10, "Second key."));
    parley_t_config_key map = key("nested", PARLEY_CFG_MAP, nullptr, "A map of two keys.");
    map.children = &g_children[0].k;
    map.children_len = 2;
    g_rows[2] = wide(map);
    g_desc = parley_t_descriptor{sizeof(parley_t_descriptor),
                                 PARLEY_ABI_MAJOR,
                                 PARLEY_ABI_MINOR,
                                 "wide-rows",
                                 PARLEY_KIND_SERVICE,
                                 "0.1.0",
                                 "Config rows wider than the host's (test).",
                                 &g_rows[0].k,
                                 3,
                                 &kVtable};
    return &g_desc;
}
