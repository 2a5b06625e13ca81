// One timer thread for all plugin timers. Callbacks must be quick: they run on this thread.
#pragma once

#include <parley/plugin.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace parley::kernel {

class Timers {
  public:
    Timers();
    ~Timers();
    uint64_t start(uint64_t delay_ms, uint64_t interval_ms, parley_t_timer_fn fn, void* user,
                   const void* owner);
    void cancel(uint64_t id);
    // Cancels every timer of an owner (an instance being destroyed).
    void cancel_owner(const void* owner);

  private:
    using Clock = std::chrono::steady_clock;
    struct Timer {
        Clock::time_point due;
        uint64_t interval_ms;
        parley_t_timer_fn fn;
        void* user;
        const void* owner;
    };
    void run();

    std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    std::map<uint64_t, Timer> timers_;
    std::multimap<Clock::time_point, uint64_t> due_;
    uint64_t next_id_ = 1;
    uint64_t running_id_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace parley::kernel
