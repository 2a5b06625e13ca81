// parley C++ SDK: a header-only wrapper over the C ABI in plugin.h.
//
// A plugin author writes one class derived from parley::sdk::Plugin, a static config table,
// and one PARLEY_PLUGIN(...) line. The macro writes the C vtable, the descriptor and the
// exported entry symbol; exceptions never cross the boundary (they become set_error + an
// error status). See examples/plugin-hello and docs/plugins.md.
#pragma once

#include <parley/plugin.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace parley::sdk {

inline parley_t_bytes bytes(std::string_view s) {
    return {s.data(), s.size()};
}
inline std::string_view view(parley_t_bytes b) {
    return {b.ptr ? b.ptr : "", b.len};
}

// ---- config table helpers (constexpr so tables stay in read-only data) ----

constexpr parley_t_config_key key(const char* name, parley_t_config_type type,
                                  const char* default_value, const char* description,
                                  uint32_t flags = 0) {
    parley_t_config_key k{};
    k.struct_size = sizeof(parley_t_config_key);
    k.name = name;
    k.type = type;
    k.flags = flags;
    k.default_value = default_value;
    k.description = description;
    k.min = 1;
    k.max = 0; // min > max: unbounded
    return k;
}
constexpr parley_t_config_key key_range(const char* name, parley_t_config_type type,
                                        const char* default_value, int64_t min, int64_t max,
                                        const char* description, uint32_t flags = 0) {
    parley_t_config_key k = key(name, type, default_value, description, flags);
    k.min = min;
    k.max = max;
    return k;
}
constexpr parley_t_config_key key_enum(const char* name, const char* values,
                                       const char* default_value, const char* description,
                                       uint32_t flags = 0) {
    parley_t_config_key k = key(name, PARLEY_CFG_ENUM, default_value, description, flags);
    k.enum_values = values;
    return k;
}
constexpr parley_t_config_key key_list(const char* name, parley_t_config_type item_type,
                                       const char* description, uint32_t flags = 0) {
    parley_t_config_key k = key(name, PARLEY_CFG_LIST, nullptr, description, flags);
    k.item_type = item_type;
    return k;
}
template <size_t N>
constexpr parley_t_config_key key_map(const char* name, const parley_t_config_key (&children)[N],
                                      const char* description, uint32_t flags = 0) {
    parley_t_config_key k = key(name, PARLEY_CFG_MAP, nullptr, description, flags);
    k.children = children;
    k.children_len = N;
    return k;
}
template <size_t N>
constexpr parley_t_config_key key_list_of_maps(const char* name,
                                               const parley_t_config_key (&children)[N],
                                               const char* description, uint32_t flags = 0) {
    parley_t_config_key k = key(name, PARLEY_CFG_LIST, nullptr, description, flags);
    k.children = children;
    k.children_len = N;
    return k;
}

// ---- refcounted frame handle ----

class Frame {
  public:
    Frame() = default;
    // Adopts one reference (e.g. from frame_alloc).
    Frame(const parley_t_host* host, parley_t_frame_hptr f) : host_(host), f_(f) {}
    static Frame retain(const parley_t_host* host, parley_t_frame_hptr f) {
        host->frame_retain(f);
        return Frame(host, f);
    }
    Frame(const Frame& o) : host_(o.host_), f_(o.f_) {
        if (f_) host_->frame_retain(f_);
    }
    Frame(Frame&& o) noexcept : host_(o.host_), f_(std::exchange(o.f_, nullptr)) {}
    Frame& operator=(Frame o) noexcept {
        std::swap(host_, o.host_);
        std::swap(f_, o.f_);
        return *this;
    }
    ~Frame() {
        if (f_) host_->frame_release(f_);
    }
    parley_t_frame_hptr get() const { return f_; }
    explicit operator bool() const { return f_ != nullptr; }
    std::string_view view() const { return f_ ? std::string_view(f_->data, f_->len) : ""; }
    // Append while the frame is still private to its allocator. Returns false when full.
    bool append(std::string_view s) {
        if (f_->len + s.size() > f_->capacity) return false;
        std::copy(s.begin(), s.end(), f_->data + f_->len);
        f_->len += s.size();
        return true;
    }

  private:
    const parley_t_host* host_ = nullptr;
    parley_t_frame_hptr f_ = nullptr;
};

// ---- host wrapper handed to each instance ----

class Host {
  public:
    Host(const parley_t_host* table, parley_t_host_ctx_hptr ctx) : t_(table), ctx_(ctx) {}
    const parley_t_host* table() const { return t_; }
    parley_t_host_ctx_hptr ctx() const { return ctx_; }

    bool log_enabled(parley_t_log_level lvl) const { return t_->log_enabled(ctx_, lvl) != 0; }
    void log(parley_t_log_level lvl, std::string_view msg) const { t_->log(ctx_, lvl, bytes(msg)); }
    __attribute__((format(printf, 3, 4))) void logf(parley_t_log_level lvl, const char* fmt,
                                                    ...) const {
        if (!log_enabled(lvl)) return;
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        log(lvl, std::string_view(buf, std::min<size_t>(size_t(n), sizeof buf - 1)));
    }
    void set_error(std::string_view msg) const { t_->set_error(ctx_, bytes(msg)); }

    std::optional<parley_t_config_value> config(std::string_view path) const {
        parley_t_config_value v{};
        v.struct_size = sizeof v;
        if (t_->config_get(ctx_, bytes(path), &v) != PARLEY_OK || v.type == 0) return std::nullopt;
        return v;
    }
    int64_t config_int(std::string_view path, int64_t fallback = 0) const {
        auto v = config(path);
        return v ? v->i : fallback;
    }
    bool config_bool(std::string_view path, bool fallback = false) const {
        auto v = config(path);
        return v ? v->i != 0 : fallback;
    }
    std::string config_string(std::string_view path, std::string fallback = {}) const {
        auto v = config(path);
        return v ? std::string(view(v->s)) : fallback;
    }
    size_t config_count(std::string_view path) const {
        auto v = config(path);
        return v ? v->count : 0;
    }

    std::string instance_name() const { return std::string(view(t_->instance_name(ctx_))); }
    std::string profile_name() const { return std::string(view(t_->profile_name(ctx_))); }
    std::string state_dir() const { return std::string(view(t_->state_dir(ctx_))); }

    parley_t_metric_hptr counter(std::string_view name, std::string_view help) const {
        return t_->metric(ctx_, PARLEY_METRIC_COUNTER, bytes(name), bytes(help));
    }
    parley_t_metric_hptr gauge(std::string_view name, std::string_view help) const {
        return t_->metric(ctx_, PARLEY_METRIC_GAUGE, bytes(name), bytes(help));
    }
    void add(parley_t_metric_hptr m, int64_t d = 1) const {
        if (m) t_->metric_add(m, d);
    }
    void set(parley_t_metric_hptr m, int64_t v) const {
        if (m) t_->metric_set(m, v);
    }

    Frame frame(size_t capacity) const { return Frame(t_, t_->frame_alloc(ctx_, capacity)); }
    Frame frame_of(std::string_view s, uint32_t flags = PARLEY_FRAME_TEXT) const {
        Frame f = frame(s.size());
        f.append(s);
        f.get()->flags = flags;
        return f;
    }

  private:
    const parley_t_host* t_;
    parley_t_host_ctx_hptr ctx_;
};

// ---- base class for plugin instances ----

class Plugin {
  public:
    explicit Plugin(Host host) : host_(host) {}
    virtual ~Plugin() = default;
    Plugin(const Plugin&) = delete;
    Plugin& operator=(const Plugin&) = delete;

    virtual parley_t_status start() { return PARLEY_OK; }
    virtual void drain(uint32_t /*grace_ms*/) {}
    virtual void stop() {}
    virtual parley_t_status reload() { return PARLEY_OK; }

    // transports
    virtual void deliver(const parley_t_delivery* /*to*/, size_t /*n*/,
                         parley_t_frame_hptr /*frame*/) {}
    virtual void close_conn(parley_t_delivery /*conn*/, uint16_t /*code*/,
                            std::string_view /*reason*/) {}

    // stores
    virtual void history_append(std::string_view /*room*/, uint64_t /*seq*/,
                                std::string_view /*record*/, parley_t_store_done_fn fn,
                                void* user) {
        fn(user, PARLEY_ERR);
    }
    virtual void history_fetch(std::string_view /*room*/, uint32_t /*max*/, uint64_t /*upto*/,
                               parley_t_history_fn fn, void* user) {
        fn(user, PARLEY_ERR, nullptr, 0);
    }
    virtual void history_clear(std::string_view /*room*/, parley_t_store_done_fn fn, void* user) {
        fn(user, PARLEY_ERR);
    }
    virtual void blob_put(std::string_view /*recipient*/, std::string_view /*data*/,
                          int64_t /*expires_at_ms*/, parley_t_blob_put_fn fn, void* user) {
        fn(user, PARLEY_ERR, parley_t_bytes{nullptr, 0});
    }
    virtual void blob_list(std::string_view /*recipient*/, uint32_t /*offset*/, uint32_t /*limit*/,
                           parley_t_blob_list_fn fn, void* user) {
        fn(user, PARLEY_ERR, nullptr, 0);
    }
    virtual void blob_get(std::string_view /*id*/, parley_t_blob_list_fn fn, void* user) {
        fn(user, PARLEY_ERR, nullptr, 0);
    }
    virtual void blob_delete(std::string_view /*id*/, parley_t_store_done_fn fn, void* user) {
        fn(user, PARLEY_ERR);
    }

    const Host& host() const { return host_; }

  private:
    Host host_;
};

namespace detail {

// Converts any exception into set_error + status: nothing C++ crosses the C boundary.
template <typename F> parley_t_status guarded(const Host& host, F&& f) noexcept {
    try {
        return f();
    } catch (const std::exception& e) {
        host.set_error(e.what());
    } catch (...) {
        host.set_error("unknown exception");
    }
    return PARLEY_ERR;
}

template <typename T> struct Trampolines {
    static T* self(parley_t_instance_pptr p) { return static_cast<T*>(p); }

    static parley_t_instance_pptr create(const parley_t_host* table, parley_t_host_ctx_hptr ctx) {
        Host host(table, ctx);
        std::unique_ptr<T> inst;
        guarded(host, [&] {
            inst = std::make_unique<T>(host);
            return PARLEY_OK;
        });
        return inst.release(); // ownership passes to the host until destroy
    }
    static parley_t_status start(parley_t_instance_pptr p) {
        return guarded(self(p)->host(), [&] { return self(p)->start(); });
    }
    static void drain(parley_t_instance_pptr p, uint32_t grace_ms) {
        guarded(self(p)->host(), [&] {
            self(p)->drain(grace_ms);
            return PARLEY_OK;
        });
    }
    static void stop(parley_t_instance_pptr p) {
        guarded(self(p)->host(), [&] {
            self(p)->stop();
            return PARLEY_OK;
        });
    }
    static void destroy(parley_t_instance_pptr p) { std::unique_ptr<T> owned(self(p)); }
    static parley_t_status reload(parley_t_instance_pptr p) {
        return guarded(self(p)->host(), [&] { return self(p)->reload(); });
    }
    static void deliver(parley_t_instance_pptr p, const parley_t_delivery* to, size_t n,
                        parley_t_frame_hptr f) {
        guarded(self(p)->host(), [&] {
            self(p)->deliver(to, n, f);
            return PARLEY_OK;
        });
    }
    static void close_conn(parley_t_instance_pptr p, parley_t_delivery c, uint16_t code,
                           parley_t_bytes reason) {
        guarded(self(p)->host(), [&] {
            self(p)->close_conn(c, code, view(reason));
            return PARLEY_OK;
        });
    }
    static void history_append(parley_t_instance_pptr p, parley_t_bytes room, uint64_t seq,
                               parley_t_bytes rec, parley_t_store_done_fn fn, void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->history_append(view(room), seq, view(rec), fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR);
    }
    static void history_fetch(parley_t_instance_pptr p, parley_t_bytes room, uint32_t max,
                              uint64_t upto, parley_t_history_fn fn, void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->history_fetch(view(room), max, upto, fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR, nullptr, 0);
    }
    static void history_clear(parley_t_instance_pptr p, parley_t_bytes room,
                              parley_t_store_done_fn fn, void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->history_clear(view(room), fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR);
    }
    static void blob_put(parley_t_instance_pptr p, parley_t_bytes rcpt, parley_t_bytes data,
                         int64_t exp, parley_t_blob_put_fn fn, void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->blob_put(view(rcpt), view(data), exp, fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR, parley_t_bytes{nullptr, 0});
    }
    static void blob_list(parley_t_instance_pptr p, parley_t_bytes rcpt, uint32_t off, uint32_t lim,
                          parley_t_blob_list_fn fn, void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->blob_list(view(rcpt), off, lim, fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR, nullptr, 0);
    }
    static void blob_get(parley_t_instance_pptr p, parley_t_bytes id, parley_t_blob_list_fn fn,
                         void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->blob_get(view(id), fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR, nullptr, 0);
    }
    static void blob_delete(parley_t_instance_pptr p, parley_t_bytes id, parley_t_store_done_fn fn,
                            void* user) {
        if (guarded(self(p)->host(), [&] {
                self(p)->blob_delete(view(id), fn, user);
                return PARLEY_OK;
            }) != PARLEY_OK)
            fn(user, PARLEY_ERR);
    }

    // Only the hooks of the plugin's kind are published, so the host can tell what it offers.
    static constexpr parley_t_plugin_vtable vtable(parley_t_kind kind) {
        parley_t_plugin_vtable v{};
        v.struct_size = sizeof v;
        v.create = &create;
        v.start = &start;
        v.drain = &drain;
        v.stop = &stop;
        v.destroy = &destroy;
        v.reload = &reload;
        if (kind == PARLEY_KIND_TRANSPORT) {
            v.deliver = &deliver;
            v.close_conn = &close_conn;
        }
        if (kind == PARLEY_KIND_STORE) {
            v.history_append = &history_append;
            v.history_fetch = &history_fetch;
            v.history_clear = &history_clear;
            v.blob_put = &blob_put;
            v.blob_list = &blob_list;
            v.blob_get = &blob_get;
            v.blob_delete = &blob_delete;
        }
        return v;
    }
};

} // namespace detail
} // namespace parley::sdk

// Declares the plugin: CLASS derives from parley::sdk::Plugin and has a constructor taking
// parley::sdk::Host. CONFIG is a static, non-empty array of parley_t_config_key.
#define PARLEY_PLUGIN(CLASS, NAME, KIND, VERSION, DESCRIPTION, CONFIG)                             \
    namespace {                                                                                    \
    constexpr parley_t_plugin_vtable parley_plugin_vtable_ =                                       \
        ::parley::sdk::detail::Trampolines<CLASS>::vtable(KIND);                                   \
    const parley_t_descriptor parley_plugin_descriptor_ = {sizeof(parley_t_descriptor),            \
                                                           PARLEY_ABI_MAJOR,                       \
                                                           PARLEY_ABI_MINOR,                       \
                                                           NAME,                                   \
                                                           KIND,                                   \
                                                           VERSION,                                \
                                                           DESCRIPTION,                            \
                                                           CONFIG,                                 \
                                                           sizeof(CONFIG) /                        \
                                                               sizeof(parley_t_config_key),        \
                                                           &parley_plugin_vtable_};                \
    }                                                                                              \
    extern "C" PARLEY_EXPORT const parley_t_descriptor* parley_plugin_entry_v0(                    \
        uint16_t host_major, uint16_t /*host_minor*/, const char** error) {                        \
        if (host_major != PARLEY_ABI_MAJOR) {                                                      \
            if (error) *error = "plugin built for another parley ABI major";                       \
            return nullptr;                                                                        \
        }                                                                                          \
        return &parley_plugin_descriptor_;                                                         \
    }
