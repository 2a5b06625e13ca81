#include "kernel.hpp"

#include "control.hpp"
#include "log.hpp"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <csignal>
#include <poll.h>
#include <sstream>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace parley::kernel {

namespace fs = std::filesystem;

void block_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN); // a peer closing mid-write must not kill the process
}

Kernel::Kernel() : zmq_(1) {
    timers_ = std::make_unique<Timers>();
    rooms_ = std::make_unique<Rooms>(limits_);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    started_at_ = std::chrono::steady_clock::now();
}

Kernel::~Kernel() {
    control_.reset();
    while (!instances_.empty()) {
        auto inst = std::move(instances_.back());
        instances_.pop_back();
        stop_instance(*inst);
        destroy_instance(std::move(inst));
    }
    if (sweep_timer_) timers_->cancel(sweep_timer_);
    workers_.reset();
    timers_.reset();
    if (wake_fd_ >= 0) close(wake_fd_);
    if (signal_fd_ >= 0) close(signal_fd_);
}

void Kernel::apply_kernel_settings(const config::Value& k, bool initial) {
    limits_.max_connections = uint32_t(k.find("limits.max_connections")->i);
    limits_.rooms_per_connection = uint32_t(k.find("limits.rooms_per_connection")->i);
    limits_.members_per_room = uint32_t(k.find("limits.members_per_room")->i);
    limits_.max_rooms = uint32_t(k.find("limits.max_rooms")->i);
    limits_.retain_empty_ms = k.find("rooms.retain_empty")->i;
    auto lvl = spdlog::level::from_str(k.find("log.level")->str);
    if (initial) {
        auto f = k.find("log.format")->str;
        log_init(f == "json"    ? LogFormat::Json
                 : f == "human" ? LogFormat::Human
                                : LogFormat::Auto,
                 lvl);
    } else {
        log_set_level(lvl);
    }
}

std::unique_ptr<Instance> Kernel::make_instance(const InstanceSpec& spec) {
    auto inst = std::make_unique<Instance>();
    inst->kernel = this;
    inst->name = spec.name;
    inst->plugin_name = spec.loaded.desc.name;
    inst->file = spec.loaded.file;
    inst->version = spec.loaded.desc.version;
    inst->kind = parley_t_kind(spec.loaded.desc.kind);
    inst->desc = spec.loaded.desc;
    inst->vt = spec.loaded.vt;
    inst->config = spec.config;
    inst->log = logger_for(spec.name);
    return inst;
}

namespace {
// Start order by kind: stores, then guards and services, transports last.
int start_rank(int kind) {
    return kind == PARLEY_KIND_STORE ? 0 : kind == PARLEY_KIND_TRANSPORT ? 2 : 1;
}

// A profile's instances in start order, each kind group in profile order.
std::vector<const InstanceSpec*> in_start_order(const std::vector<InstanceSpec>& specs) {
    std::vector<const InstanceSpec*> order;
    for (auto& s : specs)
        order.push_back(&s);
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
        return start_rank(a->loaded.desc.kind) < start_rank(b->loaded.desc.kind);
    });
    return order;
}
} // namespace

bool Kernel::create_and_start(Instance& inst) {
    inst.last_error.clear();
    inst.inst = inst.vt.create(host_table(), &inst);
    if (!inst.inst) {
        klog().error("plugin instance '{}' ({}): create failed: {}", inst.name, inst.plugin_name,
                     inst.last_error.empty() ? "no reason given" : inst.last_error);
        return false;
    }
    // Deliveries may arrive as soon as the transport accepts clients inside start.
    inst.live.store(true, std::memory_order_release);
    if (inst.vt.start(inst.inst) != PARLEY_OK) {
        klog().error("plugin instance '{}' ({}): start failed: {}", inst.name, inst.plugin_name,
                     inst.last_error.empty() ? "no reason given" : inst.last_error);
        stop_instance(inst);
        return false;
    }
    inst.started = true;
    klog().info("started '{}' (plugin {} {}, {})", inst.name, inst.plugin_name, inst.version,
                fs::path(inst.file).filename().string());
    return true;
}

void Kernel::stop_instance(Instance& inst) {
    if (!inst.inst) return;
    inst.vt.stop(inst.inst);
    inst.live.store(false, std::memory_order_release);
    // A bridge its plugin forgot to remove would keep calling into a stopped, then freed,
    // instance (and block every later bridge): a no-op when this instance owns none.
    rooms_->set_bridge(&inst, nullptr);
    timers_->cancel_owner(&inst);
    if (inst.kind == PARLEY_KIND_TRANSPORT) rooms_->forget_transport(&inst);
    if (rooms_->store() == &inst) rooms_->set_store(nullptr);
    std::unique_lock lk(registry_mu_);
    std::erase_if(commands_, [&](auto& kv) { return kv.second.owner == &inst; });
    std::erase_if(routes_, [&](auto& r) { return r.owner == &inst; });
}

void Kernel::destroy_instance(std::unique_ptr<Instance> inst) {
    if (inst->inst) inst->vt.destroy(inst->inst);
    inst->inst = nullptr;
    // The .so stays loaded (never dlclose): nothing of it may run now, but unloading buys
    // nothing and risks late callbacks into unmapped code.
}

bool Kernel::start(const std::string& profile_path, const ProfileOverrides& ov) {
    profile_path_ = profile_path;
    overrides_ = ov;
    config::Diagnostics diag;
    if (!load_profile(profile_path, ov, loader_, profile_, diag)) {
        log_init(LogFormat::Auto, spdlog::level::info);
        for (auto& line : diag.lines())
            klog().error("{}", line);
        return false;
    }
    apply_kernel_settings(*profile_.kernel, true);
    for (auto& line : diag.lines())
        klog().warn("{}", line);

    std::error_code ec;
    fs::create_directories(profile_.state_dir, ec);
    if (ec || access(profile_.state_dir.c_str(), W_OK) != 0) {
        klog().error("state directory '{}' is not writable: {}", profile_.state_dir.string(),
                     ec ? ec.message() : std::string(strerror(errno)));
        return false;
    }
    workers_ = std::make_unique<Workers>(zmq_, int(profile_.kernel->find("workers.threads")->i),
                                         int(profile_.kernel->find("workers.queue")->i));
    if (profile_.control_enabled) {
        control_ = std::make_unique<ControlServer>(*this, zmq_);
        std::string err;
        if (!control_->start(profile_.control_socket, err)) {
            klog().error("control socket: {}", err);
            return false;
        }
    }
    // Stores first, then guards and services, transports last (each group in profile order):
    // a transport accepts clients, and reports ready, inside its start, so everything a client
    // can reach must run by then. Stopping goes in reverse: transports drain first.
    for (auto* spec : in_start_order(profile_.instances)) {
        auto inst = make_instance(*spec);
        if (!create_and_start(*inst)) {
            destroy_instance(std::move(inst));
            return false;
        }
        if (inst->name == profile_.store) rooms_->set_store(inst.get());
        instances_.push_back(std::move(inst));
    }
    auto sweep_ms = uint64_t(profile_.kernel->find("rooms.sweep_interval")->i);
    sweep_timer_ = timers_->start(
        sweep_ms, sweep_ms, [](void* u) { static_cast<Rooms*>(u)->sweep(); }, rooms_.get(), this);
    klog().info("profile '{}' running ({} plugin instances, state {})", profile_.name,
                instances_.size(), profile_.state_dir.string());
    return true;
}

bool Kernel::reload(std::string& report) {
    config::Diagnostics diag;
    Profile next;
    if (!load_profile(profile_path_, overrides_, loader_, next, diag)) {
        report = "reload refused, keeping the running profile:\n";
        for (auto& l : diag.lines())
            report += l + "\n";
        klog().error("{}", report);
        return false;
    }
    std::ostringstream out;
    // Set when part of the new profile could not be applied: the reload then reports failure
    // (ctl exits non-zero) although the parts that did apply stay applied.
    bool partial = false;
    for (auto& l : diag.lines())
        out << l << "\n";
    if (next.name != profile_.name || next.state_dir != profile_.state_dir ||
        next.control_socket != profile_.control_socket)
        out << "profile name, state_dir and control socket changes need a restart; kept\n";
    apply_kernel_settings(*next.kernel, false);

    // Instances: same name and plugin -> maybe reconfigure; removed -> stop; new -> start.
    std::vector<std::unique_ptr<Instance>> kept;
    for (auto& inst : instances_) {
        auto it = std::find_if(next.instances.begin(), next.instances.end(),
                               [&](auto& s) { return s.name == inst->name; });
        if (it == next.instances.end() || it->loaded.file != inst->file) {
            if (it != next.instances.end()) {
                out << "instance '" << inst->name
                    << "': plugin file changed; needs a restart, kept the old one\n";
                kept.push_back(std::move(inst));
                continue;
            }
            out << "instance '" << inst->name << "' removed\n";
            if (inst->vt.drain) inst->vt.drain(inst->inst, 0);
            stop_instance(*inst);
            destroy_instance(std::move(inst));
            continue;
        }
        auto old_cfg = inst->config_snapshot();
        if (!config::equal(*old_cfg, *it->config)) {
            std::vector<std::string> restart;
            for (auto& p : config::changed_paths(*old_cfg, *it->config))
                if (config::is_restart_key(inst->desc.config, inst->desc.config_len, p))
                    restart.push_back(p);
            if (!restart.empty()) {
                out << "instance '" << inst->name << "': ";
                for (auto& p : restart)
                    out << p << " ";
                out << "need a restart; kept its running config\n";
            } else {
                {
                    std::lock_guard lk(inst->config_mu);
                    inst->retired.push_back(inst->config);
                    inst->config = it->config;
                }
                inst->last_error.clear();
                bool ok = !inst->vt.reload || inst->vt.reload(inst->inst) == PARLEY_OK;
                if (!ok) {
                    std::lock_guard lk(inst->config_mu);
                    inst->config = old_cfg;
                    out << "instance '" << inst->name
                        << "' refused the new config: " << inst->last_error << "\n";
                    partial = true;
                } else {
                    out << "instance '" << inst->name << "' reconfigured\n";
                }
            }
        }
        kept.push_back(std::move(inst));
    }
    instances_ = std::move(kept);
    for (auto* added_spec : in_start_order(next.instances)) {
        auto& spec = *added_spec;
        bool exists = std::any_of(instances_.begin(), instances_.end(),
                                  [&](auto& i) { return i->name == spec.name; });
        if (exists) continue;
        auto inst = make_instance(spec);
        if (!create_and_start(*inst)) {
            out << "new instance '" << spec.name << "' failed to start: " << inst->last_error
                << "\n";
            partial = true;
            destroy_instance(std::move(inst));
            continue;
        }
        out << "instance '" << spec.name << "' added\n";
        instances_.push_back(std::move(inst));
    }
    for (auto& inst : instances_)
        if (inst->name == next.store) rooms_->set_store(inst.get());
    profile_.kernel = next.kernel;
    profile_.store = next.store;
    report = out.str();
    if (partial) {
        report = "reload partly failed (the rest was applied):\n" + report;
        klog().error("{}", report);
        return false;
    }
    klog().info("reloaded profile '{}'{}{}", profile_.name, report.empty() ? "" : ": ", report);
    return true;
}

void Kernel::request_drain() {
    drain_requested_.store(true);
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

std::string Kernel::on_main(std::function<std::string()> fn) {
    std::future<std::string> fut;
    {
        std::lock_guard lk(main_mu_);
        // After the drain nobody serves the queue: answer at once instead of blocking forever.
        if (main_closed_) return R"({"ok":false,"error":"parleyd is exiting"})";
        main_queue_.emplace_back(std::move(fn), std::promise<std::string>());
        fut = main_queue_.back().second.get_future();
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
    return fut.get();
}

void Kernel::serve_main_queue() {
    for (;;) {
        std::pair<std::function<std::string()>, std::promise<std::string>> item;
        {
            std::lock_guard lk(main_mu_);
            if (main_queue_.empty()) return;
            item = std::move(main_queue_.front());
            main_queue_.pop_front();
        }
        item.second.set_value(item.first());
    }
}

void Kernel::close_main_queue() {
    std::lock_guard lk(main_mu_);
    main_closed_ = true;
    for (auto& item : main_queue_)
        item.second.set_value(R"({"ok":false,"error":"parleyd is exiting"})");
    main_queue_.clear();
}

void Kernel::drain_and_stop() {
    draining_.store(true);
    auto grace = uint32_t(profile_.kernel->find("drain.grace")->i);
    klog().info("draining: refusing new clients, closing open ones within {} ms", grace);
    for (auto& inst : instances_)
        if (inst->vt.drain) inst->vt.drain(inst->inst, grace);
    // Wait out the grace period (transports close clients themselves); a second signal hurries.
    // Transports send 1001 at the end of the grace period and wait up to ~2 s for the close
    // handshake; stopping them earlier would cut clients off without a close frame.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace) +
                    std::chrono::milliseconds(3000);
    // The control socket stays up meanwhile, so `parley ctl status` shows the drain.
    while (std::chrono::steady_clock::now() < deadline && rooms_->conn_count() > 0) {
        pollfd p[2] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        if (poll(p, 2, 50) > 0) {
            if (p[1].revents & POLLIN) {
                uint64_t v;
                [[maybe_unused]] auto n = read(wake_fd_, &v, sizeof v);
                serve_main_queue();
            }
            signalfd_siginfo si;
            if ((p[0].revents & POLLIN) && read(signal_fd_, &si, sizeof si) == sizeof si &&
                (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT))
                break;
        }
    }
    close_main_queue();
    // Transports first (no new work), stores last (flush).
    std::stable_sort(instances_.begin(), instances_.end(),
                     [](auto& a, auto& b) { return start_rank(a->kind) > start_rank(b->kind); });
    for (auto& inst : instances_)
        stop_instance(*inst);
    while (!instances_.empty()) {
        destroy_instance(std::move(instances_.back()));
        instances_.pop_back();
    }
    klog().info("drained; exiting");
}

int Kernel::run() {
    for (;;) {
        if (drain_requested_.load()) {
            serve_main_queue(); // requests that came before the drain still get their answer
            drain_and_stop();
            control_.reset();
            return 0;
        }
        pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        if (poll(fds, 2, 1000) < 0 && errno != EINTR) return 1;
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si;
            while (read(signal_fd_, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    klog().info("SIGHUP: reloading");
                    std::string report;
                    reload(report);
                } else {
                    klog().info("signal {}: draining", si.ssi_signo);
                    drain_requested_.store(true);
                }
            }
        }
        if (fds[1].revents & POLLIN) {
            uint64_t v;
            [[maybe_unused]] auto n = read(wake_fd_, &v, sizeof v);
            serve_main_queue();
        }
    }
}

parley_t_status Kernel::register_command(Instance* owner, std::string name, parley_t_command_fn fn,
                                         void* user) {
    std::unique_lock lk(registry_mu_);
    if (commands_.count(name)) return PARLEY_ERR_EXISTS;
    commands_.emplace(std::move(name), Command{fn, user, owner});
    return PARLEY_OK;
}

parley_t_status Kernel::call_command(std::string_view name, const parley_t_command_call* call) {
    Command c;
    {
        std::shared_lock lk(registry_mu_);
        auto it = commands_.find(std::string(name));
        if (it == commands_.end()) return PARLEY_ERR_NOT_FOUND;
        c = it->second;
    }
    return c.fn(c.user, call);
}

parley_t_status Kernel::register_route(Instance* owner, std::string method, std::string path,
                                       parley_t_http_fn fn, void* user) {
    bool prefix = !path.empty() && path.back() == '*';
    if (prefix) path.pop_back();
    if (path.empty() || path[0] != '/') return PARLEY_ERR_INVALID;
    std::unique_lock lk(registry_mu_);
    for (auto& r : routes_)
        if (r.path == path && r.prefix == prefix && r.method == method) return PARLEY_ERR_EXISTS;
    routes_.push_back(Route{std::move(method), std::move(path), prefix, fn, user, owner});
    return PARLEY_OK;
}

parley_t_status Kernel::dispatch_http(const parley_t_http_request* req,
                                      parley_t_http_response* resp) {
    std::string_view method(req->method.ptr, req->method.len);
    std::string_view path(req->path.ptr, req->path.len);
    const Route* best = nullptr;
    {
        std::shared_lock lk(registry_mu_);
        for (auto& r : routes_) {
            if (!r.method.empty() && r.method != method) continue;
            bool match = r.prefix ? path.substr(0, r.path.size()) == r.path : path == r.path;
            if (!match) continue;
            // Exact beats prefix; a longer prefix beats a shorter one.
            if (!best || (!r.prefix && best->prefix) ||
                (r.prefix == best->prefix && r.path.size() > best->path.size()))
                best = &r;
        }
        if (!best) return PARLEY_ERR_NOT_FOUND;
        Route r = *best;
        lk.unlock();
        r.fn(r.user, req, resp);
    }
    return PARLEY_OK;
}

std::string Kernel::plugins_json() {
    Poco::JSON::Array arr;
    for (auto& inst : instances_) {
        Poco::JSON::Object o;
        o.set("instance", inst->name);
        o.set("plugin", inst->plugin_name);
        o.set("version", inst->version);
        static const char* kinds[] = {"", "transport", "store", "guard", "service"};
        o.set("kind", kinds[inst->kind]);
        o.set("file", fs::path(inst->file).filename().string());
        o.set("abi",
              std::to_string(inst->desc.abi_major) + "." + std::to_string(inst->desc.abi_minor));
        arr.add(o);
    }
    std::ostringstream s;
    arr.stringify(s);
    return s.str();
}

std::string Kernel::status_json() {
    Poco::JSON::Object o;
    o.set("ok", true);
    o.set("profile", profile_.name);
    o.set("version", PARLEY_VERSION);
    o.set("abi", std::to_string(PARLEY_ABI_MAJOR) + "." + std::to_string(PARLEY_ABI_MINOR));
    o.set("pid", int(getpid()));
    o.set("uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now() - started_at_)
                                .count());
    o.set("draining", draining());
    o.set("connections", uint64_t(rooms_->conn_count()));
    o.set("rooms", uint64_t(rooms_->room_count()));
    o.set("frames_alive", frames_alive());
    std::ostringstream s;
    o.stringify(s);
    std::string str = s.str();
    // Splice the plugins array in (Poco::JSON would re-parse it otherwise).
    str.pop_back();
    return str + ",\"plugins\":" + plugins_json() + "}";
}

std::string Kernel::rooms_json() {
    Poco::JSON::Object o;
    o.set("ok", true);
    o.set("rooms", uint64_t(rooms_->room_count()));
    o.set("connections", uint64_t(rooms_->conn_count()));
    Poco::JSON::Object sizes;
    for (auto& [bucket, n] : rooms_->size_histogram())
        sizes.set(bucket, uint64_t(n));
    o.set("members_histogram", sizes);
    std::ostringstream s;
    o.stringify(s);
    return s.str();
}

} // namespace parley::kernel
