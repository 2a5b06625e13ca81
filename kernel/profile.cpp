#include "profile.hpp"

#include <parley/sdk.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <set>
#include <yaml-cpp/yaml.h>

namespace parley::kernel {

namespace fs = std::filesystem;
using sdk::key;
using sdk::key_enum;
using sdk::key_list;
using sdk::key_map;
using sdk::key_range;

namespace {

constexpr parley_t_config_key kLogKeys[] = {
    key_enum("level", "trace|debug|info|warn|error", "info", "Minimum level logged."),
    key_enum("format", "auto|human|json", "auto",
             "auto: human lines on a terminal, JSON lines otherwise."),
    key("client_ips", PARLEY_CFG_BOOL, "false",
        "Opt in to logging client IP addresses (off: privacy default).", PARLEY_CFG_RESTART),
};
constexpr parley_t_config_key kLimitKeys[] = {
    key_range("max_connections", PARLEY_CFG_INT, "100000", 1, 10000000,
              "Connections open at once across all transports."),
    key_range("rooms_per_connection", PARLEY_CFG_INT, "16", 1, 100000,
              "Rooms one connection may be in."),
    key_range("members_per_room", PARLEY_CFG_INT, "10000", 1, 10000000, "Members in one room."),
    key_range("max_rooms", PARLEY_CFG_INT, "1000000", 1, 100000000, "Rooms alive at once."),
};
constexpr parley_t_config_key kRoomKeys[] = {
    key_range("retain_empty", PARLEY_CFG_DURATION, "0", 0, 30LL * 86400 * 1000,
              "Keep an empty room (and its metadata, e.g. a password hash) this long; 0 frees "
              "it when the last member leaves."),
    key_range("sweep_interval", PARLEY_CFG_DURATION, "10s", 100, 3600 * 1000,
              "How often empty rooms are swept.", PARLEY_CFG_RESTART),
};
constexpr parley_t_config_key kWorkerKeys[] = {
    key_range("threads", PARLEY_CFG_INT, "2", 1, 256, "Worker threads for blocking work.",
              PARLEY_CFG_RESTART),
    key_range("queue", PARLEY_CFG_INT, "4096", 1, 1000000, "Queued work items before refusing.",
              PARLEY_CFG_RESTART),
};
constexpr parley_t_config_key kDrainKeys[] = {
    key_range("grace", PARLEY_CFG_DURATION, "5s", 0, 600 * 1000,
              "On SIGTERM, how long clients get before their sockets are closed with 1001."),
};
constexpr parley_t_config_key kControlKeys[] = {
    key("enabled", PARLEY_CFG_BOOL, "true", "Serve the control socket.", PARLEY_CFG_RESTART),
    key("socket", PARLEY_CFG_STRING, "",
        "Path of the ZeroMQ ipc control socket; default <state_dir>/control.sock.",
        PARLEY_CFG_RESTART),
};
constexpr parley_t_config_key kKernelKeys[] = {
    key("profile", PARLEY_CFG_STRING, nullptr,
        "Profile name ([a-z0-9-]); names the control socket and logs.",
        PARLEY_CFG_REQUIRED | PARLEY_CFG_RESTART),
    key("state_dir", PARLEY_CFG_STRING, "",
        "Writable directory for this profile (control socket, keys). Default var/<profile>, "
        "relative to the working directory.",
        PARLEY_CFG_RESTART),
    key_list("plugin_path", PARLEY_CFG_STRING,
             "Directories searched for parley-<plugin>.so before the built-in one.",
             PARLEY_CFG_RESTART),
    key("store", PARLEY_CFG_STRING, "", "Instance name of the store for history and blobs."),
    key_map("log", kLogKeys, "Logging."),
    key_map("limits", kLimitKeys, "Kernel-wide limits."),
    key_map("rooms", kRoomKeys, "Room lifetime."),
    key_map("workers", kWorkerKeys, "Worker pool."),
    key_map("drain", kDrainKeys, "Graceful shutdown."),
    key_map("control", kControlKeys, "Control socket."),
};

// What the top level of a profile may hold: the kernel keys and `plugins`. `plugins` is taken
// out before validation (each instance is checked against its plugin's schema); it is declared
// here only so that an unknown-key error lists it and suggests it for a misspelling.
const auto kProfileKeys = [] {
    std::array<parley_t_config_key, std::size(kKernelKeys) + 1> keys{};
    std::copy(std::begin(kKernelKeys), std::end(kKernelKeys), keys.begin());
    keys.back() = key_list("plugins", PARLEY_CFG_STRING, "Plugin instances.");
    return keys;
}();

bool valid_name(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    return true;
}

std::string mark_of(const YAML::Node& n) {
    return std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

} // namespace

const parley_t_config_key* kernel_schema(size_t* n) {
    *n = std::size(kKernelKeys);
    return kKernelKeys;
}

bool load_profile(const std::string& path, const ProfileOverrides& ov, Loader& loader, Profile& out,
                  config::Diagnostics& diag) {
    out = Profile{};
    out.file = path;
    auto doc = config::load_yaml_file(path, diag);
    if (diag.has_errors()) return false;
    const YAML::Node& root = doc.root;
    if (!root.IsMap()) {
        diag.error(path, root, "", "a profile must be a YAML mapping");
        return false;
    }

    // Kernel keys: everything except `plugins`, which is checked per instance below. The root
    // itself is validated (minus `plugins`) so diagnostics about it, such as a missing
    // `profile`, carry its line; a fresh map would have no position in the file.
    YAML::Node plugins_node = root["plugins"];
    YAML::Node kernel_node = doc.root;
    kernel_node.remove("plugins");
    auto kv = std::make_shared<config::Value>();
    config::validate(kernel_node, kProfileKeys.data(), kProfileKeys.size(), "", path, *kv, diag);
    if (diag.has_errors()) return false;
    out.kernel = kv;
    out.name = kv->find("profile")->str;
    if (!valid_name(out.name)) {
        diag.error(path, root["profile"], "profile",
                   "profile name must match [a-z0-9_-]{1,64}, got '" + out.name + "'");
        return false;
    }
    std::string sd = !ov.state_dir.empty() ? ov.state_dir : kv->find("state_dir")->str;
    out.state_dir = sd.empty() ? fs::path("var") / out.name : fs::path(sd);
    out.control_enabled = kv->find("control.enabled")->i != 0;
    std::string sock = kv->find("control.socket")->str;
    out.control_socket = sock.empty() ? (out.state_dir / "control.sock").string() : sock;
    out.store = kv->find("store")->str;

    std::vector<fs::path> dirs;
    if (auto* pp = kv->find("plugin_path"))
        for (auto& item : pp->items)
            dirs.push_back(item.str);
    if (const char* env = std::getenv("PARLEY_PLUGIN_PATH"))
        for (std::string_view s = env; !s.empty();) {
            auto c = s.find(':');
            if (c) dirs.emplace_back(std::string(s.substr(0, c)));
            if (c == std::string_view::npos) break;
            s.remove_prefix(c + 1);
        }
    dirs.push_back(Loader::default_plugin_dir());
    loader.set_search_path(dirs);

    if (!plugins_node || plugins_node.IsNull()) {
        diag.warning(path, root, "plugins", "no plugins: this profile serves nothing");
        return true;
    }
    if (!plugins_node.IsSequence()) {
        diag.error(path, plugins_node, "plugins", "'plugins' must be a list of instances");
        return false;
    }
    std::set<std::string> names;
    size_t idx = 0;
    for (const auto& entry : plugins_node) {
        std::string at = "plugins[" + std::to_string(idx++) + "]";
        if (!entry.IsMap()) {
            diag.error(path, entry, at, "each plugin entry must be a mapping");
            continue;
        }
        InstanceSpec spec;
        YAML::Node cfg;
        bool ok = true;
        for (auto it = entry.begin(); it != entry.end(); ++it) {
            auto k = it->first.as<std::string>("");
            YAML::Node v = it->second; // a copy: the iterator's pair is a temporary
            if (k == "name" || k == "plugin" || k == "file") {
                if (!v.IsScalar()) {
                    diag.error(path, v, at + "." + k, "expected a string");
                    ok = false;
                    continue;
                }
                (k == "name"     ? spec.name
                 : k == "plugin" ? spec.plugin
                                 : spec.file) = v.as<std::string>();
            } else if (k == "config") {
                cfg = v;
            } else {
                diag.error(path, it->first, at + "." + k,
                           "unknown key '" + k + "'; allowed keys: name, plugin, file, config");
                ok = false;
            }
        }
        if (!ok) continue;
        if (spec.plugin.empty()) {
            diag.error(path, entry, at + ".plugin", "missing required key 'plugin'");
            continue;
        }
        if (spec.name.empty()) spec.name = spec.plugin;
        if (!valid_name(spec.name)) {
            diag.error(path, entry["name"], at + ".name",
                       "instance name must match [a-z0-9_-]{1,64}");
            continue;
        }
        if (!names.insert(spec.name).second) {
            diag.error(path, entry, at + ".name",
                       "duplicate instance name '" + spec.name +
                           "' (give each instance of a plugin its own name:)");
            continue;
        }
        if (!spec.file.empty() && fs::path(spec.file).is_relative())
            spec.file = (fs::path(path).parent_path() / spec.file).string();
        std::string err;
        if (!loader.load(spec.plugin, spec.file, spec.loaded, err)) {
            diag.error(path, entry, at, err);
            continue;
        }
        YAML::Node cfg_map = cfg && !cfg.IsNull() ? cfg : YAML::Node(YAML::NodeType::Map);
        if (!cfg_map.IsMap()) {
            diag.error(path, cfg, at + ".config", "'config' must be a mapping");
            continue;
        }
        auto value = std::make_shared<config::Value>();
        if (!config::validate(cfg_map, spec.loaded.desc.config, spec.loaded.desc.config_len,
                              at + ".config", path, *value, diag))
            continue;
        spec.config = value;
        out.instances.push_back(std::move(spec));
    }
    if (!out.store.empty()) {
        bool found = false;
        for (auto& s : out.instances)
            if (s.name == out.store) {
                found = true;
                if (s.loaded.desc.kind != PARLEY_KIND_STORE)
                    diag.error(path, root["store"], "store",
                               "instance '" + out.store + "' is not a store plugin");
            }
        if (!found)
            diag.error(path, root["store"], "store",
                       "no plugin instance named '" + out.store + "'");
    }
    (void)mark_of;
    return !diag.has_errors();
}

} // namespace parley::kernel
