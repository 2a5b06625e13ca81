#include "control.hpp"

#include "kernel.hpp"
#include "log.hpp"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <filesystem>
#include <sstream>
#include <sys/stat.h>

namespace parley::kernel {

namespace {
std::string error_reply(const std::string& msg) {
    Poco::JSON::Object o;
    o.set("ok", false);
    o.set("error", msg);
    std::ostringstream s;
    o.stringify(s);
    return s.str();
}

// The names the profile's log.level and `log-level LEVEL` use; spdlog says "warning" for warn.
std::string level_name(spdlog::level::level_enum lvl) {
    if (lvl == spdlog::level::warn) return "warn";
    auto sv = spdlog::level::to_string_view(lvl);
    return std::string(sv.data(), sv.size());
}
} // namespace

ControlServer::~ControlServer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    sock_.reset();
    if (!path_.empty()) std::filesystem::remove(path_);
}

bool ControlServer::start(const std::string& path, std::string& error) {
    if (path.size() > 100) {
        error = "socket path too long for ipc (" + std::to_string(path.size()) + " > 100): " + path;
        return false;
    }
    // A stale socket of a crashed run would make bind fail; a live one means a clash.
    if (std::filesystem::exists(path)) {
        zmq::socket_t probe(zmq_, zmq::socket_type::req);
        probe.set(zmq::sockopt::linger, 0);
        probe.set(zmq::sockopt::rcvtimeo, 300);
        probe.set(zmq::sockopt::sndtimeo, 300);
        probe.connect("ipc://" + path);
        bool alive = false;
        if (probe.send(zmq::str_buffer("{\"cmd\":\"ping\"}"), zmq::send_flags::none)) {
            zmq::message_t reply;
            alive = bool(probe.recv(reply));
        }
        if (alive) {
            error = "another parleyd already serves control socket " + path +
                    " (two profiles with the same state_dir or control.socket?)";
            return false;
        }
        std::filesystem::remove(path);
    }
    try {
        sock_ = std::make_unique<zmq::socket_t>(zmq_, zmq::socket_type::rep);
        sock_->set(zmq::sockopt::linger, 500); // let the last reply (e.g. to drain) go out
        sock_->set(zmq::sockopt::rcvtimeo, 200);
        sock_->set(zmq::sockopt::maxmsgsize, int64_t(64 * 1024));
        sock_->bind("ipc://" + path);
    } catch (const zmq::error_t& e) {
        error = "cannot bind " + path + ": " + e.what();
        return false;
    }
    chmod(path.c_str(), 0600); // operators only: the socket can drain the server
    path_ = path;
    thread_ = std::thread([this] { run(); });
    return true;
}

void ControlServer::run() {
    while (!stop_.load()) {
        zmq::message_t req;
        if (!sock_->recv(req)) continue;
        std::string reply = handle(req.to_string());
        sock_->send(zmq::buffer(reply), zmq::send_flags::none);
    }
}

std::string ControlServer::handle(const std::string& request) {
    std::string cmd;
    Poco::JSON::Object::Ptr obj;
    try {
        Poco::JSON::Parser parser;
        obj = parser.parse(request).extract<Poco::JSON::Object::Ptr>();
        cmd = obj->optValue<std::string>("cmd", "");
    } catch (const std::exception&) {
        return error_reply("request must be a JSON object with \"cmd\"");
    }
    klog().debug("control: {}", cmd);
    if (cmd == "ping") return R"({"ok":true})";
    // These read the instance list, which reloads and the drain change on the main thread:
    // read it there too.
    if (cmd == "status") return kernel_.on_main([this] { return kernel_.status_json(); });
    if (cmd == "plugins")
        return kernel_.on_main(
            [this] { return "{\"ok\":true,\"plugins\":" + kernel_.plugins_json() + "}"; });
    if (cmd == "rooms") return kernel_.on_main([this] { return kernel_.rooms_json(); });
    if (cmd == "log-level") {
        auto level = obj->optValue<std::string>("level", "");
        if (level.empty()) return R"({"ok":true,"level":")" + level_name(log_level()) + "\"}";
        auto lvl = spdlog::level::from_str(level);
        if (lvl == spdlog::level::off && level != "off")
            return error_reply("unknown level '" + level +
                               "'; use trace, debug, info, warn or error");
        log_set_level(lvl);
        klog().info("log level set to {}", level);
        return R"({"ok":true,"level":")" + level + "\"}";
    }
    if (cmd == "reload") {
        return kernel_.on_main([this] {
            if (kernel_.draining()) return error_reply("draining; reload refused");
            std::string report;
            bool ok = kernel_.reload(report);
            Poco::JSON::Object o;
            o.set("ok", ok);
            o.set(ok ? "report" : "error", report);
            std::ostringstream s;
            o.stringify(s);
            return s.str();
        });
    }
    if (cmd == "drain") {
        kernel_.request_drain();
        return R"({"ok":true,"draining":true})";
    }
    return error_reply("unknown command '" + cmd +
                       "'; commands: status, plugins, rooms, log-level, reload, drain");
}

} // namespace parley::kernel
