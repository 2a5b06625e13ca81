// Process-wide metric registry rendered in Prometheus text format by transports' /metrics.
#pragma once

#include <parley/plugin.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

struct parley_t_metric {
    parley_t_metric_kind kind;
    std::string full_name; // base name plus labels, e.g. x_total{instance="web",code="1002"}
    std::string base_name;
    std::string help;
    std::atomic<int64_t> value{0};
};

namespace parley::kernel {

class Metrics {
  public:
    // Adds instance="<instance>" (when non-empty) to the labels. Returns nullptr on a bad name.
    parley_t_metric* get(parley_t_metric_kind kind, std::string_view name, std::string_view help,
                         std::string_view instance);
    std::string render() const;
    int64_t value(std::string_view full_name) const;

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::unique_ptr<parley_t_metric>> metrics_;
};

} // namespace parley::kernel
