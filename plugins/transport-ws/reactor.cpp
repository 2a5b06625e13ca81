#include "reactor.hpp"

#include "connection.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace parley::ws {

namespace {

constexpr uint64_t kWakeKey = ~uint64_t(0);
constexpr uint64_t kListenKey = ~uint64_t(0) - 1;
constexpr uint64_t kAdminKey = ~uint64_t(0) - 2;

thread_local Reactor* t_current = nullptr;

// Forwards posts to a reactor while it lives; completions arriving after stop are dropped.
class ReactorPoster final : public dialect::Poster {
  public:
    explicit ReactorPoster(Reactor* r) : r_(r) {}
    void post(uint64_t tag, std::function<void(dialect::Conn&)> fn) override {
        std::lock_guard lk(mu_);
        if (r_) r_->post(tag, std::move(fn));
    }
    void detach() {
        std::lock_guard lk(mu_);
        r_ = nullptr;
    }

  private:
    std::mutex mu_;
    Reactor* r_;
};

int bind_listener(const std::string& host, int port, bool reuseport, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
        error = "cannot resolve listen address " + host + ": " + gai_strerror(rc);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 4096) != 0) {
        error = "cannot listen on " + host + ":" + service + ": " + std::strerror(errno);
        freeaddrinfo(res);
        close(fd);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int local_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string peer_ip(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
        // By hand: glibc's inet_ntop formats IPv4 through sprintf, a visible share of an accept.
        auto* a = reinterpret_cast<const uint8_t*>(
            &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr);
        char* p = buf;
        for (int i = 0; i < 4; ++i) {
            unsigned v = a[i];
            if (v >= 100) *p++ = char('0' + v / 100);
            if (v >= 10) *p++ = char('0' + v / 10 % 10);
            *p++ = char('0' + v % 10);
            if (i < 3) *p++ = '.';
        }
        return std::string(buf, size_t(p - buf));
    }
    if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf,
                  sizeof buf);
    return buf;
}

} // namespace

Reactor* Reactor::current() {
    return t_current;
}

Reactor::Reactor(Transport& t, int index) : t_(t), index_(index) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{EPOLLIN, {.u64 = kWakeKey}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, wake_fd_, &ev);
    poster_ = std::make_shared<ReactorPoster>(this);
    settings_ = t.settings();
}

Reactor::~Reactor() {
    stop();
    static_cast<ReactorPoster*>(poster_.get())->detach();
    if (listen_fd_ >= 0) close(listen_fd_);
    if (admin_fd_ >= 0) close(admin_fd_);
    close(wake_fd_);
    close(ep_);
    for (auto& m : mail_)
        if (m.frame) t_.host().table()->frame_release(m.frame);
}

int Reactor::listen(const std::string& host, int port, std::string& error) {
    // SO_REUSEPORT would let a second process (another profile) silently share a fixed port:
    // the first reactor probes without it, so a port taken by anyone is a start error.
    if (index_ == 0 && port != 0) {
        int probe = bind_listener(host, port, false, error);
        if (probe < 0) {
            error += " (port " + std::to_string(port) + " of instance '" +
                     t_.host().instance_name() + "': another profile or program on this host?)";
            return -1;
        }
        close(probe);
    }
    listen_fd_ = bind_listener(host, port, true, error);
    if (listen_fd_ < 0) return -1;
    epoll_event ev{EPOLLIN, {.u64 = kListenKey}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev);
    return local_port(listen_fd_);
}

int Reactor::listen_admin(const std::string& host, int port, std::string& error) {
    admin_fd_ = bind_listener(host, port, false, error);
    if (admin_fd_ < 0) return -1;
    epoll_event ev{EPOLLIN, {.u64 = kAdminKey}};
    epoll_ctl(ep_, EPOLL_CTL_ADD, admin_fd_, &ev);
    return local_port(admin_fd_);
}

void Reactor::start() {
    thread_ = std::thread([this] { run(); });
}

void Reactor::stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    wake();
    thread_.join();
    static_cast<ReactorPoster*>(poster_.get())->detach();
    for (auto& c : slots_)
        if (c) {
            c->teardown();
            c.reset();
        }
    std::lock_guard lk(mail_mu_);
    for (auto& m : mail_)
        if (m.frame) t_.host().table()->frame_release(m.frame);
    mail_.clear();
    closures_.clear();
}

void Reactor::wake() {
    // One eventfd write per batch: the flag stays set until the loop drains the mailbox.
    if (!wake_pending_.exchange(true)) {
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(wake_fd_, &one, sizeof one);
        while (n < 0 && errno == EINTR);
    }
}

void Reactor::post(uint64_t tag, std::function<void(dialect::Conn&)> fn) {
    {
        std::lock_guard lk(mail_mu_);
        closures_.push_back(Closure{tag, std::move(fn)});
    }
    wake();
}

void Reactor::deliver(const parley_t_delivery* to, size_t n, parley_t_frame_hptr frame) {
    auto* host = t_.host().table();
    if (t_current == this) {
        // Publisher runs on this loop: queue directly, no lock, no wake.
        for (size_t i = 0; i < n; ++i)
            if (auto* c = lookup(to[i].tag)) c->enqueue(frame, false);
        return;
    }
    {
        std::lock_guard lk(mail_mu_);
        for (size_t i = 0; i < n; ++i) {
            host->frame_retain(frame);
            mail_.push_back(Mail{to[i].tag, frame});
        }
    }
    wake();
}

void Reactor::close_conn(uint64_t tag, uint16_t code, std::string reason) {
    {
        std::lock_guard lk(mail_mu_);
        closes_.push_back(CloseReq{tag, code, std::move(reason)});
    }
    wake();
}

void Reactor::drain(int64_t grace_ms) {
    std::lock_guard lk(mail_mu_);
    drain_requested_ = true;
    drain_grace_ms_ = grace_ms;
    wake_pending_.store(false);
    uint64_t one = 1;
    [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

Connection* Reactor::lookup(uint64_t tag) {
    uint32_t slot = tag_slot(tag);
    if (slot >= slots_.size() || !slots_[slot] || gens_[slot] != tag_gen(tag)) return nullptr;
    return slots_[slot].get();
}

void Reactor::mark_dirty(Connection* c) {
    if (!c->dirty) {
        c->dirty = true;
        dirty_.push_back(c);
    }
}

void Reactor::update_interest(Connection* c) {
    bool want = c->wants_write();
    if (want == c->epollout_armed) return;
    epoll_event ev{EPOLLIN | EPOLLRDHUP | (want ? uint32_t(EPOLLOUT) : 0u), {.u64 = c->tag()}};
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd(), &ev);
    c->epollout_armed = want;
}

void Reactor::release(Connection* c) {
    uint32_t slot = tag_slot(c->tag());
    c->teardown();
    // No EPOLL_CTL_DEL: the destructor closes the fd (accepted with SOCK_CLOEXEC, never
    // duplicated), which removes it from the epoll set; one syscall less per connection.
    // Events still queued for it carry the old generation and are dropped by lookup().
    if (c->dirty) std::erase(dirty_, c);
    slots_[slot].reset();
    gens_[slot] = (gens_[slot] + 1) & 0xFFFFFF;
    free_.push_back(slot);
}

void Reactor::accept_on(int lfd, bool admin) {
    for (int burst = 0; burst < 256; ++burst) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; // EAGAIN, or EMFILE: retried on the next readiness
        t_.host().add(t_.metrics().accepted);
        std::string ip = peer_ip(ss);
        // A trusted proxy's connection is counted under the client it names, once its request
        // head is read (Connection::resolve_client); the proxy itself is not limited.
        const auto& proxies = settings_->trusted_proxies;
        const bool via_proxy = !admin && !proxies.empty() &&
                               std::find(proxies.begin(), proxies.end(), ip) != proxies.end();
        if (!admin && !via_proxy && !t_.ip_acquire(ip)) {
            // Like every response, with the security headers.
            std::string k429 = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 0\r\n" +
                               Connection::security_headers(t_) + "Connection: close\r\n\r\n";
            [[maybe_unused]] auto n = ::send(fd, k429.data(), k429.size(), MSG_NOSIGNAL);
            close(fd);
            t_.host().add(t_.metrics().per_ip_refused);
            if (settings_->log_client_addresses)
                t_.host().logf(PARLEY_LOG_INFO, "refused a connection from %s: connections_per_ip",
                               ip.c_str());
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        // Autotuning would let a stalled reader pin up to tcp_wmem's maximum of kernel memory,
        // unseen by send_queue; a fixed buffer bounds it (admin sockets answer small pages).
        if (int sndbuf = settings_->socket_send_buffer; sndbuf > 0 && !admin)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        uint32_t slot;
        if (!free_.empty()) {
            slot = free_.back();
            free_.pop_back();
        } else {
            slot = uint32_t(slots_.size());
            slots_.emplace_back();
            gens_.push_back(1);
        }
        uint64_t tag = make_tag(index_, gens_[slot], slot);
        slots_[slot] =
            std::make_unique<Connection>(*this, fd, tag, admin, admin ? "" : ip, via_proxy);
        epoll_event ev{EPOLLIN | EPOLLRDHUP, {.u64 = tag}};
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
}

void Reactor::drain_mailbox() {
    thread_local std::vector<Mail> mail;
    thread_local std::vector<Closure> closures;
    thread_local std::vector<CloseReq> closes;
    bool drain_now = false;
    {
        std::lock_guard lk(mail_mu_);
        wake_pending_.store(false);
        mail.swap(mail_);
        closures.swap(closures_);
        closes.swap(closes_);
        if (drain_requested_) {
            drain_requested_ = false;
            drain_now = true;
        }
    }
    for (auto& m : mail) {
        if (auto* c = lookup(m.tag))
            c->enqueue(m.frame, true);
        else
            t_.host().table()->frame_release(m.frame);
    }
    mail.clear();
    for (auto& cl : closures)
        if (auto* c = lookup(cl.tag); c && c->state() != Connection::State::Dead) cl.fn(*c);
    closures.clear();
    for (auto& cr : closes)
        if (auto* c = lookup(cr.tag)) c->close(cr.code, cr.reason);
    closes.clear();
    if (drain_now) {
        // Stop accepting at once; open sockets get the grace period, then 1001.
        if (listen_fd_ >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, listen_fd_, nullptr);
            close(listen_fd_);
            listen_fd_ = -1;
        }
        drain_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_grace_ms_);
        drained_ = false;
    }
}

void Reactor::begin_drain_close() {
    drained_ = true;
    for (auto& c : slots_)
        if (c && c->state() != Connection::State::Dead) c->close(1001, "server shutting down");
}

void Reactor::housekeeping() {
    auto now = std::chrono::steady_clock::now();
    if (now - last_housekeeping_ < std::chrono::milliseconds(250)) return;
    last_housekeeping_ = now;
    if (index_ == 0) {
        int64_t queued = t_.queued_total().load();
        t_.host().set(t_.metrics().queued_bytes, queued);
        // Once most of a large backlog is gone (slow readers cut, a burst delivered), hand the
        // pages back: glibc keeps freed chunks of a thread's arena mapped, so RSS would stay at
        // the peak for good. At most every 250 ms, and only after a drop of 8 MiB or more.
        queued_peak_ = std::max(queued_peak_, queued);
        if (queued_peak_ - queued >= (int64_t(8) << 20) && queued < queued_peak_ / 2) {
            malloc_trim(0);
            queued_peak_ = queued;
        }
    }
    if (drain_at_ != std::chrono::steady_clock::time_point{} && !drained_ && now >= drain_at_)
        begin_drain_close();
    for (size_t i = 0; i < slots_.size(); ++i) {
        auto* c = slots_[i].get();
        if (!c) continue;
        c->housekeeping(now);
        if (c->state() == Connection::State::Dead) release(c);
    }
}

void Reactor::run() {
    t_current = this;
    std::vector<epoll_event> events(256);
    while (!stop_.load(std::memory_order_relaxed)) {
        int n = epoll_wait(ep_, events.data(), int(events.size()), 250);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; ++i) {
            uint64_t key = events[i].data.u64;
            if (key == kWakeKey) {
                uint64_t v;
                [[maybe_unused]] auto r = read(wake_fd_, &v, sizeof v);
                continue; // mailbox drained below, every iteration
            }
            if (key == kListenKey) {
                if (listen_fd_ >= 0) accept_on(listen_fd_, false);
                continue;
            }
            if (key == kAdminKey) {
                accept_on(admin_fd_, true);
                continue;
            }
            auto* c = lookup(key);
            if (!c) continue;
            uint32_t e = events[i].events;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->on_readable();
            // A dead connection leaves epoll now: its fd stays readable (level-triggered) and
            // would spin this loop until housekeeping freed it.
            if (c->state() == Connection::State::Dead) {
                release(c);
                continue;
            }
            if (e & EPOLLOUT) mark_dirty(c);
        }
        if (auto s = t_.settings(); s != settings_) settings_ = std::move(s); // after a reload
        drain_mailbox();
        // Combined flush: each touched connection writes once per iteration.
        for (size_t i = 0; i < dirty_.size(); ++i) {
            auto* c = dirty_[i];
            c->dirty = false;
            if (c->state() != Connection::State::Dead) c->flush();
        }
        dirty_.clear();
        if (messages_out_) t_.host().add(t_.metrics().messages_out, messages_out_);
        if (bytes_out_) t_.host().add(t_.metrics().bytes_out, bytes_out_);
        messages_out_ = bytes_out_ = 0;
        housekeeping();
        if (size_t(n) == events.size()) events.resize(events.size() * 2);
    }
    t_current = nullptr;
}

} // namespace parley::ws
