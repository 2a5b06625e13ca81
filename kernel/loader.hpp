// Finds and opens plugin shared objects and checks their descriptors against the host ABI.
#pragma once

#include <parley/plugin.h>

#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace parley::kernel {

struct LoadedPlugin {
    std::string file;
    parley_t_descriptor desc{};  // zero-extended copy; desc.config points into config_rows
    parley_t_plugin_vtable vt{}; // zero-extended copy
    // Host-sized copies of the plugin's config key rows (and their children), shared by copies.
    std::shared_ptr<const std::deque<std::vector<parley_t_config_key>>> config_rows;
};

class Loader {
  public:
    // Directories searched in order for "parley-<name>.so".
    void set_search_path(std::vector<std::filesystem::path> dirs) { dirs_ = std::move(dirs); }
    const std::vector<std::filesystem::path>& search_path() const { return dirs_; }

    // Resolves `plugin` (a name) or `file` (an explicit path) and loads it. The handle is never
    // closed: code of a plugin may still run (timers, late callbacks) until the process exits.
    // On failure returns false with a message naming the plugin, the file and the reason.
    bool load(const std::string& plugin, const std::string& file, LoadedPlugin& out,
              std::string& error);

    // The directory of plugins next to this executable: <exe>/../lib/parley/plugins.
    static std::filesystem::path default_plugin_dir();

  private:
    std::vector<std::filesystem::path> dirs_;
    std::mutex mu_;
    std::unordered_map<std::string, LoadedPlugin> cache_; // by resolved path
};

// Applies the version rule. Returns an empty string when compatible, else the reason.
std::string check_abi(const std::string& name, const std::string& file, uint16_t major,
                      uint16_t minor);

} // namespace parley::kernel
