#include "nats_client.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>

namespace parley::nats {

namespace {

std::string status_text(natsStatus s) {
    const char* t = natsStatus_GetText(s);
    return t ? t : "unknown";
}

} // namespace

Client::Client(sdk::Host host, Options opts) : host_(host), opts_(std::move(opts)) {
    m_connected_ = host_.gauge("parley_nats_connected", "1 while connected to a NATS server");
    m_disconnects_ = host_.counter("parley_nats_disconnects_total", "NATS connection losses");
    m_reconnects_ = host_.counter("parley_nats_reconnects_total", "NATS reconnections");
    m_errors_ = host_.counter("parley_nats_errors_total", "asynchronous NATS errors");
    m_slow_ = host_.counter("parley_nats_slow_consumer_total",
                            "inbound NATS messages dropped because a subscription fell behind");
    m_out_dropped_ = host_.counter("parley_nats_outbound_dropped_total",
                                   "outbound NATS messages dropped (queue full or publish error)");
    m_out_bytes_ = host_.gauge("parley_nats_outbound_queued_bytes",
                               "bytes waiting in the outbound NATS queue");
    m_published_ = host_.counter("parley_nats_published_total", "messages handed to NATS");
}

Client::~Client() {
    stop();
}

void Client::subscribe(std::string subject, MsgFn fn) {
    subs_.push_back(std::make_unique<Sub>(Sub{this, std::move(subject), std::move(fn)}));
}

void Client::on_state(std::function<void(bool)> fn) {
    state_fns_.push_back(std::move(fn));
}

bool Client::start(std::string& err) {
    auto fail = [&](natsStatus s, std::string_view what) {
        err = std::string(what) + ": " + status_text(s);
        return false;
    };
    closing_.store(false);
    closed_seen_.store(false);
    natsStatus s = natsOptions_Create(&nopts_);
    if (s != NATS_OK) return fail(s, "nats options");
    std::vector<const char*> urls;
    for (auto& u : opts_.servers)
        urls.push_back(u.c_str());
    if (urls.empty()) urls.push_back("nats://127.0.0.1:4222");
    if ((s = natsOptions_SetServers(nopts_, urls.data(), int(urls.size()))) != NATS_OK)
        return fail(s, "nats servers");
    if (!opts_.name.empty()) natsOptions_SetName(nopts_, opts_.name.c_str());
    if (!opts_.user.empty() && (s = natsOptions_SetUserInfo(nopts_, opts_.user.c_str(),
                                                            opts_.password.c_str())) != NATS_OK)
        return fail(s, "nats user");
    if (!opts_.creds_file.empty() && (s = natsOptions_SetUserCredentialsFromFiles(
                                          nopts_, opts_.creds_file.c_str(), nullptr)) != NATS_OK)
        return fail(s, "nats credentials file");
    if (opts_.tls) {
        if ((s = natsOptions_SetSecure(nopts_, true)) != NATS_OK) return fail(s, "nats tls");
        if (!opts_.tls_ca.empty() &&
            (s = natsOptions_LoadCATrustedCertificates(nopts_, opts_.tls_ca.c_str())) != NATS_OK)
            return fail(s, "nats tls ca");
        if (!opts_.tls_cert.empty() &&
            (s = natsOptions_LoadCertificatesChain(nopts_, opts_.tls_cert.c_str(),
                                                   opts_.tls_key.c_str())) != NATS_OK)
            return fail(s, "nats tls certificate");
        if (!opts_.tls_hostname.empty() &&
            (s = natsOptions_SetExpectedHostname(nopts_, opts_.tls_hostname.c_str())) != NATS_OK)
            return fail(s, "nats tls hostname");
    }
    natsOptions_SetTimeout(nopts_, opts_.connect_timeout_ms);
    natsOptions_SetAllowReconnect(nopts_, true);
    natsOptions_SetMaxReconnect(nopts_, -1); // forever: the bench must survive NATS restarts
    natsOptions_SetCustomReconnectDelay(nopts_, &Client::backoff, this);
    natsOptions_SetReconnectBufSize(nopts_,
                                    int(std::min<int64_t>(opts_.reconnect_buffer, 1 << 30)));
    natsOptions_SetMaxPendingMsgs(nopts_, int(opts_.inbound_pending_msgs));
    natsOptions_SetPingInterval(nopts_, 5000);
    natsOptions_SetMaxPingsOut(nopts_, 2);
    natsOptions_SetErrorHandler(nopts_, &Client::on_error, this);
    natsOptions_SetDisconnectedCB(nopts_, &Client::on_disconnected, this);
    natsOptions_SetReconnectedCB(nopts_, &Client::on_reconnected, this);
    natsOptions_SetClosedCB(nopts_, &Client::on_closed, this);
    natsOptions_SetRetryOnFailedConnect(nopts_, true, &Client::on_connected, this);

    s = natsConnection_Connect(&nc_, nopts_);
    if (s == NATS_OK) {
        set_connected(true);
    } else if (s == NATS_NOT_YET_CONNECTED) {
        host_.log(PARLEY_LOG_WARN, "nats: no server reachable yet, retrying in the background");
    } else {
        return fail(s, "nats connect");
    }
    for (auto& sub : subs_) {
        s = natsConnection_Subscribe(&sub->sub, nc_, sub->subject.c_str(), &Client::on_msg,
                                     sub.get());
        if (s == NATS_CONNECTION_CLOSED) {
            // The server refused us for good (credentials): keep serving locally, say so loudly
            // (on_closed logged it); a restart with fixed credentials reconnects.
            sub->sub = nullptr;
            break;
        }
        if (s != NATS_OK) return fail(s, "nats subscribe");
        natsSubscription_SetPendingLimits(
            sub->sub, int(opts_.inbound_pending_msgs),
            int(std::min<int64_t>(opts_.inbound_pending_bytes, 1 << 30)));
    }
    {
        std::lock_guard lk(mu_);
        stopping_ = false;
    }
    publisher_ = std::thread([this] { publisher(); });
    return true;
}

void Client::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    // No handler may run once stop() returns (the plugin frees what handlers use next): new
    // deliveries are refused and the ones in flight finish first.
    closing_.store(true);
    for (int i = 0; i < 5000 && inflight_.load() > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (publisher_.joinable()) publisher_.join();
    for (auto& sub : subs_) {
        if (sub->sub) {
            natsSubscription_Unsubscribe(sub->sub);
            natsSubscription_Destroy(sub->sub);
            sub->sub = nullptr;
        }
    }
    if (nc_) {
        natsConnection_Close(nc_);
        // cnats runs connection callbacks on its own thread, after Close returns; the closed
        // callback is the last of them: wait for it so none runs on a freed Client.
        for (int i = 0; i < 5000 && !closed_seen_.load(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        natsConnection_Destroy(nc_);
        nc_ = nullptr;
    }
    if (nopts_) {
        natsOptions_Destroy(nopts_);
        nopts_ = nullptr;
    }
    std::lock_guard lk(mu_);
    queue_.clear();
    queued_bytes_ = 0;
}

bool Client::publish(Out out) {
    size_t n = out.subject.size() + out.data.size();
    {
        std::lock_guard lk(mu_);
        if (stopping_ || queue_.size() >= size_t(opts_.outbound_max_msgs) ||
            queued_bytes_ + n > size_t(opts_.outbound_max_bytes)) {
            host_.add(m_out_dropped_);
            return false;
        }
        queued_bytes_ += n;
        queue_.push_back(std::move(out));
        host_.set(m_out_bytes_, int64_t(queued_bytes_));
    }
    cv_.notify_one();
    return true;
}

void Client::publisher() {
    std::unique_lock lk(mu_);
    for (;;) {
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        Out out = std::move(queue_.front());
        queue_.pop_front();
        size_t n = out.subject.size() + out.data.size();
        lk.unlock();
        if (out.finish) out.finish(out);
        // While disconnected cnats keeps up to reconnect_buffer bytes, then refuses: dropped.
        natsStatus s =
            natsConnection_Publish(nc_, out.subject.c_str(), out.data.data(), int(out.data.size()));
        if (s == NATS_OK)
            host_.add(m_published_);
        else
            host_.add(m_out_dropped_);
        lk.lock();
        queued_bytes_ -= std::min(queued_bytes_, n);
        host_.set(m_out_bytes_, int64_t(queued_bytes_));
    }
}

void Client::set_connected(bool up) {
    connected_.store(up);
    host_.set(m_connected_, up ? 1 : 0);
    for (auto& fn : state_fns_)
        fn(up);
}

void Client::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* c) {
    auto* sub = static_cast<Sub*>(c);
    auto* self = sub->self;
    self->inflight_.fetch_add(1);
    if (self->closing_.load()) {
        self->inflight_.fetch_sub(1);
        natsMsg_Destroy(msg);
        return;
    }
    std::string_view subject = natsMsg_GetSubject(msg);
    std::string_view data(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg)));
    try {
        sub->fn(subject, data);
    } catch (...) {
        // A handler bug must not take the cnats thread (and the process) down.
        self->host_.add(self->m_errors_);
    }
    natsMsg_Destroy(msg);
    self->inflight_.fetch_sub(1);
}

void Client::on_connected(natsConnection*, void* c) {
    auto* self = static_cast<Client*>(c);
    self->host_.log(PARLEY_LOG_INFO, "nats: connected");
    self->set_connected(true);
}

void Client::on_disconnected(natsConnection*, void* c) {
    auto* self = static_cast<Client*>(c);
    if (!self->connected_.load()) return; // failed retries of an initial connect
    self->host_.add(self->m_disconnects_);
    self->host_.log(PARLEY_LOG_WARN, "nats: disconnected, reconnecting with back-off");
    self->set_connected(false);
}

void Client::on_reconnected(natsConnection*, void* c) {
    auto* self = static_cast<Client*>(c);
    self->host_.add(self->m_reconnects_);
    self->host_.log(PARLEY_LOG_INFO, "nats: reconnected");
    self->set_connected(true);
}

void Client::on_closed(natsConnection*, void* c) {
    auto* self = static_cast<Client*>(c);
    bool stopping;
    {
        std::lock_guard lk(self->mu_);
        stopping = self->stopping_;
    }
    if (!stopping) {
        self->host_.add(self->m_errors_);
        self->host_.log(PARLEY_LOG_ERROR,
                        "nats: connection closed for good (credentials or TLS refused?): "
                        "NATS is offline until parleyd restarts");
    }
    self->set_connected(false);
    self->closed_seen_.store(true); // last touch of `self`: stop() may free it now
}

void Client::on_error(natsConnection*, natsSubscription*, natsStatus status, void* c) {
    auto* self = static_cast<Client*>(c);
    if (status == NATS_SLOW_CONSUMER) {
        // cnats drops what does not fit the pending limits; count, and log rarely.
        self->host_.add(self->m_slow_);
        static std::atomic<int64_t> last{0};
        auto now = std::chrono::steady_clock::now().time_since_epoch() / std::chrono::seconds(1);
        if (now - last.exchange(now) >= 10)
            self->host_.log(PARLEY_LOG_WARN, "nats: slow consumer, inbound messages dropped");
        return;
    }
    self->host_.add(self->m_errors_);
    self->host_.logf(PARLEY_LOG_WARN, "nats: asynchronous error: %s", status_text(status).c_str());
}

// Exponential back-off with jitter: wait, 2*wait, 4*wait ... up to max_wait.
int64_t Client::backoff(natsConnection*, int attempts, void* c) {
    auto* self = static_cast<Client*>(c);
    int64_t d = self->opts_.reconnect_wait_ms;
    for (int i = 1; i < attempts && d < self->opts_.reconnect_max_wait_ms; ++i)
        d *= 2;
    d = std::min(d, self->opts_.reconnect_max_wait_ms);
    return d + int64_t(randombytes_uniform(uint32_t(std::max<int64_t>(1, d / 4))));
}

} // namespace parley::nats
