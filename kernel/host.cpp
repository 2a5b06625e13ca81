// The parley_t_host table: every function a plugin may call. Each one recovers the instance
// from its ctx and forwards to the kernel subsystem that owns the work.
#include "kernel.hpp"
#include "log.hpp"

#include <cstring>

namespace parley::kernel {

namespace {

std::string_view sv(parley_t_bytes b) {
    return {b.ptr ? b.ptr : "", b.len};
}
Kernel& K(parley_t_host_ctx_hptr c) {
    return *c->kernel;
}

spdlog::level::level_enum to_spd(parley_t_log_level l) {
    switch (l) {
    case PARLEY_LOG_TRACE:
        return spdlog::level::trace;
    case PARLEY_LOG_DEBUG:
        return spdlog::level::debug;
    case PARLEY_LOG_INFO:
        return spdlog::level::info;
    case PARLEY_LOG_WARN:
        return spdlog::level::warn;
    default:
        return spdlog::level::err;
    }
}

void h_log(parley_t_host_ctx_hptr c, parley_t_log_level l, parley_t_bytes msg) {
    c->log->log(to_spd(l), "{}", sv(msg));
}
int h_log_enabled(parley_t_host_ctx_hptr c, parley_t_log_level l) {
    return c->log->should_log(to_spd(l)) ? 1 : 0;
}
void h_set_error(parley_t_host_ctx_hptr c, parley_t_bytes msg) {
    c->last_error.assign(msg.ptr ? msg.ptr : "", msg.len);
}

parley_t_status h_config_get(parley_t_host_ctx_hptr c, parley_t_bytes path,
                             parley_t_config_value* out) {
    auto cfg = c->config_snapshot();
    const config::Value* v = cfg ? cfg->find(sv(path)) : nullptr;
    if (!v) return PARLEY_ERR_NOT_FOUND;
    config::fill(*v, out);
    return PARLEY_OK;
}
parley_t_bytes h_instance_name(parley_t_host_ctx_hptr c) {
    return {c->name.data(), c->name.size()};
}
parley_t_bytes h_profile_name(parley_t_host_ctx_hptr c) {
    auto& n = K(c).profile().name;
    return {n.data(), n.size()};
}
parley_t_bytes h_state_dir(parley_t_host_ctx_hptr c) {
    auto& d = K(c).profile().state_dir.native();
    return {d.data(), d.size()};
}

parley_t_metric_hptr h_metric(parley_t_host_ctx_hptr c, parley_t_metric_kind kind,
                              parley_t_bytes name, parley_t_bytes help) {
    return K(c).metrics().get(kind, sv(name), sv(help), c->name);
}
void h_metric_add(parley_t_metric_hptr m, int64_t d) {
    if (m) m->value.fetch_add(d, std::memory_order_relaxed);
}
void h_metric_set(parley_t_metric_hptr m, int64_t v) {
    if (m) m->value.store(v, std::memory_order_relaxed);
}
parley_t_frame_hptr h_metrics_render(parley_t_host_ctx_hptr c) {
    std::string text = K(c).metrics().render();
    // Kernel gauges are computed at render time rather than updated on every change.
    auto& k = K(c);
    text += "# HELP parley_connections Open client connections.\n# TYPE parley_connections gauge\n"
            "parley_connections " +
            std::to_string(k.rooms().conn_count()) + "\n";
    text += "# HELP parley_rooms Rooms alive.\n# TYPE parley_rooms gauge\nparley_rooms " +
            std::to_string(k.rooms().room_count()) + "\n";
    text += "# HELP parley_frames_alive Shared frame buffers alive.\n"
            "# TYPE parley_frames_alive gauge\nparley_frames_alive " +
            std::to_string(frames_alive()) + "\n";
    text += "# HELP parley_draining 1 while draining.\n# TYPE parley_draining gauge\n"
            "parley_draining " +
            std::string(k.draining() ? "1" : "0") + "\n";
    auto* f = frame_alloc(text.size());
    std::memcpy(f->data, text.data(), text.size());
    f->len = text.size();
    return f;
}

uint64_t h_timer_start(parley_t_host_ctx_hptr c, uint64_t delay, uint64_t interval,
                       parley_t_timer_fn fn, void* user) {
    return K(c).timers().start(delay, interval, fn, user, c);
}
void h_timer_cancel(parley_t_host_ctx_hptr c, uint64_t id) {
    K(c).timers().cancel(id);
}

parley_t_frame_hptr h_frame_alloc(parley_t_host_ctx_hptr, size_t cap) {
    return frame_alloc(cap);
}
void h_frame_retain(parley_t_frame_hptr f) {
    frame_retain(f);
}
void h_frame_release(parley_t_frame_hptr f) {
    frame_release(f);
}

parley_t_conn_id h_conn_open(parley_t_host_ctx_hptr c, uint64_t tag) {
    if (K(c).draining()) return 0;
    return K(c).rooms().conn_open(c, tag);
}
void h_conn_closed(parley_t_host_ctx_hptr c, parley_t_conn_id id) {
    K(c).rooms().conn_closed(id);
}
void h_conn_close(parley_t_host_ctx_hptr c, parley_t_conn_id id, uint16_t code,
                  parley_t_bytes reason) {
    K(c).rooms().conn_close(id, code, sv(reason));
}
parley_t_status h_send_to(parley_t_host_ctx_hptr c, parley_t_conn_id id, parley_t_frame_hptr f) {
    return K(c).rooms().send_to(id, f);
}

parley_t_status h_room_join(parley_t_host_ctx_hptr c, parley_t_conn_id id, parley_t_bytes room,
                            parley_t_bytes label, parley_t_join_result* out) {
    return K(c).rooms().join(id, sv(room), sv(label), out);
}
parley_t_status h_room_leave(parley_t_host_ctx_hptr c, parley_t_conn_id id, parley_t_bytes room,
                             uint32_t* left) {
    return K(c).rooms().leave(id, sv(room), left);
}
parley_t_status h_room_publish(parley_t_host_ctx_hptr c, parley_t_bytes room, parley_t_frame_hptr f,
                               parley_t_conn_id except) {
    return K(c).rooms().publish(sv(room), f, except);
}
parley_t_status h_room_publish_persist(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                       parley_t_frame_hptr f, parley_t_conn_id except,
                                       parley_t_bytes record, parley_t_store_done_fn done,
                                       void* user) {
    return K(c).rooms().publish_persist(sv(room), f, except, sv(record), done, user);
}
parley_t_status h_room_send_to_member(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                      parley_t_bytes label, parley_t_frame_hptr f) {
    return K(c).rooms().send_to_member(sv(room), sv(label), f);
}
uint32_t h_room_members(parley_t_host_ctx_hptr c, parley_t_bytes room, parley_t_member_fn fn,
                        void* user) {
    return K(c).rooms().members(sv(room), fn, user);
}
parley_t_status h_room_meta_get(parley_t_host_ctx_hptr c, parley_t_bytes room, uint32_t key,
                                char* out, size_t cap, size_t* out_len) {
    return K(c).rooms().meta_get(sv(room), key, out, cap, out_len);
}
parley_t_status h_room_meta_set(parley_t_host_ctx_hptr c, parley_t_bytes room, uint32_t key,
                                parley_t_bytes value, uint32_t flags) {
    return K(c).rooms().meta_set(sv(room), key, sv(value), flags);
}

Instance* live_store(parley_t_host_ctx_hptr c) {
    Instance* s = K(c).rooms().store();
    return s && s->live.load() ? s : nullptr;
}
parley_t_status h_history_fetch(parley_t_host_ctx_hptr c, parley_t_bytes room, uint32_t max,
                                uint64_t upto, parley_t_history_fn fn, void* user) {
    return K(c).rooms().history_fetch(sv(room), max, upto, fn, user);
}
parley_t_status h_history_clear(parley_t_host_ctx_hptr c, parley_t_bytes room,
                                parley_t_store_done_fn fn, void* user) {
    auto* s = live_store(c);
    if (!s) return PARLEY_ERR_UNAVAILABLE;
    s->vt.history_clear(s->inst, room, fn, user);
    return PARLEY_OK;
}
parley_t_status h_blob_put(parley_t_host_ctx_hptr c, parley_t_bytes rcpt, parley_t_bytes data,
                           int64_t exp, parley_t_blob_put_fn fn, void* user) {
    auto* s = live_store(c);
    if (!s) return PARLEY_ERR_UNAVAILABLE;
    s->vt.blob_put(s->inst, rcpt, data, exp, fn, user);
    return PARLEY_OK;
}
parley_t_status h_blob_list(parley_t_host_ctx_hptr c, parley_t_bytes rcpt, uint32_t off,
                            uint32_t lim, parley_t_blob_list_fn fn, void* user) {
    auto* s = live_store(c);
    if (!s) return PARLEY_ERR_UNAVAILABLE;
    s->vt.blob_list(s->inst, rcpt, off, lim, fn, user);
    return PARLEY_OK;
}
parley_t_status h_blob_get(parley_t_host_ctx_hptr c, parley_t_bytes id, parley_t_blob_list_fn fn,
                           void* user) {
    auto* s = live_store(c);
    if (!s) return PARLEY_ERR_UNAVAILABLE;
    s->vt.blob_get(s->inst, id, fn, user);
    return PARLEY_OK;
}
parley_t_status h_blob_delete(parley_t_host_ctx_hptr c, parley_t_bytes id,
                              parley_t_store_done_fn fn, void* user) {
    auto* s = live_store(c);
    if (!s) return PARLEY_ERR_UNAVAILABLE;
    s->vt.blob_delete(s->inst, id, fn, user);
    return PARLEY_OK;
}

parley_t_status h_command_register(parley_t_host_ctx_hptr c, parley_t_bytes name,
                                   parley_t_command_fn fn, void* user) {
    if (name.len == 0 || !fn) return PARLEY_ERR_INVALID;
    return K(c).register_command(c, std::string(sv(name)), fn, user);
}
parley_t_status h_command_call(parley_t_host_ctx_hptr c, parley_t_bytes name,
                               const parley_t_command_call* call) {
    return K(c).call_command(sv(name), call);
}
parley_t_status h_http_route(parley_t_host_ctx_hptr c, parley_t_bytes method, parley_t_bytes path,
                             parley_t_http_fn fn, void* user) {
    if (!fn) return PARLEY_ERR_INVALID;
    return K(c).register_route(c, std::string(sv(method)), std::string(sv(path)), fn, user);
}
parley_t_status h_http_dispatch(parley_t_host_ctx_hptr c, const parley_t_http_request* req,
                                parley_t_http_response_hptr resp) {
    return K(c).dispatch_http(req, resp);
}
void h_http_respond(parley_t_http_response_hptr resp, int status, parley_t_bytes ct,
                    parley_t_bytes headers, parley_t_bytes body) {
    resp->respond(resp, status, ct, headers, body);
}
int h_draining(parley_t_host_ctx_hptr c) {
    return K(c).draining() ? 1 : 0;
}
parley_t_status h_work_submit(parley_t_host_ctx_hptr c, parley_t_work_fn fn, void* user) {
    return K(c).workers().submit(fn, user);
}

parley_t_status h_room_bridge_set(parley_t_host_ctx_hptr c, const parley_t_room_bridge* b) {
    return K(c).rooms().set_bridge(c, b);
}
parley_t_status h_room_inject(parley_t_host_ctx_hptr c, parley_t_bytes room, parley_t_bytes label,
                              parley_t_frame_hptr f, uint64_t seq) {
    return K(c).rooms().inject(sv(room), sv(label), f, seq);
}
parley_t_status h_room_farewell(parley_t_host_ctx_hptr c, parley_t_conn_id conn,
                                parley_t_bytes room, parley_t_frame_hptr f) {
    return K(c).rooms().farewell(conn, sv(room), f);
}
parley_t_status h_room_meta_set_async(parley_t_host_ctx_hptr c, parley_t_bytes room, uint32_t key,
                                      parley_t_bytes value, uint32_t flags,
                                      parley_t_meta_done_fn done, void* user) {
    return K(c).rooms().meta_set_async(sv(room), key, sv(value), flags, done, user);
}

const parley_t_host kHost = [] {
    parley_t_host h{};
    h.struct_size = sizeof h;
    h.abi_major = PARLEY_ABI_MAJOR;
    h.abi_minor = PARLEY_ABI_MINOR;
    h.log = h_log;
    h.log_enabled = h_log_enabled;
    h.set_error = h_set_error;
    h.config_get = h_config_get;
    h.instance_name = h_instance_name;
    h.profile_name = h_profile_name;
    h.state_dir = h_state_dir;
    h.metric = h_metric;
    h.metric_add = h_metric_add;
    h.metric_set = h_metric_set;
    h.metrics_render = h_metrics_render;
    h.timer_start = h_timer_start;
    h.timer_cancel = h_timer_cancel;
    h.frame_alloc = h_frame_alloc;
    h.frame_retain = h_frame_retain;
    h.frame_release = h_frame_release;
    h.conn_open = h_conn_open;
    h.conn_closed = h_conn_closed;
    h.conn_close = h_conn_close;
    h.send_to = h_send_to;
    h.room_join = h_room_join;
    h.room_leave = h_room_leave;
    h.room_publish = h_room_publish;
    h.room_publish_persist = h_room_publish_persist;
    h.room_send_to_member = h_room_send_to_member;
    h.room_members = h_room_members;
    h.room_meta_get = h_room_meta_get;
    h.room_meta_set = h_room_meta_set;
    h.history_fetch = h_history_fetch;
    h.history_clear = h_history_clear;
    h.blob_put = h_blob_put;
    h.blob_list = h_blob_list;
    h.blob_get = h_blob_get;
    h.blob_delete = h_blob_delete;
    h.command_register = h_command_register;
    h.command_call = h_command_call;
    h.http_route = h_http_route;
    h.http_dispatch = h_http_dispatch;
    h.http_respond = h_http_respond;
    h.draining = h_draining;
    h.work_submit = h_work_submit;
    h.room_bridge_set = h_room_bridge_set;
    h.room_inject = h_room_inject;
    h.room_farewell = h_room_farewell;
    h.room_meta_set_async = h_room_meta_set_async;
    return h;
}();

} // namespace

const parley_t_host* Kernel::host_table() const {
    return &kHost;
}

} // namespace parley::kernel
