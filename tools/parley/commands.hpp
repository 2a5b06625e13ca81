// Subcommands of the `parley` tool.
#pragma once

#include <string>
#include <vector>

namespace parley::cli {
int cmd_ctl(std::vector<std::string> args);
} // namespace parley::cli
