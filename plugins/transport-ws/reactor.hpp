// One epoll loop: accepts, parses HTTP heads, runs WebSocket connections, flushes queues.
#pragma once

#include "transport.hpp"

#include <deque>
#include <functional>
#include <thread>

namespace parley::ws {

class Connection;

class Reactor final {
  public:
    Reactor(Transport& t, int index);
    ~Reactor();
    // Binds this reactor's listener (SO_REUSEPORT on a shared port) and the admin listener if
    // asked. Returns the bound port, or -1 with `error`.
    int listen(const std::string& host, int port, std::string& error);
    int listen_admin(const std::string& host, int port, std::string& error);
    void start();
    void stop(); // joins the thread; closes every connection without ceremony

    // Any thread: mailbox operations.
    void post(uint64_t tag, std::function<void(dialect::Conn&)> fn);
    void deliver(const parley_t_delivery* to, size_t n, parley_t_frame_hptr frame);
    void close_conn(uint64_t tag, uint16_t code, std::string reason);
    void drain(int64_t grace_ms);

    // Loop thread only.
    Transport& transport() { return t_; }
    int index() const { return index_; }
    void mark_dirty(Connection* c);
    void update_interest(Connection* c);
    void release(Connection* c); // tear down and free the slot
    // This loop's copy of the settings, refreshed once per iteration: Transport::settings()
    // takes a mutex and copies a shared_ptr, too dear for every delivery.
    const Settings* settings() const { return settings_.get(); }
    std::shared_ptr<dialect::Poster> self_poster() { return poster_; }
    static Reactor* current();

  private:
    struct Mail {
        uint64_t tag;
        parley_t_frame_hptr frame; // retained, or null for closures/close requests
    };
    struct Closure {
        uint64_t tag;
        std::function<void(dialect::Conn&)> fn;
    };
    struct CloseReq {
        uint64_t tag;
        uint16_t code;
        std::string reason;
    };
    void run();
    void wake();
    void drain_mailbox();
    void accept_on(int lfd, bool admin);
    void housekeeping();
    void begin_drain_close();
    Connection* lookup(uint64_t tag);

    Transport& t_;
    int index_;
    int ep_ = -1;
    int wake_fd_ = -1;
    int listen_fd_ = -1;
    int admin_fd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> alive_{true};
    std::atomic<bool> wake_pending_{false};

    std::vector<std::unique_ptr<Connection>> slots_;
    std::vector<uint32_t> free_;
    std::vector<uint32_t> gens_;
    std::vector<Connection*> dirty_;

    std::mutex mail_mu_;
    std::vector<Mail> mail_;
    std::vector<Closure> closures_;
    std::vector<CloseReq> closes_;
    bool drain_requested_ = false;
    int64_t drain_grace_ms_ = 0;
    std::chrono::steady_clock::time_point drain_at_{};
    bool drained_ = false;
    std::chrono::steady_clock::time_point last_housekeeping_{};
    std::shared_ptr<dialect::Poster> poster_;
    std::shared_ptr<const Settings> settings_;
    // Per-delivery counters, added to the shared metrics once per loop iteration.
    int64_t messages_out_ = 0;
    int64_t bytes_out_ = 0;
    int64_t queued_peak_ = 0; // reactor 0: queued bytes since the last malloc_trim

    friend class Connection;
};

// Tag layout: [reactor:8][generation:24][slot:32].
inline uint64_t make_tag(int reactor, uint32_t gen, uint32_t slot) {
    return (uint64_t(reactor) << 56) | (uint64_t(gen & 0xFFFFFF) << 32) | slot;
}
inline int tag_reactor(uint64_t tag) {
    return int(tag >> 56);
}
inline uint32_t tag_gen(uint64_t tag) {
    return uint32_t(tag >> 32) & 0xFFFFFF;
}
inline uint32_t tag_slot(uint64_t tag) {
    return uint32_t(tag);
}

} // namespace parley::ws
