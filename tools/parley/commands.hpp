// Subcommands of the `parley` tool.
#pragma once

#include <string>
#include <vector>

namespace parley::cli {
int cmd_ctl(std::vector<std::string> args);
int cmd_chat(std::vector<std::string> args);
int cmd_identities(std::vector<std::string> args);
// Blanks the invite key and password in argv (what ps shows) once they have been copied.
void chat_scrub_argv(int argc, char** argv);
} // namespace parley::cli
