// parley-hello: the smallest useful service plugin, built out of tree against the installed SDK.
//
//  - command `hello` on the command bus: replies to the calling connection with
//    {"type":"hello","text":"<greeting>"}
//  - HTTP route GET /hello: 200 text/plain "<greeting>\n"
//  - metric parley_hello_calls_total counts both; with `interval` > 0 a timer logs the count.
#include <parley/sdk.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>

namespace {

using namespace parley::sdk;

constexpr parley_t_config_key kConfig[] = {
    key("greeting", PARLEY_CFG_STRING, "hello", "Text of every reply."),
    key_range("interval", PARLEY_CFG_DURATION, "0", 0, 24LL * 3600 * 1000,
              "Log the call count this often; 0 turns the timer off."),
};

// JSON string escaping for the greeting (it comes from the profile, so it may hold quotes).
std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20) {
                static constexpr char hex[] = "0123456789abcdef";
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += char(c);
            }
        }
    }
    return out;
}

class Hello final : public Plugin {
  public:
    explicit Hello(Host h)
        : Plugin(h), greeting_(h.config_string("greeting", "hello")),
          interval_ms_(uint64_t(h.config_int("interval"))),
          calls_metric_(
              h.counter("parley_hello_calls_total", "hello command and GET /hello calls.")) {}

    parley_t_status start() override {
        const parley_t_host* t = host().table();
        if (t->command_register(host().ctx(), bytes("hello"), &on_command, this) != PARLEY_OK) {
            host().set_error("command 'hello' is already registered by another instance");
            return PARLEY_ERR_EXISTS;
        }
        if (t->http_route(host().ctx(), bytes("GET"), bytes("/hello"), &on_http, this) !=
            PARLEY_OK) {
            host().set_error("route GET /hello is already registered by another instance");
            return PARLEY_ERR_EXISTS;
        }
        arm_timer();
        host().logf(PARLEY_LOG_INFO, "hello started (interval %llu ms)",
                    static_cast<unsigned long long>(interval_ms_));
        return PARLEY_OK;
    }

    void stop() override { disarm_timer(); }

    // Both keys apply live: the greeting is swapped under the lock, the timer re-armed.
    parley_t_status reload() override {
        {
            std::lock_guard lk(mu_);
            greeting_ = host().config_string("greeting", "hello");
        }
        disarm_timer();
        interval_ms_ = uint64_t(host().config_int("interval"));
        arm_timer();
        return PARLEY_OK;
    }

  private:
    std::string greeting() const {
        std::lock_guard lk(mu_);
        return greeting_;
    }

    void arm_timer() {
        if (interval_ms_)
            timer_ = host().table()->timer_start(host().ctx(), interval_ms_, interval_ms_,
                                                 &on_timer, this);
    }
    void disarm_timer() {
        if (timer_) host().table()->timer_cancel(host().ctx(), timer_);
        timer_ = 0;
    }

    // Handlers are C callbacks: nothing may throw out of them, so each catches everything.
    static parley_t_status on_command(void* user, const parley_t_command_call* call) noexcept {
        auto* self = static_cast<Hello*>(user);
        try {
            self->count_call();
            if (call->conn == 0) return PARLEY_ERR_INVALID; // no connection to reply to
            Frame f = self->host().frame_of(R"({"type":"hello","text":")" +
                                            json_escape(self->greeting()) + R"("})");
            if (!f) return PARLEY_ERR;
            return self->host().table()->send_to(self->host().ctx(), call->conn, f.get());
        } catch (...) {
            return PARLEY_ERR;
        }
    }

    static void on_http(void* user, const parley_t_http_request*,
                        parley_t_http_response_hptr resp) noexcept {
        auto* self = static_cast<Hello*>(user);
        const parley_t_host* t = self->host().table();
        try {
            self->count_call();
            std::string body = self->greeting() + "\n";
            t->http_respond(resp, 200, bytes("text/plain; charset=utf-8"), bytes(""), bytes(body));
        } catch (...) {
            t->http_respond(resp, 500, bytes("text/plain"), bytes(""), bytes("error\n"));
        }
    }

    static void on_timer(void* user) noexcept {
        auto* self = static_cast<Hello*>(user);
        self->host().logf(PARLEY_LOG_INFO, "hello: %lld calls so far",
                          static_cast<long long>(self->calls_.load()));
    }

    // Handlers may run on several transport threads at once: the tally is atomic.
    void count_call() {
        calls_.fetch_add(1, std::memory_order_relaxed);
        host().add(calls_metric_);
    }

    mutable std::mutex mu_;
    std::string greeting_;
    uint64_t interval_ms_ = 0;
    uint64_t timer_ = 0;
    parley_t_metric_hptr calls_metric_ = nullptr;
    std::atomic<int64_t> calls_{0}; // the metric is write-only for plugins; this feeds the log
};

} // namespace

PARLEY_PLUGIN(Hello, "hello", PARLEY_KIND_SERVICE, "0.1.0",
              "Example service: a hello command, GET /hello and a call counter.", kConfig)
