#include "timers.hpp"

#include <vector>

namespace parley::kernel {

Timers::Timers() : thread_([this] { run(); }) {}

Timers::~Timers() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

uint64_t Timers::start(uint64_t delay_ms, uint64_t interval_ms, parley_t_timer_fn fn, void* user,
                       const void* owner) {
    std::lock_guard lk(mu_);
    uint64_t id = next_id_++;
    auto due = Clock::now() + std::chrono::milliseconds(delay_ms);
    timers_[id] = Timer{due, interval_ms, fn, user, owner};
    due_.emplace(due, id);
    cv_.notify_all();
    return id;
}

void Timers::cancel(uint64_t id) {
    std::unique_lock lk(mu_);
    timers_.erase(id);
    // Wait for a running callback to finish unless we are that callback.
    if (std::this_thread::get_id() != thread_.get_id())
        idle_cv_.wait(lk, [&] { return running_id_ != id; });
}

void Timers::cancel_owner(const void* owner) {
    std::unique_lock lk(mu_);
    std::vector<uint64_t> ids;
    for (auto& [id, t] : timers_)
        if (t.owner == owner) ids.push_back(id);
    for (auto id : ids)
        timers_.erase(id);
    if (std::this_thread::get_id() != thread_.get_id())
        idle_cv_.wait(lk, [&] {
            for (auto id : ids)
                if (running_id_ == id) return false;
            return true;
        });
}

void Timers::run() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
        if (due_.empty()) {
            cv_.wait(lk);
            continue;
        }
        auto first = due_.begin();
        if (first->first > Clock::now()) {
            cv_.wait_until(lk, first->first);
            continue;
        }
        uint64_t id = first->second;
        due_.erase(first);
        auto it = timers_.find(id);
        if (it == timers_.end()) continue; // cancelled
        Timer t = it->second;
        if (t.interval_ms) {
            it->second.due = Clock::now() + std::chrono::milliseconds(t.interval_ms);
            due_.emplace(it->second.due, id);
        } else {
            timers_.erase(it);
        }
        running_id_ = id;
        lk.unlock();
        t.fn(t.user);
        lk.lock();
        running_id_ = 0;
        idle_cv_.notify_all();
    }
}

} // namespace parley::kernel
