// The profile: kernel keys (validated with the same schema machinery as plugin configs) plus
// the list of plugin instances, each validated against its plugin's declared schema.
#pragma once

#include "config/config.hpp"
#include "loader.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace parley::kernel {

struct InstanceSpec {
    std::string name;   // unique in the profile
    std::string plugin; // plugin name
    std::string file;   // explicit .so path (optional)
    LoadedPlugin loaded;
    std::shared_ptr<const config::Value> config; // validated, defaults filled
};

struct Profile {
    std::string file;
    std::string name;
    std::filesystem::path state_dir;
    std::string control_socket; // filesystem path of the ipc socket
    bool control_enabled = true;
    std::string store;                           // instance used for history and blobs
    std::shared_ptr<const config::Value> kernel; // normalised kernel keys
    std::vector<InstanceSpec> instances;
};

struct ProfileOverrides {
    std::string state_dir;
};

// Parses, validates and loads every plugin the profile names (so their schemas can be checked)
// without creating instances. Returns false with diagnostics on any error.
bool load_profile(const std::string& path, const ProfileOverrides& ov, Loader& loader, Profile& out,
                  config::Diagnostics& diag);

// Kernel schema (for --describe-kernel and docs).
const parley_t_config_key* kernel_schema(size_t* n);

} // namespace parley::kernel
