// transport-ws: HTTP/1.1 and WebSocket (RFC 6455, own codec) on N epoll reactor threads.
//
// Each reactor owns a SO_REUSEPORT listener, its connections, an eventfd wake and a mailbox.
// HTTP request heads are parsed on the reactor (bounded in size and time), so a slow client
// never holds a thread and no byte read past the upgrade request is lost. An upgraded
// connection stays on the reactor that accepted it.
//
// Sending: router deliveries append a shared frame (refcounted, never copied) to the
// connection's queue; dirty connections are flushed once per loop iteration with writev, and
// EPOLLOUT is armed only while a queue is non-empty. Queues are bounded per connection and in
// total; a connection over its bound is closed with 1013 (slow consumer).
#pragma once

#include "dialect.hpp"

#include <parley/sdk.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace parley::ws {

class Reactor;

struct Settings {
    std::string host = "127.0.0.1";
    int port = 8080;
    int threads = 1;
    std::string protocol = "link";
    bool shared_room_names = false;
    std::string web_root;
    std::vector<std::string> origins;
    bool require_origin = false;
    size_t max_message = 64 * 1024;
    size_t send_queue = 1 << 20;
    int socket_send_buffer = 256 * 1024; // 0: kernel autotuning
    int64_t send_budget = int64_t(1) << 30;
    double rate = 20;
    double burst = 40;
    int per_ip = 256;
    int64_t handshake_timeout_ms = 10000;
    int64_t idle_timeout_ms = 60000;
    int64_t ping_interval_ms = 20000;
    size_t max_http_body = 128 * 1024;
    int metrics_port = -1;
    std::string metrics_host = "127.0.0.1";
    std::string permissions_policy;
    bool log_client_addresses = false;        // operator opt-in; never by default
    std::vector<std::string> trusted_proxies; // normalised addresses
};

struct StaticFile {
    std::string body;
    std::string content_type;
};

struct Metrics {
    parley_t_metric_hptr connections, accepted, handshake_failures, messages_in, messages_out,
        bytes_in, bytes_out, slow_consumers, rate_limited, per_ip_refused, http_requests,
        queued_bytes;
    std::unordered_map<uint16_t, parley_t_metric_hptr> closes; // by close code
};

class Transport final : public sdk::Plugin {
  public:
    explicit Transport(sdk::Host host);
    ~Transport() override;
    parley_t_status start() override;
    void drain(uint32_t grace_ms) override;
    void stop() override;
    parley_t_status reload() override;
    void deliver(const parley_t_delivery* to, size_t n, parley_t_frame_hptr frame) override;
    void close_conn(parley_t_delivery conn, uint16_t code, std::string_view reason) override;

    // Shared state the reactors read.
    std::shared_ptr<const Settings> settings() const {
        std::lock_guard lk(settings_mu_);
        return settings_;
    }
    dialect::Dialect& dialect() { return *dialect_; }
    const StaticFile* static_file(std::string_view path) const;
    Metrics& metrics() { return metrics_; }
    void count_close(uint16_t code);
    bool draining() const { return draining_.load(); }
    bool ip_acquire(const std::string& ip);
    void ip_release(const std::string& ip);
    std::atomic<int64_t>& queued_total() { return queued_total_; }
    int bound_port() const { return bound_port_; }
    uint64_t peer_key(const std::string& ip) const;

  private:
    Settings read_settings() const;
    void port_from_env(Settings& s) const;
    void fit_dialect(Settings& s, bool log) const;
    void load_static(const std::string& root);

    mutable std::mutex settings_mu_;
    std::shared_ptr<const Settings> settings_;
    std::unique_ptr<dialect::Dialect> dialect_;
    std::unordered_map<std::string, StaticFile> files_;
    std::vector<std::unique_ptr<Reactor>> reactors_;
    Metrics metrics_;
    std::mutex close_mu_;
    std::atomic<bool> draining_{false};
    std::mutex ip_mu_;
    std::unordered_map<std::string, int> ip_counts_;
    std::atomic<int64_t> queued_total_{0};
    int bound_port_ = 0;
    uint64_t drain_timer_ = 0;
    unsigned char peer_key_secret_[16];
};

} // namespace parley::ws
