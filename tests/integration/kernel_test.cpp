// Kernel integration tests ("Kernel foundation", item 7). Every test runs real parleyd processes
// (and `parley ctl`) as subprocesses, with the test plugins of tests/plugins, and checks exit
// codes and the exact text operators see. Every wait is bounded: a hung parleyd fails the test
// and is killed, it never hangs the suite.
//
// Set PARLEY_KEEP_TEST_DIRS=1 to keep the scratch directories (profiles, logs) of every test;
// those of failed tests are always kept and named in the output.
#include <parley/plugin.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kParleyd = PARLEYD_BIN;
const std::string kParley = PARLEY_BIN;
const std::string kPluginDir = PARLEY_PLUGIN_DIR;          // built-in plugins
const std::string kTestPluginDir = PARLEY_TEST_PLUGIN_DIR; // tests/plugins
const std::string kSourceDir = PARLEY_SOURCE_DIR;

// ---------------------------------------------------------------------------------------------
// Small helpers

::testing::AssertionResult contains_fmt(const char* hay_expr, const char* needle_expr,
                                        const std::string& hay, const std::string& needle) {
    if (hay.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << hay_expr << " does not contain " << needle_expr << "\n--- expected substring:\n"
           << needle << "\n--- actual text:\n"
           << hay << "\n---";
}
::testing::AssertionResult lacks_fmt(const char* hay_expr, const char* needle_expr,
                                     const std::string& hay, const std::string& needle) {
    if (hay.find(needle) == std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << hay_expr << " contains " << needle_expr << "\n--- unexpected substring:\n"
           << needle << "\n--- actual text:\n"
           << hay << "\n---";
}
#define EXPECT_CONTAINS(hay, needle) EXPECT_PRED_FORMAT2(contains_fmt, hay, needle)
#define ASSERT_CONTAINS(hay, needle) ASSERT_PRED_FORMAT2(contains_fmt, hay, needle)
#define EXPECT_LACKS(hay, needle) EXPECT_PRED_FORMAT2(lacks_fmt, hay, needle)

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

void spit(const fs::path& p, const std::string& text) {
    // Write-then-rename: a reload must never see a half-written profile.
    fs::path tmp = p;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
    }
    fs::rename(tmp, p);
}

// Replaces every "{KEY}" in `text`.
std::string fill(std::string text, const std::map<std::string, std::string>& vars) {
    for (auto& [k, v] : vars) {
        std::string pat = "{" + k + "}";
        for (size_t at = text.find(pat); at != std::string::npos;
             at = text.find(pat, at + v.size()))
            text.replace(at, pat.size(), v);
    }
    return text;
}

// 1-based number of the `nth` line of `text` containing `needle` (FILE:LINE expectations).
int line_of(const std::string& text, const std::string& needle, int nth = 1) {
    std::istringstream in(text);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
        if (line.find(needle) != std::string::npos && --nth == 0) return n;
    ADD_FAILURE() << "no line contains '" << needle << "' in:\n" << text;
    return 0;
}

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
    try {
        return Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a JSON object (" << e.what() << "):\n" << text;
        return nullptr;
    }
}

// ---------------------------------------------------------------------------------------------
// Subprocesses

struct Env {
    std::vector<std::string> set; // NAME=value
    std::string cwd;              // empty: inherit
};

// Starts argv[0] with stdin /dev/null and stdout/stderr into files. The parent environment is
// passed on without PARLEY_* variables (a developer's PARLEY_PLUGIN_PATH must not leak in).
pid_t spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err,
            const Env& env) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!env.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, env.cwd.c_str());
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "PARLEY_", 7) != 0) envs.emplace_back(*e);
    for (auto& s : env.set)
        envs.push_back(s);
    std::vector<char*> av, ev;
    for (auto& a : argv)
        av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    for (auto& e : envs)
        ev.push_back(const_cast<char*>(e.c_str()));
    ev.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), ev.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
        return -1;
    }
    return pid;
}

// Exit code of a waitpid status; 128+N for death by signal N (as shells report it).
int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// A running child. Killed (SIGKILL) and reaped on destruction if still alive.
class Process {
  public:
    Process(pid_t pid, fs::path out, fs::path err)
        : pid_(pid), out_(std::move(out)), err_(std::move(err)) {}
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    ~Process() {
        if (pid_ > 0 && !code_) {
            ::kill(pid_, SIGKILL);
            int st;
            waitpid(pid_, &st, 0);
        }
    }

    pid_t pid() const { return pid_; }
    std::string out() const { return slurp(out_); }
    std::string err() const { return slurp(err_); }

    // The exit code once the process ends within `timeout`; nullopt if it is still running.
    std::optional<int> wait(Clock::duration timeout) {
        if (code_) return code_;
        auto deadline = Clock::now() + timeout;
        for (;;) {
            int st;
            pid_t r = waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                code_ = exit_code(st);
                return code_;
            }
            if (r < 0 && errno != EINTR) return std::nullopt;
            if (Clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(5ms);
        }
    }
    bool running() { return !wait(0ms); }
    void signal(int sig) { ::kill(pid_, sig); }
    // Kills it now; for tests that simulate a crash.
    void crash() {
        ::kill(pid_, SIGKILL);
        wait(5s);
    }

    // Waits until stderr contains `needle` (true), the process exits or `timeout` passes.
    bool wait_for_err(const std::string& needle, Clock::duration timeout = 5s) {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            if (err().find(needle) != std::string::npos) return true;
            if (!running()) return err().find(needle) != std::string::npos;
            if (Clock::now() >= deadline) return false;
            std::this_thread::sleep_for(10ms);
        }
    }
    // Counts occurrences of `needle` in stderr.
    size_t count_err(const std::string& needle) const {
        std::string text = err();
        size_t n = 0;
        for (size_t at = text.find(needle); at != std::string::npos;
             at = text.find(needle, at + needle.size()))
            ++n;
        return n;
    }

  private:
    pid_t pid_;
    fs::path out_, err_;
    std::optional<int> code_;
};

struct Result {
    int code = -1; // -1: timed out (and killed)
    std::string out, err;
};

// ---------------------------------------------------------------------------------------------
// Sockets: minimal HTTP/1.1 and WebSocket clients, enough to observe the transport's behaviour

int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

bool send_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        s.remove_prefix(size_t(n));
    }
    return true;
}

// Reads more bytes into `buf` (waits at most SO_RCVTIMEO). False on EOF, error or timeout.
bool read_more(int fd, std::string& buf) {
    char tmp[4096];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, size_t(n));
    return true;
}

struct HttpResponse {
    int status = 0;
    std::string head, body;
};

// Reads one response (head and a Content-Length body) from a keep-alive connection; bytes past
// it stay in `buf`.
std::optional<HttpResponse> read_response(int fd, std::string& buf) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos)
        if (!read_more(fd, buf)) return std::nullopt;
    HttpResponse r;
    r.head = buf.substr(0, end);
    if (r.head.compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
    r.status = std::atoi(r.head.c_str() + 9);
    size_t len = 0;
    std::string lower = r.head;
    for (auto& c : lower)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    if (auto cl = lower.find("\r\ncontent-length:"); cl != std::string::npos)
        len = size_t(std::atoll(lower.c_str() + cl + 17));
    while (buf.size() < end + 4 + len)
        if (!read_more(fd, buf)) return std::nullopt;
    r.body = buf.substr(end + 4, len);
    buf.erase(0, end + 4 + len);
    return r;
}

std::optional<HttpResponse> http_get_on(int fd, std::string& buf, const std::string& path) {
    if (!send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return std::nullopt;
    return read_response(fd, buf);
}

// One request on a fresh connection.
std::optional<HttpResponse> http_get(int port, const std::string& path) {
    Fd c(tcp_connect(port));
    if (c.fd < 0) return std::nullopt;
    std::string buf;
    return http_get_on(c.fd, buf, path);
}

// A WebSocket client that does the handshake by hand and parses server frames.
class WsClient {
  public:
    bool connect(int port, const std::string& path) {
        fd_.fd = tcp_connect(port);
        if (fd_.fd < 0) return false;
        std::string req = "GET " + path +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";
        if (!send_all(fd_.fd, req)) return false;
        size_t end;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!read_more(fd_.fd, buf_)) return false;
        head_ = buf_.substr(0, end);
        buf_.erase(0, end + 4);
        return head_.compare(0, 12, "HTTP/1.1 101") == 0;
    }
    const std::string& head() const { return head_; }
    int fd() const { return fd_.fd; }

    // Client frames are masked (RFC 6455 5.3); a zero key keeps the payload readable.
    bool send_frame(uint8_t opcode, std::string_view payload) {
        std::string f;
        f += char(0x80 | opcode);
        if (payload.size() < 126) {
            f += char(0x80 | payload.size());
        } else {
            f += char(0x80 | 126);
            f += char(payload.size() >> 8);
            f += char(payload.size() & 0xFF);
        }
        f.append(4, '\0');
        f += payload;
        return send_all(fd_.fd, f);
    }
    bool send_text(std::string_view s) { return send_frame(0x1, s); }

    struct Frame {
        uint8_t opcode = 0;
        std::string payload;
    };
    // Next server frame within the socket timeout; nullopt on EOF or timeout.
    std::optional<Frame> read_frame() {
        for (;;) {
            if (buf_.size() >= 2) {
                auto b = reinterpret_cast<const uint8_t*>(buf_.data());
                size_t len = b[1] & 0x7F, hdr = 2;
                if (len == 126 && buf_.size() >= 4) {
                    len = size_t(b[2]) << 8 | b[3];
                    hdr = 4;
                } else if (len == 127 && buf_.size() >= 10) {
                    len = 0;
                    for (int i = 0; i < 8; ++i)
                        len = len << 8 | b[2 + i];
                    hdr = 10;
                }
                if ((b[1] & 0x7F) < 126 || hdr > 2) {
                    if (buf_.size() >= hdr + len) {
                        Frame f{uint8_t(b[0] & 0x0F), buf_.substr(hdr, len)};
                        buf_.erase(0, hdr + len);
                        return f;
                    }
                }
            }
            if (!read_more(fd_.fd, buf_)) return std::nullopt;
        }
    }
    // Each read waits at most this long (tcp_connect sets 3 s).
    void set_read_timeout(std::chrono::seconds t) {
        timeval tv{time_t(t.count()), 0};
        setsockopt(fd_.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    // Skips pings and data; returns the close code of the first close frame (0 if it has
    // none), or -1 if the connection ends or times out without one.
    int read_close_code() {
        while (auto f = read_frame()) {
            if (f->opcode != 0x8) continue;
            if (f->payload.size() < 2) return 0;
            return uint8_t(f->payload[0]) << 8 | uint8_t(f->payload[1]);
        }
        return -1;
    }
    // True if the peer closed the TCP connection (EOF) within the socket timeout.
    bool read_eof() {
        char tmp[256];
        for (;;) {
            ssize_t n = ::recv(fd_.fd, tmp, sizeof tmp, 0);
            if (n == 0) return true;
            if (n < 0) return false;
        }
    }

  private:
    Fd fd_;
    std::string buf_;
    std::string head_;
};

// ---------------------------------------------------------------------------------------------
// Fixture: one scratch directory per test (short: ipc paths are limited to ~100 bytes)

class KernelTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pk-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
        dir_ = tmpl;
        state_ = dir_ / "s";
    }
    void TearDown() override {
        procs_.clear(); // kill leftovers before removing their files
        if (HasFailure() || std::getenv("PARLEY_KEEP_TEST_DIRS")) {
            std::printf("[ kept     ] %s\n", dir_.c_str());
            return;
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    const fs::path& dir() const { return dir_; }
    const fs::path& state() const { return state_; }
    std::string sock() const { return (state_ / "control.sock").string(); }

    // Profile text with {STATE}, {TESTPLUGINS}, {DIR} filled in.
    std::string profile_text(const std::string& tmpl) const {
        return fill(
            tmpl,
            {{"STATE", state_.string()}, {"TESTPLUGINS", kTestPluginDir}, {"DIR", dir_.string()}});
    }
    fs::path write_profile(const std::string& name, const std::string& tmpl) {
        fs::path p = dir_ / name;
        spit(p, profile_text(tmpl));
        return p;
    }

    // Runs a command to completion (bounded by `timeout`, then killed).
    Result run(const std::vector<std::string>& argv, Clock::duration timeout = 10s,
               const Env& env = {}) {
        int n = ++runs_;
        fs::path out = dir_ / ("run" + std::to_string(n) + ".out");
        fs::path err = dir_ / ("run" + std::to_string(n) + ".err");
        pid_t pid = spawn(argv, out, err, env);
        Result r;
        if (pid < 0) return r;
        Process p(pid, out, err);
        auto code = p.wait(timeout);
        if (!code) {
            ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "")
                          << " did not finish in time; killed";
            p.crash();
        }
        r.code = code.value_or(-1);
        r.out = p.out();
        r.err = p.err();
        return r;
    }
    Result parleyd(std::vector<std::string> args, Clock::duration timeout = 10s) {
        args.insert(args.begin(), kParleyd);
        return run(args, timeout);
    }
    Result ctl(std::vector<std::string> args, const Env& env = {}) {
        args.insert(args.begin(), {kParley, "ctl"});
        return run(args, 15s, env);
    }
    Result ctl_sock(std::vector<std::string> args) {
        args.insert(args.begin(), {"--socket", sock()});
        return ctl(std::move(args));
    }

    // Starts parleyd on `profile` with stderr (its log) in <dir>/<log>.
    Process& start_daemon(const fs::path& profile, const std::string& log = "parleyd.log",
                          std::vector<std::string> args = {}) {
        args.insert(args.begin(), kParleyd);
        args.push_back(profile.string());
        pid_t pid = spawn(args, dir_ / (log + ".out"), dir_ / log, {});
        procs_.push_back(std::make_unique<Process>(pid, dir_ / (log + ".out"), dir_ / log));
        return *procs_.back();
    }
    // Starts parleyd and waits until it logs that the profile runs.
    Process& start_running(const fs::path& profile, const std::string& log = "parleyd.log",
                           std::vector<std::string> args = {}) {
        Process& p = start_daemon(profile, log, std::move(args));
        if (!p.wait_for_err("running (", 10s)) {
            ADD_FAILURE() << "parleyd did not start; log:\n" << p.err();
        }
        return p;
    }

    // The port a transport-ws instance listening on port 0 wrote to <state>/<instance>.port.
    int port_of(const std::string& instance) {
        auto deadline = Clock::now() + 5s;
        fs::path f = state_ / (instance + ".port");
        while (Clock::now() < deadline) {
            std::string s = slurp(f);
            if (!s.empty() && s.back() == '\n') return std::atoi(s.c_str());
            std::this_thread::sleep_for(10ms);
        }
        ADD_FAILURE() << "no port file " << f;
        return -1;
    }

  private:
    fs::path dir_, state_;
    int runs_ = 0;
    std::vector<std::unique_ptr<Process>> procs_;
};

// A raw transport-ws instance on a free port, one reactor.
const std::string kWeb = R"(
  - name: {NAME}
    plugin: transport-ws
    config:
      port: 0
      protocol: raw
      threads: 1
)";

std::string web(const std::string& name) {
    return fill(kWeb, {{"NAME", name}});
}

// A profile exercising every config type of test-service.
const std::string kServiceProfile = R"(profile: kt-svc
state_dir: {STATE}
plugin_path: [{TESTPLUGINS}]
drain:
  grace: 1s
plugins:
  - name: web
    plugin: transport-ws
    config:
      port: 0
      protocol: raw
      threads: 1
  - name: svc
    plugin: test-service
    config:
      greeting: {GREETING}
      workers: {WORKERS}
      verbose: yes
      buffer: 64K
      timeout: 30s
      mode: fast
      tags: [alpha, beta]
      limits:
        window: 2m
      routes:
        - path: /x
        - path: /y
          weight: 5
      bind: {BIND}
)";

std::string service_profile(const std::string& greeting, const std::string& workers = "8",
                            const std::string& bind = "local") {
    return fill(kServiceProfile, {{"GREETING", greeting}, {"WORKERS", workers}, {"BIND", bind}});
}

// ---------------------------------------------------------------------------------------------
// 1. parleyd --version, --describe-plugin, --check-config

TEST_F(KernelTest, VersionPrintsVersionAndAbi) {
    auto r = parleyd({"--version"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, std::string("parleyd ") + PARLEY_EXPECTED_VERSION + " (plugin ABI " +
                         std::to_string(PARLEY_ABI_MAJOR) + "." + std::to_string(PARLEY_ABI_MINOR) +
                         ")\n");
}

TEST_F(KernelTest, UnknownOptionIsUsageError) {
    auto r = parleyd({"--frobnicate"});
    EXPECT_EQ(r.code, 2);
    EXPECT_CONTAINS(r.err, "parleyd: unknown option --frobnicate");
    EXPECT_CONTAINS(r.err, "usage: parleyd");
}

TEST_F(KernelTest, DescribePluginJsonIsAnArrayWithPort) {
    auto r = parleyd({"--describe-plugin", "transport-ws", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    Poco::JSON::Array::Ptr arr;
    try {
        arr = Poco::JSON::Parser().parse(r.out).extract<Poco::JSON::Array::Ptr>();
    } catch (const std::exception& e) {
        FAIL() << "not a JSON array (" << e.what() << "):\n" << r.out;
    }
    bool port = false;
    for (size_t i = 0; i < arr->size(); ++i) {
        auto k = arr->getObject(unsigned(i));
        if (k->optValue<std::string>("name", "") == "port") {
            port = true;
            EXPECT_EQ(k->optValue<std::string>("type", ""), "int");
            EXPECT_EQ(k->optValue<std::string>("default", ""), "8080");
        }
    }
    EXPECT_TRUE(port) << r.out;
}

TEST_F(KernelTest, DescribeTestPluginByFileShowsEveryType) {
    auto r = parleyd({"--describe-plugin", kTestPluginDir + "/parley-test-service.so"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "test-service 0.0.1: Kernel test plugin");
    EXPECT_CONTAINS(r.out, "buffer (size, default 64K");
    EXPECT_CONTAINS(r.out, "timeout (duration, default 30s");
    EXPECT_CONTAINS(r.out, "mode (enum, one of fast|safe|paranoid");
    EXPECT_CONTAINS(r.out, "routes (list of maps");
}

TEST_F(KernelTest, DescribeUnknownPluginNamesSearchPath) {
    auto r = parleyd({"--describe-plugin", "no-such-plugin"});
    EXPECT_EQ(r.code, 1);
    EXPECT_CONTAINS(r.err, "parleyd: plugin 'no-such-plugin': parley-no-such-plugin.so not found "
                           "in plugin path [" +
                               fs::path(kPluginDir).string() + "]");
}

TEST_F(KernelTest, DescribeKernelListsProfileKeys) {
    auto r = parleyd({"--describe-kernel"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "parleyd profile keys:\n");
    EXPECT_CONTAINS(r.out, "  profile (string, required, restart)");
    EXPECT_CONTAINS(r.out, "      grace (duration, default 5s");
}

TEST_F(KernelTest, PluginPathAndStateDirFromTheCommandLine) {
    // No plugin_path in the profile: test-service is found only with --plugin-path.
    auto p = write_profile("cli.yaml", "profile: kt-cli\nstate_dir: {DIR}/unused\nplugins:\n"
                                       "  - name: svc\n    plugin: test-service\n");
    auto r = parleyd({"--check-config", p.string()});
    EXPECT_EQ(r.code, 1);
    EXPECT_CONTAINS(r.err, p.string() +
                               ":4:5: error: plugins[0]: plugin 'test-service': "
                               "parley-test-service.so not found in plugin path [" +
                               kPluginDir + "]");
    r = parleyd({"--plugin-path", kTestPluginDir, "--check-config", p.string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, p.string() + ": OK (profile 'kt-cli', 1 plugin instances)\n");

    // --state-dir wins over the profile's state_dir: the control socket lives there.
    Process& d = start_running(p, "parleyd.log",
                               {"--plugin-path", kTestPluginDir, "--state-dir", state().string()});
    EXPECT_CONTAINS(d.err(), "state " + state().string() + ")");
    EXPECT_FALSE(fs::exists(dir() / "unused"));
    auto st = ctl_sock({"status", "--json"});
    EXPECT_EQ(st.code, 0) << st.err;
    EXPECT_CONTAINS(st.out, "\"profile\":\"kt-cli\"");
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
}

TEST_F(KernelTest, CheckConfigAcceptsGoodProfileAndExample) {
    auto p = write_profile("good.yaml", service_profile("hi"));
    auto r = parleyd({"--check-config", p.string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, p.string() + ": OK (profile 'kt-svc', 2 plugin instances)\n");
    EXPECT_EQ(r.err, "");

    auto example = kSourceDir + "/etc/link-room.yaml";
    r = parleyd({"--check-config", example});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, example + ": OK (profile 'link-room', 2 plugin instances)\n");
}

TEST_F(KernelTest, CheckConfigWarnsAboutAnEmptyProfile) {
    auto p = write_profile("bare.yaml", "profile: kt-bare\nstate_dir: {STATE}\n");
    auto r = parleyd({"--check-config", p.string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, ": OK (profile 'kt-bare', 0 plugin instances)");
    EXPECT_CONTAINS(r.err, p.string() + ":1:1: warning: plugins: no plugins: this profile "
                                        "serves nothing");
}

struct BadCase {
    std::string name;
    std::string yaml; // template (see profile_text); "" = write `raw` bytes instead
    std::string raw;
    // Expected substrings of stderr. "{FILE}" is the profile path; "{LINE:text}" is the line
    // of the profile that contains `text`, "{LINE2:text}" the second such line.
    std::vector<std::string> expect;
};

std::string expand_expectation(const std::string& e, const std::string& file,
                               const std::string& text) {
    std::string out = fill(e, {{"FILE", file}});
    for (int nth : {1, 2}) {
        std::string tag = nth == 1 ? "{LINE:" : "{LINE2:";
        for (size_t at; (at = out.find(tag)) != std::string::npos;) {
            size_t end = out.find('}', at);
            std::string needle = out.substr(at + tag.size(), end - at - tag.size());
            out.replace(at, end - at + 1, std::to_string(line_of(text, needle, nth)));
        }
    }
    return out;
}

// An ELF-like header with embedded NULs: the length comes from the array, not a hand count
// (a miscounted 36 read past the literal's end, found by ASan).
constexpr char kBinaryJunk[] = "\x7f"
                               "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0{[\x01\xff\xfe:\x80]]\n\t- : :";

TEST_F(KernelTest, CheckConfigRefusesBadProfiles) {
    const std::string head = "profile: kt-bad\nstate_dir: {STATE}\nplugin_path: [{TESTPLUGINS}]\n";
    const std::string svc = "plugins:\n  - name: svc\n    plugin: test-service\n    config:\n";
    std::vector<BadCase> cases = {
        {"unknown top-level key",
         head + "bogus: 1\n",
         "",
         {"{FILE}:{LINE:bogus}:1: error: bogus: unknown key 'bogus'; allowed keys: profile, "
          "state_dir, plugin_path, store, log, limits, rooms, workers, drain, control, plugins"}},
        {"misspelt top-level key gets a suggestion",
         head + "limtis:\n  max_rooms: 5\n",
         "",
         {"{FILE}:{LINE:limtis}:1: error: limtis: unknown key 'limtis'; did you mean 'limits'?"}},
        {"unknown key inside a plugin's config",
         head + svc + "      greeting: hi\n      xyz: 1\n",
         "",
         {"{FILE}:{LINE:xyz}:7: error: plugins[0].config.xyz: unknown key 'xyz'; allowed keys: "
          "greeting, workers, verbose, buffer, timeout, mode, tags, limits, routes, bind"}},
        {"unknown key in a nested map of a plugin's config",
         head + svc + "      limits:\n        max_itmes: 3\n",
         "",
         {"{FILE}:{LINE:max_itmes}:9: error: plugins[0].config.limits.max_itmes: unknown key "
          "'max_itmes'; did you mean 'max_items'?"}},
        {"wrong type",
         head + svc + "      workers: many\n",
         "",
         {"{FILE}:{LINE:workers}:16: error: plugins[0].config.workers: expected an integer, "
          "found 'many'"}},
        {"wrong type: a map where a list belongs",
         head + svc + "      tags: {a: 1}\n",
         "",
         {"{FILE}:{LINE:tags}:13: error: plugins[0].config.tags: expected a list, found a "
          "mapping"}},
        {"out-of-range int",
         head + svc + "      workers: 1000\n",
         "",
         {"{FILE}:{LINE:workers}:16: error: plugins[0].config.workers: '1000' is out of range; "
          "must be between 1 and 64"}},
        {"invalid size and duration",
         head + svc + "      buffer: 64Q\n      timeout: 10 parsecs\n",
         "",
         {"{FILE}:{LINE:buffer}:15: error: plugins[0].config.buffer: invalid size '64Q'",
          "{FILE}:{LINE:timeout}:16: error: plugins[0].config.timeout: invalid duration "
          "'10 parsecs'"}},
        {"enum value not allowed",
         head + svc + "      mode: fsat\n",
         "",
         {"{FILE}:{LINE:mode}:13: error: plugins[0].config.mode: 'fsat' is not one of: fast, "
          "safe, paranoid; did you mean 'fast'?"}},
        {"required key missing in a list of maps",
         head + svc + "      routes:\n        - weight: 2\n",
         "",
         {"{FILE}:{LINE:weight}:11: error: plugins[0].config.routes[0].path: missing required "
          "key 'path'"}},
        {"duplicate key",
         head + svc + "      greeting: hi\n      greeting: ho\n",
         "",
         {"{FILE}:{LINE:greeting: ho}:7: error: plugins[0].config.greeting: duplicate key "
          "'greeting' (first at line " +
          std::to_string(line_of(head + svc + "      greeting: hi\n", "greeting: hi")) + ")"}},
        {"duplicate top-level key",
         head + "profile: other\n",
         "",
         {"{FILE}:{LINE:profile: other}:1: error: profile: duplicate key 'profile' (first at "
          "line 1)"}},
        {"duplicate instance names",
         head + "plugins:" + web("web") + web("web"),
         "",
         {"{FILE}:{LINE2:name: web}:5: error: plugins[1].name: duplicate instance name 'web' (give "
          "each "
          "instance of a plugin its own name:)"}},
        {"missing plugin file",
         head + "plugins:\n  - name: x\n    plugin: no-such-plugin\n",
         "",
         {"{FILE}:{LINE:name: x}:5: error: plugins[0]: plugin 'no-such-plugin': "
          "parley-no-such-plugin.so not found in plugin path [" +
          kTestPluginDir + ", " + kPluginDir + "]"}},
        {"missing plugin file given with file:",
         head + "plugins:\n  - name: x\n    plugin: x\n    file: /nonexistent/parley-x.so\n",
         "",
         {"{FILE}:{LINE:name: x}:5: error: plugins[0]: plugin 'x': file not found: "
          "/nonexistent/parley-x.so"}},
        {"wrong ABI major",
         head + "plugins:\n  - name: old\n    plugin: test-wrong-major\n",
         "",
         {"{FILE}:{LINE:name: old}:5: error: plugins[0]: plugin 'test-wrong-major' (" +
          kTestPluginDir +
          "/parley-test-wrong-major.so): no entry point parley_plugin_entry_v0 (it exports "
          "parley_plugin_entry_v7: built for ABI major 7, host provides " +
          std::to_string(PARLEY_ABI_MAJOR) + "." + std::to_string(PARLEY_ABI_MINOR) + ")"}},
        {"newer ABI minor",
         head + "plugins:\n  - name: new\n    plugin: test-newer-minor\n",
         "",
         {"{FILE}:{LINE:name: new}:5: error: plugins[0]: plugin 'test-newer-minor' "
          "(parley-test-newer-minor.so) built for ABI " +
          std::to_string(PARLEY_ABI_MAJOR) + "." + std::to_string(PARLEY_ABI_MINOR + 1) +
          ", host provides " + std::to_string(PARLEY_ABI_MAJOR) + "." +
          std::to_string(PARLEY_ABI_MINOR) + " (newer minor)"}},
        {"missing required function",
         head + "plugins:\n  - name: nostop\n    file: " + kTestPluginDir +
             "/parley-test-missing-fn.so\n    plugin: test-missing-fn\n",
         "",
         {"{FILE}:{LINE:name: nostop}:5: error: plugins[0]: plugin 'test-missing-fn': required "
          "function 'stop' missing"}},
        {"store that is not a store",
         head + "store: svc\n" + svc + "      greeting: hi\n",
         "",
         {"{FILE}:{LINE:store:}:8: error: store: instance 'svc' is not a store plugin"}},
        {"missing profile name",
         "state_dir: {STATE}\n",
         "",
         {"{FILE}:1:1: error: profile: missing required key 'profile'"}},
        {"misspelt plugins",
         head + "plugns:\n  - plugin: test-service\n",
         "",
         {"{FILE}:{LINE:plugns}:1: error: plugns: unknown key 'plugns'; did you mean 'plugins'?"}},
        {"malformed YAML (binary junk)",
         "",
         std::string(std::begin(kBinaryJunk), std::end(kBinaryJunk) - 1), // NULs included
         {"{FILE}:1:", "error: invalid YAML"}},
        {"malformed YAML (unclosed flow)",
         head + "limits: {max_rooms: 5\n",
         "",
         {"{FILE}:5:1: error: invalid YAML: end of map flow not found"}},
        {"empty file", "", "", {"{FILE}: error: a profile must be a YAML mapping"}},
        // Diagnostics quote bytes of the file; control bytes never reach the terminal raw.
        {"control bytes in a YAML error",
         head + "store: \"\\\x1b[31m\"\n",
         "",
         {"{FILE}:{LINE:store}:11: error: invalid YAML: unknown escape character: \\x1b"}},
        {"control bytes in a plugin name",
         head + "plugins:\n  - name: x\n    plugin: \"\\e[2J\"\n",
         "",
         {"{FILE}:{LINE:name: x}:5: error: plugins[0]: plugin '\\x1b[2J': "
          "parley-\\x1b[2J.so not found in plugin path"}},
    };
    for (auto& c : cases) {
        SCOPED_TRACE(c.name);
        fs::path p = dir() / "bad.yaml";
        std::string text = c.yaml.empty() ? c.raw : profile_text(c.yaml);
        spit(p, text);
        auto r = parleyd({"--check-config", p.string()});
        EXPECT_EQ(r.code, 1) << r.out << r.err;
        EXPECT_EQ(r.out, "");
        for (auto& e : c.expect)
            EXPECT_CONTAINS(r.err, expand_expectation(e, p.string(), text));
        EXPECT_CONTAINS(r.err, "parleyd: " + p.string() + ": configuration invalid");
        for (char c : r.err)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7f) {
                ADD_FAILURE() << "raw control byte " << int(c) << " in diagnostics:\n" << r.err;
                break;
            }
    }
}

TEST_F(KernelTest, CheckConfigReportsEveryPluginError) {
    auto p = write_profile("multi.yaml", R"(profile: kt-multi
state_dir: {STATE}
plugin_path: [{TESTPLUGINS}]
plugins:
  - name: svc
    plugin: test-service
    config:
      workers: 0
      mode: slow
  - name: gone
    plugin: no-such-plugin
  - name: web
    plugin: transport-ws
    config:
      port: -1
)");
    auto r = parleyd({"--check-config", p.string()});
    EXPECT_EQ(r.code, 1);
    const std::string f = p.string();
    EXPECT_CONTAINS(r.err, f +
                               ":8:16: error: plugins[0].config.workers: '0' is out of range; "
                               "must be between 1 and 64\n" +
                               f +
                               ":9:13: error: plugins[0].config.mode: 'slow' is not one of: "
                               "fast, safe, paranoid\n" +
                               f +
                               ":10:5: error: plugins[1]: plugin 'no-such-plugin': "
                               "parley-no-such-plugin.so not found");
    EXPECT_CONTAINS(r.err, f + ":15:13: error: plugins[2].config.port: '-1' is out of range; "
                               "must be between 0 and 65535\n");
}

TEST_F(KernelTest, CheckConfigReportsKernelKeyErrors) {
    auto p = write_profile("kernel.yaml", R"(profile: kt-kernel
state_dir: {STATE}
limits:
  max_rooms: 0
log:
  level: loud
drain:
  grace: forever
)");
    auto r = parleyd({"--check-config", p.string()});
    EXPECT_EQ(r.code, 1);
    const std::string f = p.string();
    EXPECT_CONTAINS(r.err, f + ":4:14: error: limits.max_rooms: '0' is out of range; must be "
                               "between 1 and 100000000\n");
    EXPECT_CONTAINS(r.err, f + ":6:10: error: log.level: 'loud' is not one of: trace, debug, "
                               "info, warn, error\n");
    EXPECT_CONTAINS(r.err, f + ":8:10: error: drain.grace: invalid duration 'forever'");
}

TEST_F(KernelTest, CheckConfigOnMissingFile) {
    auto missing = (dir() / "nope.yaml").string();
    auto r = parleyd({"--check-config", missing});
    EXPECT_EQ(r.code, 1);
    EXPECT_CONTAINS(r.err, missing + ": error: cannot open: No such file or directory");
}

TEST_F(KernelTest, DaemonRefusesBadProfileWithTheSameDiagnostic) {
    auto p = write_profile("bad.yaml", R"(profile: kt-bad
state_dir: {STATE}
plugin_path: [{TESTPLUGINS}]
plugins:
  - name: svc
    plugin: test-service
    config:
      workers: 1000
)");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code) << "parleyd kept running on a bad profile";
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(d.err(), p.string() +
                                 ":8:16: error: plugins[0].config.workers: '1000' is out of "
                                 "range; must be between 1 and 64");
    EXPECT_CONTAINS(d.err(), "parleyd: could not start profile " + p.string());
    EXPECT_FALSE(fs::exists(sock())) << "no control socket for a profile that never ran";
}

// ---------------------------------------------------------------------------------------------
// 2. Two instances of one plugin

TEST_F(KernelTest, TwoInstancesOfOnePlugin) {
    auto p = write_profile(
        "two.yaml", "profile: kt-two\nstate_dir: {STATE}\nplugins:" + web("web-a") + web("web-b"));
    Process& d = start_running(p);
    int a = port_of("web-a"), b = port_of("web-b");
    ASSERT_GT(a, 0);
    ASSERT_GT(b, 0);
    EXPECT_NE(a, b);
    for (int port : {a, b}) {
        auto r = http_get(port, "/healthz");
        ASSERT_TRUE(r) << "no answer on port " << port;
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->body, "ok");
    }
    EXPECT_CONTAINS(d.err(), "started 'web-a' (plugin transport-ws");
    EXPECT_CONTAINS(d.err(), "started 'web-b' (plugin transport-ws");
    EXPECT_CONTAINS(d.err(), "profile 'kt-two' running (2 plugin instances, state " +
                                 state().string() + ")");

    auto r = ctl_sock({"plugins", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->optValue<bool>("ok", false));
    auto arr = o->getArray("plugins");
    ASSERT_TRUE(arr);
    ASSERT_EQ(arr->size(), 2u) << r.out;
    std::vector<std::string> names;
    for (unsigned i = 0; i < arr->size(); ++i) {
        auto pl = arr->getObject(i);
        names.push_back(pl->optValue<std::string>("instance", ""));
        EXPECT_EQ(pl->optValue<std::string>("plugin", ""), "transport-ws");
        EXPECT_EQ(pl->optValue<std::string>("kind", ""), "transport");
        EXPECT_EQ(pl->optValue<std::string>("file", ""), "parley-transport-ws.so");
    }
    EXPECT_EQ(names, (std::vector<std::string>{"web-a", "web-b"}));

    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
}

// ---------------------------------------------------------------------------------------------
// 3. Reload (SIGHUP and `parley ctl reload`)

TEST_F(KernelTest, ReloadAppliesGoodProfilesAndKeepsRunningOnBadOnes) {
    auto p = write_profile("svc.yaml", service_profile("hi"));
    Process& d = start_running(p);
    ASSERT_TRUE(d.running());
    // Normalised values: sizes in bytes, durations in ms, defaults filled at every level.
    EXPECT_CONTAINS(d.err(), "test-service config: greeting=hi workers=8 verbose=true "
                             "buffer=65536 timeout=30000 mode=fast tags=[alpha,beta] "
                             "limits.max_items=10 limits.window=120000 routes=[/x:1,/y:5] "
                             "bind=local");
    EXPECT_CONTAINS(d.err(), R"("logger":"svc")");
    // The profile lists the transport first; it still starts last, so it never answers a client
    // (or /readyz) before the service it would route to runs.
    auto svc_started = d.err().find("started 'svc'"), web_started = d.err().find("started 'web'");
    ASSERT_NE(svc_started, std::string::npos) << d.err();
    ASSERT_NE(web_started, std::string::npos) << d.err();
    EXPECT_LT(svc_started, web_started) << d.err();
    int port = port_of("web");
    ASSERT_GT(port, 0);
    auto greet = [&] {
        auto r = http_get(port, "/test/greeting");
        return r && r->status == 200 ? r->body : std::string("<no answer>");
    };
    EXPECT_EQ(greet(), "hi\n");

    // A changed live value: SIGHUP applies it.
    spit(p, profile_text(service_profile("hello2")));
    d.signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_err("reloaded hello2")) << d.err();
    EXPECT_TRUE(d.wait_for_err("instance 'svc' reconfigured")) << d.err();
    EXPECT_EQ(greet(), "hello2\n");

    // A restart-only key: logged, the running config is kept whole.
    spit(p, profile_text(service_profile("hello-never", "8", "elsewhere")));
    d.signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_err("instance 'svc': bind need a restart; kept its running config"))
        << d.err();
    EXPECT_LACKS(d.err(), "reloaded hello-never");
    EXPECT_EQ(greet(), "hello2\n");

    // The plugin refuses the new values: it keeps the old ones.
    spit(p, profile_text(service_profile("refuse")));
    d.signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_err("instance 'svc' refused the new config: greeting 'refuse' is "
                               "refused"))
        << d.err();
    EXPECT_EQ(greet(), "hello2\n");

    // An invalid file: reload refused, the process keeps serving the running profile.
    std::string bad = profile_text(service_profile("hello-bad", "1000"));
    spit(p, bad);
    d.signal(SIGHUP);
    ASSERT_TRUE(d.wait_for_err("reload refused")) << d.err();
    std::string where = p.string() + ":" + std::to_string(line_of(bad, "workers:")) + ":16";
    EXPECT_CONTAINS(d.err(), "reload refused, keeping the running profile:\\n" + where +
                                 ": error: plugins[1].config.workers: '1000' is out of range");
    EXPECT_TRUE(d.running());
    auto st = ctl_sock({"status", "--json"});
    EXPECT_EQ(st.code, 0) << st.err;
    auto o = parse_object(st.out);
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->optValue<bool>("ok", false));
    EXPECT_EQ(o->optValue<std::string>("profile", ""), "kt-svc");
    EXPECT_EQ(greet(), "hello2\n");

    // The same through the control socket: exit 1 and the diagnostics on stderr.
    auto r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_CONTAINS(r.err, "error: reload refused, keeping the running profile:\n" + where +
                               ": error: plugins[1].config.workers: '1000' is out of range; "
                               "must be between 1 and 64\n");
    r = ctl_sock({"--json", "reload"});
    EXPECT_EQ(r.code, 1);
    o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_FALSE(o->optValue<bool>("ok", true));
    EXPECT_CONTAINS(o->optValue<std::string>("error", ""), where + ": error: plugins[1]");

    // Fixed again: `parley ctl reload` applies it and reports what changed.
    spit(p, profile_text(service_profile("hello3")));
    r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "reloaded:\ninstance 'svc' reconfigured\n");
    EXPECT_TRUE(d.wait_for_err("reloaded hello3"));
    EXPECT_EQ(greet(), "hello3\n");

    // Nothing changed: reload is a no-op.
    r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "reloaded\n");

    EXPECT_EQ(d.count_err("started 'svc'"), 1u) << "reload must not restart instances";
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
}

TEST_F(KernelTest, ReloadAddsAndRemovesInstances) {
    auto p =
        write_profile("grow.yaml", "profile: kt-grow\nstate_dir: {STATE}\nplugins:" + web("web-a"));
    Process& d = start_running(p);
    int a = port_of("web-a");
    ASSERT_GT(a, 0);

    spit(p, profile_text("profile: kt-grow\nstate_dir: {STATE}\nplugins:" + web("web-b")));
    auto r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "reloaded:\ninstance 'web-a' removed\ninstance 'web-b' added\n");
    int b = port_of("web-b");
    ASSERT_GT(b, 0);
    auto h = http_get(b, "/healthz");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    EXPECT_FALSE(http_get(a, "/healthz")) << "the removed instance still listens";

    r = ctl_sock({"plugins", "--json"});
    ASSERT_EQ(r.code, 0);
    auto o = parse_object(r.out);
    ASSERT_TRUE(o);
    auto arr = o->getArray("plugins");
    ASSERT_TRUE(arr);
    ASSERT_EQ(arr->size(), 1u);
    EXPECT_EQ(arr->getObject(0)->optValue<std::string>("instance", ""), "web-b");
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
}

// Room ids are one namespace per process: a link listener beside a raw one would let a raw
// client join a link room and send it anything. Mixing protocols needs an explicit opt-in.
TEST_F(KernelTest, ListenersOfTwoProtocolsNeedSharedRoomNames) {
    auto web_as = [](const std::string& name, const std::string& protocol, bool shared) {
        auto w = web(name);
        w.replace(w.find("protocol: raw"), 13, "protocol: " + protocol);
        if (shared) w += "      shared_room_names: true\n";
        return w;
    };
    auto mixed = write_profile("mixed.yaml", "profile: kt-mixed\nstate_dir: {STATE}\nplugins:" +
                                                 web_as("web-a", "raw", false) +
                                                 web_as("web-b", "link", true));
    Process& refused = start_daemon(mixed);
    auto code = refused.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(refused.err(), "plugin instance 'web-b' (transport-ws): start failed: listener "
                                   "'web-b' speaks link but listener 'web-a' in this process "
                                   "speaks raw: room ids are one namespace");

    auto opted = write_profile("opted.yaml", "profile: kt-opted\nstate_dir: {STATE}\nplugins:" +
                                                 web_as("web-a", "raw", true) +
                                                 web_as("web-b", "link", true));
    Process& both = start_running(opted);
    EXPECT_GT(port_of("web-a"), 0);
    EXPECT_GT(port_of("web-b"), 0);
    both.signal(SIGTERM);
    EXPECT_EQ(both.wait(8s), 0) << both.err();

    // Replacing a raw listener by a link one in a reload is no mix: the old one stops first.
    auto swap = write_profile("swap.yaml", "profile: kt-swap\nstate_dir: {STATE}\nplugins:" +
                                               web_as("web-a", "raw", false));
    Process& d = start_running(swap);
    spit(swap, profile_text("profile: kt-swap\nstate_dir: {STATE}\nplugins:" +
                            web_as("web-b", "link", false)));
    auto r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err << d.err();
    EXPECT_EQ(r.out, "reloaded:\ninstance 'web-a' removed\ninstance 'web-b' added\n");
    // Adding a raw listener beside it is refused, and the running profile stays.
    spit(swap, profile_text("profile: kt-swap\nstate_dir: {STATE}\nplugins:" +
                            web_as("web-b", "link", false) + web_as("web-c", "raw", false)));
    r = ctl_sock({"reload"});
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_CONTAINS(r.err + r.out, "listener 'web-c' speaks raw but listener 'web-b'");
    auto h = http_get(port_of("web-b"), "/healthz");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
}

TEST_F(KernelTest, StoppedInstanceLosesTheRoomBridgeItForgot) {
    auto leak = [](const std::string& name) {
        return "  - name: " + name + "\n    plugin: test-bridge-leak\n";
    };
    auto head = std::string("profile: kt-bridge\nstate_dir: {STATE}\n"
                            "plugin_path: [{TESTPLUGINS}]\nplugins:") +
                web("web");
    auto p = write_profile("bridge.yaml", head + leak("leak-1"));
    Process& d = start_running(p);
    int port = port_of("web");
    ASSERT_GT(port, 0);
    WsClient first;
    ASSERT_TRUE(first.connect(port, "/ws/room")) << first.head();

    // leak-1 goes without removing its bridge; leak-2 can only start if the kernel dropped it.
    spit(p, profile_text(head + leak("leak-2")));
    auto r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "reloaded:\ninstance 'leak-1' removed\ninstance 'leak-2' added\n");
    // Room traffic now reaches leak-2's hooks, never the removed leak-1's.
    WsClient second;
    ASSERT_TRUE(second.connect(port, "/ws/room")) << second.head();
    ASSERT_TRUE(second.send_text("hi"));
    auto f = first.read_frame();
    ASSERT_TRUE(f) << d.err();
    EXPECT_EQ(f->payload, "hi");
    // And with no bridge plugin left at all, nothing calls into a removed one.
    spit(p, profile_text(head));
    r = ctl_sock({"reload"});
    EXPECT_EQ(r.code, 0) << r.err;
    WsClient third;
    ASSERT_TRUE(third.connect(port, "/ws/room")) << third.head();
    ASSERT_TRUE(third.send_text("again"));
    f = first.read_frame();
    ASSERT_TRUE(f) << d.err();
    EXPECT_EQ(f->payload, "again");
    for (auto* c : {&first, &second, &third})
        c->send_frame(0x8, std::string("\x03\xe8", 2));
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
    EXPECT_LACKS(d.err(), "called on a removed instance");
}

// ---------------------------------------------------------------------------------------------
// 4. Control socket and `parley ctl`

TEST_F(KernelTest, ControlSocketCommands) {
    std::string name = "kt-ctl-" + std::to_string(getpid());
    auto p = write_profile(name + ".yaml", "profile: " + name +
                                               "\nstate_dir: {STATE}\nplugin_path: "
                                               "[{TESTPLUGINS}]\nplugins:\n  - name: svc\n"
                                               "    plugin: test-service\n");
    Process& d = start_running(p);

    struct stat sst {};
    ASSERT_EQ(stat(sock().c_str(), &sst), 0);
    EXPECT_TRUE(S_ISSOCK(sst.st_mode));
    EXPECT_EQ(sst.st_mode & 0777, 0600u) << "the control socket is for operators only";

    auto r = ctl_sock({"status"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "profile      " + name + "\n");
    EXPECT_CONTAINS(r.out, "pid          " + std::to_string(d.pid()) + "\n");
    EXPECT_CONTAINS(r.out, "state        running\n");
    EXPECT_CONTAINS(r.out, "connections  0\n");
    EXPECT_CONTAINS(r.out, "INSTANCE");
    EXPECT_CONTAINS(r.out, "svc              test-service       0.0.1      service");

    r = ctl_sock({"status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    auto o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->optValue<bool>("ok", false));
    EXPECT_EQ(o->optValue<std::string>("profile", ""), name);
    EXPECT_EQ(o->optValue<int>("pid", 0), d.pid());
    EXPECT_FALSE(o->optValue<bool>("draining", true));
    EXPECT_EQ(o->optValue<std::string>("abi", ""),
              std::to_string(PARLEY_ABI_MAJOR) + "." + std::to_string(PARLEY_ABI_MINOR));
    ASSERT_TRUE(o->getArray("plugins"));
    EXPECT_EQ(o->getArray("plugins")->size(), 1u);

    r = ctl_sock({"plugins"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
              "INSTANCE         PLUGIN             VERSION    KIND       ABI");
    EXPECT_CONTAINS(r.out, "svc              test-service       0.0.1      service    " +
                               std::to_string(PARLEY_ABI_MAJOR) + "." +
                               std::to_string(PARLEY_ABI_MINOR));
    r = ctl_sock({"plugins", "--json"});
    EXPECT_EQ(r.code, 0);
    o = parse_object(r.out);
    ASSERT_TRUE(o);
    ASSERT_TRUE(o->getArray("plugins"));
    EXPECT_EQ(o->getArray("plugins")->getObject(0)->optValue<std::string>("plugin", ""),
              "test-service");

    r = ctl_sock({"rooms"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "rooms        0\nconnections  0\n");
    r = ctl_sock({"rooms", "--json"});
    EXPECT_EQ(r.code, 0);
    o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->optValue<int>("rooms", -1), 0);
    EXPECT_EQ(o->optValue<int>("connections", -1), 0);

    r = ctl_sock({"log-level"});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, "log level info\n");
    r = ctl_sock({"log-level", "debug"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "log level debug\n");
    EXPECT_TRUE(d.wait_for_err("log level set to debug"));
    r = ctl_sock({"log-level"});
    EXPECT_EQ(r.out, "log level debug\n");
    r = ctl_sock({"--json", "log-level"});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out, "{\"ok\":true,\"level\":\"debug\"}\n");
    // Debug is on now: the control server logs each command.
    ctl_sock({"rooms"});
    EXPECT_TRUE(d.wait_for_err(R"("level":"debug","logger":"parleyd","msg":"control: rooms")"));
    // Levels read back with the names they are set with.
    r = ctl_sock({"log-level", "warn"});
    EXPECT_EQ(r.out, "log level warn\n");
    r = ctl_sock({"log-level"});
    EXPECT_EQ(r.out, "log level warn\n");
    r = ctl_sock({"log-level", "loud"});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, "error: unknown level 'loud'; use trace, debug, info, warn or error\n");

    // Usage errors: exit 2.
    r = ctl_sock({"frobnicate"});
    EXPECT_EQ(r.code, 2);
    EXPECT_CONTAINS(r.err, "parley ctl: unknown command 'frobnicate'");
    EXPECT_CONTAINS(r.err, "usage: parley ctl");
    r = ctl({"status"});
    EXPECT_EQ(r.code, 2);
    EXPECT_CONTAINS(r.err, "usage: parley ctl");

    // --profile NAME: found in $PARLEY_CONFIG_DIR, socket from its state_dir.
    Env env{{"PARLEY_CONFIG_DIR=" + dir().string()}, dir().string()};
    r = ctl({"--profile", name, "status"}, env);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "profile      " + name + "\n");
    r = ctl({"--profile", p.string(), "--json", "status"}, env);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_CONTAINS(r.out, "\"profile\":\"" + name + "\"");
    r = ctl({"--profile", "kt-no-such-profile", "status"}, env);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "parley ctl: no profile 'kt-no-such-profile' in ./etc, $PARLEY_CONFIG_DIR "
                     "or /etc/parley\n");

    // No socket: exit 3.
    auto none = (dir() / "none.sock").string();
    r = ctl({"--socket", none, "status"});
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.err, "parley ctl: no control socket at " + none + " (is parleyd running?)\n");

    // After a clean stop the socket is gone and ctl says so.
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait(8s), 0) << d.err();
    EXPECT_FALSE(fs::exists(sock()));
    r = ctl({"--profile", name, "status"}, env);
    EXPECT_EQ(r.code, 3);
    EXPECT_CONTAINS(r.err, "parley ctl: no control socket at " + sock());
}

// ---------------------------------------------------------------------------------------------
// 5. Drain: SIGTERM and control `drain`

class DrainTest : public KernelTest {
  protected:
    // Starts a raw transport with drain.grace 3s, connects a WebSocket client and a keep-alive
    // HTTP client, triggers the drain with `trigger`, then checks /readyz, the 1001 close and
    // the exit within grace + 2 s. The grace is long enough that a slow `parley ctl` (under
    // TSan on a loaded machine it took 1.5 s to start) still leaves the window to look in.
    void run_drain(const std::function<void(Process&)>& trigger) {
        auto p = write_profile("drain.yaml", "profile: kt-drain\nstate_dir: {STATE}\n"
                                             "drain:\n  grace: 3s\nplugins:" +
                                                 web("web"));
        Process& d = start_running(p);
        int port = port_of("web");
        ASSERT_GT(port, 0);

        WsClient ws;
        ASSERT_TRUE(ws.connect(port, "/ws/echo")) << ws.head();
        ASSERT_TRUE(ws.send_text("ping?"));
        auto echo = ws.read_frame();
        ASSERT_TRUE(echo);
        EXPECT_EQ(echo->opcode, 0x1);
        EXPECT_EQ(echo->payload, "ping?");

        Fd http(tcp_connect(port));
        ASSERT_GE(http.fd, 0);
        std::string buf;
        auto ready = http_get_on(http.fd, buf, "/readyz");
        ASSERT_TRUE(ready);
        EXPECT_EQ(ready->status, 200);
        EXPECT_EQ(ready->body, "ready\n");

        auto t0 = Clock::now();
        trigger(d);

        // Within the grace period: not ready, on the connection that was already open.
        int status = 0;
        while (Clock::now() - t0 < 2950ms) {
            auto r = http_get_on(http.fd, buf, "/readyz");
            ASSERT_TRUE(r) << "keep-alive connection closed during the grace period";
            status = r->status;
            if (status == 503) {
                EXPECT_EQ(r->body, "draining\n");
                break;
            }
            std::this_thread::sleep_for(20ms);
        }
        EXPECT_EQ(status, 503) << "/readyz did not turn 503 while draining";
        // New clients are refused: the listener is closed at once.
        bool refused = false;
        while (!refused && Clock::now() - t0 < 2900ms) {
            Fd c(tcp_connect(port));
            refused = c.fd < 0;
            if (!refused) std::this_thread::sleep_for(20ms);
        }
        EXPECT_TRUE(refused) << "still accepting connections while draining";
        EXPECT_TRUE(d.running());

        // The WebSocket is closed with 1001 once the grace period is over.
        ws.set_read_timeout(6s);
        int code = ws.read_close_code();
        auto closed_after = Clock::now() - t0;
        EXPECT_EQ(code, 1001);
        EXPECT_GE(closed_after, 2900ms) << "closed before the grace period ended";
        ws.send_frame(0x8, std::string("\x03\xe9", 2)); // echo the close, as clients do

        auto exit = d.wait(5s - (Clock::now() - t0));
        ASSERT_TRUE(exit) << "parleyd did not exit within grace + 2 s; log:\n" << d.err();
        EXPECT_EQ(*exit, 0);
        EXPECT_LE(Clock::now() - t0, 5s);
        std::string log = d.err();
        EXPECT_CONTAINS(log, "draining: refusing new clients, closing open ones within 3000 ms");
        EXPECT_CONTAINS(log, "drained; exiting");
        EXPECT_FALSE(fs::exists(sock())) << "control socket left behind";
    }
};

TEST_F(DrainTest, SigtermDrainsThenExits) {
    run_drain([](Process& d) { d.signal(SIGTERM); });
}

TEST_F(DrainTest, ControlDrainDrainsThenExits) {
    run_drain([this](Process&) {
        auto r = ctl_sock({"drain"});
        EXPECT_EQ(r.code, 0) << r.err;
        EXPECT_EQ(r.out, "draining\n");
    });
}

TEST_F(KernelTest, DrainWithoutClientsExitsAtOnce) {
    auto p = write_profile("quick.yaml", "profile: kt-quick\nstate_dir: {STATE}\n"
                                         "drain:\n  grace: 10s\nplugins:" +
                                             web("web"));
    Process& d = start_running(p);
    auto t0 = Clock::now();
    d.signal(SIGINT);
    EXPECT_EQ(d.wait(3s), 0) << d.err();
    EXPECT_LT(Clock::now() - t0, 2s) << "waited out the grace period with nobody connected";
}

// ---------------------------------------------------------------------------------------------
// 6. Start failures

TEST_F(KernelTest, StartFailureExitsOneNamingInstanceAndReason) {
    auto p = write_profile("fail.yaml", "profile: kt-fail\nstate_dir: {STATE}\n"
                                        "plugin_path: [{TESTPLUGINS}]\nplugins:" +
                                            web("web") +
                                            "  - name: doomed\n    plugin: test-fail-start\n"
                                            "  - name: history\n    plugin: store-memory\n");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code) << "parleyd kept running after a failed start";
    EXPECT_EQ(*code, 1);
    std::string log = d.err();
    // Stores start first and are stopped again; the transport, started last, never opened.
    EXPECT_CONTAINS(log, "started 'history'");
    EXPECT_LACKS(log, "started 'web'");
    EXPECT_CONTAINS(log, "plugin instance 'doomed' (test-fail-start): start failed: boom: port "
                         "taken");
    EXPECT_CONTAINS(log, "parleyd: could not start profile " + p.string());
    EXPECT_LACKS(log, "running (");
    EXPECT_FALSE(fs::exists(sock())) << "control socket left behind";
}

TEST_F(KernelTest, CommandNamesAreUniquePerProcess) {
    // Both instances register the command `test-ping`: the second one cannot start.
    auto p = write_profile("dup.yaml", "profile: kt-dup\nstate_dir: {STATE}\n"
                                       "plugin_path: [{TESTPLUGINS}]\nplugins:\n"
                                       "  - name: svc-a\n    plugin: test-service\n"
                                       "  - name: svc-b\n    plugin: test-service\n");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(d.err(), "started 'svc-a'");
    EXPECT_CONTAINS(d.err(), "plugin instance 'svc-b' (test-service): start failed: command "
                             "'test-ping' is already registered");
}

TEST_F(KernelTest, StartFailureOnAPortInUse) {
    // A port held by someone else (no SO_REUSEPORT): the transport cannot listen.
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    Fd hold(s);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(s, 1), 0);
    socklen_t len = sizeof a;
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    int port = ntohs(a.sin_port);

    auto p = write_profile("busy.yaml", "profile: kt-busy\nstate_dir: {STATE}\nplugins:\n"
                                        "  - name: web\n    plugin: transport-ws\n    config:\n"
                                        "      port: " +
                                            std::to_string(port) +
                                            "\n      protocol: raw\n      threads: 1\n");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(d.err(), "plugin instance 'web' (transport-ws): start failed: cannot listen "
                             "on 127.0.0.1:" +
                                 std::to_string(port) + ": Address already in use");
}

TEST_F(KernelTest, UnusableStateDirIsAStartFailure) {
    // Below a regular file: no directory can be made there, whoever runs the test.
    spit(dir() / "file", "");
    auto p = write_profile("nodir.yaml", "profile: kt-nodir\nstate_dir: {DIR}/file/state\n");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(d.err(), "state directory '" + (dir() / "file/state").string() +
                                 "' is not writable: Not a directory");
    EXPECT_CONTAINS(d.err(), "parleyd: could not start profile " + p.string());
}

// ---------------------------------------------------------------------------------------------
// 7. One control socket per state_dir

TEST_F(KernelTest, SecondDaemonOnTheSameStateDirIsRefused) {
    const std::string svc = "plugin_path: [{TESTPLUGINS}]\nplugins:\n  - name: svc\n"
                            "    plugin: test-service\n";
    auto pa = write_profile("a.yaml", "profile: kt-a\nstate_dir: {STATE}\n" + svc);
    auto pb = write_profile("b.yaml", "profile: kt-b\nstate_dir: {STATE}\n" + svc);
    Process& a = start_running(pa, "a.log");

    Process& b = start_daemon(pb, "b.log");
    auto code = b.wait(10s);
    ASSERT_TRUE(code) << "the second parleyd kept running";
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(b.err(), "control socket: another parleyd already serves control socket " +
                                 sock() +
                                 " (two profiles with the same state_dir or control.socket?)");
    EXPECT_CONTAINS(b.err(), "parleyd: could not start profile " + pb.string());
    EXPECT_LACKS(b.err(), "started 'svc'");

    // The first one is untouched and still owns the socket.
    EXPECT_TRUE(a.running());
    auto r = ctl_sock({"status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    auto o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->optValue<std::string>("profile", ""), "kt-a");

    // A crashed run leaves a stale socket file behind; the next start replaces it.
    a.crash();
    ASSERT_TRUE(fs::exists(sock()));
    Process& c = start_running(pb, "c.log");
    EXPECT_TRUE(c.running()) << c.err();
    r = ctl_sock({"status", "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    o = parse_object(r.out);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->optValue<std::string>("profile", ""), "kt-b");
    c.signal(SIGTERM);
    EXPECT_EQ(c.wait(8s), 0) << c.err();
}

TEST_F(KernelTest, ControlSocketPathTooLong) {
    std::string longdir = (dir() / std::string(100, 'd')).string();
    auto p = write_profile("long.yaml", "profile: kt-long\nstate_dir: " + longdir + "\n");
    Process& d = start_daemon(p);
    auto code = d.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_CONTAINS(d.err(), "control socket: socket path too long for ipc");
}

} // namespace
