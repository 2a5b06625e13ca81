#include "log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <unistd.h>
#include <unordered_map>

namespace parley::kernel {

namespace {

// JSON lines with proper escaping; spdlog's pattern formatter cannot escape message text.
class JsonFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(msg.time.time_since_epoch());
        auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()) -
            std::chrono::duration_cast<std::chrono::milliseconds>(secs);
        std::time_t t = secs.count();
        std::tm tm{};
        gmtime_r(&t, &tm);
        char ts[96];
        std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms.count()));
        append(dest, "{\"ts\":\"");
        append(dest, ts);
        append(dest, "\",\"level\":\"");
        auto lvl = spdlog::level::to_string_view(msg.level);
        dest.append(lvl.data(), lvl.data() + lvl.size());
        append(dest, "\",\"logger\":\"");
        escape(dest, {msg.logger_name.data(), msg.logger_name.size()});
        append(dest, "\",\"msg\":\"");
        escape(dest, {msg.payload.data(), msg.payload.size()});
        append(dest, "\"}\n");
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }

  private:
    static void append(spdlog::memory_buf_t& d, std::string_view s) {
        d.append(s.data(), s.data() + s.size());
    }
    static void escape(spdlog::memory_buf_t& d, std::string_view s) {
        for (unsigned char c : s) {
            switch (c) {
            case '"':
                append(d, "\\\"");
                break;
            case '\\':
                append(d, "\\\\");
                break;
            case '\n':
                append(d, "\\n");
                break;
            case '\r':
                append(d, "\\r");
                break;
            case '\t':
                append(d, "\\t");
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    append(d, buf);
                } else {
                    d.push_back(char(c));
                }
            }
        }
    }
};

std::mutex g_mu;
spdlog::sink_ptr g_sink;
std::unordered_map<std::string, std::shared_ptr<spdlog::logger>> g_loggers;
spdlog::level::level_enum g_level = spdlog::level::info;

} // namespace

void log_init(LogFormat format, spdlog::level::level_enum level) {
    std::lock_guard lk(g_mu);
    bool human = format == LogFormat::Human || (format == LogFormat::Auto && isatty(2));
    g_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(
        human ? spdlog::color_mode::automatic : spdlog::color_mode::never);
    if (human)
        g_sink->set_formatter(
            std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v"));
    else
        g_sink->set_formatter(std::make_unique<JsonFormatter>());
    g_level = level;
    for (auto& [_, l] : g_loggers) {
        l->sinks().clear();
        l->sinks().push_back(g_sink);
        l->set_level(level);
    }
}

std::shared_ptr<spdlog::logger> logger_for(const std::string& name) {
    std::lock_guard lk(g_mu);
    auto& l = g_loggers[name];
    if (!l) {
        if (!g_sink) g_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
        l = std::make_shared<spdlog::logger>(name, g_sink);
        l->set_level(g_level);
        l->flush_on(spdlog::level::info); // operators tail these; do not sit on buffered lines
    }
    return l;
}

void log_set_level(spdlog::level::level_enum level) {
    std::lock_guard lk(g_mu);
    g_level = level;
    for (auto& [_, l] : g_loggers)
        l->set_level(level);
}

spdlog::level::level_enum log_level() {
    std::lock_guard lk(g_mu);
    return g_level;
}

spdlog::logger& klog() {
    static auto l = logger_for("parleyd");
    return *l;
}

} // namespace parley::kernel
