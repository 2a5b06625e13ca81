// The kernel: owns the profile, plugin instances, room registry, timers, workers, metrics and
// the command/route registries, and runs the main thread (signals, reload, drain).
#pragma once

#include "frame.hpp"
#include "instance.hpp"
#include "loader.hpp"
#include "metrics.hpp"
#include "profile.hpp"
#include "rooms.hpp"
#include "timers.hpp"
#include "workers.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace parley::kernel {

class ControlServer;

struct Command {
    parley_t_command_fn fn;
    void* user;
    Instance* owner;
};

struct Route {
    std::string method; // empty: any
    std::string path;   // exact, or prefix when `prefix`
    bool prefix;
    parley_t_http_fn fn;
    void* user;
    Instance* owner;
};

class Kernel {
  public:
    Kernel();
    ~Kernel();

    // Loads, validates and starts the profile; false (with the reason logged) on any error.
    bool start(const std::string& profile_path, const ProfileOverrides& ov);
    // Runs the main loop until drained or stopped; returns the process exit code.
    int run();

    // Reload from the same file. On error keeps the running profile and returns the reason.
    bool reload(std::string& report);
    // Begin draining (SIGTERM / control `drain`). The main loop exits when done.
    void request_drain();
    // For the control server: run `fn` on the main thread and wait for its answer.
    std::string on_main(std::function<std::string()> fn);

    // ---- used by the host table (any thread) ----
    Rooms& rooms() { return *rooms_; }
    Metrics& metrics() { return metrics_; }
    Timers& timers() { return *timers_; }
    Workers& workers() { return *workers_; }
    bool draining() const { return draining_.load(); }
    const Profile& profile() const { return profile_; }
    const parley_t_host* host_table() const;

    parley_t_status register_command(Instance* owner, std::string name, parley_t_command_fn fn,
                                     void* user);
    parley_t_status call_command(std::string_view name, const parley_t_command_call* call);
    parley_t_status register_route(Instance* owner, std::string method, std::string path,
                                   parley_t_http_fn fn, void* user);
    parley_t_status dispatch_http(const parley_t_http_request* req, parley_t_http_response* resp);

    // ---- for the control server ----
    std::string status_json();
    std::string plugins_json();
    std::string rooms_json();
    std::chrono::steady_clock::time_point started_at() const { return started_at_; }

  private:
    std::unique_ptr<Instance> make_instance(const InstanceSpec& spec);
    bool create_and_start(Instance& inst);
    void stop_instance(Instance& inst);
    void destroy_instance(std::unique_ptr<Instance> inst);
    void apply_kernel_settings(const config::Value& k, bool initial);
    void drain_and_stop();
    void serve_main_queue(); // main thread: answer queued control requests
    void close_main_queue(); // main thread: refuse queued and later ones (exiting)

    Loader loader_;
    Profile profile_;
    ProfileOverrides overrides_;
    std::string profile_path_;
    RoomLimits limits_;
    Metrics metrics_;
    zmq::context_t zmq_;
    std::unique_ptr<Timers> timers_;
    std::unique_ptr<Workers> workers_;
    std::unique_ptr<Rooms> rooms_;
    std::unique_ptr<ControlServer> control_;
    uint64_t sweep_timer_ = 0;

    std::vector<std::unique_ptr<Instance>> instances_; // in start order
    std::shared_mutex registry_mu_;                    // commands and routes
    std::unordered_map<std::string, Command> commands_;
    std::vector<Route> routes_;

    std::atomic<bool> draining_{false};
    std::atomic<bool> drain_requested_{false};
    int wake_fd_ = -1;   // eventfd: control requests for the main thread
    int signal_fd_ = -1; // SIGTERM, SIGINT, SIGHUP
    std::mutex main_mu_;
    std::list<std::pair<std::function<std::string()>, std::promise<std::string>>> main_queue_;
    bool main_closed_ = false; // under main_mu_
    std::chrono::steady_clock::time_point started_at_;
};

// Blocks the signals the main loop handles; call before any thread is created.
void block_signals();

} // namespace parley::kernel
