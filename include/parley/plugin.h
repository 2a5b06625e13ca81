/*
 * parley plugin ABI (C). This header is the whole contract between parleyd and a plugin .so.
 *
 * Rules (see docs/plugins.md for the long form):
 *  - Only C types cross the boundary: no STL, no exceptions, no C++ ABI.
 *  - A plugin exports exactly one symbol, PARLEY_ENTRY_SYMBOL (its name carries the ABI major,
 *    so a host of another major cannot bind it by accident). It returns a descriptor or NULL.
 *  - Every table starts with `uint32_t struct_size`. Fields are only ever appended; a comment
 *    marks the ABI minor that added each block. Readers test presence with PARLEY_HAS().
 *  - Version rule: a different major is refused. A plugin built for a newer minor than the host
 *    provides is refused with both versions named. While the major is 0 the ABI is unstable and
 *    the minor must match exactly.
 *  - Plugins are instances: `create` returns a per-instance context; no singletons. One .so may
 *    be instantiated several times in one profile and by several profiles on one host.
 *  - Plugins call the host only through the parley_t_host table handed to `create`; they link
 *    no parleyd symbols (-Wl,--no-undefined holds). They never exit(), throw across the
 *    boundary or print to stderr: they report errors with host->set_error and a return code.
 *
 * Naming: parley_t_* types; vtable slots are plugin hooks; parley_t_host slots are host
 * callbacks. Pointer typedefs say who owns the memory: *_hptr host-owned, *_pptr plugin-owned.
 *
 * Threads (every @thread note below refers to these):
 *  - main:     the kernel's main thread (load, create, start, reload, drain, stop, destroy).
 *  - any:      any thread, including plugin threads (reactors, workers). Such host functions are
 *              thread-safe and never block on I/O.
 *  - caller:   the thread that made the originating call.
 *  - worker:   a thread owned by the host or by a store plugin; callbacks marked so must only
 *              hand their result to the caller's own loop (queue + wake fd) and return quickly.
 * Rooms live in the kernel's room registry, split into shards each guarded by its own lock.
 * Room operations may be called from any thread. The kernel invokes transport `deliver` hooks
 * from the publishing thread AFTER releasing the shard lock; `deliver` must only enqueue and
 * wake, never block and never call back into room operations synchronously.
 *
 * Ownership of bytes: everything passed as parley_t_bytes is borrowed and valid only until the
 * call returns; copy it to keep it. The one exception is parley_t_frame, a refcounted buffer the
 * host allocates so one encoded frame can be shared by every recipient of a fan-out.
 * Static descriptor data (names, descriptions, schema) are NUL-terminated strings owned by the
 * plugin and must stay valid while the .so is loaded (they live in its read-only data).
 */
#ifndef PARLEY_PLUGIN_H
#define PARLEY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PARLEY_ABI_MAJOR 0
#define PARLEY_ABI_MINOR 2

#define PARLEY_ENTRY_SYMBOL "parley_plugin_entry_v0"

#if defined(__GNUC__)
#define PARLEY_EXPORT __attribute__((visibility("default")))
#else
#define PARLEY_EXPORT
#endif

/* True when `field` lies inside the first `tbl->struct_size` bytes and is non-NULL. */
#define PARLEY_HAS(tbl, field)                                                                     \
    ((tbl) != NULL &&                                                                              \
     offsetof(__typeof__(*(tbl)), field) + sizeof((tbl)->field) <= (tbl)->struct_size &&           \
     (tbl)->field)

/* ---------------------------------------------------------------------------------------- */
/* Basic types                                                                               */

/* Borrowed bytes. OWNERSHIP: the caller owns them; valid until the call returns. Not
 * NUL-terminated. */
typedef struct parley_t_bytes {
    const char* ptr;
    size_t len;
} parley_t_bytes;

typedef enum parley_t_kind {
    PARLEY_KIND_TRANSPORT = 1,
    PARLEY_KIND_STORE = 2,
    PARLEY_KIND_GUARD = 3,
    PARLEY_KIND_SERVICE = 4
} parley_t_kind;

typedef enum parley_t_log_level {
    PARLEY_LOG_TRACE = 0,
    PARLEY_LOG_DEBUG = 1,
    PARLEY_LOG_INFO = 2,
    PARLEY_LOG_WARN = 3,
    PARLEY_LOG_ERROR = 4
} parley_t_log_level;

/* Result codes of host calls and hooks. 0 is success; new codes are only appended. */
typedef enum parley_t_status {
    PARLEY_OK = 0,
    PARLEY_ERR = 1,             /* generic failure; details via set_error or logs */
    PARLEY_ERR_NOT_FOUND = 2,   /* no such room, connection, key, route */
    PARLEY_ERR_LIMIT = 3,       /* a configured limit refused it (members, rooms, bytes) */
    PARLEY_ERR_DENIED = 4,      /* a guard or ACL refused it */
    PARLEY_ERR_EXISTS = 5,      /* set-once value already set; name already registered */
    PARLEY_ERR_UNAVAILABLE = 6, /* dependency down (database, NATS) or draining */
    PARLEY_ERR_INVALID = 7      /* malformed argument */
} parley_t_status;

/* Opaque per-instance host context. OWNERSHIP: host. Valid from create until destroy returns. */
typedef struct parley_t_host_ctx parley_t_host_ctx;
typedef parley_t_host_ctx* parley_t_host_ctx_hptr;

/* Plugin instance context returned by create. OWNERSHIP: plugin; freed by its destroy hook. */
typedef void* parley_t_instance_pptr;

/* Connection id assigned by the host when a transport opens a connection (conn_open).
 * Never 0; never reused during the process lifetime. */
typedef uint64_t parley_t_conn_id;

/* ---------------------------------------------------------------------------------------- */
/* Refcounted frame buffers (host-allocated, shared across a fan-out)                        */

typedef enum parley_t_frame_flags {
    PARLEY_FRAME_TEXT = 1u << 0, /* a UTF-8 text message (else binary) */
    PARLEY_FRAME_CLOSE = 1u << 1 /* reserved */
} parley_t_frame_flags;

/* OWNERSHIP: host. A fresh frame from frame_alloc has refcount 1, owned by the allocator.
 * Whoever keeps a frame beyond the call that handed it over calls frame_retain, and
 * frame_release when done. `data` is writable only by the allocator before it is first shared;
 * after that it is immutable. */
typedef struct parley_t_frame {
    char* data;
    size_t len;      /* bytes in use */
    size_t capacity; /* bytes allocated at data */
    uint32_t flags;  /* parley_t_frame_flags */
} parley_t_frame;
typedef parley_t_frame* parley_t_frame_hptr;

/* ---------------------------------------------------------------------------------------- */
/* Configuration schema (declared by each plugin, validated by the kernel before start)      */

typedef enum parley_t_config_type {
    PARLEY_CFG_STRING = 1,
    PARLEY_CFG_INT = 2,
    PARLEY_CFG_BOOL = 3,
    PARLEY_CFG_SIZE = 4,     /* "64K", "2M", "1G" or a plain integer, in bytes */
    PARLEY_CFG_DURATION = 5, /* "250ms", "30s", "5m", "24h" or plain milliseconds */
    PARLEY_CFG_ENUM = 6,     /* one of enum_values ("a|b|c") */
    PARLEY_CFG_LIST = 7,     /* sequence of scalars of type `item_type`, or of maps (children) */
    PARLEY_CFG_MAP = 8       /* nested map whose keys are `children` */
} parley_t_config_type;

typedef enum parley_t_config_flags {
    PARLEY_CFG_REQUIRED = 1u << 0,
    PARLEY_CFG_DEPRECATED = 1u << 1, /* accepted with a warning naming `replaced_by` */
    PARLEY_CFG_SECRET = 1u << 2,     /* value never printed (describe, logs, status) */
    PARLEY_CFG_RESTART = 1u << 3     /* a change needs a restart; reload logs it and keeps old */
} parley_t_config_flags;

/* One declared key. Arrays of these are static plugin data. */
typedef struct parley_t_config_key {
    uint32_t struct_size;
    const char* name;
    uint32_t type;             /* parley_t_config_type */
    uint32_t flags;            /* parley_t_config_flags */
    const char* default_value; /* textual default as it would be written in YAML; NULL = none */
    const char* description;
    int64_t min; /* for INT, SIZE, DURATION (ms); min > max means unbounded */
    int64_t max;
    const char* enum_values; /* for ENUM: "a|b|c" */
    uint32_t item_type; /* for LIST of scalars: the item type; 0 with children = list of maps */
    const struct parley_t_config_key* children; /* for MAP and LIST of maps */
    size_t children_len;
    const char* replaced_by; /* for DEPRECATED */
} parley_t_config_key;

/* A validated, normalised config value read with host->config_get. Sizes are bytes, durations
 * milliseconds, enums strings. For LIST and MAP, `count` is the number of items or keys. */
typedef struct parley_t_config_value {
    uint32_t struct_size;
    uint32_t type;    /* parley_t_config_type; 0 when the key is absent without default */
    int64_t i;        /* INT, SIZE, DURATION, BOOL (0/1) */
    parley_t_bytes s; /* STRING, ENUM; OWNERSHIP: host, valid until the next reload */
    size_t count;     /* LIST, MAP */
} parley_t_config_value;

/* ---------------------------------------------------------------------------------------- */
/* Rooms                                                                                     */

/* Typed room metadata shared by dialects and guards. Values are opaque bytes. */
typedef enum parley_t_room_meta {
    PARLEY_META_ADMIN_HASH = 1,    /* hex SHA-256 of the admin token (bench) */
    PARLEY_META_PUBLIC = 2,        /* "1" when federated (bench) */
    PARLEY_META_PASSWORD_HASH = 3, /* crypto_pwhash_str output (link-room) */
    PARLEY_META_ACL = 4,           /* newline-separated allowed member ids (relay, signaling) */
    PARLEY_META_CUSTOM = 100       /* plugin-defined keys start here */
} parley_t_room_meta;

typedef enum parley_t_meta_flags {
    PARLEY_META_SET_ONCE = 1u << 0 /* fail with PARLEY_ERR_EXISTS if already set */
} parley_t_meta_flags;

typedef struct parley_t_join_result {
    uint32_t struct_size;
    uint32_t members;  /* member count after the join */
    uint32_t created;  /* 1 when this join created the room (first joiner) */
    uint64_t join_seq; /* room sequence at join: live messages have seq > join_seq */
} parley_t_join_result;

/* One recipient of a delivery: the host's id and the transport's own tag given at conn_open. */
typedef struct parley_t_delivery {
    parley_t_conn_id conn;
    uint64_t tag;
} parley_t_delivery;

/* Visitor for room_members. @thread caller. Return nonzero to stop early. */
typedef int (*parley_t_member_fn)(void* user, parley_t_conn_id conn, parley_t_bytes label);

/* ---------------------------------------------------------------------------------------- */
/* Store (history and blobs). The kernel routes these to the profile's store instance.       */

typedef struct parley_t_history_entry {
    uint64_t seq;          /* room sequence assigned by the kernel */
    parley_t_bytes record; /* OWNERSHIP: borrowed for the callback */
} parley_t_history_entry;

/* Completion of a store operation. @thread worker or caller (may run before the call returns).
 * OWNERSHIP: all pointers borrowed for the callback. `status` is PARLEY_OK or an error code;
 * PARLEY_ERR_UNAVAILABLE means the backend is down (answer 503), PARLEY_ERR_LIMIT that the
 * store is full. */
typedef void (*parley_t_store_done_fn)(void* user, parley_t_status status);
typedef void (*parley_t_history_fn)(void* user, parley_t_status status,
                                    const parley_t_history_entry* entries, size_t n);

typedef struct parley_t_blob {
    parley_t_bytes id;
    parley_t_bytes recipient;
    parley_t_bytes data;
    int64_t expires_at_ms; /* unix epoch milliseconds */
} parley_t_blob;

typedef void (*parley_t_blob_put_fn)(void* user, parley_t_status status, parley_t_bytes id);
typedef void (*parley_t_blob_list_fn)(void* user, parley_t_status status,
                                      const parley_t_blob* blobs, size_t n);

/* ---------------------------------------------------------------------------------------- */
/* Commands (service plugins) and HTTP routes                                               */

typedef struct parley_t_command_call {
    uint32_t struct_size;
    parley_t_conn_id conn;   /* the connection the command came from; 0 for control/internal */
    parley_t_bytes room;     /* may be empty */
    parley_t_bytes args;     /* command payload, usually JSON */
    parley_t_bytes identity; /* proven identity of the caller (relay key hash) or empty */
} parley_t_command_call;

/* A command handler. @thread caller (a transport's loop). Must not block; slow work goes to the
 * plugin's own worker. Replies go to the connection with host->send_to. */
typedef parley_t_status (*parley_t_command_fn)(void* user, const parley_t_command_call* call);

typedef struct parley_t_http_request {
    uint32_t struct_size;
    parley_t_bytes method;
    parley_t_bytes path;  /* without the query string */
    parley_t_bytes query; /* raw, without '?' */
    parley_t_bytes body;
    /* Look up a request header (case-insensitive). Returns 1 and fills out, or 0. */
    int (*header)(const struct parley_t_http_request* req, parley_t_bytes name,
                  parley_t_bytes* out);
    void* impl; /* host-private */
} parley_t_http_request;

/* Opaque response handle. OWNERSHIP: host; valid until http_respond is called once. */
typedef struct parley_t_http_response parley_t_http_response;
typedef parley_t_http_response* parley_t_http_response_hptr;

/* An HTTP route handler. @thread an HTTP worker of the transport serving the route. It must
 * call host->http_respond exactly once, now or later from any thread; the transport enforces
 * a deadline and answers 503 if it passes. */
typedef void (*parley_t_http_fn)(void* user, const parley_t_http_request* req,
                                 parley_t_http_response_hptr resp);

/* Timer callback. @thread the kernel's timer thread. Must not block. */
typedef void (*parley_t_timer_fn)(void* user);

/* Work item. @thread worker. May block (it runs on the kernel's worker pool). */
typedef void (*parley_t_work_fn)(void* user);

/* Opaque metric handle. OWNERSHIP: host; valid until the instance is destroyed. */
typedef struct parley_t_metric parley_t_metric;
typedef parley_t_metric* parley_t_metric_hptr;

typedef enum parley_t_metric_kind {
    PARLEY_METRIC_COUNTER = 1,
    PARLEY_METRIC_GAUGE = 2
} parley_t_metric_kind;

/* ---------------------------------------------------------------------------------------- */
/* 0.2: room bridge (cluster mode)                                                           */
/*
 * A room bridge extends the kernel's rooms past this process (transport-nats' cluster mode:
 * several parleyd nodes with one profile share every room). At most one bridge is registered
 * per process (room_bridge_set); without one the kernel never looks at these hooks beyond one
 * atomic load per room operation.
 *
 * What the kernel hands a bridge: local joins and leaves (with member labels), every local
 * fan-out (room_publish; room_publish_persist once the store acknowledged it, with its
 * sequence; room_send_to_member when no local member has the label), dialects' farewells and
 * set-once metadata (room_meta_set_async). What a bridge hands back: remote member counts
 * (added to parley_t_join_result.members and room_leave's members_left; `created` is 1 only
 * when no remote node has members either), and remote frames through room_inject, which
 * reaches local members only and is never handed to the bridge again (no loops, no echoes).
 *
 * Hooks run on the caller's thread (a transport loop, a store worker) with no kernel lock held.
 * They must not block: enqueue and return. They may call room_inject and room_meta_set.
 * OWNERSHIP: the table and `user` belong to the bridge and stay valid until room_bridge_set
 * (NULL) returns; that call waits for hooks already running.
 */

/* Completion of room_meta_set_async. @thread any (the bridge's, or the caller's when no bridge
 * is registered, possibly before room_meta_set_async returns). `status` is PARLEY_OK (this value
 * won), PARLEY_ERR_EXISTS (set-once and another value was already set; the local copy now holds
 * the winner), PARLEY_ERR_NOT_FOUND or PARLEY_ERR_UNAVAILABLE. Post to your own loop. */
typedef void (*parley_t_meta_done_fn)(void* user, parley_t_status status);

typedef struct parley_t_room_bridge {
    uint32_t struct_size;
    void* user;
    /* Low byte of every persistent sequence this node assigns (0..255, unique among live nodes
     * sharing a store): sequences become (microsecond clock << 8 | node_slot), so nodes writing
     * one room into one PostgreSQL never collide and history orders by time across nodes. */
    uint32_t node_slot;
    /* `conn` joined / left `room` as `label`; `local_members` counts this node only, after it. */
    void (*joined)(void* user, parley_t_bytes room, parley_t_conn_id conn, parley_t_bytes label,
                   uint32_t local_members);
    void (*left)(void* user, parley_t_bytes room, parley_t_conn_id conn, uint32_t local_members);
    /* A local fan-out to carry to the other nodes. `label` empty: every member (the sender is
     * local, so remote members are all recipients); else only the member with that label.
     * `seq` is the persistent sequence (0 for live-only frames). Copy what you keep; retain
     * the frame to keep it. @return PARLEY_OK, PARLEY_ERR_NOT_FOUND (label: no such remote
     * member), PARLEY_ERR_LIMIT (outbound buffer full: dropped and counted). */
    parley_t_status (*publish)(void* user, parley_t_bytes room, parley_t_bytes label,
                               parley_t_frame_hptr frame, uint64_t seq);
    /* Members of `room` on other nodes. Cheap (a hash lookup). */
    uint32_t (*remote_members)(void* user, parley_t_bytes room);
    /* Decide a set-once value for the whole cluster (room_meta_set_async with
     * PARLEY_META_SET_ONCE). The bridge writes the winner into local meta, then calls `done`. */
    parley_t_status (*meta_set_once)(void* user, parley_t_bytes room, uint32_t key,
                                     parley_t_bytes value, parley_t_meta_done_fn done,
                                     void* done_user);
    /* The frame the other nodes' members get if `conn` vanishes from `room` without a leave
     * (its node died). Latest call wins. */
    void (*farewell)(void* user, parley_t_bytes room, parley_t_conn_id conn,
                     parley_t_frame_hptr frame);
} parley_t_room_bridge;

/* ---------------------------------------------------------------------------------------- */
/* Host table: what parleyd offers each plugin instance                                       */

typedef struct parley_t_host {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* ---- 0.1: diagnostics ---- */

    /* Log a line attributed to this instance. @thread any. Never pass message content, keys,
     * tokens, passwords or client IPs. */
    void (*log)(parley_t_host_ctx_hptr ctx, parley_t_log_level level, parley_t_bytes msg);
    /* Cheap check so hot paths skip formatting. @thread any. @return 1 if enabled. */
    int (*log_enabled)(parley_t_host_ctx_hptr ctx, parley_t_log_level level);
    /* Record why the current hook failed; the host prints it with the instance name.
     * @thread main (inside create/start/reload). */
    void (*set_error)(parley_t_host_ctx_hptr ctx, parley_t_bytes msg);

    /* ---- 0.1: configuration ---- */

    /* Read a validated config value by path: "port", "limits.max_message", "origins.0".
     * @thread any. @return PARLEY_OK, or PARLEY_ERR_NOT_FOUND if the path is not declared.
     * Absent keys with a default report the default. */
    parley_t_status (*config_get)(parley_t_host_ctx_hptr ctx, parley_t_bytes path,
                                  parley_t_config_value* out);
    /* The instance's name in the profile and the profile's name. @thread any.
     * OWNERSHIP: host, valid until destroy. */
    parley_t_bytes (*instance_name)(parley_t_host_ctx_hptr ctx);
    parley_t_bytes (*profile_name)(parley_t_host_ctx_hptr ctx);
    /* The profile's state directory (created by the kernel, writable). @thread any. */
    parley_t_bytes (*state_dir)(parley_t_host_ctx_hptr ctx);

    /* ---- 0.1: metrics ---- */

    /* Register (or find) a metric. `name` may carry Prometheus labels: `x_total{code="1002"}`.
     * @thread any. @return handle, NULL on invalid name. */
    parley_t_metric_hptr (*metric)(parley_t_host_ctx_hptr ctx, parley_t_metric_kind kind,
                                   parley_t_bytes name, parley_t_bytes help);
    /* @thread any; lock-free. */
    void (*metric_add)(parley_t_metric_hptr m, int64_t delta);
    void (*metric_set)(parley_t_metric_hptr m, int64_t value);
    /* Render all metrics in Prometheus text format into a new frame (for /metrics).
     * @thread any. @return a frame the caller must release. */
    parley_t_frame_hptr (*metrics_render)(parley_t_host_ctx_hptr ctx);

    /* ---- 0.1: timers ---- */

    /* Call fn(user) after `delay_ms`, then every `interval_ms` if nonzero. @thread any.
     * @return timer id (never 0). */
    uint64_t (*timer_start)(parley_t_host_ctx_hptr ctx, uint64_t delay_ms, uint64_t interval_ms,
                            parley_t_timer_fn fn, void* user);
    /* Cancel; when this returns the callback is not running and will not run again
     * (unless called from inside that callback). @thread any. */
    void (*timer_cancel)(parley_t_host_ctx_hptr ctx, uint64_t id);

    /* ---- 0.1: frames ---- */

    /* Allocate a frame with capacity >= `capacity`, len 0, refcount 1. @thread any. */
    parley_t_frame_hptr (*frame_alloc)(parley_t_host_ctx_hptr ctx, size_t capacity);
    /* @thread any. */
    void (*frame_retain)(parley_t_frame_hptr f);
    void (*frame_release)(parley_t_frame_hptr f);

    /* ---- 0.1: connections (transports) ---- */

    /* Register a new client connection. `tag` is the transport's own handle, returned in every
     * delivery. @thread any.
     * @return the new id, or 0 when the process is draining or over its connection limit. */
    parley_t_conn_id (*conn_open)(parley_t_host_ctx_hptr ctx, uint64_t tag);
    /* The connection is gone: the kernel removes it from every room. @thread any. */
    void (*conn_closed)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn);
    /* Ask the owning transport to close a connection (e.g. an admin kick). @thread any. */
    void (*conn_close)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn, uint16_t code,
                       parley_t_bytes reason);
    /* Send one frame to one connection of any transport. @thread any. */
    parley_t_status (*send_to)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn,
                               parley_t_frame_hptr frame);

    /* ---- 0.1: rooms ---- */

    /* Add `conn` to `room` under member `label`. Creates the room on first join.
     * @thread any. @return PARLEY_OK, PARLEY_ERR_LIMIT (members per room or rooms per conn),
     * PARLEY_ERR_EXISTS (already a member), PARLEY_ERR_INVALID. */
    parley_t_status (*room_join)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn,
                                 parley_t_bytes room, parley_t_bytes label,
                                 parley_t_join_result* out);
    /* Remove `conn` from `room`; a room with no members is freed. @thread any.
     * @return PARLEY_OK or PARLEY_ERR_NOT_FOUND. `members_left` may be NULL. */
    parley_t_status (*room_leave)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn,
                                  parley_t_bytes room, uint32_t* members_left);
    /* Fan `frame` out to every member except `except` (0 = nobody excepted). The frame is
     * retained per transport while queued; the caller keeps its own reference.
     * @thread any. @return PARLEY_OK or PARLEY_ERR_NOT_FOUND (no such room). */
    parley_t_status (*room_publish)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                    parley_t_frame_hptr frame, parley_t_conn_id except);
    /* Publish after the store acknowledged `record` in the room's history: the kernel assigns
     * the next room sequence, appends, and fans out on acknowledgement in sequence order to
     * members that joined before that sequence. `done` reports the store status
     * (@thread worker or caller); may be NULL. */
    parley_t_status (*room_publish_persist)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                            parley_t_frame_hptr frame, parley_t_conn_id except,
                                            parley_t_bytes record, parley_t_store_done_fn done,
                                            void* user);
    /* Send to the member of `room` registered under `label`. @thread any.
     * @return PARLEY_OK or PARLEY_ERR_NOT_FOUND. */
    parley_t_status (*room_send_to_member)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                           parley_t_bytes label, parley_t_frame_hptr frame);
    /* Visit members under the shard lock; the visitor must not call room operations.
     * @thread any. @return member count, 0 if the room does not exist. */
    uint32_t (*room_members)(parley_t_host_ctx_hptr ctx, parley_t_bytes room, parley_t_member_fn fn,
                             void* user);
    /* Typed metadata. get copies into `out` up to `cap` bytes. @thread any.
     * @return get: PARLEY_OK (out_len set), PARLEY_ERR_NOT_FOUND. set: PARLEY_OK,
     * PARLEY_ERR_EXISTS (SET_ONCE and already set), PARLEY_ERR_NOT_FOUND (no room). */
    parley_t_status (*room_meta_get)(parley_t_host_ctx_hptr ctx, parley_t_bytes room, uint32_t key,
                                     char* out, size_t cap, size_t* out_len);
    parley_t_status (*room_meta_set)(parley_t_host_ctx_hptr ctx, parley_t_bytes room, uint32_t key,
                                     parley_t_bytes value, uint32_t flags);

    /* ---- 0.1: store ---- */

    /* Fetch up to `max` most recent history records with seq <= `upto_seq` (0 = all), oldest
     * first. @thread any; `fn` runs on a worker or the caller. */
    parley_t_status (*history_fetch)(parley_t_host_ctx_hptr ctx, parley_t_bytes room, uint32_t max,
                                     uint64_t upto_seq, parley_t_history_fn fn, void* user);
    parley_t_status (*history_clear)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                     parley_t_store_done_fn fn, void* user);
    /* Blobs: put (id chosen by the store), list by recipient (sorted by expiry), get, delete.
     * @thread any; callbacks on a worker or the caller. */
    parley_t_status (*blob_put)(parley_t_host_ctx_hptr ctx, parley_t_bytes recipient,
                                parley_t_bytes data, int64_t expires_at_ms, parley_t_blob_put_fn fn,
                                void* user);
    parley_t_status (*blob_list)(parley_t_host_ctx_hptr ctx, parley_t_bytes recipient,
                                 uint32_t offset, uint32_t limit, parley_t_blob_list_fn fn,
                                 void* user);
    parley_t_status (*blob_get)(parley_t_host_ctx_hptr ctx, parley_t_bytes id,
                                parley_t_blob_list_fn fn, void* user);
    parley_t_status (*blob_delete)(parley_t_host_ctx_hptr ctx, parley_t_bytes id,
                                   parley_t_store_done_fn fn, void* user);

    /* ---- 0.1: commands and HTTP routes ---- */

    /* Register a command on the bus; the name is copied. @thread main (create/start).
     * @return PARLEY_ERR_EXISTS when another instance owns the name. */
    parley_t_status (*command_register)(parley_t_host_ctx_hptr ctx, parley_t_bytes name,
                                        parley_t_command_fn fn, void* user);
    /* Call a registered command. @thread any. @return PARLEY_ERR_NOT_FOUND if unknown,
     * else the handler's status. */
    parley_t_status (*command_call)(parley_t_host_ctx_hptr ctx, parley_t_bytes name,
                                    const parley_t_command_call* call);
    /* Register an HTTP route served by the profile's HTTP transports: exact `path`, or a
     * prefix when it ends with '*'. `method` empty = any. @thread main (create/start). */
    parley_t_status (*http_route)(parley_t_host_ctx_hptr ctx, parley_t_bytes method,
                                  parley_t_bytes path, parley_t_http_fn fn, void* user);
    /* Used by HTTP transports: dispatch a request to a registered route.
     * @thread any. @return PARLEY_OK if a route took it, PARLEY_ERR_NOT_FOUND otherwise. */
    parley_t_status (*http_dispatch)(parley_t_host_ctx_hptr ctx, const parley_t_http_request* req,
                                     parley_t_http_response_hptr resp);
    /* Answer a request, exactly once. `headers` is "Name: value\r\n"-joined (may be empty).
     * @thread any. */
    void (*http_respond)(parley_t_http_response_hptr resp, int status, parley_t_bytes content_type,
                         parley_t_bytes headers, parley_t_bytes body);

    /* ---- 0.1: lifecycle ---- */

    /* 1 while the process drains (SIGTERM or control `drain`). @thread any. */
    int (*draining)(parley_t_host_ctx_hptr ctx);

    /* ---- 0.1: workers ---- */

    /* Run fn(user) on the kernel's worker pool (CPU-heavy or blocking work such as password
     * hashing; never on a reactor). The queue is bounded. @thread any.
     * @return PARLEY_OK, or PARLEY_ERR_LIMIT when the queue is full (fn will not run). */
    parley_t_status (*work_submit)(parley_t_host_ctx_hptr ctx, parley_t_work_fn fn, void* user);

    /* ---- 0.2: room bridge (cluster mode; see parley_t_room_bridge) ---- */

    /* Register the process's room bridge, or unregister with NULL (waits until no hook runs).
     * The table is copied. @thread main (start/stop). @return PARLEY_ERR_EXISTS when another
     * instance's bridge is registered, PARLEY_ERR_INVALID for a node_slot over 255. */
    parley_t_status (*room_bridge_set)(parley_t_host_ctx_hptr ctx,
                                       const parley_t_room_bridge* bridge);
    /* Deliver a frame from another node to this node's members of `room`: all of them when
     * `label` is empty, else the one with that label; with `seq` nonzero only members that
     * joined before it (their history fetch covered the rest). Never handed to the bridge.
     * @thread any. @return PARLEY_OK or PARLEY_ERR_NOT_FOUND (no such local room or member). */
    parley_t_status (*room_inject)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                   parley_t_bytes label, parley_t_frame_hptr frame, uint64_t seq);
    /* What other nodes' members receive if this node dies while `conn` is in `room` (a leave
     * notice in the dialect's words). A no-op without a bridge. @thread the conn's loop.
     * @return PARLEY_OK or PARLEY_ERR_NOT_FOUND. */
    parley_t_status (*room_farewell)(parley_t_host_ctx_hptr ctx, parley_t_conn_id conn,
                                     parley_t_bytes room, parley_t_frame_hptr frame);
    /* room_meta_set that may take a network round trip: with PARLEY_META_SET_ONCE and a
     * bridge, the cluster decides (one winner across nodes) and the local meta receives the
     * winning value before `done` runs. Otherwise it is room_meta_set and `done` (may be NULL)
     * runs before this returns. @thread any. @return PARLEY_OK when `done` will be called, else
     * the error (and `done` is not called). */
    parley_t_status (*room_meta_set_async)(parley_t_host_ctx_hptr ctx, parley_t_bytes room,
                                           uint32_t key, parley_t_bytes value, uint32_t flags,
                                           parley_t_meta_done_fn done, void* user);
} parley_t_host;

/* The transport half of HTTP routes: a transport creates parley_t_http_response objects with
 * this layout so the kernel can complete them. OWNERSHIP: transport; `respond` is called
 * exactly once by http_respond. */
struct parley_t_http_response {
    uint32_t struct_size;
    void (*respond)(struct parley_t_http_response* self, int status, parley_t_bytes content_type,
                    parley_t_bytes headers, parley_t_bytes body);
};

/* ---------------------------------------------------------------------------------------- */
/* Plugin vtable: hooks the host calls                                                        */

typedef struct parley_t_plugin_vtable {
    uint32_t struct_size;

    /* ---- 0.1: every kind ---- */

    /* Required. Create an instance from its validated config (read with host->config_get).
     * Do not start threads or open sockets yet. @thread main.
     * @return instance, or NULL after host->set_error. */
    parley_t_instance_pptr (*create)(const parley_t_host* host, parley_t_host_ctx_hptr ctx);
    /* Required. Start threads, bind sockets. @thread main. @return PARLEY_OK or an error
     * after host->set_error; on error the host calls stop and destroy. */
    parley_t_status (*start)(parley_t_instance_pptr inst);
    /* Optional. Begin a graceful drain: refuse new clients, close open ones after `grace_ms`
     * (transports close WebSockets with 1001). Returns at once. @thread main. */
    void (*drain)(parley_t_instance_pptr inst, uint32_t grace_ms);
    /* Required. Stop threads and flush; when it returns no plugin thread calls the host any
     * more. @thread main. */
    void (*stop)(parley_t_instance_pptr inst);
    /* Required. Free the instance. @thread main. */
    void (*destroy)(parley_t_instance_pptr inst);
    /* Optional. The profile was reloaded and this instance's config changed; new values are
     * visible through config_get. @thread main. @return PARLEY_OK if applied live,
     * PARLEY_ERR to keep running with the old values (the reason via set_error). */
    parley_t_status (*reload)(parley_t_instance_pptr inst);

    /* ---- 0.1: transports ---- */

    /* Queue `frame` for each recipient (all owned by this instance) and wake the loop(s).
     * Retain the frame for as long as it is queued. @thread any (the publisher's).
     * Must not block and must not call room operations synchronously. */
    void (*deliver)(parley_t_instance_pptr inst, const parley_t_delivery* to, size_t n,
                    parley_t_frame_hptr frame);
    /* Close one connection with a WebSocket close code. @thread any. */
    void (*close_conn)(parley_t_instance_pptr inst, parley_t_delivery conn, uint16_t code,
                       parley_t_bytes reason);

    /* ---- 0.1: stores ----
     * Contract: operations on one room complete in submission order (the kernel relies on it
     * to give a joiner every message exactly once: history up to its join sequence, live after
     * it). A write completes with PARLEY_OK only once it is durable for that store. Sequences
     * are unique and increase across restarts; fetch returns records ordered by seq. */

    void (*history_append)(parley_t_instance_pptr inst, parley_t_bytes room, uint64_t seq,
                           parley_t_bytes record, parley_t_store_done_fn fn, void* user);
    void (*history_fetch)(parley_t_instance_pptr inst, parley_t_bytes room, uint32_t max,
                          uint64_t upto_seq, parley_t_history_fn fn, void* user);
    void (*history_clear)(parley_t_instance_pptr inst, parley_t_bytes room,
                          parley_t_store_done_fn fn, void* user);
    void (*blob_put)(parley_t_instance_pptr inst, parley_t_bytes recipient, parley_t_bytes data,
                     int64_t expires_at_ms, parley_t_blob_put_fn fn, void* user);
    void (*blob_list)(parley_t_instance_pptr inst, parley_t_bytes recipient, uint32_t offset,
                      uint32_t limit, parley_t_blob_list_fn fn, void* user);
    void (*blob_get)(parley_t_instance_pptr inst, parley_t_bytes id, parley_t_blob_list_fn fn,
                     void* user);
    void (*blob_delete)(parley_t_instance_pptr inst, parley_t_bytes id, parley_t_store_done_fn fn,
                        void* user);
} parley_t_plugin_vtable;

/* ---------------------------------------------------------------------------------------- */
/* Descriptor and entry point                                                                 */

typedef struct parley_t_descriptor {
    uint32_t struct_size;
    uint16_t abi_major;  /* PARLEY_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;  /* PARLEY_ABI_MINOR the plugin was built against */
    const char* name;    /* e.g. "transport-ws"; [a-z0-9-]+ */
    uint32_t kind;       /* parley_t_kind */
    const char* version; /* the plugin's own semver, e.g. "0.1.0" */
    const char* description;
    const parley_t_config_key* config;
    size_t config_len;
    const parley_t_plugin_vtable* vtable;
} parley_t_descriptor;

/* The entry point every plugin exports as PARLEY_ENTRY_SYMBOL. It must do no work besides
 * returning its static descriptor. @thread main. @return the descriptor (OWNERSHIP: plugin,
 * static), or NULL to refuse loading, with *error set to a static message. */
typedef const parley_t_descriptor* (*parley_t_entry_fn)(uint16_t host_abi_major,
                                                        uint16_t host_abi_minor,
                                                        const char** error);

/* Initialises a table: sets struct_size and zeroes every other field. */
#define PARLEY_TABLE_INIT(type, ...) ((type){.struct_size = sizeof(type), __VA_ARGS__})

#ifdef __cplusplus
}
#endif

#endif /* PARLEY_PLUGIN_H */
