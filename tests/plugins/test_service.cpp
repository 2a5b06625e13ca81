// test-service: a SERVICE plugin for the kernel integration tests (tests/integration/kernel_test).
//
//  - its schema uses every config type, and start() logs the normalised values at info in one
//    line ("test-service config: greeting=... buffer=65536 timeout=30000 ..."), so the tests
//    can check how the kernel normalises sizes, durations, enums, lists and maps;
//  - reload() logs "reloaded <greeting>", or refuses the greeting "refuse" with set_error;
//  - registers the command `test-ping` and the HTTP route GET /test/greeting (answers the
//    greeting, so a test can see a reload take effect through a transport).
#include <parley/sdk.hpp>

#include <mutex>
#include <string>

namespace {

using namespace parley::sdk;

constexpr parley_t_config_key kLimitKeys[] = {
    key_range("max_items", PARLEY_CFG_INT, "10", 1, 1000, "Items kept."),
    key_range("window", PARLEY_CFG_DURATION, "1m", 0, 3600 * 1000, "Window of the limit."),
};

constexpr parley_t_config_key kRouteKeys[] = {
    key("path", PARLEY_CFG_STRING, nullptr, "Route path.", PARLEY_CFG_REQUIRED),
    key_range("weight", PARLEY_CFG_INT, "1", 0, 100, "Route weight."),
};

constexpr parley_t_config_key kConfig[] = {
    key("greeting", PARLEY_CFG_STRING, "hello", "Answer of GET /test/greeting."),
    key_range("workers", PARLEY_CFG_INT, "4", 1, 64, "Worker count."),
    key("verbose", PARLEY_CFG_BOOL, "false", "Chatty logging."),
    key_range("buffer", PARLEY_CFG_SIZE, "64K", 1024, int64_t(1) << 30, "Buffer size."),
    key_range("timeout", PARLEY_CFG_DURATION, "30s", 100, 3600 * 1000, "Timeout."),
    key_enum("mode", "fast|safe|paranoid", "safe", "Mode."),
    key_list("tags", PARLEY_CFG_STRING, "Free-form tags."),
    key_map("limits", kLimitKeys, "Limits."),
    key_list_of_maps("routes", kRouteKeys, "Routes."),
    key("bind", PARLEY_CFG_STRING, "local", "Changing it needs a restart.", PARLEY_CFG_RESTART),
};

class TestService final : public Plugin {
  public:
    explicit TestService(Host h) : Plugin(h), greeting_(h.config_string("greeting")) {}

    parley_t_status start() override {
        const parley_t_host* t = host().table();
        if (t->command_register(host().ctx(), bytes("test-ping"), &on_command, this) != PARLEY_OK) {
            host().set_error("command 'test-ping' is already registered");
            return PARLEY_ERR_EXISTS;
        }
        if (t->http_route(host().ctx(), bytes("GET"), bytes("/test/greeting"), &on_http, this) !=
            PARLEY_OK) {
            host().set_error("route GET /test/greeting is already registered");
            return PARLEY_ERR_EXISTS;
        }
        log_config("test-service config");
        return PARLEY_OK;
    }

    parley_t_status reload() override {
        std::string g = host().config_string("greeting");
        if (g == "refuse") {
            host().set_error("greeting 'refuse' is refused");
            return PARLEY_ERR;
        }
        {
            std::lock_guard lk(mu_);
            greeting_ = g;
        }
        host().logf(PARLEY_LOG_INFO, "reloaded %s", g.c_str());
        log_config("test-service config");
        return PARLEY_OK;
    }

  private:
    void log_config(const char* what) const {
        const Host& h = host();
        std::string tags;
        for (size_t i = 0, n = h.config_count("tags"); i < n; ++i)
            tags += (i ? "," : "") + h.config_string("tags." + std::to_string(i));
        std::string routes;
        for (size_t i = 0, n = h.config_count("routes"); i < n; ++i) {
            std::string p = "routes." + std::to_string(i);
            routes += (i ? "," : "") + h.config_string(p + ".path") + ":" +
                      std::to_string(h.config_int(p + ".weight"));
        }
        h.logf(PARLEY_LOG_INFO,
               "%s: greeting=%s workers=%lld verbose=%s buffer=%lld timeout=%lld mode=%s "
               "tags=[%s] limits.max_items=%lld limits.window=%lld routes=[%s] bind=%s",
               what, h.config_string("greeting").c_str(), (long long)h.config_int("workers"),
               h.config_bool("verbose") ? "true" : "false", (long long)h.config_int("buffer"),
               (long long)h.config_int("timeout"), h.config_string("mode").c_str(), tags.c_str(),
               (long long)h.config_int("limits.max_items"),
               (long long)h.config_int("limits.window"), routes.c_str(),
               h.config_string("bind").c_str());
    }

    std::string greeting() const {
        std::lock_guard lk(mu_);
        return greeting_;
    }

    static parley_t_status on_command(void*, const parley_t_command_call*) noexcept {
        return PARLEY_OK;
    }

    static void on_http(void* user, const parley_t_http_request*,
                        parley_t_http_response_hptr resp) noexcept {
        auto* self = static_cast<TestService*>(user);
        std::string body;
        try {
            body = self->greeting() + "\n";
        } catch (...) {
        }
        self->host().table()->http_respond(resp, 200, bytes("text/plain"), bytes(""), bytes(body));
    }

    mutable std::mutex mu_;
    std::string greeting_;
};

} // namespace

PARLEY_PLUGIN(TestService, "test-service", PARLEY_KIND_SERVICE, "0.0.1",
              "Kernel test plugin: every config type, reload, a command and a route.", kConfig)
