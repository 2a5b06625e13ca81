// libFuzzer target for the YAML profile loader (kernel/config and kernel/profile): the input is
// a profile file. It goes through
//   - load_profile, exactly as parleyd --check-config reads a file (plugins are searched in an
//     empty directory, so plugin entries fail to resolve instead of loading code);
//   - load_yaml_string + validate against a schema using every config type, twice, checking
//     that validation is deterministic (equal trees, no changed paths);
//   - the scalar parsers on short inputs, checking format_size/format_duration round trips.
// It must never throw, crash, hang or grow without bound (kMaxDepth, Diagnostics::kMaxEntries).
#include "config/config.hpp"
#include "loader.hpp"
#include "profile.hpp"

#include <parley/sdk.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "fuzz_check.hpp"

namespace {

using namespace parley;

constexpr parley_t_config_key kLimitKeys[] = {
    sdk::key_range("max_items", PARLEY_CFG_INT, "10", 1, 1000, "Items."),
    sdk::key_range("window", PARLEY_CFG_DURATION, "1m", 0, 3600 * 1000, "Window."),
};
constexpr parley_t_config_key kRouteKeys[] = {
    sdk::key("path", PARLEY_CFG_STRING, nullptr, "Path.", PARLEY_CFG_REQUIRED),
    sdk::key_range("weight", PARLEY_CFG_INT, "1", 0, 100, "Weight."),
};
constexpr parley_t_config_key kRich[] = {
    sdk::key("greeting", PARLEY_CFG_STRING, "hello", "A string."),
    sdk::key_range("workers", PARLEY_CFG_INT, "4", 1, 64, "An int."),
    sdk::key("verbose", PARLEY_CFG_BOOL, "false", "A bool."),
    sdk::key_range("buffer", PARLEY_CFG_SIZE, "64K", 1024, int64_t(1) << 30, "A size."),
    sdk::key_range("timeout", PARLEY_CFG_DURATION, "30s", 100, 3600 * 1000, "A duration."),
    sdk::key_enum("mode", "fast|safe|paranoid", "safe", "An enum."),
    sdk::key_list("tags", PARLEY_CFG_STRING, "A list."),
    sdk::key_map("limits", kLimitKeys, "A map."),
    sdk::key_list_of_maps("routes", kRouteKeys, "A list of maps."),
    sdk::key("secret", PARLEY_CFG_STRING, nullptr, "A secret.", PARLEY_CFG_SECRET),
};

std::string g_dir; // per-process scratch directory

void scalars(std::string_view s) {
    if (s.size() > 64) return;
    std::string why;
    if (auto v = config::parse_size(s, &why)) {
        CHECK(*v >= 0);
        CHECK(config::parse_size(config::format_size(*v)) == *v);
    }
    if (auto v = config::parse_duration(s, &why)) {
        CHECK(*v >= 0);
        CHECK(config::parse_duration(config::format_duration(*v)) == *v);
    }
    if (auto v = config::parse_int(s, &why)) CHECK(config::parse_int(std::to_string(*v)) == *v);
    (void)config::parse_bool(s);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char tmpl[] = "/tmp/parley-fuzz-profile-XXXXXX";
    CHECK(mkdtemp(tmpl) != nullptr);
    g_dir = tmpl;
    std::filesystem::create_directory(g_dir + "/plugins");
    setenv("PARLEY_PLUGIN_PATH", (g_dir + "/plugins").c_str(), 1);
    std::atexit([] { std::filesystem::remove_all(g_dir); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 256 * 1024) return 0;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    scalars(text);

    {
        config::Diagnostics d1, d2;
        auto doc1 = config::load_yaml_string(text, "fuzz.yaml", d1);
        auto doc2 = config::load_yaml_string(text, "fuzz.yaml", d2);
        CHECK(d1.format() == d2.format());
        CHECK(d1.entries().size() <= config::Diagnostics::kMaxEntries + 1);
        if (!d1.has_errors() && (doc1.root.IsMap() || doc1.root.IsNull())) {
            config::Value v1, v2;
            bool ok1 =
                config::validate(doc1.root, kRich, std::size(kRich), "", "fuzz.yaml", v1, d1);
            bool ok2 =
                config::validate(doc2.root, kRich, std::size(kRich), "", "fuzz.yaml", v2, d2);
            CHECK(ok1 == ok2);
            if (ok1) {
                CHECK(config::equal(v1, v2));
                CHECK(config::changed_paths(v1, v2).empty());
                CHECK(v1.find("greeting") != nullptr && v1.find("limits.max_items") != nullptr);
            }
        }
        (void)d1.lines();
    }

    // The real loader reads a file.
    const std::string path = g_dir + "/profile.yaml";
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(text.data(), std::streamsize(text.size()));
    }
    kernel::Loader loader;
    kernel::Profile profile;
    config::Diagnostics diag;
    bool ok = kernel::load_profile(path, kernel::ProfileOverrides{}, loader, profile, diag);
    if (!ok) CHECK(diag.has_errors());
    if (ok) CHECK(!profile.name.empty() && profile.kernel != nullptr);
    (void)diag.format();
    return 0;
}
