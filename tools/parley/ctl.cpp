// parley ctl: talk to a running parleyd over its control socket.
#include "commands.hpp"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <yaml-cpp/yaml.h>
#include <zmq.hpp>

namespace parley::cli {

namespace fs = std::filesystem;

namespace {

int ctl_usage(FILE* out) {
    std::fprintf(out,
                 "usage: parley ctl (--profile NAME|FILE | --socket PATH) [--json] COMMAND\n"
                 "commands: status, plugins, rooms, reload, drain, log-level [LEVEL]\n"
                 "--profile NAME looks for NAME.yaml in ./etc, $PARLEY_CONFIG_DIR and "
                 "/etc/parley,\nand finds the socket in the profile's state_dir.\n"
                 "exit codes: 0 ok, 1 the command failed, 2 usage, 3 no answer from parleyd\n");
    return 2;
}

std::string find_profile(const std::string& p) {
    if (p.find('/') != std::string::npos || p.ends_with(".yaml") || p.ends_with(".yml")) return p;
    std::vector<fs::path> dirs = {"etc"};
    if (const char* d = std::getenv("PARLEY_CONFIG_DIR")) dirs.emplace_back(d);
    dirs.emplace_back("/etc/parley");
    for (auto& d : dirs)
        if (fs::exists(d / (p + ".yaml"))) return (d / (p + ".yaml")).string();
    return {};
}

// Mirrors the kernel's defaults: control.socket, else <state_dir>/control.sock, where
// state_dir defaults to var/<profile>.
std::string socket_from_profile(const std::string& file, const std::string& state_override,
                                std::string& err) {
    try {
        YAML::Node root = YAML::LoadFile(file);
        if (auto c = root["control"]; c && c["socket"] && !c["socket"].as<std::string>().empty())
            return c["socket"].as<std::string>();
        std::string name = root["profile"] ? root["profile"].as<std::string>() : "";
        std::string sd = state_override;
        if (sd.empty() && root["state_dir"]) sd = root["state_dir"].as<std::string>();
        if (sd.empty()) sd = (fs::path("var") / name).string();
        return (fs::path(sd) / "control.sock").string();
    } catch (const std::exception& e) {
        err = std::string("cannot read profile ") + file + ": " + e.what();
        return {};
    }
}

void print_human(const std::string& cmd, Poco::JSON::Object::Ptr o) {
    if (!o->optValue<bool>("ok", false)) {
        std::fprintf(stderr, "error: %s\n", o->optValue<std::string>("error", "failed").c_str());
        return;
    }
    auto print_plugins = [](Poco::JSON::Array::Ptr arr) {
        if (!arr) return;
        std::printf("%-16s %-18s %-10s %-10s %s\n", "INSTANCE", "PLUGIN", "VERSION", "KIND", "ABI");
        for (size_t i = 0; i < arr->size(); ++i) {
            auto p = arr->getObject(unsigned(i));
            std::printf("%-16s %-18s %-10s %-10s %s\n",
                        p->optValue<std::string>("instance", "").c_str(),
                        p->optValue<std::string>("plugin", "").c_str(),
                        p->optValue<std::string>("version", "").c_str(),
                        p->optValue<std::string>("kind", "").c_str(),
                        p->optValue<std::string>("abi", "").c_str());
        }
    };
    if (cmd == "status") {
        std::printf("profile      %s\n", o->optValue<std::string>("profile", "").c_str());
        std::printf("version      %s (ABI %s)\n", o->optValue<std::string>("version", "").c_str(),
                    o->optValue<std::string>("abi", "").c_str());
        std::printf("pid          %d\n", o->optValue<int>("pid", 0));
        std::printf("uptime       %llds\n", (long long)o->optValue<int64_t>("uptime_seconds", 0));
        std::printf("state        %s\n",
                    o->optValue<bool>("draining", false) ? "draining" : "running");
        std::printf("connections  %lld\n", (long long)o->optValue<int64_t>("connections", 0));
        std::printf("rooms        %lld\n\n", (long long)o->optValue<int64_t>("rooms", 0));
        print_plugins(o->getArray("plugins"));
    } else if (cmd == "plugins") {
        print_plugins(o->getArray("plugins"));
    } else if (cmd == "rooms") {
        std::printf("rooms        %lld\n", (long long)o->optValue<int64_t>("rooms", 0));
        std::printf("connections  %lld\n", (long long)o->optValue<int64_t>("connections", 0));
        if (auto h = o->getObject("members_histogram"))
            for (auto& [k, v] : *h)
                std::printf("  rooms with %s members: %s\n", k.c_str(), v.toString().c_str());
    } else if (cmd == "reload") {
        auto r = o->optValue<std::string>("report", "");
        std::printf("reloaded%s%s", r.empty() ? "\n" : ":\n", r.c_str());
    } else if (cmd == "drain") {
        std::printf("draining\n");
    } else if (cmd == "log-level") {
        std::printf("log level %s\n", o->optValue<std::string>("level", "").c_str());
    }
}

} // namespace

int cmd_ctl(std::vector<std::string> args) {
    std::string profile, socket, state_dir, cmd, level;
    bool json = false;
    for (size_t i = 0; i < args.size(); ++i) {
        auto& a = args[i];
        auto next = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
        if (a == "--profile")
            profile = next();
        else if (a == "--socket")
            socket = next();
        else if (a == "--state-dir")
            state_dir = next();
        else if (a == "--json")
            json = true;
        else if (a == "-h" || a == "--help")
            return ctl_usage(stdout), 0;
        else if (cmd.empty())
            cmd = a;
        else if (cmd == "log-level" && level.empty())
            level = a;
        else
            return ctl_usage(stderr);
    }
    if (cmd.empty() || (profile.empty() == socket.empty())) return ctl_usage(stderr);
    static const char* known[] = {"status", "plugins", "rooms", "reload", "drain", "log-level"};
    if (std::find(std::begin(known), std::end(known), cmd) == std::end(known)) {
        std::fprintf(stderr, "parley ctl: unknown command '%s'\n", cmd.c_str());
        return ctl_usage(stderr);
    }
    if (socket.empty()) {
        auto file = find_profile(profile);
        if (file.empty()) {
            std::fprintf(stderr,
                         "parley ctl: no profile '%s' in ./etc, $PARLEY_CONFIG_DIR or "
                         "/etc/parley\n",
                         profile.c_str());
            return 2;
        }
        std::string err;
        socket = socket_from_profile(file, state_dir, err);
        if (socket.empty()) {
            std::fprintf(stderr, "parley ctl: %s\n", err.c_str());
            return 2;
        }
    }
    if (!fs::exists(socket)) {
        std::fprintf(stderr, "parley ctl: no control socket at %s (is parleyd running?)\n",
                     socket.c_str());
        return 3;
    }
    Poco::JSON::Object req;
    req.set("cmd", cmd);
    if (!level.empty()) req.set("level", level);
    std::ostringstream rs;
    req.stringify(rs);

    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::req);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndtimeo, 2000);
    s.set(zmq::sockopt::rcvtimeo, cmd == "reload" ? 30000 : 5000);
    s.connect("ipc://" + socket);
    if (!s.send(zmq::buffer(rs.str()), zmq::send_flags::none)) {
        std::fprintf(stderr, "parley ctl: cannot send to %s\n", socket.c_str());
        return 3;
    }
    zmq::message_t reply;
    if (!s.recv(reply)) {
        std::fprintf(stderr, "parley ctl: no answer from %s\n", socket.c_str());
        return 3;
    }
    std::string text = reply.to_string();
    Poco::JSON::Object::Ptr o;
    try {
        o = Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
        std::fprintf(stderr, "parley ctl: malformed reply\n");
        return 3;
    }
    if (json)
        std::printf("%s\n", text.c_str());
    else
        print_human(cmd, o);
    return o->optValue<bool>("ok", false) ? 0 : 1;
}

} // namespace parley::cli
