// A loaded plugin instance. Its address is the parley_t_host_ctx handed to the plugin.
#pragma once

#include "config/config.hpp"

#include <parley/plugin.h>

#include <spdlog/logger.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace parley::kernel {
class Kernel;
}

struct parley_t_host_ctx {
    parley::kernel::Kernel* kernel = nullptr;
    std::string name;        // instance name in the profile
    std::string plugin_name; // descriptor name
    std::string file;        // resolved .so path
    std::string version;
    parley_t_kind kind{};
    parley_t_descriptor desc{};  // zero-extended copy of the plugin's descriptor
    parley_t_plugin_vtable vt{}; // zero-extended copy of its vtable
    parley_t_instance_pptr inst = nullptr;
    std::shared_ptr<spdlog::logger> log;
    std::string last_error;
    bool started = false;
    std::atomic<bool> live{false}; // deliveries allowed (between start and stop)

    // Swapped whole on reload; readers take a copy of the pointer under the lock.
    mutable std::mutex config_mu;
    std::shared_ptr<const parley::config::Value> config;
    // Earlier configs stay alive: config_get hands out borrowed strings valid until destroy.
    std::vector<std::shared_ptr<const parley::config::Value>> retired;
    std::shared_ptr<const parley::config::Value> config_snapshot() const {
        std::lock_guard lk(config_mu);
        return config;
    }
};

namespace parley::kernel {
using Instance = parley_t_host_ctx;
}
