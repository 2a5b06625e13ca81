// parley: the operator and user tool (ctl, chat, identities).
#include "commands.hpp"

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
        std::fprintf(argc < 2 ? stderr : stdout,
                     "usage: parley COMMAND ...\n"
                     "  ctl         control a running parleyd (status, reload, drain, ...)\n"
                     "  chat        join a link room from the terminal (invite link)\n"
                     "  identities  generate a relay circle's identities and allowlist\n"
                     "run 'parley COMMAND --help' for details\n");
        return argc < 2 ? 2 : 0;
    }
    std::string cmd = argv[1];
    std::vector<std::string> rest(argv + 2, argv + argc);
    if (cmd == "ctl") return parley::cli::cmd_ctl(rest);
    if (cmd == "identities") return parley::cli::cmd_identities(std::move(rest));
    if (cmd == "chat") {
        parley::cli::chat_scrub_argv(argc, argv);
        return parley::cli::cmd_chat(std::move(rest));
    }
    std::fprintf(stderr, "parley: unknown command '%s'\n", cmd.c_str());
    return 2;
}
