// parleyd: the daemon. One process runs one profile.
#include "config/config.hpp"
#include "kernel.hpp"
#include "log.hpp"
#include "profile.hpp"

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

using namespace parley::kernel;

namespace {

void usage(FILE* out) {
    std::fprintf(
        out, "usage: parleyd [options] PROFILE.yaml\n"
             "  --check-config            validate the profile and its plugins' config, exit 0/1\n"
             "  --state-dir DIR           override the profile's state_dir\n"
             "  --describe-plugin NAME    print a plugin's config keys (with --json: as JSON)\n"
             "  --describe-kernel         print the kernel's own profile keys\n"
             "  --plugin-path DIR         extra plugin directory (repeatable)\n"
             "  --version                 print version and ABI\n"
             "Signals: SIGHUP reloads (the old profile stays on error), SIGTERM drains.\n");
}

int describe(const parley_t_config_key* keys, size_t n, bool json, const std::string& title) {
    if (json)
        std::cout << parley::config::describe_json(keys, n) << "\n";
    else
        std::cout << title << "\n" << parley::config::describe_text(keys, n);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    bool check = false, json = false, describe_kernel = false;
    std::string profile, describe_plugin;
    ProfileOverrides ov;
    std::vector<std::string> extra_paths;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto need = [&](const char* what) -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "parleyd: %s needs an argument\n", what);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--check-config")
            check = true;
        else if (a == "--json")
            json = true;
        else if (a == "--state-dir")
            ov.state_dir = need("--state-dir");
        else if (a == "--describe-plugin")
            describe_plugin = need("--describe-plugin");
        else if (a == "--describe-kernel")
            describe_kernel = true;
        else if (a == "--plugin-path")
            extra_paths.push_back(need("--plugin-path"));
        else if (a == "--version") {
            std::printf("parleyd %s (plugin ABI %d.%d)\n", PARLEY_VERSION, PARLEY_ABI_MAJOR,
                        PARLEY_ABI_MINOR);
            return 0;
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (!a.empty() && a[0] == '-') {
            std::fprintf(stderr, "parleyd: unknown option %s\n", a.c_str());
            usage(stderr);
            return 2;
        } else if (profile.empty())
            profile = a;
        else {
            std::fprintf(stderr, "parleyd: one profile per process\n");
            return 2;
        }
    }
    if (!extra_paths.empty()) {
        std::string joined;
        for (auto& p : extra_paths)
            joined += (joined.empty() ? "" : ":") + p;
        if (const char* env = std::getenv("PARLEY_PLUGIN_PATH")) joined += std::string(":") + env;
        setenv("PARLEY_PLUGIN_PATH", joined.c_str(), 1);
    }
    if (describe_kernel) {
        size_t n;
        auto* keys = kernel_schema(&n);
        return describe(keys, n, json, "parleyd profile keys:");
    }
    if (!describe_plugin.empty()) {
        Loader loader;
        std::vector<std::filesystem::path> dirs;
        for (auto& p : extra_paths)
            dirs.emplace_back(p);
        dirs.push_back(Loader::default_plugin_dir());
        loader.set_search_path(dirs);
        LoadedPlugin lp;
        std::string err;
        bool is_file = describe_plugin.find('/') != std::string::npos;
        if (!loader.load(is_file ? "" : describe_plugin, is_file ? describe_plugin : "", lp, err)) {
            std::fprintf(stderr, "parleyd: %s\n", err.c_str());
            return 1;
        }
        return describe(lp.desc.config, lp.desc.config_len, json,
                        std::string(lp.desc.name) + " " + lp.desc.version + ": " +
                            (lp.desc.description ? lp.desc.description : ""));
    }
    if (profile.empty()) {
        usage(stderr);
        return 2;
    }
    if (check) {
        Loader loader;
        Profile p;
        parley::config::Diagnostics diag;
        bool ok = load_profile(profile, ov, loader, p, diag);
        for (auto& line : diag.lines())
            std::fprintf(stderr, "%s\n", line.c_str());
        if (!ok) {
            std::fprintf(stderr, "parleyd: %s: configuration invalid\n", profile.c_str());
            return 1;
        }
        std::printf("%s: OK (profile '%s', %zu plugin instances)\n", profile.c_str(),
                    p.name.c_str(), p.instances.size());
        return 0;
    }

    block_signals(); // before any thread exists, so only the main loop sees them
    Kernel kernel;
    if (!kernel.start(profile, ov)) {
        klog().error("parleyd: could not start profile {}", profile);
        return 1;
    }
    return kernel.run();
}
