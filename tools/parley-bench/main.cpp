// parley-bench: a WebSocket load generator for parley and its benchmark peers (issue 10).
//
// Every server under test speaks the same minimal protocol (parley's `raw` dialect): GET
// /ws/<room> joins <room>, each text message is relayed to the other members, no echo.
//
// Design: N threads, each with its own epoll and a fixed share of the connections; level
// triggered, one large read buffer per thread, frames parsed in place (a per-connection buffer
// is used only for a frame split across reads), one send() per due message burst. Client
// frames use the all-zero mask (legal: RFC 6455 only requires the MASK bit), so a message is a
// memcpy of a prebuilt frame plus 16 hex digits of CLOCK_MONOTONIC nanoseconds. Latency goes
// into a fixed log-linear histogram: no allocation per message.
//
// Every run is bounded: --duration (plus --warmup and a connect deadline) and --max-conns.
//
// --procs P forks P generator processes (a process may hold at most 20 000 open files here):
// connection k belongs to process k % P. The run's clock and counters live in one shared
// anonymous mapping, so the parent alone decides when sending starts and stops, and each
// process writes its statistics and its own CPU over the measured window back into it.
#include "handshake.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// ---- options -------------------------------------------------------------------------------

struct Opts {
    std::string scenario = "fanout";
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string path_prefix = "/ws/";
    int rooms = 100;
    int members = 10;
    double rate = 10; // messages/s per sender (fanout, bigroom); cycles/s (churn, 0 = max)
    double duration = 10;
    double warmup = 2;
    int max_conns = 20000;
    int threads = 1;
    int size = 64;     // payload bytes
    int conns = 1000;  // idle: connections
    int inflight = 64; // churn: concurrent cycles
    int procs = 1;     // generator processes
    int slow = 0;      // slow: members per room that stop reading once joined
    double settle = 2; // slow: seconds after the load before the "after" RSS is read
    double connect_timeout = 30;
    std::vector<in_addr> src;
    int server_pid = 0;
    bool json = false;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(
        stderr,
        "parley-bench: %s\n"
        "usage: parley-bench SCENARIO --url ws://HOST:PORT/ws/ [options]\n"
        "  SCENARIO: fanout | bigroom | idle | churn | slow\n"
        "  --rooms R --members M      fanout: R rooms of M members, all sending\n"
        "                             bigroom: 1 room of M members, member 0 sends\n"
        "                             idle: --conns N joined in rooms of M\n"
        "                             slow: fanout in which --slow K members of each\n"
        "                             room never read; RSS peak, end and --settle S after\n"
        "  --rate X                   msgs/s per sender; churn: cycles/s (0 = max)\n"
        "  --duration S --warmup S    measured window and the unmeasured lead-in\n"
        "  --threads T --size BYTES --conns N --inflight K --max-conns C\n"
        "  --procs P                  P generator processes (fd limit per process)\n"
        "  --src-addrs 127.0.0.2-127.0.0.9   spread client sockets over these\n"
        "  --server-pid PID           read the server's RSS and CPU from /proc\n"
        "  --json                     one JSON object on stdout\n",
        why);
    std::exit(2);
}

void parse_src(Opts& o, const std::string& spec) {
    auto dash = spec.find('-');
    in_addr a{}, b{};
    if (inet_pton(AF_INET, spec.substr(0, dash).c_str(), &a) != 1) usage("bad --src-addrs");
    b = a;
    if (dash != std::string::npos && inet_pton(AF_INET, spec.substr(dash + 1).c_str(), &b) != 1)
        usage("bad --src-addrs");
    uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
    if (hi < lo || hi - lo > 255) usage("bad --src-addrs range");
    for (uint32_t x = lo; x <= hi; ++x)
        o.src.push_back(in_addr{htonl(x)});
}

void parse_url(Opts& o, const std::string& url) {
    constexpr std::string_view ws = "ws://";
    if (url.rfind(ws, 0) != 0) usage("--url must start with ws://");
    auto rest = url.substr(ws.size());
    auto slash = rest.find('/');
    auto hostport = rest.substr(0, slash);
    o.path_prefix = slash == std::string::npos ? "/" : rest.substr(slash);
    auto colon = hostport.rfind(':');
    o.host = hostport.substr(0, colon);
    o.port = colon == std::string::npos ? 80 : std::atoi(hostport.c_str() + colon + 1);
}

Opts parse(int argc, char** argv) {
    Opts o;
    if (argc < 2) usage("no scenario");
    o.scenario = argv[1];
    if (o.scenario != "fanout" && o.scenario != "bigroom" && o.scenario != "idle" &&
        o.scenario != "churn" && o.scenario != "slow")
        usage("unknown scenario");
    if (o.scenario == "bigroom") o.members = 1000, o.rate = 1000;
    if (o.scenario == "churn") o.rate = 0;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--url")
            parse_url(o, val());
        else if (a == "--rooms")
            o.rooms = std::atoi(val().c_str());
        else if (a == "--members")
            o.members = std::atoi(val().c_str());
        else if (a == "--rate")
            o.rate = std::atof(val().c_str());
        else if (a == "--duration")
            o.duration = std::atof(val().c_str());
        else if (a == "--warmup")
            o.warmup = std::atof(val().c_str());
        else if (a == "--max-conns")
            o.max_conns = std::atoi(val().c_str());
        else if (a == "--threads")
            o.threads = std::atoi(val().c_str());
        else if (a == "--size")
            o.size = std::atoi(val().c_str());
        else if (a == "--conns")
            o.conns = std::atoi(val().c_str());
        else if (a == "--inflight")
            o.inflight = std::atoi(val().c_str());
        else if (a == "--procs")
            o.procs = std::atoi(val().c_str());
        else if (a == "--slow")
            o.slow = std::atoi(val().c_str());
        else if (a == "--settle")
            o.settle = std::atof(val().c_str());
        else if (a == "--connect-timeout")
            o.connect_timeout = std::atof(val().c_str());
        else if (a == "--src-addrs")
            parse_src(o, val());
        else if (a == "--server-pid")
            o.server_pid = std::atoi(val().c_str());
        else if (a == "--json")
            o.json = true;
        else
            usage(("unknown option " + a).c_str());
    }
    if (o.threads < 1 || o.threads > 64) usage("--threads must be 1..64");
    if (o.procs < 1 || o.procs > 16) usage("--procs must be 1..16");
    if (o.slow < 0 || o.slow >= o.members) usage("--slow must be 0..members-1");
    if (o.settle < 0 || o.settle > 60) usage("--settle must be 0..60");
    if (o.size < 24 || o.size > 65535) usage("--size must be 24..65535");
    if (o.members < 1 || o.rooms < 1) usage("--rooms and --members must be positive");
    if (o.duration <= 0 || o.duration > 3600 || o.warmup < 0 || o.warmup > 600)
        usage("--duration must be in (0, 3600], --warmup in [0, 600]");
    if (o.src.empty()) {
        in_addr a{};
        inet_pton(AF_INET, "127.0.0.1", &a);
        o.src.push_back(a);
    }
    return o;
}

// ---- latency histogram: 64 octaves x 16 linear sub-buckets, ~6% resolution ---------------

struct Hist {
    static constexpr int kSub = 16;
    uint64_t b[64 * kSub] = {};
    uint64_t n = 0;
    static int index(uint64_t v) {
        if (v < kSub) return int(v);
        int msb = 63 - __builtin_clzll(v);
        int sub = int((v >> (msb - 4)) & (kSub - 1));
        return (msb - 3) * kSub + sub;
    }
    static uint64_t upper(int i) { // an upper bound of bucket i's values
        if (i < kSub) return uint64_t(i);
        int msb = i / kSub + 3, sub = i % kSub;
        return ((uint64_t(kSub + sub) + 1) << (msb - 4)) - 1;
    }
    void add(uint64_t v) {
        ++b[index(v)];
        ++n;
    }
    void merge(const Hist& o) {
        for (size_t i = 0; i < std::size(b); ++i)
            b[i] += o.b[i];
        n += o.n;
    }
    double pct_ms(double q) const {
        if (!n) return 0;
        uint64_t want = uint64_t(std::ceil(q * double(n))), seen = 0;
        for (size_t i = 0; i < std::size(b); ++i) {
            seen += b[i];
            if (seen >= want && b[i]) return double(upper(int(i))) / 1e6;
        }
        return 0;
    }
};

// ---- /proc ---------------------------------------------------------------------------------

long rss_kib(int pid) {
    if (pid <= 0) return -1;
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

double cpu_secs(int pid) {
    if (pid <= 0) return -1;
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto p = s.rfind(')');
    if (p == std::string::npos) return -1;
    std::istringstream in(s.substr(p + 2));
    std::string tok;
    unsigned long long ut = 0, st = 0;
    for (int field = 3; in >> tok; ++field) { // field numbers as in proc(5)
        if (field == 14) ut = std::stoull(tok);
        if (field == 15) {
            st = std::stoull(tok);
            break;
        }
    }
    return double(ut + st) / double(sysconf(_SC_CLK_TCK));
}

double self_cpu() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- shared run state ------------------------------------------------------------------------

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

// The run's clock and counters. With --procs > 1 it lives in a MAP_SHARED mapping, so only
// lock-free atomics (address-free, hence valid across processes) go here.
struct Sync {
    std::atomic<int> ready{0};
    std::atomic<int> opened{0};
    std::atomic<uint64_t> send_start{0}, measure_start{0}, measure_end{0};
    std::atomic<bool> stop{false};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

struct Shared {
    Shared(Opts opts, Sync& s) : o(std::move(opts)), sync(s) {}
    Opts o;
    std::string accept_line; // "Sec-WebSocket-Accept: ...", checked case-sensitively
    Sync& sync;
    std::atomic<int>& ready = sync.ready;
    std::atomic<int>& opened = sync.opened;
    std::atomic<uint64_t>&send_start = sync.send_start, &measure_start = sync.measure_start,
    &measure_end = sync.measure_end;
    std::atomic<bool>& stop = sync.stop;
};

enum class St : uint8_t { Free, Connecting, Handshake, Open, Closing };

struct Conn {
    int fd = -1;
    St st = St::Free;
    bool sender = false;
    bool slow = false; // slow scenario: stops reading once joined
    bool want_out = false;
    uint32_t room = 0;
    uint32_t src = 0;
    double next_send = 0; // seconds since send_start
    uint64_t started = 0; // churn: cycle start
    std::string in;       // partial frame or handshake reply
    std::string out;      // only when the socket is full
};

struct Stats {
    uint64_t delivered = 0, sent = 0, skipped = 0, errors = 0, cycles = 0, bytes_in = 0;
    uint64_t connect_errors = 0, handshake_errors = 0, closed = 0, proto_errors = 0;
    uint64_t slow_cut = 0; // slow readers the server closed
    Hist lat;
    void merge(const Stats& x) {
        delivered += x.delivered, sent += x.sent, skipped += x.skipped;
        errors += x.errors, cycles += x.cycles, bytes_in += x.bytes_in;
        connect_errors += x.connect_errors, handshake_errors += x.handshake_errors;
        closed += x.closed, proto_errors += x.proto_errors, slow_cut += x.slow_cut;
        lat.merge(x.lat);
    }
};

// What one generator process reports back (shared mapping): statistics and its own CPU over
// the measured window.
struct ShardOut {
    Stats st;
    double cpu0 = -1, cpu1 = -1;
};

class Worker {
  public:
    Worker(Shared& sh, int id, int nworkers) : sh_(sh), o_(sh.o), id_(id), nworkers_(nworkers) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        rbuf_ = std::make_unique_for_overwrite<char[]>(kRbuf);
        // Prebuilt client text frame: FIN|text, MASK|len, zero mask, payload.
        size_t n = size_t(o_.size);
        frame_.push_back(char(0x81));
        if (n < 126) {
            frame_.push_back(char(0x80 | n));
        } else {
            frame_.push_back(char(0x80 | 126));
            frame_.push_back(char(n >> 8));
            frame_.push_back(char(n & 0xFF));
        }
        frame_.append(4, '\0');
        ts_off_ = frame_.size() + 1;
        frame_.push_back('T');
        frame_.append(16, '0');
        frame_.append(n - 17, 'x');
    }
    ~Worker() {
        for (auto& c : conns_)
            if (c.fd >= 0) ::close(c.fd);
        ::close(ep_);
    }
    void add(uint32_t room, bool sender, uint32_t src, bool slow = false) {
        Conn c;
        c.room = room;
        c.sender = sender;
        c.slow = slow;
        c.src = src;
        conns_.push_back(std::move(c));
    }
    size_t size() const { return conns_.size(); }
    Stats& stats() { return st_; }
    void start() {
        th_ = std::thread([this] { run(); });
    }
    void join() {
        if (th_.joinable()) th_.join();
    }

  private:
    static constexpr size_t kRbuf = 256 * 1024;

    void run() {
        if (o_.scenario == "churn") return run_churn();
        // Connect everything, a bounded number of handshakes at a time.
        uint64_t deadline = now_ns() + uint64_t(o_.connect_timeout * 1e9);
        size_t next = 0, pending = 0, done = 0;
        const size_t window = 128;
        while (done < conns_.size() && now_ns() < deadline && !sh_.stop) {
            while (pending < window && next < conns_.size()) {
                if (open(next)) ++pending;
                ++next;
            }
            poll(10);
            size_t p = 0, d = 0;
            for (size_t i = 0; i < next; ++i) {
                if (conns_[i].st == St::Connecting || conns_[i].st == St::Handshake)
                    ++p;
                else
                    ++d;
            }
            if (d > done) sh_.ready += int(d - done); // counts failures too; main checks failed
            pending = p;
            done = d;
        }
        // Wait for main to start the clock (all threads connected or the deadline passed).
        while (!sh_.send_start && !sh_.stop)
            poll(10);
        uint64_t t0 = sh_.send_start;
        size_t nsend = 0;
        for (auto& c : conns_)
            if (c.sender && c.st == St::Open) ++nsend;
        // Spread senders' first message over one period so they do not all fire at once.
        size_t k = 0;
        for (auto& c : conns_)
            if (c.sender && c.st == St::Open)
                c.next_send = o_.rate > 0 ? double(k++) / double(nsend) / o_.rate : 1e18;
        while (!sh_.stop) {
            uint64_t now = now_ns();
            if (now >= sh_.measure_end) break;
            double t = double(now - t0) / 1e9;
            double next_due = 1e18;
            if (o_.rate > 0) {
                for (auto& c : conns_) {
                    if (!c.sender || c.st != St::Open) continue;
                    int burst = 0;
                    while (c.next_send <= t && burst < 8) {
                        c.next_send += 1.0 / o_.rate;
                        ++burst;
                    }
                    if (burst) send_msgs(c, burst);
                    next_due = std::min(next_due, c.next_send);
                }
            }
            // Due senders are served once per millisecond tick: the timestamp is taken at send
            // time, so batching them does not distort latency, and the loop does not spin.
            int wait_ms =
                int(std::clamp((next_due - double(now_ns() - t0) / 1e9) * 1000, 1.0, 5.0));
            poll(wait_ms);
        }
        if (o_.scenario != "slow") return;
        // After the load, slow readers read again: what is still queued drains, and a server
        // that cut them shows it (EOF or a close frame) until main reads the "after" RSS.
        for (size_t i = 0; i < conns_.size(); ++i) {
            Conn& c = conns_[i];
            if (!c.slow || c.fd < 0 || c.st != St::Open) continue;
            epoll_event ev{};
            ev.events = EPOLLIN | (c.want_out ? uint32_t(EPOLLOUT) : 0u);
            ev.data.u64 = i;
            epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
        }
        while (!sh_.stop)
            poll(10);
    }

    void run_churn() {
        uint64_t deadline_connect = now_ns() + uint64_t(o_.connect_timeout * 1e9);
        (void)deadline_connect;
        sh_.ready += int(conns_.size()); // nothing to set up
        while (!sh_.send_start && !sh_.stop)
            usleep(1000);
        uint64_t t0 = sh_.send_start;
        double per = o_.rate > 0 ? o_.rate / nworkers_ : 0;
        uint64_t started = 0;
        while (!sh_.stop) {
            uint64_t now = now_ns();
            if (now >= sh_.measure_end) break;
            double t = double(now - t0) / 1e9;
            for (size_t i = 0; i < conns_.size(); ++i) {
                if (conns_[i].st != St::Free) continue;
                if (per > 0 && double(started) >= t * per) break;
                conns_[i].room = uint32_t(started % 100);
                conns_[i].src =
                    uint32_t((started * uint64_t(nworkers_) + uint64_t(id_)) % o_.src.size());
                conns_[i].started = now_ns();
                ++started;
                if (!open(i)) conns_[i].st = St::Free;
            }
            poll(1);
        }
    }

    bool open(size_t i) {
        Conn& c = conns_[i];
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            ++st_.connect_errors;
            return false;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr = o_.src[c.src % o_.src.size()];
        if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
            ::close(fd);
            ++st_.connect_errors;
            return false;
        }
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_port = htons(uint16_t(o_.port));
        inet_pton(AF_INET, o_.host.c_str(), &dst.sin_addr);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 &&
            errno != EINPROGRESS) {
            ::close(fd);
            ++st_.connect_errors;
            return false;
        }
        c.fd = fd;
        c.st = St::Connecting;
        c.in.clear();
        c.out.clear();
        c.want_out = true;
        // On loopback the handshake has usually completed by now: send the upgrade request at
        // once and skip the EPOLLOUT round (epoll_wait, getsockopt, epoll_ctl) per connection.
        const std::string& req = request(c.room);
        ssize_t w = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
        if (w > 0) {
            c.st = St::Handshake;
            if (size_t(w) < req.size())
                c.out.assign(req, size_t(w));
            else
                c.want_out = false;
        } else if (errno != EAGAIN && errno != ENOTCONN && errno != EINPROGRESS) {
            ::close(fd);
            c.fd = -1;
            c.st = St::Free;
            ++st_.connect_errors;
            return false;
        }
        epoll_event ev{};
        ev.events = EPOLLIN | (c.want_out ? uint32_t(EPOLLOUT) : 0u);
        ev.data.u64 = i;
        epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
        return true;
    }

    void fail(Conn& c, uint64_t& counter) {
        ++counter;
        ++st_.errors;
        drop(c);
    }
    void drop(Conn& c) {
        if (c.fd >= 0) ::close(c.fd); // also removes it from the epoll set
        c.fd = -1;
        c.st = St::Free;
    }

    void set_out(Conn& c, size_t i, bool on) {
        if (c.want_out == on) return;
        c.want_out = on;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? uint32_t(EPOLLOUT) : 0u);
        ev.data.u64 = i;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    // Writes `data` or queues what the socket does not take; false on a hard error.
    bool write_or_queue(Conn& c, size_t i, const char* data, size_t n) {
        if (c.out.empty()) {
            ssize_t w = ::send(c.fd, data, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) return false;
            size_t done = w < 0 ? 0 : size_t(w);
            if (done == n) return true;
            data += done, n -= done;
        }
        c.out.append(data, n);
        set_out(c, i, true);
        return true;
    }

    void send_msgs(Conn& c, int count) {
        size_t i = size_t(&c - conns_.data());
        if (!c.out.empty()) { // server is not keeping up with this sender: do not queue more
            st_.skipped += uint64_t(count);
            return;
        }
        uint64_t ts = now_ns();
        char* p = frame_.data() + ts_off_;
        for (int k = 15; k >= 0; --k, ts >>= 4)
            p[k] = "0123456789abcdef"[ts & 0xF];
        char batch[8 * 70];
        const char* data = frame_.data();
        size_t n = frame_.size();
        if (count > 1 && n * size_t(count) <= sizeof batch) {
            for (int k = 0; k < count; ++k)
                std::memcpy(batch + size_t(k) * n, frame_.data(), n);
            data = batch;
            n *= size_t(count);
        } else {
            count = 1;
        }
        if (!write_or_queue(c, i, data, n)) return fail(c, st_.closed);
        st_.sent += uint64_t(count);
    }

    void poll(int timeout_ms) {
        epoll_event evs[256];
        int n = epoll_wait(ep_, evs, 256, timeout_ms);
        for (int k = 0; k < n; ++k) {
            size_t i = evs[k].data.u64;
            Conn& c = conns_[i];
            if (c.fd < 0) continue;
            if (c.st == St::Connecting) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    fail(c, st_.connect_errors);
                    continue;
                }
                if (!(evs[k].events & EPOLLOUT)) continue;
                const std::string& req = request(c.room);
                c.st = St::Handshake;
                if (!write_or_queue(c, i, req.data(), req.size())) {
                    fail(c, st_.connect_errors);
                    continue;
                }
                if (c.out.empty()) set_out(c, i, false);
                continue;
            }
            if (evs[k].events & EPOLLOUT) {
                ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    fail(c, st_.closed);
                    continue;
                }
                if (w > 0) c.out.erase(0, size_t(w));
                if (c.out.empty()) set_out(c, i, false);
            }
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c, i);
        }
    }

    // The upgrade request of a room, built once (churn sends thousands per second).
    const std::string& request(uint32_t room) {
        if (room >= reqs_.size()) reqs_.resize(room + 1);
        auto& r = reqs_[room];
        if (r.empty()) {
            Conn c;
            c.room = room;
            r = "GET " + o_.path_prefix + room_name(c) + " HTTP/1.1\r\nHost: " + o_.host + ":" +
                std::to_string(o_.port) +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                std::string(kKey) + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
        }
        return r;
    }

    std::string room_name(const Conn& c) const {
        // Appended, not `"r" + std::to_string(...)`: GCC 12 -O3 warns falsely (-Wrestrict).
        std::string name = o_.scenario == "churn" ? "churn" : "r";
        name += std::to_string(c.room);
        return name;
    }

    void readable(Conn& c, size_t i) {
        ssize_t r = ::recv(c.fd, rbuf_.get(), kRbuf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            if (c.slow && c.st == St::Open) {
                ++st_.slow_cut;
                return drop(c);
            }
            if (c.st == St::Closing) {
                finish_cycle(c);
                return;
            }
            if (c.st == St::Handshake) return fail(c, st_.handshake_errors);
            if (sh_.stop || now_ns() >= sh_.measure_end) return drop(c); // our own teardown
            return fail(c, st_.closed);
        }
        if (r < 0) return;
        st_.bytes_in += uint64_t(r);
        std::string_view data(rbuf_.get(), size_t(r));
        if (!c.in.empty()) {
            c.in.append(data);
            data = c.in;
        }
        size_t used = 0;
        if (c.st == St::Handshake) {
            auto end = data.find("\r\n\r\n");
            if (end == std::string_view::npos) {
                if (data.size() > 8192) return fail(c, st_.handshake_errors);
                if (c.in.empty()) c.in.assign(data);
                return;
            }
            auto head = data.substr(0, end + 2);
            if (head.rfind("HTTP/1.1 101", 0) != 0 ||
                head.find(sh_.accept_line) == std::string_view::npos)
                return fail(c, st_.handshake_errors);
            used = end + 4;
            c.st = St::Open;
            if (o_.scenario != "churn") sh_.opened++;
            if (c.slow) { // stop reading: the server's queue for us grows until it acts
                epoll_event ev{};
                ev.data.u64 = i;
                epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
                c.want_out = false;
            }
            if (o_.scenario == "churn") {
                st_.lat.add(now_ns() - c.started); // connect + upgrade + join
                static const char close_frame[] = {char(0x88), char(0x82), 0,    0,
                                                   0,          0,          0x03, char(0xE8)};
                c.st = St::Closing;
                if (!write_or_queue(c, i, close_frame, sizeof close_frame))
                    return fail(c, st_.closed);
            }
        }
        uint64_t now = now_ns();
        bool measuring = now >= sh_.measure_start && now < sh_.measure_end;
        while (data.size() - used >= 2) {
            auto* p = reinterpret_cast<const uint8_t*>(data.data() + used);
            size_t avail = data.size() - used;
            uint8_t op = p[0] & 0x0F;
            uint64_t len = p[1] & 0x7F;
            size_t hdr = 2;
            if (p[1] & 0x80) return fail(c, st_.proto_errors); // servers do not mask
            if (len == 126) {
                if (avail < 4) break;
                len = (uint64_t(p[2]) << 8) | p[3];
                hdr = 4;
            } else if (len == 127) {
                if (avail < 10) break;
                len = 0;
                for (int k = 0; k < 8; ++k)
                    len = (len << 8) | p[2 + k];
                hdr = 10;
                if (len > (1u << 24)) return fail(c, st_.proto_errors);
            }
            if (avail < hdr + len) break;
            const char* payload = reinterpret_cast<const char*>(p + hdr);
            if (op == 0x1 || op == 0x0 || op == 0x2) {
                if (measuring) {
                    ++st_.delivered;
                    if (len >= 17 && payload[0] == 'T') {
                        uint64_t ts = 0;
                        for (int k = 1; k <= 16; ++k) {
                            char ch = payload[k];
                            ts = (ts << 4) | uint64_t(ch <= '9' ? ch - '0' : ch - 'a' + 10);
                        }
                        st_.lat.add(now > ts ? now - ts : 0);
                    }
                }
            } else if (op == 0x9) { // ping: answer with a masked pong
                char pong[6 + 125];
                pong[0] = char(0x8A);
                pong[1] = char(0x80 | len);
                std::memset(pong + 2, 0, 4);
                std::memcpy(pong + 6, payload, size_t(len));
                if (!write_or_queue(c, i, pong, 6 + size_t(len))) return fail(c, st_.closed);
            } else if (op == 0x8) {
                if (c.st == St::Closing) return finish_cycle(c);
                if (c.slow) {
                    ++st_.slow_cut;
                    return drop(c);
                }
                return fail(c, st_.closed);
            }
            used += hdr + size_t(len);
        }
        if (data.data() == c.in.data()) {
            c.in.erase(0, used);
        } else if (used < data.size()) {
            c.in.assign(data.substr(used));
        }
    }

    void finish_cycle(Conn& c) {
        uint64_t now = now_ns();
        if (now >= sh_.measure_start && now < sh_.measure_end) ++st_.cycles;
        // We started the close, so this side would hold TIME_WAIT: reset instead, so that a
        // long churn run does not run out of ephemeral ports.
        linger l{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        drop(c);
    }

    Shared& sh_;
    const Opts& o_;
    int id_;
    int nworkers_;
    int ep_ = -1;
    std::unique_ptr<char[]> rbuf_;
    std::string frame_;
    size_t ts_off_ = 0;
    std::vector<std::string> reqs_;
    std::vector<Conn> conns_;
    Stats st_;
    std::thread th_;
};

} // namespace

namespace {

struct Plan {
    uint32_t room;
    bool sender, slow;
};

// One generator process's share: connections k with k % procs == shard, spread over its
// threads. Records its own CPU over the measured window into `out`.
void run_shard(Shared& sh, const std::vector<Plan>& plan, int shard, ShardOut& out) {
    const Opts& o = sh.o;
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < o.threads; ++t)
        workers.push_back(std::make_unique<Worker>(sh, shard * o.threads + t, o.procs * o.threads));
    size_t mine = 0;
    for (size_t k = size_t(shard); k < plan.size(); k += size_t(o.procs), ++mine)
        workers[mine % size_t(o.threads)]->add(plan[k].room, plan[k].sender, uint32_t(k),
                                               plan[k].slow);
    for (auto& w : workers)
        w->start();
    while (!sh.measure_start && !sh.stop)
        usleep(1000);
    while (now_ns() < sh.measure_start && !sh.stop)
        usleep(1000);
    out.cpu0 = self_cpu();
    while (now_ns() < sh.measure_end && !sh.stop)
        usleep(1000);
    out.cpu1 = self_cpu();
    // Slow scenario: workers read until main sets stop; the others return at measure_end.
    for (auto& w : workers)
        w->join();
    for (auto& w : workers)
        out.st.merge(w->stats());
    // Sockets stay open until main has read the server's final RSS.
    while (!sh.stop)
        usleep(2000);
    workers.clear();
}

template <class T> T* shared_map(size_t n) {
    void* p =
        mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::perror("parley-bench: mmap");
        std::exit(1);
    }
    auto* t = static_cast<T*>(p);
    for (size_t i = 0; i < n; ++i)
        new (t + i) T();
    return t;
}

} // namespace

int main(int argc, char** argv) {
    Sync* sync = shared_map<Sync>(1);
    Shared sh(parse(argc, argv), *sync);
    const Opts& o = sh.o;
    sh.accept_line = "Sec-WebSocket-Accept: " + parley::ws::accept_key(kKey) + "\r\n";
    ShardOut* outs = shared_map<ShardOut>(size_t(o.procs));

    long total = 0;
    int rooms = 0, members = 0;
    if (o.scenario == "fanout" || o.scenario == "slow")
        rooms = o.rooms, members = o.members;
    else if (o.scenario == "bigroom")
        rooms = 1, members = o.members;
    else if (o.scenario == "idle")
        members = o.members, rooms = (o.conns + members - 1) / members;
    std::vector<Plan> plan;
    if (o.scenario == "churn") {
        total = o.inflight;
        plan.assign(size_t(total), Plan{0, false, false});
    } else {
        total = long(rooms) * members;
        if (o.scenario == "idle") total = o.conns;
    }
    if (total > o.max_conns) {
        std::fprintf(stderr, "parley-bench: %ld connections exceed --max-conns %d\n", total,
                     o.max_conns);
        return 2;
    }
    if (o.scenario != "churn") {
        long k = 0;
        for (int r = 0; r < rooms && k < total; ++r)
            for (int m = 0; m < members && k < total; ++m, ++k) {
                bool slow = o.scenario == "slow" && m < o.slow;
                bool sender = o.scenario == "fanout" || (o.scenario == "slow" && !slow) ||
                              (o.scenario == "bigroom" && m == 0);
                plan.push_back(Plan{uint32_t(r), sender, slow});
            }
    }
    long rss_before = rss_kib(o.server_pid);
    std::vector<pid_t> children;
    std::thread local;
    if (o.procs == 1) {
        local = std::thread([&] { run_shard(sh, plan, 0, outs[0]); });
    } else {
        std::fflush(nullptr);
        for (int p = 0; p < o.procs; ++p) {
            pid_t pid = fork();
            if (pid < 0) {
                std::perror("parley-bench: fork");
                sh.stop = true;
                break;
            }
            if (pid == 0) {
                run_shard(sh, plan, p, outs[p]);
                std::_Exit(0);
            }
            children.push_back(pid);
        }
    }

    uint64_t deadline = now_ns() + uint64_t(o.connect_timeout * 1e9) + 1000000000ull;
    while (sh.ready.load() < total && now_ns() < deadline)
        usleep(2000);
    int connect_failed = o.scenario == "churn" ? 0 : int(total) - sh.opened.load();
    // Let the server settle its joins before the clock starts.
    usleep(200000);
    long rss_joined = rss_kib(o.server_pid);
    uint64_t t0 = now_ns();
    sh.measure_start = t0 + uint64_t(o.warmup * 1e9);
    sh.measure_end = sh.measure_start + uint64_t(o.duration * 1e9);
    sh.send_start = t0;
    while (now_ns() < sh.measure_start)
        usleep(1000);
    double scpu0 = cpu_secs(o.server_pid);
    long rss_peak = rss_joined;
    for (int tick = 0; now_ns() < sh.measure_end; ++tick) {
        usleep(1000);
        if (tick % 20 == 0) rss_peak = std::max(rss_peak, rss_kib(o.server_pid));
    }
    double scpu1 = cpu_secs(o.server_pid);
    long rss_end = rss_kib(o.server_pid);
    rss_peak = std::max(rss_peak, rss_end);
    long rss_after = -1;
    if (o.scenario == "slow") {
        uint64_t until = now_ns() + uint64_t(o.settle * 1e9);
        while (now_ns() < until) {
            usleep(20000);
            rss_peak = std::max(rss_peak, rss_kib(o.server_pid));
        }
        rss_after = rss_kib(o.server_pid);
    }
    // Every RSS figure is in: the shards may stop reading and close.
    sh.stop = true;
    if (local.joinable()) local.join();
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
    }

    Stats s;
    double gcpu = 0;
    for (int p = 0; p < o.procs; ++p) {
        s.merge(outs[p].st);
        if (outs[p].cpu0 >= 0 && outs[p].cpu1 >= 0) gcpu += outs[p].cpu1 - outs[p].cpu0;
    }
    double win = o.duration;
    double rate = o.scenario == "churn" ? double(s.cycles) / win : double(s.delivered) / win;
    double scpu = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;
    double cpu_per_delivery_us = scpu >= 0 && s.delivered ? scpu / double(s.delivered) * 1e6 : -1;
    double cpu_per_cycle_us = scpu >= 0 && s.cycles ? scpu / double(s.cycles) * 1e6 : -1;
    double gen_per_delivery_us = s.delivered ? gcpu / double(s.delivered) * 1e6 : -1;
    long conns_open = o.scenario == "churn" ? 0 : total - connect_failed;
    double rss_per_conn = rss_joined > 0 && rss_before > 0 && conns_open > 0
                              ? double(rss_joined - rss_before) / double(conns_open)
                              : -1;
    uint64_t errors = s.errors + uint64_t(std::max(0, int(total) - sh.ready.load()));
    char buf[2560];
    std::snprintf(
        buf, sizeof buf,
        "{\"scenario\":\"%s\",\"connections\":%ld,\"connect_failed\":%d,\"rooms\":%d,"
        "\"members\":%d,\"rate\":%g,\"size\":%d,\"duration_s\":%g,\"procs\":%d,\"sent\":%llu,"
        "\"skipped\":%llu,\"delivered\":%llu,\"deliveries_per_s\":%.1f,\"cycles\":%llu,"
        "\"cycles_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
        "\"errors\":%llu,\"connect_errors\":%llu,\"handshake_errors\":%llu,\"closed\":%llu,"
        "\"proto_errors\":%llu,\"slow\":%d,\"slow_cut\":%llu,\"server_cpu_s\":%.3f,"
        "\"server_cpu_util\":%.3f,\"server_cpu_us_per_delivery\":%.4f,"
        "\"server_cpu_us_per_cycle\":%.2f,\"server_cpu_s_per_million\":%.3f,"
        "\"server_rss_before_kib\":%ld,\"server_rss_joined_kib\":%ld,\"server_rss_peak_kib\":%ld,"
        "\"server_rss_end_kib\":%ld,\"server_rss_after_kib\":%ld,\"rss_per_conn_kib\":%.3f,"
        "\"gen_cpu_s\":%.3f,\"gen_cpu_util\":%.3f,\"gen_cpu_us_per_delivery\":%.4f}",
        o.scenario.c_str(), total, connect_failed, rooms, members, o.rate, o.size, win, o.procs,
        (unsigned long long)s.sent, (unsigned long long)s.skipped, (unsigned long long)s.delivered,
        o.scenario == "churn" ? 0.0 : rate, (unsigned long long)s.cycles,
        o.scenario == "churn" ? rate : 0.0, s.lat.pct_ms(0.50), s.lat.pct_ms(0.99),
        s.lat.pct_ms(0.999), (unsigned long long)errors, (unsigned long long)s.connect_errors,
        (unsigned long long)s.handshake_errors, (unsigned long long)s.closed,
        (unsigned long long)s.proto_errors, o.scenario == "slow" ? o.slow * rooms : 0,
        (unsigned long long)s.slow_cut, scpu, scpu >= 0 ? scpu / win : -1, cpu_per_delivery_us,
        cpu_per_cycle_us, cpu_per_delivery_us >= 0 ? cpu_per_delivery_us : -1, rss_before,
        rss_joined, rss_peak, rss_end, rss_after, rss_per_conn, gcpu, gcpu / win,
        gen_per_delivery_us);
    if (o.json) {
        std::printf("%s\n", buf);
    } else {
        std::printf("%s: %ld conns (%d failed), %s/s %.0f, p50 %.3f ms p99 %.3f ms p99.9 %.3f "
                    "ms, errors %llu, skipped sends %llu\n"
                    "  server cpu %.2f s (%.4f us/delivery), rss %ld -> %ld KiB (%.2f "
                    "KiB/conn), peak %ld, end %ld, after %ld KiB; generator cpu %.2f s "
                    "(%d procs)\n",
                    o.scenario.c_str(), total, connect_failed,
                    o.scenario == "churn" ? "cycles" : "deliveries", rate, s.lat.pct_ms(0.50),
                    s.lat.pct_ms(0.99), s.lat.pct_ms(0.999), (unsigned long long)errors,
                    (unsigned long long)s.skipped, scpu, cpu_per_delivery_us, rss_before,
                    rss_joined, rss_per_conn, rss_peak, rss_end, rss_after, gcpu, o.procs);
    }
    return 0;
}
