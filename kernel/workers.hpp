// Bounded worker pool for blocking or CPU-heavy plugin work (password hashing, disk I/O).
// Work travels over a ZeroMQ inproc PUSH/PULL pipe whose high-water mark bounds the queue.
#pragma once

#include <parley/plugin.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>
#include <zmq.hpp>

namespace parley::kernel {

class Workers {
  public:
    Workers(zmq::context_t& zmq, int threads, int queue_limit);
    ~Workers();
    // PARLEY_ERR_LIMIT when the queue is full.
    parley_t_status submit(parley_t_work_fn fn, void* user);

  private:
    struct Item {
        parley_t_work_fn fn;
        void* user;
    };
    void run(int index);

    zmq::context_t& zmq_;
    std::string endpoint_;
    std::mutex push_mu_; // ZeroMQ sockets are not thread-safe; submit may come from any thread
    zmq::socket_t push_;
    std::atomic<bool> stopping_{false};
    std::vector<std::thread> threads_;
};

} // namespace parley::kernel
