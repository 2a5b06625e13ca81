// parley SDK testing: FakeHost, an in-process parley_t_host, so a plugin can be unit-tested
// without parleyd. Header-only; no threads of its own (timers run from advance(), work runs
// inline by default), deterministic, and strict: misuse of the ABI (double frame release, a
// second http_respond, host calls after destroy, exceptions crossing a hook) is recorded in
// violations() instead of crashing later.
//
//   parley::sdk::testing::FakeHost fake;
//   fake.set_config("greeting", "hi");
//   auto inst = fake.load_entry(&parley_plugin_entry_v0);  // or fake.load(&descriptor)
//   ASSERT_EQ(inst.up(), PARLEY_OK);                       // create + start
//   auto conn = fake.connect();
//   fake.call("hello", conn);
//   EXPECT_EQ(fake.deliveries().at(0).text, R"({"type":"hello","text":"hi"})");
//
// Each host function is a static trampoline. Its parley_t_host_ctx_hptr points at the calling
// instance's record (detail::Instance: the FakeHost*, instance name, config overlay, copied
// descriptor), so one FakeHost can run several instances and knows which one calls.
//
// Lifetimes: declare the FakeHost before any FakeInstance so instances are torn down first.
// Every host function may be called from any thread (plugin threads included); the FakeHost
// never holds its own locks while it calls back into a plugin.
#pragma once

#include <parley/plugin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<dlfcn.h>)
#include <dlfcn.h>
#define PARLEY_FAKE_HAS_DLOPEN 1
#endif

namespace parley::sdk::testing {

// ---- records the tests read ----

struct LogLine {
    parley_t_log_level level;
    std::string instance;
    std::string text;
};

// One frame handed to one connection (by publish, publish_persist, send_to, send_to_member).
// via_hook: the connection belongs to a transport instance whose `deliver` hook got the frame.
struct Delivery {
    parley_t_conn_id conn;
    uint64_t tag;
    std::string text;
    uint32_t flags;
    bool via_hook;
};

struct CloseRequest {
    parley_t_conn_id conn;
    uint16_t code;
    std::string reason;
};

struct HttpResult {
    int status = 0; // 0: the handler has not answered (yet)
    std::string content_type;
    std::string headers;
    std::string body;
    bool routed = false;   // a registered route took the request
    bool answered = false; // http_respond was called before http() returned
};

struct HistoryRecord {
    uint64_t seq;
    std::string record;
};

struct BlobRecord {
    std::string id;
    std::string recipient;
    std::string data;
    int64_t expires_at_ms;
};

struct RoomMember {
    parley_t_conn_id conn;
    std::string label;
    uint64_t join_seq;
};

enum class State { Refused, Loaded, Created, Started, Stopped, Destroyed, Failed };

class FakeHost;
class FakeInstance;

namespace detail {

inline std::string_view sv(parley_t_bytes b) {
    return {b.ptr ? b.ptr : "", b.len};
}
inline parley_t_bytes by(std::string_view s) {
    return {s.data(), s.size()};
}

struct FrameBlock;
// Standard-layout with the public frame first, so the parley_t_frame* that frame_retain and
// frame_release receive (they carry no ctx) converts back to its block.
struct FrameHeader {
    parley_t_frame pub;
    FrameBlock* block;
};
struct FrameBlock {
    FrameHeader hdr{};
    std::atomic<uint32_t> refs{1};
    FakeHost* owner = nullptr;
    std::unique_ptr<char[]> data;
};

struct Response;
struct ResponseHeader {
    parley_t_http_response pub;
    Response* self;
};
struct Response {
    ResponseHeader hdr{};
    FakeHost* owner = nullptr;
    HttpResult result;
    int answers = 0;
};

struct Metric {
    FakeHost* owner = nullptr;
    parley_t_metric_kind kind{};
    std::string name;
    std::string help;
    std::atomic<int64_t> value{0};
};

// A config value as the test set it; typed against the caller's schema at config_get.
struct RawConfig {
    enum Kind { Int, Bool, String, Count } kind = Int;
    int64_t i = 0;
    std::string s;
};
using ConfigMap = std::map<std::string, RawConfig, std::less<>>;

// What a parley_t_host_ctx_hptr points at: one per instance, so the host knows who calls.
struct Instance {
    FakeHost* host = nullptr;
    std::string name;
    parley_t_descriptor desc{};  // zero-extended copy of the plugin's descriptor
    parley_t_plugin_vtable vt{}; // zero-extended copy of its vtable
    parley_t_instance_pptr inst = nullptr;
    State state = State::Refused;
    std::string load_error;
    std::string error; // last set_error
    bool error_set = false;
    ConfigMap config; // per-instance overlay on FakeHost's config
};

inline bool valid_plugin_name(const char* s) {
    if (!s || !*s || std::strlen(s) > 64) return false;
    for (const char* p = s; *p; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return false;
    return true;
}

inline bool valid_metric_name(std::string_view n) {
    size_t brace = n.find('{');
    std::string_view base = n.substr(0, brace);
    if (base.empty()) return false;
    for (size_t i = 0; i < base.size(); ++i) {
        char c = base[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return brace == std::string_view::npos || n.back() == '}';
}

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        auto lo = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
        if (lo(a[i]) != lo(b[i])) return false;
    }
    return true;
}

inline std::optional<int64_t> parse_int(std::string_view s) {
    if (s.empty()) return std::nullopt;
    bool neg = s[0] == '-';
    if (neg || s[0] == '+') s.remove_prefix(1);
    if (s.empty()) return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        if (v > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return neg ? -v : v;
}

// Unit parsing follows parleyd's config rules: optional spaces, case-insensitive units,
// decimals only when the result is whole ("1.5K" = 1536, "0.5s" = 500), no negatives.
inline char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}
inline void skip_spaces(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
}
inline std::string_view trim(std::string_view s) {
    skip_spaces(s);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// "12" or "1.25": the whole part and up to 9 fraction digits.
struct Number {
    int64_t whole = 0;
    std::string_view frac;
};
inline std::optional<Number> read_number(std::string_view& s) {
    size_t k = 0;
    while (k < s.size() && s[k] >= '0' && s[k] <= '9')
        ++k;
    auto whole = parse_int(s.substr(0, k));
    if (!whole) return std::nullopt;
    s.remove_prefix(k);
    Number n{*whole, {}};
    if (!s.empty() && s.front() == '.') {
        s.remove_prefix(1);
        size_t f = 0;
        while (f < s.size() && s[f] >= '0' && s[f] <= '9')
            ++f;
        if (f == 0 || f > 9) return std::nullopt;
        n.frac = s.substr(0, f);
        s.remove_prefix(f);
    }
    return n;
}
inline std::string_view read_letters(std::string_view& s) {
    size_t k = 0;
    while (k < s.size() && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z')))
        ++k;
    auto w = s.substr(0, k);
    s.remove_prefix(k);
    return w;
}
// n * unit exactly; nullopt on overflow or a result finer than one unit.
inline std::optional<int64_t> scale(const Number& n, int64_t unit) {
    if (n.whole > INT64_MAX / unit) return std::nullopt;
    int64_t out = n.whole * unit;
    if (n.frac.empty()) return out;
    int64_t pow10 = 1;
    for (size_t i = 0; i < n.frac.size(); ++i)
        pow10 *= 10;
    // frac/pow10 * unit is whole iff (pow10/g) divides frac, g = gcd(unit, pow10); then
    // frac/(pow10/g) < g, so the product below stays under `unit` and cannot overflow.
    int64_t f = *parse_int(n.frac), g = std::gcd(unit, pow10), p = pow10 / g;
    if (f % p != 0) return std::nullopt;
    int64_t add = (f / p) * (unit / g);
    if (out > INT64_MAX - add) return std::nullopt;
    return out + add;
}

// "64K", "2M", "1.5G", "512 KiB", "100B" or plain bytes (1024-based).
inline std::optional<int64_t> parse_size(std::string_view text) {
    std::string_view s = trim(text);
    auto n = read_number(s);
    if (!n) return std::nullopt;
    skip_spaces(s);
    std::string_view unit = read_letters(s);
    if (!s.empty()) return std::nullopt;
    int64_t mult = 0;
    if (unit.empty() || iequals(unit, "b")) {
        mult = 1;
    } else {
        constexpr std::string_view kPrefixes = "kmgt";
        size_t p = kPrefixes.find(lower(unit.front()));
        std::string_view rest = unit.substr(1);
        if (p != std::string_view::npos &&
            (rest.empty() || iequals(rest, "b") || iequals(rest, "ib")))
            mult = int64_t(1) << (10 * (p + 1));
    }
    if (mult == 0) return std::nullopt;
    return scale(*n, mult);
}

// "250ms", "30s", "1.5h", "1h30m", "7d", or a lone integer of milliseconds.
inline std::optional<int64_t> parse_duration(std::string_view text) {
    std::string_view s = trim(text);
    if (s.empty()) return std::nullopt;
    int64_t total = 0;
    bool first = true;
    while (!s.empty()) {
        auto n = read_number(s);
        if (!n) return std::nullopt;
        skip_spaces(s);
        std::string_view unit = read_letters(s);
        int64_t mult = 0;
        if (unit.empty()) {
            // As parleyd: only a lone integer is milliseconds ("1h30" is likely a typo).
            if (!first || !s.empty() || !n->frac.empty()) return std::nullopt;
            mult = 1;
        } else if (iequals(unit, "ms")) {
            mult = 1;
        } else if (iequals(unit, "s")) {
            mult = 1000;
        } else if (iequals(unit, "m")) {
            mult = 60 * 1000;
        } else if (iequals(unit, "h")) {
            mult = 3600 * 1000;
        } else if (iequals(unit, "d")) {
            mult = 86400 * 1000;
        } else {
            return std::nullopt;
        }
        auto part = scale(*n, mult);
        if (!part || total > INT64_MAX - *part) return std::nullopt;
        total += *part;
        skip_spaces(s);
        first = false;
    }
    return total;
}

// true/yes/on, false/no/off, any case (as parleyd: not 1/0).
inline std::optional<int64_t> parse_bool(std::string_view text) {
    std::string_view s = trim(text);
    for (auto t : {"true", "yes", "on"})
        if (iequals(s, t)) return 1;
    for (auto f : {"false", "no", "off"})
        if (iequals(s, f)) return 0;
    return std::nullopt;
}

inline bool enum_allows(const char* values, std::string_view v) {
    std::string_view all = values ? values : "";
    while (!all.empty()) {
        size_t bar = all.find('|');
        if (all.substr(0, bar) == v) return true;
        if (bar == std::string_view::npos) break;
        all.remove_prefix(bar + 1);
    }
    return false;
}

inline bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace detail

// ---- one loaded plugin instance (RAII: stops and destroys on scope exit) ----

class FakeInstance {
  public:
    FakeInstance() = default;
    FakeInstance(const FakeInstance&) = delete;
    FakeInstance& operator=(const FakeInstance&) = delete;
    FakeInstance(FakeInstance&& o) noexcept : st_(std::move(o.st_)) {}
    FakeInstance& operator=(FakeInstance&& o) noexcept {
        if (this != &o) {
            teardown();
            st_ = std::move(o.st_);
        }
        return *this;
    }
    ~FakeInstance() { teardown(); }

    // True when the descriptor passed the loader checks.
    bool loaded() const { return st_ && st_->state != State::Refused; }
    State state() const { return st_ ? st_->state : State::Refused; }
    // The loader's refusal, else the last message passed to set_error (or a FakeHost refusal
    // such as a config error).
    const std::string& error() const {
        static const std::string none;
        if (!st_) return none;
        return st_->state == State::Refused ? st_->load_error : st_->error;
    }
    const std::string& name() const { return st_->name; }
    const parley_t_descriptor& descriptor() const { return st_->desc; }
    const parley_t_plugin_vtable& vtable() const { return st_->vt; }
    parley_t_instance_pptr handle() const { return st_ ? st_->inst : nullptr; }
    parley_t_host_ctx_hptr ctx() const {
        return reinterpret_cast<parley_t_host_ctx_hptr>(st_.get());
    }
    // The plugin object, for white-box checks of SDK plugins (create returns a T*).
    template <typename T> T* as() const { return static_cast<T*>(handle()); }

    // Lifecycle, in the kernel's order. Each returns the hook's status; misuse (e.g. start
    // before create) returns PARLEY_ERR_INVALID and is recorded as a violation.
    inline parley_t_status create();
    // On failure the host calls stop and destroy, as parleyd does.
    inline parley_t_status start();
    parley_t_status up() {
        auto s = create();
        return s != PARLEY_OK ? s : start();
    }
    inline void drain(uint32_t grace_ms);
    inline void stop();
    inline void destroy(); // stops first if still started
    // Calls the reload hook (config changes made with set_config are already visible).
    inline parley_t_status reload();

    // Per-instance config overlay, for several plugins on one FakeHost.
    template <typename T> void set_config(std::string_view path, T&& v);

  private:
    friend class FakeHost;
    explicit FakeInstance(std::shared_ptr<detail::Instance> st) : st_(std::move(st)) {}
    inline void teardown() noexcept;
    static inline void call_drain(detail::Instance& i, uint32_t grace_ms);
    std::shared_ptr<detail::Instance> st_;
};

// ---- the fake host ----

class FakeHost {
  public:
    FakeHost() {
        table_ = make_table();
        full_table_ = table_;
        wall_base_ms_ = 1'700'000'000'000;
        state_dir_ = std::filesystem::temp_directory_path().string();
    }
    FakeHost(const FakeHost&) = delete;
    FakeHost& operator=(const FakeHost&) = delete;
    ~FakeHost() {
        // Instances still alive are stopped and destroyed so plugin threads end before the
        // state they call into goes away.
        std::vector<std::shared_ptr<detail::Instance>> live;
        {
            std::lock_guard lk(mu_);
            live = instances_;
        }
        for (auto& i : live)
            FakeInstance(i).teardown();
        for (auto& i : live)
            i->host = nullptr;
        // dlopen handles are deliberately never closed: descriptors and vtables live in the
        // library and a FakeInstance may still read them.
    }

    const parley_t_host* table() const { return &table_; }

    // Simulates an older host: struct_size shrinks to `size` and every slot past it is NULL,
    // so PARLEY_HAS() in the plugin reports them absent (and an unchecked call crashes, as it
    // would on a real old parleyd).
    void set_host_struct_size(size_t size) {
        table_ = full_table_;
        size = std::min(size, sizeof(parley_t_host));
        table_.struct_size = uint32_t(size);
        auto* raw = reinterpret_cast<unsigned char*>(&table_);
        if (size < sizeof(parley_t_host)) std::memset(raw + size, 0, sizeof(parley_t_host) - size);
    }

    // ---- loading ----

    // Checks the descriptor as parleyd's loader does and returns an instance in state Loaded,
    // or Refused with error() naming the problem. `name` is the instance name (default: the
    // plugin name).
    FakeInstance load(const parley_t_descriptor* d, std::string name = {}) {
        auto st = std::make_shared<detail::Instance>();
        st->host = this;
        st->load_error = check_descriptor(d, *st);
        st->state = st->load_error.empty() ? State::Loaded : State::Refused;
        st->name = !name.empty() ? std::move(name) : (st->desc.name ? st->desc.name : "plugin");
        if (st->state == State::Loaded) {
            std::lock_guard lk(mu_);
            instances_.push_back(st);
        }
        return FakeInstance(std::move(st));
    }
    // Calls an entry function (e.g. the parley_plugin_entry_v0 that PARLEY_PLUGIN defined in
    // the test binary) with this host's ABI version, then load().
    FakeInstance load_entry(parley_t_entry_fn entry, std::string name = {}) {
        const char* why = nullptr;
        const parley_t_descriptor* d =
            entry ? entry(table_.abi_major, table_.abi_minor, &why) : nullptr;
        if (!d) return refused(std::string("entry refused to load: ") + (why ? why : "no reason"));
        return load(d, std::move(name));
    }
#ifdef PARLEY_FAKE_HAS_DLOPEN
    // Loads a built plugin .so the way parleyd does (RTLD_NOW | RTLD_LOCAL, one entry symbol).
    FakeInstance load_library(const std::string& path, std::string name = {}) {
        void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char* e = dlerror();
            return refused("cannot load " + path + ": " + (e ? e : "unknown error"));
        }
        {
            std::lock_guard lk(mu_);
            libraries_.push_back(h);
        }
        auto entry = reinterpret_cast<parley_t_entry_fn>(dlsym(h, PARLEY_ENTRY_SYMBOL));
        if (!entry) return refused(path + ": no entry point " PARLEY_ENTRY_SYMBOL);
        return load_entry(entry, std::move(name));
    }
#endif

    // ---- configuration (shared by every instance; FakeInstance::set_config overrides) ----
    // Values are typed against the reading plugin's schema: strings given for INT, BOOL,
    // SIZE and DURATION keys are parsed as parleyd would ("64K", "30s", "true"); integers are
    // taken as already normalised (bytes, milliseconds). Lists: set "origins.0", "origins.1"
    // (the count follows) or use set_config_list.

    template <typename T> void set_config(std::string_view path, T&& v) {
        std::lock_guard lk(mu_);
        put_config(config_, path, std::forward<T>(v));
    }
    void set_config_list(std::string_view path, std::initializer_list<std::string_view> items) {
        std::lock_guard lk(mu_);
        put_list(config_, path, items);
    }
    void set_config_list(std::string_view path, const std::vector<std::string>& items) {
        std::lock_guard lk(mu_);
        put_list(config_, path, {});
        for (size_t i = 0; i < items.size(); ++i)
            put_config(config_, std::string(path) + "." + std::to_string(i), items[i]);
    }
    void set_config_count(std::string_view path, size_t n) {
        std::lock_guard lk(mu_);
        config_[std::string(path)] = detail::RawConfig{detail::RawConfig::Count, int64_t(n), {}};
    }
    void clear_config() {
        std::lock_guard lk(mu_);
        config_.clear();
    }

    void set_profile_name(std::string n) {
        profile_name_ = std::move(n);
    }
    void set_state_dir(std::string d) {
        state_dir_ = std::move(d);
    }

    // ---- logs and errors ----

    // Lines below `min` are neither captured nor reported enabled (default: everything).
    void set_log_level(parley_t_log_level min) {
        log_min_.store(min);
    }
    // Also print captured lines to stderr (handy while writing a test).
    void echo_logs(bool on) {
        log_echo_.store(on);
    }
    std::vector<LogLine> logs() const {
        std::lock_guard lk(log_mu_);
        return logs_;
    }
    // Lines at `level` or above whose text contains `needle`.
    size_t count_logs(std::string_view needle, parley_t_log_level level = PARLEY_LOG_TRACE) const {
        std::lock_guard lk(log_mu_);
        return size_t(std::count_if(logs_.begin(), logs_.end(), [&](const LogLine& l) {
            return l.level >= level && l.text.find(needle) != std::string::npos;
        }));
    }
    bool has_log(parley_t_log_level level, std::string_view needle) const {
        std::lock_guard lk(log_mu_);
        return std::any_of(logs_.begin(), logs_.end(), [&](const LogLine& l) {
            return l.level == level && l.text.find(needle) != std::string::npos;
        });
    }
    void clear_logs() {
        std::lock_guard lk(log_mu_);
        logs_.clear();
    }
    // Every message passed to set_error, oldest first.
    std::vector<std::string> errors() const {
        std::lock_guard lk(log_mu_);
        return errors_;
    }
    std::string last_error() const {
        std::lock_guard lk(log_mu_);
        return errors_.empty() ? std::string() : errors_.back();
    }
    // ABI misuse the fake detected. A well-behaved plugin leaves this empty.
    std::vector<std::string> violations() const {
        std::lock_guard lk(log_mu_);
        return violations_;
    }

    // ---- metrics ----

    std::optional<int64_t> metric(std::string_view name) const {
        std::lock_guard lk(mu_);
        auto it = metrics_.find(name);
        if (it == metrics_.end()) return std::nullopt;
        return it->second->value.load();
    }
    std::optional<parley_t_metric_kind> metric_kind(std::string_view name) const {
        std::lock_guard lk(mu_);
        auto it = metrics_.find(name);
        if (it == metrics_.end()) return std::nullopt;
        return it->second->kind;
    }
    std::string metrics_text() const {
        return render_metrics();
    }

    // ---- manual clock and timers ----

    uint64_t now_ms() const {
        std::lock_guard lk(mu_);
        return now_ms_;
    }
    // Unix time the store uses for blob expiry: a fixed base plus now_ms().
    int64_t wall_ms() const {
        std::lock_guard lk(mu_);
        return wall_base_ms_ + int64_t(now_ms_);
    }
    void set_wall_base_ms(int64_t ms) {
        std::lock_guard lk(mu_);
        wall_base_ms_ = ms;
    }
    // Moves the clock forward, firing every timer that falls due, in due order, on this thread.
    void advance(uint64_t ms) {
        uint64_t target;
        {
            std::lock_guard lk(mu_);
            target = now_ms_ + ms;
        }
        for (;;) {
            parley_t_timer_fn fn = nullptr;
            void* user = nullptr;
            std::string who;
            {
                std::lock_guard lk(mu_);
                auto next = timers_.end();
                for (auto it = timers_.begin(); it != timers_.end(); ++it)
                    if (it->second.due <= target &&
                        (next == timers_.end() || it->second.due < next->second.due))
                        next = it;
                if (next == timers_.end()) {
                    now_ms_ = std::max(now_ms_, target);
                    break;
                }
                auto& t = next->second;
                now_ms_ = std::max(now_ms_, t.due);
                fn = t.fn;
                user = t.user;
                who = t.owner ? t.owner->name : "";
                running_timer_ = next->first;
                running_thread_ = std::this_thread::get_id();
                if (t.interval)
                    t.due += t.interval;
                else
                    timers_.erase(next);
            }
            guard_call(who, "timer callback", [&] { fn(user); });
            {
                std::lock_guard lk(mu_);
                running_timer_ = 0;
            }
            timer_cv_.notify_all();
        }
    }
    size_t pending_timers() const {
        std::lock_guard lk(mu_);
        return timers_.size();
    }

    // ---- frames ----

    // Frames allocated by this host whose refcount is above zero.
    size_t live_frames() const {
        std::lock_guard lk(frames_mu_);
        return size_t(std::count_if(frames_.begin(), frames_.end(),
                                    [](const auto& b) { return b->refs.load() > 0; }));
    }
    // A frame owned by the test (refcount 1; release it with table()->frame_release).
    parley_t_frame_hptr make_frame(std::string_view text, uint32_t flags = PARLEY_FRAME_TEXT) {
        parley_t_frame* f = alloc_frame(text.size());
        std::memcpy(f->data, text.data(), text.size());
        f->len = text.size();
        f->flags = flags;
        return f;
    }

    // ---- connections and rooms, from the test's side ----

    // Opens a client connection owned by the test (not by any plugin): frames sent to it are
    // recorded in deliveries().
    parley_t_conn_id connect(uint64_t tag = 0) {
        std::lock_guard lk(mu_);
        return open_conn_locked(nullptr, tag);
    }
    void disconnect(parley_t_conn_id conn) {
        close_conn_state(conn);
    }
    bool connected(parley_t_conn_id conn) const {
        std::lock_guard lk(mu_);
        return conns_.count(conn) != 0;
    }
    parley_t_status join(parley_t_conn_id conn, std::string_view room, std::string_view label = {},
                         parley_t_join_result* out = nullptr) {
        return do_join(conn, room, label, out);
    }
    parley_t_status leave(parley_t_conn_id conn, std::string_view room) {
        return do_leave(conn, room, nullptr);
    }
    parley_t_status publish(std::string_view room, std::string_view text,
                            parley_t_conn_id except = 0) {
        parley_t_frame* f = make_frame(text);
        auto s = do_publish(room, f, except);
        release_frame(f);
        return s;
    }
    bool room_exists(std::string_view room) const {
        std::lock_guard lk(mu_);
        return rooms_.count(room) != 0;
    }
    // The room bridge a plugin registered (0.2), if any; the fake host never routes through it.
    std::optional<parley_t_room_bridge> room_bridge() const {
        std::lock_guard lk(mu_);
        return bridge_;
    }
    std::vector<RoomMember> room_members(std::string_view room) const {
        std::lock_guard lk(mu_);
        auto it = rooms_.find(room);
        return it == rooms_.end() ? std::vector<RoomMember>{} : it->second.members;
    }
    std::optional<std::string> room_meta(std::string_view room, uint32_t key) const {
        std::lock_guard lk(mu_);
        auto it = rooms_.find(room);
        if (it == rooms_.end()) return std::nullopt;
        auto m = it->second.meta.find(key);
        if (m == it->second.meta.end()) return std::nullopt;
        return m->second;
    }
    // Limits as parleyd's kernel keys (limits.*); exceeding them returns PARLEY_ERR_LIMIT / 0.
    void set_limits(uint32_t max_connections, uint32_t rooms_per_connection,
                    uint32_t members_per_room) {
        std::lock_guard lk(mu_);
        max_connections_ = max_connections;
        rooms_per_connection_ = rooms_per_connection;
        members_per_room_ = members_per_room;
    }

    std::vector<Delivery> deliveries() const {
        std::lock_guard lk(log_mu_);
        return deliveries_;
    }
    std::vector<Delivery> deliveries_to(parley_t_conn_id conn) const {
        std::lock_guard lk(log_mu_);
        std::vector<Delivery> out;
        for (auto& d : deliveries_)
            if (d.conn == conn) out.push_back(d);
        return out;
    }
    void clear_deliveries() {
        std::lock_guard lk(log_mu_);
        deliveries_.clear();
    }
    // conn_close requests (admin kicks) made through the host table.
    std::vector<CloseRequest> close_requests() const {
        std::lock_guard lk(log_mu_);
        return closes_;
    }

    // ---- store ----

    // Routes history and blob calls to a loaded store plugin instead of the built-in memory
    // store (the profile's `store:` key). Pass nullptr to go back to memory.
    void use_store(const FakeInstance* store) {
        std::lock_guard lk(mu_);
        store_ = store ? store->st_ : nullptr;
    }
    // false: every store call answers PARLEY_ERR_UNAVAILABLE (database down).
    void set_store_available(bool up) {
        std::lock_guard lk(mu_);
        store_up_ = up;
    }
    std::vector<HistoryRecord> history(std::string_view room) const {
        std::lock_guard lk(mu_);
        auto it = history_.find(room);
        return it == history_.end()
                   ? std::vector<HistoryRecord>{}
                   : std::vector<HistoryRecord>(it->second.begin(), it->second.end());
    }
    std::vector<BlobRecord> blobs() const {
        std::lock_guard lk(mu_);
        std::vector<BlobRecord> out;
        for (auto& [_, b] : blobs_)
            out.push_back(b);
        return out;
    }

    // ---- commands and HTTP ----

    bool has_command(std::string_view name) const {
        std::lock_guard lk(mu_);
        return commands_.count(name) != 0;
    }
    // Calls a registered command as a transport would for a client message.
    parley_t_status call(std::string_view name, parley_t_conn_id conn = 0,
                         std::string_view args = {}, std::string_view room = {},
                         std::string_view identity = {}) {
        parley_t_command_call c{};
        c.struct_size = sizeof c;
        c.conn = conn;
        c.room = detail::by(room);
        c.args = detail::by(args);
        c.identity = detail::by(identity);
        return do_command_call(name, &c);
    }
    // Serves one request through the registered routes; answered synchronously by the fake
    // transport's parley_t_http_response. No route: status 404, routed == false.
    HttpResult http(std::string_view method, std::string_view target, std::string_view body = {},
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
        size_t q = target.find('?');
        std::string path(target.substr(0, q));
        std::string query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
        Request rq{std::move(headers)};
        parley_t_http_request req{};
        req.struct_size = sizeof req;
        req.method = detail::by(method);
        req.path = detail::by(path);
        req.query = detail::by(query);
        req.body = detail::by(body);
        req.header = &Request::header;
        req.impl = &rq;
        detail::Response* resp = new_response();
        parley_t_status s = do_http_dispatch(&req, &resp->hdr.pub);
        std::lock_guard lk(mu_);
        if (s != PARLEY_OK) return HttpResult{404, "text/plain", "", "not found\n", false, false};
        HttpResult r = resp->result;
        r.routed = true;
        return r;
    }

    // ---- lifecycle and workers ----

    void set_draining(bool on) {
        draining_.store(on);
    }
    bool draining() const {
        return draining_.load();
    }
    // Sets draining and calls every started instance's drain hook (SIGTERM).
    void drain(uint32_t grace_ms) {
        set_draining(true);
        for (auto& i : snapshot_instances())
            if (i->state == State::Started) FakeInstance::call_drain(*i, grace_ms);
    }
    // Inline (default): work_submit runs fn before returning. Queued: run_work() runs it.
    void set_work_inline(bool on) {
        std::lock_guard lk(mu_);
        work_inline_ = on;
    }
    void set_work_queue_limit(size_t n) {
        std::lock_guard lk(mu_);
        work_limit_ = n;
    }
    // Runs queued work items (including ones they submit) and returns how many ran.
    size_t run_work() {
        size_t n = 0;
        for (;;) {
            std::pair<parley_t_work_fn, void*> w;
            {
                std::lock_guard lk(mu_);
                if (work_.empty()) return n;
                w = work_.front();
                work_.pop_front();
            }
            guard_call("", "work item", [&] { w.first(w.second); });
            ++n;
        }
    }
    size_t pending_work() const {
        std::lock_guard lk(mu_);
        return work_.size();
    }

  private:
    friend class FakeInstance;
    using Inst = detail::Instance;

    struct Timer {
        uint64_t due;
        uint64_t interval;
        parley_t_timer_fn fn;
        void* user;
        Inst* owner;
    };
    struct Conn {
        Inst* owner; // nullptr: a client of the test (connect())
        uint64_t tag;
        std::vector<std::string> rooms;
    };
    struct Pending {
        uint64_t seq;
        parley_t_frame* frame; // retained while pending
        parley_t_conn_id except;
        bool acked = false;
        parley_t_status status = PARLEY_OK;
    };
    std::optional<parley_t_room_bridge> bridge_; // recorded by room_bridge_set (0.2)
    struct Room {
        std::vector<RoomMember> members;
        std::map<uint32_t, std::string> meta;
        std::deque<Pending> pending;
    };
    struct Command {
        Inst* owner;
        parley_t_command_fn fn;
        void* user;
    };
    struct Route {
        Inst* owner;
        std::string method;
        std::string path;
        bool prefix;
        parley_t_http_fn fn;
        void* user;
    };
    struct Rcpt {
        Inst* owner;
        parley_t_delivery to;
    };
    struct Request {
        std::vector<std::pair<std::string, std::string>> headers;
        static int header(const parley_t_http_request* req, parley_t_bytes name,
                          parley_t_bytes* out) {
            auto* self = static_cast<const Request*>(req->impl);
            for (auto& [k, v] : self->headers)
                if (detail::iequals(k, detail::sv(name))) {
                    if (out) *out = detail::by(v);
                    return 1;
                }
            return 0;
        }
    };

    // ---- helpers ----

    static FakeInstance refused(std::string why) {
        auto st = std::make_shared<Inst>();
        st->state = State::Refused;
        st->load_error = std::move(why);
        return FakeInstance(std::move(st));
    }

    std::vector<std::shared_ptr<Inst>> snapshot_instances() const {
        std::lock_guard lk(mu_);
        return instances_;
    }

    void violation(std::string what) {
        std::lock_guard lk(log_mu_);
        if (log_echo_.load()) std::fprintf(stderr, "[fake-host] VIOLATION: %s\n", what.c_str());
        violations_.push_back(std::move(what));
    }

    // Runs a plugin callback; an exception escaping it would cross the C boundary in parleyd.
    template <typename F> bool guard_call(const std::string& who, const char* what, F&& f) {
        try {
            f();
            return true;
        } catch (const std::exception& e) {
            violation("exception escaped " + std::string(what) + " of '" + who + "': " + e.what());
        } catch (...) {
            violation("exception escaped " + std::string(what) + " of '" + who + "'");
        }
        return false;
    }

    // The ctx every host function receives; a call after destroy is a violation.
    static Inst& I(parley_t_host_ctx_hptr c, const char* fn) {
        if (!c) {
            std::fprintf(stderr, "parley fake host: %s called with a NULL ctx\n", fn);
            std::abort();
        }
        auto* i = reinterpret_cast<Inst*>(c);
        if (i->host && i->state == State::Destroyed)
            i->host->violation("'" + i->name + "' called " + fn + " after destroy");
        if (!i->host) {
            std::fprintf(stderr, "parley fake host: %s called after the FakeHost was destroyed\n",
                         fn);
            std::abort();
        }
        return *i;
    }

    std::string check_descriptor(const parley_t_descriptor* d, Inst& st) const {
        if (!d) return "descriptor is NULL";
        if (d->struct_size < offsetof(parley_t_descriptor, vtable) + sizeof(d->vtable))
            return "descriptor too small (struct_size " + std::to_string(d->struct_size) + ")";
        // Copy only the bytes the plugin declared into zeroed tables: newer fields stay NULL.
        std::memcpy(&st.desc, d, std::min<size_t>(d->struct_size, sizeof st.desc));
        st.desc.struct_size = sizeof st.desc;
        auto ver = [](unsigned a, unsigned b) {
            return std::to_string(a) + "." + std::to_string(b);
        };
        std::string who = std::string("plugin '") + (d->name ? d->name : "?") + "'";
        std::string both = " built for ABI " + ver(d->abi_major, d->abi_minor) +
                           ", host provides " + ver(table_.abi_major, table_.abi_minor);
        if (d->abi_major != table_.abi_major) return who + both + " (different major)";
        if (d->abi_minor > table_.abi_minor) return who + both + " (newer minor)";
        if (table_.abi_major == 0 && d->abi_minor != table_.abi_minor)
            return who + both + " (0.x minors must match; rebuild it)";
        if (!detail::valid_plugin_name(d->name))
            return "invalid plugin name in descriptor (want [a-z0-9-]{1,64})";
        if (d->kind < PARLEY_KIND_TRANSPORT || d->kind > PARLEY_KIND_SERVICE)
            return who + ": unknown kind " + std::to_string(d->kind);
        const parley_t_plugin_vtable* vt = d->vtable;
        if (!vt ||
            vt->struct_size < offsetof(parley_t_plugin_vtable, destroy) + sizeof(vt->destroy))
            return who + ": vtable missing or too small";
        std::memcpy(&st.vt, vt, std::min<size_t>(vt->struct_size, sizeof st.vt));
        st.vt.struct_size = sizeof st.vt;
        std::vector<std::pair<const char*, bool>> req = {{"create", st.vt.create != nullptr},
                                                         {"start", st.vt.start != nullptr},
                                                         {"stop", st.vt.stop != nullptr},
                                                         {"destroy", st.vt.destroy != nullptr}};
        if (d->kind == PARLEY_KIND_TRANSPORT) {
            req.push_back({"deliver", st.vt.deliver != nullptr});
            req.push_back({"close_conn", st.vt.close_conn != nullptr});
        }
        if (d->kind == PARLEY_KIND_STORE) {
            req.push_back({"history_append", st.vt.history_append != nullptr});
            req.push_back({"history_fetch", st.vt.history_fetch != nullptr});
            req.push_back({"history_clear", st.vt.history_clear != nullptr});
            req.push_back({"blob_put", st.vt.blob_put != nullptr});
            req.push_back({"blob_list", st.vt.blob_list != nullptr});
            req.push_back({"blob_get", st.vt.blob_get != nullptr});
            req.push_back({"blob_delete", st.vt.blob_delete != nullptr});
        }
        for (auto& [field, ok] : req)
            if (!ok) return who + ": required function '" + field + "' missing";
        if (st.desc.config_len && !st.desc.config) return who + ": config_len without config";
        for (size_t k = 0; k < st.desc.config_len; ++k)
            if (auto bad = check_key(st.desc.config[k], ""); !bad.empty()) return who + ": " + bad;
        return {};
    }

    static std::string check_key(const parley_t_config_key& k, const std::string& parent) {
        std::string at = parent.empty() ? std::string(k.name ? k.name : "?")
                                        : parent + "." + (k.name ? k.name : "?");
        if (k.struct_size < offsetof(parley_t_config_key, description) + sizeof(k.description))
            return "config key '" + at + "': struct_size too small";
        if (!k.name || !*k.name || std::strchr(k.name, '.'))
            return "config key '" + at + "': missing or dotted name";
        if (k.type < PARLEY_CFG_STRING || k.type > PARLEY_CFG_MAP)
            return "config key '" + at + "': unknown type " + std::to_string(k.type);
        if (k.type == PARLEY_CFG_ENUM && !k.enum_values)
            return "config key '" + at + "': enum without enum_values";
        if (k.children_len && !k.children) return "config key '" + at + "': children missing";
        for (size_t c = 0; c < k.children_len; ++c)
            if (auto bad = check_key(k.children[c], at); !bad.empty()) return bad;
        return {};
    }

    // ---- config ----

    static void bump_counts(detail::ConfigMap& m, std::string_view path) {
        // "a.2.b" makes a's count at least 3.
        size_t pos = 0;
        while ((pos = path.find('.', pos)) != std::string_view::npos) {
            std::string_view prefix = path.substr(0, pos);
            size_t end = path.find('.', pos + 1);
            std::string_view seg = path.substr(
                pos + 1, end == std::string_view::npos ? std::string_view::npos : end - pos - 1);
            if (detail::all_digits(seg)) {
                auto& c = m[std::string(prefix)];
                int64_t need = int64_t(*detail::parse_int(seg)) + 1;
                if (c.kind != detail::RawConfig::Count) c = {detail::RawConfig::Count, 0, {}};
                c.i = std::max(c.i, need);
            }
            ++pos;
        }
    }
    template <typename T>
    static void put_config(detail::ConfigMap& m, std::string_view path, T&& v) {
        using D = std::decay_t<T>;
        detail::RawConfig r;
        if constexpr (std::is_same_v<D, bool>) {
            r = {detail::RawConfig::Bool, v ? 1 : 0, {}};
        } else if constexpr (std::is_integral_v<D>) {
            r = {detail::RawConfig::Int, int64_t(v), {}};
        } else {
            static_assert(std::is_convertible_v<T, std::string_view>,
                          "set_config takes an integer, a bool or a string");
            r = {detail::RawConfig::String, 0, std::string(std::string_view(v))};
        }
        m[std::string(path)] = std::move(r);
        bump_counts(m, path);
    }
    static void put_list(detail::ConfigMap& m, std::string_view path,
                         std::initializer_list<std::string_view> items) {
        // Replacing a list drops its old items.
        std::string pre = std::string(path) + ".";
        for (auto it = m.lower_bound(pre); it != m.end() && it->first.rfind(pre, 0) == 0;)
            it = m.erase(it);
        m[std::string(path)] =
            detail::RawConfig{detail::RawConfig::Count, int64_t(items.size()), {}};
        size_t i = 0;
        for (auto s : items)
            put_config(m, pre + std::to_string(i++), s);
    }

    // Walks the schema along a dotted path. Returns the key (nullptr if undeclared) and
    // whether the path ends at a list item of a scalar list (then `item_type` applies).
    struct Declared {
        const parley_t_config_key* key = nullptr;
        uint32_t type = 0;
        bool list_item = false; // the path ends at an item of a scalar list
        std::string list_path;  // innermost list the path indexes into, if any
        size_t index = 0;
    };
    static Declared find_declared(const parley_t_config_key* keys, size_t n,
                                  std::string_view path) {
        Declared d;
        const parley_t_config_key* level = keys;
        size_t level_n = n;
        bool expect_index = false;
        const parley_t_config_key* list = nullptr;
        std::string_view full = path;
        while (!path.empty()) {
            size_t dot = path.find('.');
            std::string_view seg = path.substr(0, dot);
            path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
            if (expect_index) {
                if (!detail::all_digits(seg)) return {};
                expect_index = false;
                d.list_path = std::string(full.substr(0, size_t(seg.data() - full.data()) - 1));
                d.index = size_t(*detail::parse_int(seg));
                if (list->children_len) { // list of maps: the item is a map
                    level = list->children;
                    level_n = list->children_len;
                    d.key = list;
                    d.type = PARLEY_CFG_MAP;
                } else {
                    if (!path.empty()) return {};
                    d.key = list;
                    d.type = list->item_type ? list->item_type : uint32_t(PARLEY_CFG_STRING);
                    d.list_item = true;
                    return d;
                }
                continue;
            }
            const parley_t_config_key* hit = nullptr;
            for (size_t i = 0; i < level_n; ++i)
                if (level[i].name && seg == level[i].name) hit = &level[i];
            if (!hit) return {};
            d.key = hit;
            d.type = hit->type;
            d.list_item = false;
            if (hit->type == PARLEY_CFG_MAP) {
                level = hit->children;
                level_n = hit->children_len;
            } else if (hit->type == PARLEY_CFG_LIST) {
                list = hit;
                expect_index = true;
            } else if (!path.empty()) {
                return {};
            }
        }
        return d;
    }

    // Converts what the test set to the declared type; false with `why` on a mismatch.
    static bool typed(const detail::RawConfig& r, uint32_t type, parley_t_config_value* out,
                      std::string* why) {
        auto fail = [&](const char* want) {
            if (why) *why = std::string("expected ") + want;
            return false;
        };
        using K = detail::RawConfig;
        switch (type) {
        case PARLEY_CFG_STRING:
        case PARLEY_CFG_ENUM:
            if (r.kind != K::String) return fail("a string");
            out->s = detail::by(r.s);
            return true;
        case PARLEY_CFG_INT:
        case PARLEY_CFG_SIZE:
        case PARLEY_CFG_DURATION:
        case PARLEY_CFG_BOOL: {
            if (r.kind == K::Int || r.kind == K::Bool) {
                out->i = r.i;
                if (type == PARLEY_CFG_BOOL && r.kind == K::Int && r.i != 0 && r.i != 1)
                    return fail("a bool");
                return true;
            }
            if (r.kind != K::String) return fail("a scalar");
            std::optional<int64_t> v = type == PARLEY_CFG_INT ? detail::parse_int(detail::trim(r.s))
                                       : type == PARLEY_CFG_SIZE ? detail::parse_size(r.s)
                                       : type == PARLEY_CFG_BOOL ? detail::parse_bool(r.s)
                                                                 : detail::parse_duration(r.s);
            if (!v)
                return fail(type == PARLEY_CFG_INT    ? "an integer"
                            : type == PARLEY_CFG_SIZE ? "a size like 64K"
                            : type == PARLEY_CFG_BOOL ? "true or false"
                                                      : "a duration like 30s");
            out->i = *v;
            return true;
        }
        case PARLEY_CFG_LIST:
        case PARLEY_CFG_MAP:
            if (r.kind != K::Count) return fail("a list (use set_config_list)");
            out->count = size_t(r.i);
            return true;
        }
        return fail("a known type");
    }

    const detail::RawConfig* raw_config(const Inst& i, std::string_view path) const {
        if (auto it = i.config.find(path); it != i.config.end()) return &it->second;
        if (auto it = config_.find(path); it != config_.end()) return &it->second;
        return nullptr;
    }

    // config_get: overlay, shared config, declared default; NOT_FOUND when undeclared.
    parley_t_status get_config(const Inst& i, std::string_view path, parley_t_config_value* out) {
        if (!out) return PARLEY_ERR_INVALID;
        parley_t_config_value v{};
        v.struct_size = out->struct_size ? out->struct_size : uint32_t(sizeof v);
        Declared d = find_declared(i.desc.config, i.desc.config_len, path);
        if (!d.key) return PARLEY_ERR_NOT_FOUND;
        std::lock_guard lk(mu_);
        if (!d.list_path.empty()) { // an item past the end of its list does not exist
            const detail::RawConfig* n = raw_config(i, d.list_path);
            if (!n || n->kind != detail::RawConfig::Count || d.index >= size_t(n->i))
                return PARLEY_ERR_NOT_FOUND;
        }
        const detail::RawConfig* r = raw_config(i, path);
        if (d.list_item && !r) return PARLEY_ERR_NOT_FOUND;
        if (r) {
            std::string why;
            if (!typed(*r, d.type, &v, &why)) return PARLEY_ERR_NOT_FOUND; // refused at create
            v.type = d.type;
        } else if (d.type == PARLEY_CFG_MAP) {
            v.type = d.type;
            v.count = d.key->children_len;
        } else if (d.type == PARLEY_CFG_LIST) {
            v.type = d.type; // absent list: empty
        } else if (d.key->default_value) {
            detail::RawConfig def{detail::RawConfig::String, 0, d.key->default_value};
            if (typed(def, d.type, &v, nullptr)) {
                v.type = d.type;
                if (d.type == PARLEY_CFG_STRING || d.type == PARLEY_CFG_ENUM)
                    v.s = detail::by(d.key->default_value); // static plugin data outlives us
            }
        }
        // Copy no more than the caller's struct declares.
        std::memcpy(out, &v, std::min<size_t>(v.struct_size, sizeof v));
        return PARLEY_OK;
    }

    // What parleyd validates before create: unknown keys, types, ranges, enums, required.
    std::string validate_config(const Inst& i) const {
        std::lock_guard lk(mu_);
        std::map<std::string, const detail::RawConfig*, std::less<>> merged;
        for (auto& [k, v] : config_)
            merged[k] = &v;
        for (auto& [k, v] : i.config)
            merged[k] = &v;
        for (auto& [path, r] : merged) {
            Declared d = find_declared(i.desc.config, i.desc.config_len, path);
            if (!d.key) {
                std::string allowed;
                for (size_t k = 0; k < i.desc.config_len; ++k)
                    allowed += (allowed.empty() ? "" : ", ") + std::string(i.desc.config[k].name);
                return "config: unknown key '" + path + "'; allowed keys: " + allowed;
            }
            parley_t_config_value v{};
            std::string why;
            if (!typed(*r, d.type, &v, &why)) return "config: '" + path + "': " + why;
            const parley_t_config_key& k = *d.key;
            bool ranged = k.min <= k.max && !d.list_item &&
                          (d.type == PARLEY_CFG_INT || d.type == PARLEY_CFG_SIZE ||
                           d.type == PARLEY_CFG_DURATION);
            if (ranged && (v.i < k.min || v.i > k.max))
                return "config: '" + path + "': " + std::to_string(v.i) + " is outside [" +
                       std::to_string(k.min) + ", " + std::to_string(k.max) + "]";
            if (d.type == PARLEY_CFG_ENUM && !detail::enum_allows(k.enum_values, r->s))
                return "config: '" + path + "': '" + r->s + "' is not one of " + k.enum_values;
        }
        for (size_t k = 0; k < i.desc.config_len; ++k) {
            const auto& key = i.desc.config[k];
            if (!(key.flags & PARLEY_CFG_REQUIRED) || key.default_value) continue;
            std::string pre = std::string(key.name) + ".";
            auto it = merged.lower_bound(std::string_view(key.name));
            bool present =
                it != merged.end() && (it->first == key.name || it->first.rfind(pre, 0) == 0);
            if (!present) return std::string("config: missing required key '") + key.name + "'";
        }
        return {};
    }

    // ---- frames ----

    parley_t_frame* alloc_frame(size_t cap) {
        auto b = std::make_unique<detail::FrameBlock>();
        b->owner = this;
        b->data = std::make_unique<char[]>(cap ? cap : 1);
        b->hdr.block = b.get();
        b->hdr.pub.data = b->data.get();
        b->hdr.pub.capacity = cap;
        b->hdr.pub.flags = PARLEY_FRAME_TEXT;
        parley_t_frame* f = &b->hdr.pub;
        std::lock_guard lk(frames_mu_);
        frames_.push_back(std::move(b));
        return f;
    }
    static detail::FrameBlock* block_of(parley_t_frame* f) {
        return reinterpret_cast<detail::FrameHeader*>(f)->block;
    }
    static void retain_frame(parley_t_frame* f) {
        if (!f) return;
        auto* b = block_of(f);
        if (b->refs.fetch_add(1) == 0) b->owner->violation("frame_retain on a released frame");
    }
    static void release_frame(parley_t_frame* f) {
        if (!f) return;
        auto* b = block_of(f);
        uint32_t cur = b->refs.load();
        do {
            if (cur == 0) {
                b->owner->violation("frame_release on a frame already released (double release)");
                return;
            }
        } while (!b->refs.compare_exchange_weak(cur, cur - 1));
        if (cur == 1) {
            // Blocks stay (so a later double release is caught); only the bytes go.
            std::lock_guard lk(b->owner->frames_mu_);
            b->hdr.pub.data = nullptr;
            b->hdr.pub.len = 0;
            b->data.reset();
        }
    }
    bool frame_alive(parley_t_frame* f) const {
        return f && block_of(f)->refs.load() > 0;
    }

    // ---- connections, rooms, delivery ----

    parley_t_conn_id open_conn_locked(Inst* owner, uint64_t tag) {
        if (conns_.size() >= max_connections_) return 0;
        parley_t_conn_id id = next_conn_++;
        conns_.emplace(id, Conn{owner, tag, {}});
        return id;
    }

    void close_conn_state(parley_t_conn_id conn) {
        std::lock_guard lk(mu_);
        auto it = conns_.find(conn);
        if (it == conns_.end()) return;
        for (auto& r : it->second.rooms)
            remove_member_locked(r, conn);
        conns_.erase(it);
    }

    // Frees a room once it has neither members nor pending persisted publishes.
    void remove_member_locked(const std::string& room, parley_t_conn_id conn) {
        auto it = rooms_.find(room);
        if (it == rooms_.end()) return;
        auto& m = it->second.members;
        m.erase(std::remove_if(m.begin(), m.end(), [&](auto& x) { return x.conn == conn; }),
                m.end());
        if (m.empty() && it->second.pending.empty()) rooms_.erase(it);
    }

    void deliver(std::vector<Rcpt>& rc, parley_t_frame* f) {
        if (!frame_alive(f)) {
            violation("delivery of a frame that was already released");
            return;
        }
        std::string text(f->data, f->len);
        {
            std::lock_guard lk(log_mu_);
            for (auto& r : rc)
                deliveries_.push_back(
                    Delivery{r.to.conn, r.to.tag, text, f->flags, r.owner && r.owner->vt.deliver});
        }
        // One deliver call per transport instance with all of its recipients, as parleyd does.
        std::map<Inst*, std::vector<parley_t_delivery>> by_owner;
        for (auto& r : rc)
            if (r.owner && r.owner->vt.deliver && r.owner->state != State::Destroyed)
                by_owner[r.owner].push_back(r.to);
        for (auto& entry : by_owner) {
            Inst* o = entry.first;
            const auto& to = entry.second;
            guard_call(o->name, "deliver",
                       [&] { o->vt.deliver(o->inst, to.data(), to.size(), f); });
        }
    }

    parley_t_status do_join(parley_t_conn_id conn, std::string_view room, std::string_view label,
                            parley_t_join_result* out) {
        if (room.empty()) return PARLEY_ERR_INVALID;
        std::lock_guard lk(mu_);
        auto c = conns_.find(conn);
        if (c == conns_.end()) return PARLEY_ERR_NOT_FOUND;
        auto& rooms = c->second.rooms;
        if (std::find(rooms.begin(), rooms.end(), room) != rooms.end()) return PARLEY_ERR_EXISTS;
        if (rooms.size() >= rooms_per_connection_) return PARLEY_ERR_LIMIT;
        auto it = rooms_.find(room);
        bool created = it == rooms_.end();
        if (created) it = rooms_.emplace(std::string(room), Room{}).first;
        auto& r = it->second;
        if (r.members.size() >= members_per_room_) {
            if (created) rooms_.erase(it);
            return PARLEY_ERR_LIMIT;
        }
        r.members.push_back(RoomMember{conn, std::string(label), seq_});
        rooms.emplace_back(room);
        if (out) {
            // Fill only what the caller's struct declares.
            parley_t_join_result res{};
            res.struct_size = out->struct_size ? out->struct_size : uint32_t(sizeof res);
            res.members = uint32_t(r.members.size());
            res.created = created ? 1 : 0;
            res.join_seq = seq_;
            std::memcpy(out, &res, std::min<size_t>(res.struct_size, sizeof res));
        }
        return PARLEY_OK;
    }

    parley_t_status do_leave(parley_t_conn_id conn, std::string_view room, uint32_t* left) {
        std::lock_guard lk(mu_);
        auto it = rooms_.find(room);
        if (it == rooms_.end()) return PARLEY_ERR_NOT_FOUND;
        auto& m = it->second.members;
        if (std::none_of(m.begin(), m.end(), [&](auto& x) { return x.conn == conn; }))
            return PARLEY_ERR_NOT_FOUND;
        if (auto c = conns_.find(conn); c != conns_.end()) {
            auto& v = c->second.rooms;
            v.erase(std::remove(v.begin(), v.end(), room), v.end());
        }
        uint32_t n = uint32_t(m.size() - 1);
        remove_member_locked(std::string(room), conn);
        if (left) *left = n;
        return PARLEY_OK;
    }

    Rcpt rcpt_locked(parley_t_conn_id conn) const {
        auto c = conns_.find(conn);
        if (c == conns_.end()) return Rcpt{nullptr, {conn, 0}};
        return Rcpt{c->second.owner, {conn, c->second.tag}};
    }

    parley_t_status do_publish(std::string_view room, parley_t_frame* f, parley_t_conn_id except) {
        if (!f) return PARLEY_ERR_INVALID;
        std::vector<Rcpt> rc;
        {
            std::lock_guard lk(mu_);
            auto it = rooms_.find(room);
            if (it == rooms_.end()) return PARLEY_ERR_NOT_FOUND;
            for (auto& m : it->second.members)
                if (m.conn != except) rc.push_back(rcpt_locked(m.conn));
        }
        deliver(rc, f);
        return PARLEY_OK;
    }

    struct AckCtx {
        FakeHost* host;
        std::string room;
        uint64_t seq;
        parley_t_store_done_fn done;
        void* user;
    };
    static void on_append_done(void* u, parley_t_status st) {
        std::unique_ptr<AckCtx> c(static_cast<AckCtx*>(u));
        c->host->on_ack(c->room, c->seq, st);
        if (c->done) c->done(c->user, st);
    }
    void on_ack(const std::string& room, uint64_t seq, parley_t_status status) {
        std::vector<std::pair<parley_t_frame*, std::vector<Rcpt>>> ready;
        {
            std::lock_guard lk(mu_);
            auto it = rooms_.find(room);
            if (it == rooms_.end()) return;
            auto& r = it->second;
            for (auto& p : r.pending)
                if (p.seq == seq) {
                    p.acked = true;
                    p.status = status;
                }
            // Fan out in sequence order: a later ack waits for every earlier one.
            while (!r.pending.empty() && r.pending.front().acked) {
                Pending p = r.pending.front();
                r.pending.pop_front();
                std::vector<Rcpt> rc;
                if (p.status == PARLEY_OK)
                    for (auto& m : r.members)
                        if (m.conn != p.except && m.join_seq < p.seq)
                            rc.push_back(rcpt_locked(m.conn));
                ready.emplace_back(p.frame, std::move(rc));
            }
            if (r.members.empty() && r.pending.empty()) rooms_.erase(it);
        }
        for (auto& [frame, rc] : ready) {
            deliver(rc, frame);
            release_frame(frame);
        }
    }

    parley_t_status do_publish_persist(std::string_view room, parley_t_frame* f,
                                       parley_t_conn_id except, std::string_view record,
                                       parley_t_store_done_fn done, void* user) {
        if (!f) return PARLEY_ERR_INVALID;
        std::shared_ptr<Inst> store;
        uint64_t seq;
        {
            std::lock_guard lk(mu_);
            if (!store_up_) return PARLEY_ERR_UNAVAILABLE;
            store = store_;
            if (store && (store->state != State::Started || !store->vt.history_append))
                return PARLEY_ERR_UNAVAILABLE;
            auto it = rooms_.find(room);
            if (it == rooms_.end()) return PARLEY_ERR_NOT_FOUND;
            seq = ++seq_;
            retain_frame(f);
            it->second.pending.push_back(Pending{seq, f, except});
            if (!store)
                history_[std::string(room)].push_back(HistoryRecord{seq, std::string(record)});
        }
        auto ctx = std::make_unique<AckCtx>(AckCtx{this, std::string(room), seq, done, user});
        if (!store) {
            on_append_done(ctx.release(), PARLEY_OK); // memory is durable at once
            return PARLEY_OK;
        }
        // The store owns ctx until its completion runs, exactly once.
        guard_call(store->name, "history_append", [&] {
            store->vt.history_append(store->inst, detail::by(room), seq, detail::by(record),
                                     &on_append_done, ctx.get());
        });
        static_cast<void>(ctx.release());
        return PARLEY_OK;
    }

    parley_t_status do_send_to_member(std::string_view room, std::string_view label,
                                      parley_t_frame* f) {
        if (!f) return PARLEY_ERR_INVALID;
        std::vector<Rcpt> rc;
        {
            std::lock_guard lk(mu_);
            auto it = rooms_.find(room);
            if (it == rooms_.end()) return PARLEY_ERR_NOT_FOUND;
            for (auto& m : it->second.members)
                if (m.label == label) {
                    rc.push_back(rcpt_locked(m.conn));
                    break;
                }
        }
        if (rc.empty()) return PARLEY_ERR_NOT_FOUND;
        deliver(rc, f);
        return PARLEY_OK;
    }

    // ---- store (memory, or a store plugin chosen with use_store) ----

    // A store call goes to the store plugin chosen with use_store when there is one: returns
    // the status to answer with, or nullopt when the mock's own memory store answers instead.
    template <class Call> std::optional<parley_t_status> via_store(const char* what, Call&& call) {
        parley_t_status err;
        auto store = live_store(&err);
        if (err != PARLEY_OK) return err;
        if (!store) return std::nullopt;
        guard_call(store->name, what, [&] { call(*store); });
        return PARLEY_OK;
    }

    std::shared_ptr<Inst> live_store(parley_t_status* err) {
        std::lock_guard lk(mu_);
        *err = store_up_ ? PARLEY_OK : PARLEY_ERR_UNAVAILABLE;
        if (store_ && store_->state != State::Started) *err = PARLEY_ERR_UNAVAILABLE;
        return store_;
    }

    std::vector<BlobRecord> blobs_for(std::string_view recipient) const {
        std::vector<BlobRecord> v;
        int64_t now = wall_base_ms_ + int64_t(now_ms_);
        for (auto& [_, b] : blobs_)
            if (b.recipient == recipient && b.expires_at_ms > now) v.push_back(b);
        std::stable_sort(v.begin(), v.end(),
                         [](auto& a, auto& b) { return a.expires_at_ms < b.expires_at_ms; });
        return v;
    }
    static void call_blob_list(parley_t_blob_list_fn fn, void* user, parley_t_status st,
                               const std::vector<BlobRecord>& v) {
        std::vector<parley_t_blob> out;
        for (auto& b : v)
            out.push_back(parley_t_blob{detail::by(b.id), detail::by(b.recipient),
                                        detail::by(b.data), b.expires_at_ms});
        fn(user, st, out.data(), out.size());
    }

    // ---- commands and HTTP ----

    parley_t_status do_command_call(std::string_view name, const parley_t_command_call* call) {
        Command c{};
        {
            std::lock_guard lk(mu_);
            auto it = commands_.find(name);
            if (it == commands_.end()) return PARLEY_ERR_NOT_FOUND;
            c = it->second;
        }
        parley_t_status s = PARLEY_ERR;
        guard_call(c.owner ? c.owner->name : "", "command handler",
                   [&] { s = c.fn(c.user, call); });
        return s;
    }

    detail::Response* new_response() {
        auto r = std::make_unique<detail::Response>();
        r->owner = this;
        r->hdr.self = r.get();
        r->hdr.pub.struct_size = sizeof(parley_t_http_response);
        r->hdr.pub.respond = &respond_impl;
        std::lock_guard lk(mu_);
        responses_.push_back(std::move(r)); // kept: a handler may answer later
        return responses_.back().get();
    }
    static void respond_impl(parley_t_http_response* self, int status, parley_t_bytes ct,
                             parley_t_bytes headers, parley_t_bytes body) {
        auto* r = reinterpret_cast<detail::ResponseHeader*>(self)->self;
        {
            std::lock_guard lk(r->owner->mu_);
            if (r->answers++ == 0) {
                r->result.status = status;
                r->result.content_type = std::string(detail::sv(ct));
                r->result.headers = std::string(detail::sv(headers));
                r->result.body = std::string(detail::sv(body));
                r->result.answered = true;
                return;
            }
        }
        r->owner->violation("http_respond called more than once for one request");
    }

    parley_t_status do_http_dispatch(const parley_t_http_request* req,
                                     parley_t_http_response* resp) {
        std::string_view method = detail::sv(req->method), path = detail::sv(req->path);
        Route best{};
        bool found = false;
        {
            std::lock_guard lk(mu_);
            for (auto& r : routes_) {
                if (!r.method.empty() && r.method != method) continue;
                bool match = r.prefix ? path.substr(0, r.path.size()) == r.path : path == r.path;
                if (!match) continue;
                // Exact beats prefix; a longer prefix beats a shorter one.
                if (!found || (!r.prefix && best.prefix) ||
                    (r.prefix == best.prefix && r.path.size() > best.path.size())) {
                    best = r;
                    found = true;
                }
            }
        }
        if (!found) return PARLEY_ERR_NOT_FOUND;
        guard_call(best.owner ? best.owner->name : "", "http handler",
                   [&] { best.fn(best.user, req, resp); });
        return PARLEY_OK;
    }

    // ---- instance teardown (parleyd drops what an instance registered) ----

    void forget_instance(Inst* i) {
        std::vector<parley_t_conn_id> conns;
        {
            std::lock_guard lk(mu_);
            for (auto it = timers_.begin(); it != timers_.end();)
                it = it->second.owner == i ? timers_.erase(it) : std::next(it);
            for (auto it = commands_.begin(); it != commands_.end();)
                it = it->second.owner == i ? commands_.erase(it) : std::next(it);
            routes_.erase(std::remove_if(routes_.begin(), routes_.end(),
                                         [&](auto& r) { return r.owner == i; }),
                          routes_.end());
            for (auto& [id, c] : conns_)
                if (c.owner == i) conns.push_back(id);
            if (store_.get() == i) store_.reset();
        }
        for (auto id : conns)
            close_conn_state(id);
    }

    std::string render_metrics() const {
        std::lock_guard lk(mu_);
        std::string out;
        std::string last_family;
        for (auto& [name, m] : metrics_) {
            std::string family = name.substr(0, name.find('{'));
            if (family != last_family) {
                out += "# HELP " + family + " " + m->help + "\n# TYPE " + family +
                       (m->kind == PARLEY_METRIC_COUNTER ? " counter\n" : " gauge\n");
                last_family = family;
            }
            out += name + " " + std::to_string(m->value.load()) + "\n";
        }
        return out;
    }

    // ---- the host table: static trampolines; ctx is the calling instance ----

    static void h_log(parley_t_host_ctx_hptr c, parley_t_log_level level, parley_t_bytes msg) {
        auto& i = I(c, "log");
        auto* h = i.host;
        if (level < h->log_min_.load()) return;
        std::lock_guard lk(h->log_mu_);
        h->logs_.push_back(LogLine{level, i.name, std::string(detail::sv(msg))});
        if (h->log_echo_.load())
            std::fprintf(stderr, "[%s] %d %.*s\n", i.name.c_str(), int(level), int(msg.len),
                         msg.ptr ? msg.ptr : "");
    }
    static int h_log_enabled(parley_t_host_ctx_hptr c, parley_t_log_level level) {
        return level >= I(c, "log_enabled").host->log_min_.load() ? 1 : 0;
    }
    static void h_set_error(parley_t_host_ctx_hptr c, parley_t_bytes msg) {
        auto& i = I(c, "set_error");
        std::lock_guard lk(i.host->log_mu_);
        i.error = std::string(detail::sv(msg));
        i.error_set = true;
        i.host->errors_.push_back(i.error);
    }
    static parley_t_status h_config_get(parley_t_host_ctx_hptr c, parley_t_bytes path,
                                        parley_t_config_value* out) {
        auto& i = I(c, "config_get");
        return i.host->get_config(i, detail::sv(path), out);
    }
    static parley_t_bytes h_instance_name(parley_t_host_ctx_hptr c) {
        return detail::by(I(c, "instance_name").name);
    }
    static parley_t_bytes h_profile_name(parley_t_host_ctx_hptr c) {
        return detail::by(I(c, "profile_name").host->profile_name_);
    }
    static parley_t_bytes h_state_dir(parley_t_host_ctx_hptr c) {
        return detail::by(I(c, "state_dir").host->state_dir_);
    }
    static parley_t_metric_hptr h_metric(parley_t_host_ctx_hptr c, parley_t_metric_kind kind,
                                         parley_t_bytes name, parley_t_bytes help) {
        auto* h = I(c, "metric").host;
        std::string_view n = detail::sv(name);
        if (!detail::valid_metric_name(n) ||
            (kind != PARLEY_METRIC_COUNTER && kind != PARLEY_METRIC_GAUGE))
            return nullptr;
        std::unique_lock lk(h->mu_);
        auto it = h->metrics_.find(n);
        if (it != h->metrics_.end()) {
            if (it->second->kind == kind)
                return reinterpret_cast<parley_t_metric_hptr>(it->second.get());
            lk.unlock();
            h->violation("metric '" + std::string(n) + "' registered again with another kind");
            return nullptr;
        }
        auto m = std::make_unique<detail::Metric>();
        m->owner = h;
        m->kind = kind;
        m->name = std::string(n);
        m->help = std::string(detail::sv(help));
        auto* raw = m.get();
        h->metrics_.emplace(std::string(n), std::move(m));
        return reinterpret_cast<parley_t_metric_hptr>(raw);
    }
    static void h_metric_add(parley_t_metric_hptr mh, int64_t delta) {
        if (!mh) return;
        auto* m = reinterpret_cast<detail::Metric*>(mh);
        if (m->kind == PARLEY_METRIC_COUNTER && delta < 0)
            m->owner->violation("counter '" + m->name + "' decremented");
        m->value.fetch_add(delta);
    }
    static void h_metric_set(parley_t_metric_hptr mh, int64_t value) {
        if (!mh) return;
        reinterpret_cast<detail::Metric*>(mh)->value.store(value);
    }
    static parley_t_frame_hptr h_metrics_render(parley_t_host_ctx_hptr c) {
        auto* h = I(c, "metrics_render").host;
        std::string text = h->render_metrics();
        return h->make_frame(text);
    }
    static uint64_t h_timer_start(parley_t_host_ctx_hptr c, uint64_t delay, uint64_t interval,
                                  parley_t_timer_fn fn, void* user) {
        auto& i = I(c, "timer_start");
        if (!fn) return 0;
        std::lock_guard lk(i.host->mu_);
        uint64_t id = i.host->next_timer_++;
        i.host->timers_.emplace(id, Timer{i.host->now_ms_ + delay, interval, fn, user, &i});
        return id;
    }
    static void h_timer_cancel(parley_t_host_ctx_hptr c, uint64_t id) {
        auto* h = I(c, "timer_cancel").host;
        std::unique_lock lk(h->mu_);
        h->timers_.erase(id);
        // Once cancel returns the callback is not running, unless we are inside it.
        h->timer_cv_.wait(lk, [&] {
            return h->running_timer_ != id || h->running_thread_ == std::this_thread::get_id();
        });
    }
    static parley_t_frame_hptr h_frame_alloc(parley_t_host_ctx_hptr c, size_t cap) {
        return I(c, "frame_alloc").host->alloc_frame(cap);
    }
    static void h_frame_retain(parley_t_frame_hptr f) {
        retain_frame(f);
    }
    static void h_frame_release(parley_t_frame_hptr f) {
        release_frame(f);
    }
    static parley_t_conn_id h_conn_open(parley_t_host_ctx_hptr c, uint64_t tag) {
        auto& i = I(c, "conn_open");
        if (i.host->draining_.load()) return 0;
        std::lock_guard lk(i.host->mu_);
        return i.host->open_conn_locked(&i, tag);
    }
    static void h_conn_closed(parley_t_host_ctx_hptr c, parley_t_conn_id conn) {
        I(c, "conn_closed").host->close_conn_state(conn);
    }
    static void h_conn_close(parley_t_host_ctx_hptr c, parley_t_conn_id conn, uint16_t code,
                             parley_t_bytes reason) {
        auto* h = I(c, "conn_close").host;
        Rcpt r;
        {
            std::lock_guard lk(h->mu_);
            r = h->rcpt_locked(conn);
        }
        {
            std::lock_guard lk(h->log_mu_);
            h->closes_.push_back(CloseRequest{conn, code, std::string(detail::sv(reason))});
        }
        if (r.owner && r.owner->vt.close_conn && r.owner->state != State::Destroyed)
            h->guard_call(r.owner->name, "close_conn",
                          [&] { r.owner->vt.close_conn(r.owner->inst, r.to, code, reason); });
    }
    static parley_t_status h_send_to(parley_t_host_ctx_hptr c, parley_t_conn_id conn,
                                     parley_t_frame_hptr f) {
        auto* h = I(c, "send_to").host;
        if (!f) return PARLEY_ERR_INVALID;
        std::vector<Rcpt> rc;
        {
            std::lock_guard lk(h->mu_);
            if (!h->conns_.count(conn)) return PARLEY_ERR_NOT_FOUND;
            rc.push_back(h->rcpt_locked(conn));
        }
        h->deliver(rc, f);
        return PARLEY_OK;
    }
    static parley_t_status h_room_join(parley_t_host_ctx_hptr c, parley_t_conn_id conn,
                                       parley_t_bytes room, parley_t_bytes label,
                                       parley_t_join_result* out) {
        return I(c, "room_join").host->do_join(conn, detail::sv(room), detail::sv(label), out);
    }
    static parley_t_status h_room_leave(parley_t_host_ctx_hptr c, parley_t_conn_id conn,
                                        parley_t_bytes room, uint32_t* left) {
        return I(c, "room_leave").host->do_leave(conn, detail::sv(room), left);
    }
    static parley_t_status h_room_publish(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                          parley_t_frame_hptr f, parley_t_conn_id except) {
        return I(c, "room_publish").host->do_publish(detail::sv(room), f, except);
    }
    static parley_t_status h_room_publish_persist(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                                  parley_t_frame_hptr f, parley_t_conn_id except,
                                                  parley_t_bytes record,
                                                  parley_t_store_done_fn done, void* user) {
        return I(c, "room_publish_persist")
            .host->do_publish_persist(detail::sv(room), f, except, detail::sv(record), done, user);
    }
    static parley_t_status h_room_send_to_member(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                                 parley_t_bytes label, parley_t_frame_hptr f) {
        return I(c, "room_send_to_member")
            .host->do_send_to_member(detail::sv(room), detail::sv(label), f);
    }
    static uint32_t h_room_members(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                   parley_t_member_fn fn, void* user) {
        auto* h = I(c, "room_members").host;
        std::vector<RoomMember> m = h->room_members(detail::sv(room));
        if (fn)
            for (auto& x : m)
                if (fn(user, x.conn, detail::by(x.label)) != 0) break;
        return uint32_t(m.size());
    }
    static parley_t_status h_room_meta_get(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                           uint32_t key, char* out, size_t cap, size_t* out_len) {
        auto* h = I(c, "room_meta_get").host;
        std::lock_guard lk(h->mu_);
        auto it = h->rooms_.find(detail::sv(room));
        if (it == h->rooms_.end()) return PARLEY_ERR_NOT_FOUND;
        auto m = it->second.meta.find(key);
        if (m == it->second.meta.end()) return PARLEY_ERR_NOT_FOUND;
        if (out_len) *out_len = m->second.size();
        if (out) std::memcpy(out, m->second.data(), std::min(cap, m->second.size()));
        return PARLEY_OK;
    }
    static parley_t_status h_room_meta_set(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                           uint32_t key, parley_t_bytes value, uint32_t flags) {
        auto* h = I(c, "room_meta_set").host;
        std::lock_guard lk(h->mu_);
        auto it = h->rooms_.find(detail::sv(room));
        if (it == h->rooms_.end()) return PARLEY_ERR_NOT_FOUND;
        auto& meta = it->second.meta;
        if ((flags & PARLEY_META_SET_ONCE) && meta.count(key)) return PARLEY_ERR_EXISTS;
        if (value.len == 0)
            meta.erase(key); // as parleyd: an empty value clears the key
        else
            meta[key] = std::string(detail::sv(value));
        return PARLEY_OK;
    }
    static parley_t_status h_history_fetch(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                           uint32_t max, uint64_t upto, parley_t_history_fn fn,
                                           void* user) {
        auto* h = I(c, "history_fetch").host;
        if (!fn) return PARLEY_ERR_INVALID;
        if (auto st = h->via_store("history_fetch", [&](Inst& s) {
                s.vt.history_fetch(s.inst, room, max, upto, fn, user);
            }))
            return *st;
        std::vector<HistoryRecord> recs;
        {
            std::lock_guard lk(h->mu_);
            if (auto it = h->history_.find(detail::sv(room)); it != h->history_.end())
                for (auto& r : it->second)
                    if (upto == 0 || r.seq <= upto) recs.push_back(r);
        }
        if (max && recs.size() > max) recs.erase(recs.begin(), recs.end() - max);
        std::vector<parley_t_history_entry> out;
        for (auto& r : recs)
            out.push_back(parley_t_history_entry{r.seq, detail::by(r.record)});
        fn(user, PARLEY_OK, out.data(), out.size());
        return PARLEY_OK;
    }
    static parley_t_status h_history_clear(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                           parley_t_store_done_fn fn, void* user) {
        auto* h = I(c, "history_clear").host;
        if (auto st = h->via_store("history_clear",
                                   [&](Inst& s) { s.vt.history_clear(s.inst, room, fn, user); }))
            return *st;
        {
            std::lock_guard lk(h->mu_);
            if (auto it = h->history_.find(detail::sv(room)); it != h->history_.end())
                h->history_.erase(it);
        }
        if (fn) fn(user, PARLEY_OK);
        return PARLEY_OK;
    }
    static parley_t_status h_blob_put(parley_t_host_ctx_hptr c, parley_t_bytes rcpt,
                                      parley_t_bytes data, int64_t exp, parley_t_blob_put_fn fn,
                                      void* user) {
        auto* h = I(c, "blob_put").host;
        if (auto st = h->via_store(
                "blob_put", [&](Inst& s) { s.vt.blob_put(s.inst, rcpt, data, exp, fn, user); }))
            return *st;
        std::string id;
        {
            std::lock_guard lk(h->mu_);
            id = "blob-" + std::to_string(h->next_blob_++);
            h->blobs_.emplace(id, BlobRecord{id, std::string(detail::sv(rcpt)),
                                             std::string(detail::sv(data)), exp});
        }
        if (fn) fn(user, PARLEY_OK, detail::by(id));
        return PARLEY_OK;
    }
    static parley_t_status h_blob_list(parley_t_host_ctx_hptr c, parley_t_bytes rcpt, uint32_t off,
                                       uint32_t lim, parley_t_blob_list_fn fn, void* user) {
        auto* h = I(c, "blob_list").host;
        if (!fn) return PARLEY_ERR_INVALID;
        if (auto st = h->via_store(
                "blob_list", [&](Inst& s) { s.vt.blob_list(s.inst, rcpt, off, lim, fn, user); }))
            return *st;
        std::vector<BlobRecord> v;
        {
            std::lock_guard lk(h->mu_);
            v = h->blobs_for(detail::sv(rcpt));
        }
        v.erase(v.begin(), v.begin() + std::min<size_t>(off, v.size()));
        if (lim && v.size() > lim) v.resize(lim);
        call_blob_list(fn, user, PARLEY_OK, v);
        return PARLEY_OK;
    }
    static parley_t_status h_blob_get(parley_t_host_ctx_hptr c, parley_t_bytes id,
                                      parley_t_blob_list_fn fn, void* user) {
        auto* h = I(c, "blob_get").host;
        if (!fn) return PARLEY_ERR_INVALID;
        if (auto st =
                h->via_store("blob_get", [&](Inst& s) { s.vt.blob_get(s.inst, id, fn, user); }))
            return *st;
        std::vector<BlobRecord> v;
        {
            std::lock_guard lk(h->mu_);
            auto it = h->blobs_.find(std::string(detail::sv(id)));
            if (it != h->blobs_.end() &&
                it->second.expires_at_ms > h->wall_base_ms_ + int64_t(h->now_ms_))
                v.push_back(it->second);
        }
        call_blob_list(fn, user, v.empty() ? PARLEY_ERR_NOT_FOUND : PARLEY_OK, v);
        return PARLEY_OK;
    }
    static parley_t_status h_blob_delete(parley_t_host_ctx_hptr c, parley_t_bytes id,
                                         parley_t_store_done_fn fn, void* user) {
        auto* h = I(c, "blob_delete").host;
        if (auto st = h->via_store("blob_delete",
                                   [&](Inst& s) { s.vt.blob_delete(s.inst, id, fn, user); }))
            return *st;
        bool erased;
        {
            std::lock_guard lk(h->mu_);
            erased = h->blobs_.erase(std::string(detail::sv(id))) != 0;
        }
        if (fn) fn(user, erased ? PARLEY_OK : PARLEY_ERR_NOT_FOUND);
        return PARLEY_OK;
    }
    static parley_t_status h_command_register(parley_t_host_ctx_hptr c, parley_t_bytes name,
                                              parley_t_command_fn fn, void* user) {
        auto& i = I(c, "command_register");
        if (name.len == 0 || !fn) return PARLEY_ERR_INVALID;
        std::lock_guard lk(i.host->mu_);
        auto [it, fresh] =
            i.host->commands_.emplace(std::string(detail::sv(name)), Command{&i, fn, user});
        return fresh ? PARLEY_OK : PARLEY_ERR_EXISTS;
    }
    static parley_t_status h_command_call(parley_t_host_ctx_hptr c, parley_t_bytes name,
                                          const parley_t_command_call* call) {
        return I(c, "command_call").host->do_command_call(detail::sv(name), call);
    }
    static parley_t_status h_http_route(parley_t_host_ctx_hptr c, parley_t_bytes method,
                                        parley_t_bytes path, parley_t_http_fn fn, void* user) {
        auto& i = I(c, "http_route");
        if (!fn) return PARLEY_ERR_INVALID;
        std::string p(detail::sv(path));
        bool prefix = !p.empty() && p.back() == '*';
        if (prefix) p.pop_back();
        if (p.empty() || p[0] != '/') return PARLEY_ERR_INVALID;
        std::string m(detail::sv(method));
        std::lock_guard lk(i.host->mu_);
        for (auto& r : i.host->routes_)
            if (r.path == p && r.prefix == prefix && r.method == m) return PARLEY_ERR_EXISTS;
        i.host->routes_.push_back(Route{&i, std::move(m), std::move(p), prefix, fn, user});
        return PARLEY_OK;
    }
    static parley_t_status h_http_dispatch(parley_t_host_ctx_hptr c,
                                           const parley_t_http_request* req,
                                           parley_t_http_response_hptr resp) {
        auto* h = I(c, "http_dispatch").host;
        if (!req || !resp) return PARLEY_ERR_INVALID;
        return h->do_http_dispatch(req, resp);
    }
    static void h_http_respond(parley_t_http_response_hptr resp, int status, parley_t_bytes ct,
                               parley_t_bytes headers, parley_t_bytes body) {
        if (resp && resp->respond) resp->respond(resp, status, ct, headers, body);
    }
    static int h_draining(parley_t_host_ctx_hptr c) {
        return I(c, "draining").host->draining_.load() ? 1 : 0;
    }
    static parley_t_status h_work_submit(parley_t_host_ctx_hptr c, parley_t_work_fn fn,
                                         void* user) {
        auto& i = I(c, "work_submit");
        if (!fn) return PARLEY_ERR_INVALID;
        {
            std::lock_guard lk(i.host->mu_);
            if (!i.host->work_inline_) {
                if (i.host->work_.size() >= i.host->work_limit_) return PARLEY_ERR_LIMIT;
                i.host->work_.emplace_back(fn, user);
                return PARLEY_OK;
            }
        }
        i.host->guard_call(i.name, "work item", [&] { fn(user); });
        return PARLEY_OK;
    }

    // ---- 0.2: room bridge. The fake host is one node: it records a registered bridge (see
    // room_bridge()) but never routes through it; inject reaches local members only. ----
    static parley_t_status h_room_bridge_set(parley_t_host_ctx_hptr c,
                                             const parley_t_room_bridge* b) {
        auto* h = I(c, "room_bridge_set").host;
        std::lock_guard lk(h->mu_);
        if (!b) {
            h->bridge_.reset();
            return PARLEY_OK;
        }
        if (b->node_slot > 255) return PARLEY_ERR_INVALID;
        parley_t_room_bridge copy{};
        std::memcpy(&copy, b, std::min<size_t>(b->struct_size, sizeof copy));
        h->bridge_ = copy;
        return PARLEY_OK;
    }
    static parley_t_status h_room_inject(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                         parley_t_bytes label, parley_t_frame_hptr f,
                                         uint64_t seq) {
        auto* h = I(c, "room_inject").host;
        if (!f) return PARLEY_ERR_INVALID;
        std::vector<Rcpt> rc;
        {
            std::lock_guard lk(h->mu_);
            auto it = h->rooms_.find(detail::sv(room));
            if (it == h->rooms_.end()) return PARLEY_ERR_NOT_FOUND;
            for (auto& m : it->second.members)
                if ((label.len == 0 || m.label == detail::sv(label)) &&
                    (seq == 0 || m.join_seq < seq))
                    rc.push_back(h->rcpt_locked(m.conn));
        }
        if (rc.empty() && label.len) return PARLEY_ERR_NOT_FOUND;
        h->deliver(rc, f);
        return PARLEY_OK;
    }
    static parley_t_status h_room_farewell(parley_t_host_ctx_hptr c, parley_t_conn_id,
                                           parley_t_bytes, parley_t_frame_hptr) {
        I(c, "room_farewell");
        return PARLEY_OK; // no bridge is ever routed: nothing to tell
    }
    static parley_t_status h_room_meta_set_async(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                                 uint32_t key, parley_t_bytes value, uint32_t flags,
                                                 parley_t_meta_done_fn done, void* user) {
        auto st = h_room_meta_set(c, room, key, value, flags);
        if (st != PARLEY_OK && st != PARLEY_ERR_EXISTS) return st;
        if (done) done(user, st);
        return PARLEY_OK;
    }

    static parley_t_host make_table() {
        parley_t_host h{};
        h.struct_size = sizeof h;
        h.abi_major = PARLEY_ABI_MAJOR;
        h.abi_minor = PARLEY_ABI_MINOR;
        h.log = &h_log;
        h.log_enabled = &h_log_enabled;
        h.set_error = &h_set_error;
        h.config_get = &h_config_get;
        h.instance_name = &h_instance_name;
        h.profile_name = &h_profile_name;
        h.state_dir = &h_state_dir;
        h.metric = &h_metric;
        h.metric_add = &h_metric_add;
        h.metric_set = &h_metric_set;
        h.metrics_render = &h_metrics_render;
        h.timer_start = &h_timer_start;
        h.timer_cancel = &h_timer_cancel;
        h.frame_alloc = &h_frame_alloc;
        h.frame_retain = &h_frame_retain;
        h.frame_release = &h_frame_release;
        h.conn_open = &h_conn_open;
        h.conn_closed = &h_conn_closed;
        h.conn_close = &h_conn_close;
        h.send_to = &h_send_to;
        h.room_join = &h_room_join;
        h.room_leave = &h_room_leave;
        h.room_publish = &h_room_publish;
        h.room_publish_persist = &h_room_publish_persist;
        h.room_send_to_member = &h_room_send_to_member;
        h.room_members = &h_room_members;
        h.room_meta_get = &h_room_meta_get;
        h.room_meta_set = &h_room_meta_set;
        h.history_fetch = &h_history_fetch;
        h.history_clear = &h_history_clear;
        h.blob_put = &h_blob_put;
        h.blob_list = &h_blob_list;
        h.blob_get = &h_blob_get;
        h.blob_delete = &h_blob_delete;
        h.command_register = &h_command_register;
        h.command_call = &h_command_call;
        h.http_route = &h_http_route;
        h.http_dispatch = &h_http_dispatch;
        h.http_respond = &h_http_respond;
        h.draining = &h_draining;
        h.work_submit = &h_work_submit;
        h.room_bridge_set = &h_room_bridge_set;
        h.room_inject = &h_room_inject;
        h.room_farewell = &h_room_farewell;
        h.room_meta_set_async = &h_room_meta_set_async;
        return h;
    }

    // ---- state ----

    parley_t_host table_{};
    parley_t_host full_table_{};

    mutable std::mutex mu_; // everything below except logs, deliveries and frames
    std::condition_variable timer_cv_;
    std::vector<std::shared_ptr<Inst>> instances_;
    detail::ConfigMap config_;
    std::string profile_name_ = "test";
    std::string state_dir_;
    std::map<std::string, std::unique_ptr<detail::Metric>, std::less<>> metrics_;
    std::map<uint64_t, Timer> timers_;
    uint64_t next_timer_ = 1;
    uint64_t running_timer_ = 0;
    std::thread::id running_thread_;
    uint64_t now_ms_ = 0;
    int64_t wall_base_ms_ = 0;
    std::map<parley_t_conn_id, Conn> conns_;
    parley_t_conn_id next_conn_ = 1;
    uint32_t max_connections_ = 100000;
    uint32_t rooms_per_connection_ = 16;
    uint32_t members_per_room_ = 10000;
    std::map<std::string, Room, std::less<>> rooms_;
    uint64_t seq_ = 0; // last assigned room sequence
    std::shared_ptr<Inst> store_;
    bool store_up_ = true;
    std::map<std::string, std::deque<HistoryRecord>, std::less<>> history_;
    std::map<std::string, BlobRecord> blobs_;
    uint64_t next_blob_ = 1;
    std::map<std::string, Command, std::less<>> commands_;
    std::vector<Route> routes_;
    std::vector<std::unique_ptr<detail::Response>> responses_;
    bool work_inline_ = true;
    size_t work_limit_ = 4096;
    std::deque<std::pair<parley_t_work_fn, void*>> work_;
    std::vector<void*> libraries_;
    std::atomic<bool> draining_{false};

    mutable std::mutex frames_mu_;
    std::vector<std::unique_ptr<detail::FrameBlock>> frames_;

    mutable std::mutex log_mu_; // logs, errors, violations, deliveries, closes
    std::atomic<int> log_min_{PARLEY_LOG_TRACE};
    std::atomic<bool> log_echo_{false};
    std::vector<LogLine> logs_;
    std::vector<std::string> errors_;
    std::vector<std::string> violations_;
    std::vector<Delivery> deliveries_;
    std::vector<CloseRequest> closes_;
};

// ---- FakeInstance lifecycle ----

inline parley_t_status FakeInstance::create() {
    auto* h = st_ ? st_->host : nullptr;
    if (!h || st_->state != State::Loaded) {
        if (h) h->violation("create called on '" + st_->name + "' in the wrong state");
        return PARLEY_ERR_INVALID;
    }
    // parleyd validates the profile against the schema before any instance exists.
    if (auto bad = h->validate_config(*st_); !bad.empty()) {
        st_->error = bad;
        st_->state = State::Failed;
        return PARLEY_ERR_INVALID;
    }
    parley_t_instance_pptr p = nullptr;
    h->guard_call(st_->name, "create", [&] { p = st_->vt.create(&h->table_, ctx()); });
    if (!p) {
        if (!st_->error_set)
            h->violation("create of '" + st_->name + "' returned NULL without set_error");
        st_->state = State::Failed;
        return PARLEY_ERR;
    }
    st_->inst = p;
    st_->state = State::Created;
    return PARLEY_OK;
}

inline parley_t_status FakeInstance::start() {
    auto* h = st_ ? st_->host : nullptr;
    if (!h || st_->state != State::Created) {
        if (h) h->violation("start called on '" + st_->name + "' in the wrong state");
        return PARLEY_ERR_INVALID;
    }
    parley_t_status s = PARLEY_ERR;
    st_->state = State::Started; // hooks run during start may already see the instance live
    if (!h->guard_call(st_->name, "start", [&] { s = st_->vt.start(st_->inst); })) s = PARLEY_ERR;
    if (s != PARLEY_OK) {
        if (!st_->error_set) h->violation("start of '" + st_->name + "' failed without set_error");
        stop();
        destroy();
    }
    return s;
}

inline void FakeInstance::call_drain(detail::Instance& i, uint32_t grace_ms) {
    if (i.vt.drain) i.host->guard_call(i.name, "drain", [&] { i.vt.drain(i.inst, grace_ms); });
}

inline void FakeInstance::drain(uint32_t grace_ms) {
    if (st_ && st_->host && st_->state == State::Started) call_drain(*st_, grace_ms);
}

inline void FakeInstance::stop() {
    auto* h = st_ ? st_->host : nullptr;
    if (!h || st_->state != State::Started) return;
    h->guard_call(st_->name, "stop", [&] { st_->vt.stop(st_->inst); });
    st_->state = State::Stopped;
}

inline void FakeInstance::destroy() {
    auto* h = st_ ? st_->host : nullptr;
    if (!h) return;
    if (st_->state == State::Started) stop();
    if (st_->state != State::Created && st_->state != State::Stopped) return;
    h->guard_call(st_->name, "destroy", [&] { st_->vt.destroy(st_->inst); });
    st_->inst = nullptr;
    st_->state = State::Destroyed;
    h->forget_instance(st_.get());
}

inline parley_t_status FakeInstance::reload() {
    auto* h = st_ ? st_->host : nullptr;
    if (!h || st_->state != State::Started) return PARLEY_ERR_INVALID;
    if (auto bad = h->validate_config(*st_); !bad.empty()) {
        st_->error = bad; // parleyd keeps the old profile running
        return PARLEY_ERR_INVALID;
    }
    if (!st_->vt.reload) {
        st_->error = "plugin has no reload hook; restart needed";
        return PARLEY_ERR;
    }
    parley_t_status s = PARLEY_ERR;
    h->guard_call(st_->name, "reload", [&] { s = st_->vt.reload(st_->inst); });
    return s;
}

template <typename T> void FakeInstance::set_config(std::string_view path, T&& v) {
    if (!st_ || !st_->host) return;
    std::lock_guard lk(st_->host->mu_);
    FakeHost::put_config(st_->config, path, std::forward<T>(v));
}

inline void FakeInstance::teardown() noexcept {
    if (!st_ || !st_->host) return;
    try {
        destroy();
    } catch (...) {
        // Teardown runs from destructors; the fake records plugin exceptions itself.
    }
}

} // namespace parley::sdk::testing
