// Logging: human lines on a TTY, JSON lines otherwise. Every instance gets its own named logger
// sharing one sink so per-instance lines are attributable.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace parley::kernel {

enum class LogFormat { Auto, Human, Json };

void log_init(LogFormat format, spdlog::level::level_enum level);
std::shared_ptr<spdlog::logger> logger_for(const std::string& name);
void log_set_level(spdlog::level::level_enum level);
spdlog::level::level_enum log_level();
// The kernel's own logger ("parleyd").
spdlog::logger& klog();

} // namespace parley::kernel
