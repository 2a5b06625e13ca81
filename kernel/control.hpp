// Per-profile control socket: a ZeroMQ REP socket on ipc://<state_dir>/control.sock.
// Requests are JSON objects {"cmd": "..."}; replies are JSON objects with "ok".
// Commands: status, plugins, rooms (counts only), log-level, reload, drain.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace parley::kernel {

class Kernel;

class ControlServer {
  public:
    ControlServer(Kernel& k, zmq::context_t& zmq) : kernel_(k), zmq_(zmq) {}
    ~ControlServer();
    bool start(const std::string& path, std::string& error);
    // Handles one request (also used by tests without a socket).
    std::string handle(const std::string& request);

  private:
    void run();
    Kernel& kernel_;
    zmq::context_t& zmq_;
    std::string path_;
    std::unique_ptr<zmq::socket_t> sock_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

} // namespace parley::kernel
