// The one NATS connection of a transport-nats instance, shared by federation and cluster mode.
//
// Threads: cnats delivers messages and connection events on its own threads; publishes go
// through a bounded queue drained by one publisher thread, so a caller on a reactor never
// waits for a socket, a flush or a reconnect. Nothing here calls room operations itself.
#pragma once

#include <nats/nats.h>
#include <parley/sdk.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace parley::nats {

struct Options {
    std::vector<std::string> servers; // nats://host:port or tls://host:port
    std::string name;                 // client name shown by the server (never a secret)
    std::string user, password;       // user + password, or
    std::string creds_file;           // a .creds file (JWT + NKey seed)
    bool tls = false;
    std::string tls_ca, tls_cert, tls_key, tls_hostname;
    int64_t connect_timeout_ms = 2000;
    int64_t reconnect_wait_ms = 100;      // first back-off step
    int64_t reconnect_max_wait_ms = 5000; // back-off ceiling
    int64_t reconnect_buffer = 8 << 20;   // cnats' buffer while disconnected
    int64_t outbound_max_bytes = 64 << 20;
    int64_t outbound_max_msgs = 100000;
    int64_t inbound_pending_msgs = 65536; // per subscription, then slow consumer (dropped)
    int64_t inbound_pending_bytes = 256 << 20;
};

// Handler of one subscription. @thread a cnats delivery thread. `data` is borrowed.
using MsgFn = std::function<void(std::string_view subject, std::string_view data)>;

// One outbound message. `finish`, when set, runs on the publisher thread just before the
// publish (for work too slow for a reactor, such as signing a large frame).
struct Out {
    std::string subject;
    std::string data;
    std::function<void(Out&)> finish;
};

class Client {
  public:
    Client(sdk::Host host, Options opts);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Register before start(); subscriptions are (re)made by cnats across reconnects.
    void subscribe(std::string subject, MsgFn fn);
    // Connection state changes. @thread a cnats thread.
    void on_state(std::function<void(bool connected)> fn);

    // Connects in the background (the server may be down at start). False + err on bad options.
    bool start(std::string& err);
    void stop();

    // Queue a message. Never blocks. False (and counted) when the outbound queue is full.
    bool publish(Out out);
    bool publish(std::string subject, std::string data) {
        return publish(Out{std::move(subject), std::move(data), nullptr});
    }

    bool connected() const { return connected_.load(); }
    const sdk::Host& host() const { return host_; }

  private:
    struct Sub {
        Client* self;
        std::string subject;
        MsgFn fn;
        natsSubscription* sub = nullptr;
    };
    static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* c);
    static void on_connected(natsConnection*, void* c);
    static void on_disconnected(natsConnection*, void* c);
    static void on_reconnected(natsConnection*, void* c);
    static void on_closed(natsConnection*, void* c);
    static void on_error(natsConnection*, natsSubscription*, natsStatus status, void* c);
    static int64_t backoff(natsConnection*, int attempts, void* c);
    void set_connected(bool up);
    void publisher();

    const sdk::Host host_;
    const Options opts_;
    natsOptions* nopts_ = nullptr;
    natsConnection* nc_ = nullptr;
    std::vector<std::unique_ptr<Sub>> subs_;
    std::vector<std::function<void(bool)>> state_fns_;
    std::atomic<bool> connected_{false};
    std::atomic<bool> closing_{false};     // stop() began: handlers are no longer called
    std::atomic<int> inflight_{0};         // handlers running now
    std::atomic<bool> closed_seen_{false}; // cnats ran the closed callback (its last one)

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Out> queue_;
    size_t queued_bytes_ = 0;
    bool stopping_ = false;
    std::thread publisher_;

    parley_t_metric_hptr m_connected_, m_disconnects_, m_reconnects_, m_errors_, m_slow_,
        m_out_dropped_, m_out_bytes_, m_published_;
};

} // namespace parley::nats
