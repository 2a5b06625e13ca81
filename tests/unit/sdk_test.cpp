// Tests of the C++ SDK (sdk.hpp) and its FakeHost (sdk_testing.hpp): a small transport plugin
// declared with PARLEY_PLUGIN, driven through the C ABI exactly as parleyd would drive it.
#include <parley/sdk.hpp>
#include <parley/sdk_testing.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace parley::sdk;
using parley::sdk::testing::FakeHost;
using parley::sdk::testing::FakeInstance;
using parley::sdk::testing::State;

constexpr parley_t_config_key kEchoConfig[] = {
    key("greeting", PARLEY_CFG_STRING, "hi", "Greeting sent by the echo command."),
    key_range("port", PARLEY_CFG_INT, "8080", 1, 65535, "Listen port."),
    key("verbose", PARLEY_CFG_BOOL, "false", "Log more."),
    key("max_message", PARLEY_CFG_SIZE, "64K", "Largest message."),
    key("tick", PARLEY_CFG_DURATION, "0", "Timer period; 0 = off."),
    key_enum("fail", "none|create|start|stop", "none", "Where to throw (tests only)."),
    key_list("origins", PARLEY_CFG_STRING, "Allowed origins."),
};

// A transport that queues what it is given, like a real one would before its loop writes.
class Echo final : public Plugin {
  public:
    explicit Echo(Host h) : Plugin(h) {
        greeting_ = h.config_string("greeting");
        port_ = h.config_int("port");
        verbose_ = h.config_bool("verbose");
        max_message_ = h.config_int("max_message");
        tick_ms_ = uint64_t(h.config_int("tick"));
        fail_ = h.config_string("fail");
        for (size_t i = 0; i < h.config_count("origins"); ++i)
            origins_.push_back(h.config_string("origins." + std::to_string(i)));
        if (fail_ == "create") throw std::runtime_error("boom in create");
        ticks_metric_ = h.counter("echo_ticks_total", "Timer ticks.");
        has_work_submit_ = PARLEY_HAS(h.table(), work_submit);
    }

    parley_t_status start() override {
        if (fail_ == "start") throw std::runtime_error("boom in start");
        auto* t = host().table();
        if (t->command_register(host().ctx(), bytes("echo"), &on_echo, this) != PARLEY_OK) {
            host().set_error("command 'echo' is taken");
            return PARLEY_ERR_EXISTS;
        }
        t->http_route(host().ctx(), bytes("GET"), bytes("/echo*"), &on_http, this);
        if (tick_ms_) timer_ = t->timer_start(host().ctx(), tick_ms_, tick_ms_, &on_tick, this);
        host().logf(PARLEY_LOG_INFO, "echo started on port %lld", static_cast<long long>(port_));
        return PARLEY_OK;
    }
    void drain(uint32_t grace_ms) override { drained_grace_ = grace_ms; }
    void stop() override {
        if (timer_) host().table()->timer_cancel(host().ctx(), timer_);
        timer_ = 0;
        queued_.clear(); // releases every retained frame
        if (fail_ == "stop") throw std::runtime_error("boom in stop");
    }
    void deliver(const parley_t_delivery* to, size_t n, parley_t_frame_hptr f) override {
        for (size_t i = 0; i < n; ++i)
            queued_.emplace_back(to[i], Frame::retain(host().table(), f));
    }
    void close_conn(parley_t_delivery c, uint16_t code, std::string_view) override {
        closed_.emplace_back(c.conn, code);
    }

    // What a reactor does when it accepts a socket.
    parley_t_conn_id accept(uint64_t tag) { return host().table()->conn_open(host().ctx(), tag); }

    std::string greeting_, fail_;
    int64_t port_ = 0, max_message_ = 0;
    bool verbose_ = false, has_work_submit_ = false;
    uint64_t tick_ms_ = 0, timer_ = 0;
    int ticks_ = 0;
    uint32_t drained_grace_ = 0;
    std::vector<std::string> origins_;
    std::vector<std::pair<parley_t_delivery, Frame>> queued_;
    std::vector<std::pair<parley_t_conn_id, uint16_t>> closed_;
    parley_t_metric_hptr ticks_metric_ = nullptr;

  private:
    static parley_t_status on_echo(void* user, const parley_t_command_call* call) {
        auto* self = static_cast<Echo*>(user);
        Frame f = self->host().frame_of(view(call->args));
        if (call->room.len)
            return self->host().table()->room_publish(self->host().ctx(), call->room, f.get(),
                                                      call->conn);
        return self->host().table()->send_to(self->host().ctx(), call->conn, f.get());
    }
    static void on_http(void* user, const parley_t_http_request* req,
                        parley_t_http_response_hptr resp) {
        auto* self = static_cast<Echo*>(user);
        parley_t_bytes ua{};
        std::string body = std::string(view(req->path)) + "?" + std::string(view(req->query));
        if (req->header(req, bytes("user-agent"), &ua)) body += " ua=" + std::string(view(ua));
        self->host().table()->http_respond(resp, 200, bytes("text/plain"), bytes(""), bytes(body));
    }
    static void on_tick(void* user) {
        auto* self = static_cast<Echo*>(user);
        ++self->ticks_;
        self->host().add(self->ticks_metric_);
    }
};

} // namespace

PARLEY_PLUGIN(Echo, "test-echo", PARLEY_KIND_TRANSPORT, "0.1.0", "Echo plugin for SDK tests.",
              kEchoConfig)

namespace {

const parley_t_descriptor* echo_descriptor() {
    const char* err = nullptr;
    return parley_plugin_entry_v0(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR, &err);
}

// ---- lifecycle and loader ----

TEST(SdkLifecycle, CreateStartStopDestroy) {
    FakeHost fake;
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_TRUE(inst.loaded()) << inst.error();
    EXPECT_EQ(inst.name(), "test-echo");
    EXPECT_EQ(inst.descriptor().kind, uint32_t(PARLEY_KIND_TRANSPORT));
    EXPECT_EQ(inst.state(), State::Loaded);

    ASSERT_EQ(inst.create(), PARLEY_OK) << inst.error();
    EXPECT_EQ(inst.state(), State::Created);
    ASSERT_NE(inst.as<Echo>(), nullptr);
    ASSERT_EQ(inst.start(), PARLEY_OK) << inst.error();
    EXPECT_EQ(inst.state(), State::Started);
    EXPECT_TRUE(fake.has_log(PARLEY_LOG_INFO, "echo started on port 8080"));
    EXPECT_TRUE(fake.has_command("echo"));

    inst.stop();
    EXPECT_EQ(inst.state(), State::Stopped);
    inst.destroy();
    EXPECT_EQ(inst.state(), State::Destroyed);
    EXPECT_FALSE(fake.has_command("echo")) << "the host drops what a destroyed instance owned";
    EXPECT_TRUE(fake.violations().empty());
    EXPECT_EQ(fake.live_frames(), 0u);
}

TEST(SdkLifecycle, ScopeExitStopsAndDestroys) {
    FakeHost fake;
    {
        FakeInstance inst = fake.load(echo_descriptor(), "ws-a");
        ASSERT_EQ(inst.up(), PARLEY_OK);
        EXPECT_EQ(inst.name(), "ws-a");
        EXPECT_TRUE(fake.has_command("echo"));
    }
    EXPECT_FALSE(fake.has_command("echo"));
    EXPECT_TRUE(fake.violations().empty());
}

TEST(SdkLifecycle, TwoInstancesOfOnePlugin) {
    FakeHost fake;
    FakeInstance a = fake.load(echo_descriptor(), "ws-a");
    FakeInstance b = fake.load(echo_descriptor(), "ws-b");
    ASSERT_EQ(a.up(), PARLEY_OK);
    ASSERT_EQ(b.create(), PARLEY_OK);
    // Instances, not singletons: the second one is a separate object with its own context...
    EXPECT_NE(a.handle(), b.handle());
    EXPECT_NE(a.ctx(), b.ctx());
    // ...and the command bus refuses the duplicate name with a clear error.
    EXPECT_EQ(b.start(), PARLEY_ERR_EXISTS);
    EXPECT_EQ(b.error(), "command 'echo' is taken");
    EXPECT_EQ(b.state(), State::Destroyed);
}

TEST(SdkLoader, EntryRefusesAnotherMajor) {
    const char* err = nullptr;
    EXPECT_EQ(parley_plugin_entry_v0(PARLEY_ABI_MAJOR + 1, 0, &err), nullptr);
    ASSERT_NE(err, nullptr);
    EXPECT_NE(std::string(err).find("major"), std::string::npos);
}

TEST(SdkLoader, RefusesBadDescriptors) {
    FakeHost fake;
    const parley_t_descriptor good = *echo_descriptor();

    auto refused = [&](parley_t_descriptor d) {
        FakeInstance i = fake.load(&d);
        EXPECT_FALSE(i.loaded());
        return i.error();
    };
    parley_t_descriptor d = good;
    d.abi_major = PARLEY_ABI_MAJOR + 1;
    EXPECT_NE(refused(d).find("different major"), std::string::npos);
    d = good;
    d.abi_minor = PARLEY_ABI_MINOR + 1;
    EXPECT_NE(refused(d).find("built for ABI 0." + std::to_string(PARLEY_ABI_MINOR + 1) +
                              ", host provides 0." + std::to_string(PARLEY_ABI_MINOR)),
              std::string::npos)
        << "both versions are named";
    d = good;
    d.name = "Bad_Name";
    EXPECT_NE(refused(d).find("invalid plugin name"), std::string::npos);
    d = good;
    d.kind = 42;
    EXPECT_NE(refused(d).find("unknown kind"), std::string::npos);

    parley_t_plugin_vtable vt = *good.vtable;
    vt.deliver = nullptr; // a transport must deliver
    d = good;
    d.vtable = &vt;
    EXPECT_NE(refused(d).find("required function 'deliver' missing"), std::string::npos);

    FakeInstance none = fake.load(nullptr);
    EXPECT_FALSE(none.loaded());
    EXPECT_EQ(none.state(), State::Refused);
}

// ---- config ----

TEST(SdkConfig, DefaultsFromTheSchema) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK) << inst.error();
    auto* e = inst.as<Echo>();
    EXPECT_EQ(e->greeting_, "hi");
    EXPECT_EQ(e->port_, 8080);
    EXPECT_FALSE(e->verbose_);
    EXPECT_EQ(e->max_message_, 64 * 1024);
    EXPECT_EQ(e->tick_ms_, 0u);
    EXPECT_TRUE(e->origins_.empty());
}

TEST(SdkConfig, ValuesSetByTheTest) {
    FakeHost fake;
    fake.set_config("greeting", "yo");
    fake.set_config("port", int64_t(9000));
    fake.set_config("verbose", true);
    fake.set_config("max_message", "2M"); // parsed as parleyd would
    fake.set_config("tick", 250);         // already normalised: milliseconds
    fake.set_config_list("origins", {"https://a.example", "https://b.example"});
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK) << inst.error();
    auto* e = inst.as<Echo>();
    EXPECT_EQ(e->greeting_, "yo");
    EXPECT_EQ(e->port_, 9000);
    EXPECT_TRUE(e->verbose_);
    EXPECT_EQ(e->max_message_, 2 * 1024 * 1024);
    EXPECT_EQ(e->tick_ms_, 250u);
    ASSERT_EQ(e->origins_.size(), 2u);
    EXPECT_EQ(e->origins_[1], "https://b.example");

    // Straight through the C table: list items by path, undeclared paths are NOT_FOUND.
    const parley_t_host* t = fake.table();
    parley_t_config_value v{};
    v.struct_size = sizeof v;
    ASSERT_EQ(t->config_get(inst.ctx(), bytes("origins"), &v), PARLEY_OK);
    EXPECT_EQ(v.type, uint32_t(PARLEY_CFG_LIST));
    EXPECT_EQ(v.count, 2u);
    ASSERT_EQ(t->config_get(inst.ctx(), bytes("origins.0"), &v), PARLEY_OK);
    EXPECT_EQ(view(v.s), "https://a.example");
    EXPECT_EQ(t->config_get(inst.ctx(), bytes("origins.2"), &v), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(t->config_get(inst.ctx(), bytes("nope"), &v), PARLEY_ERR_NOT_FOUND);
}

TEST(SdkConfig, UnitsParseAsParleydParsesThem) {
    FakeHost fake;
    fake.set_config("max_message", " 1.5 KiB ");
    fake.set_config("tick", "1m30s");
    fake.set_config("verbose", "Yes");
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK) << inst.error();
    EXPECT_EQ(inst.as<Echo>()->max_message_, 1536);
    EXPECT_EQ(inst.as<Echo>()->tick_ms_, 90'000u);
    EXPECT_TRUE(inst.as<Echo>()->verbose_);
}

TEST(SdkConfig, PathsIntoAListCountItself) {
    FakeHost fake;
    fake.set_config("origins.0", "a");
    fake.set_config("origins.1", "b");
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK) << inst.error();
    EXPECT_EQ(inst.as<Echo>()->origins_, (std::vector<std::string>{"a", "b"}));
}

TEST(SdkConfig, InvalidConfigIsRefusedBeforeCreate) {
    struct Case {
        const char* key;
        const char* value;
        const char* expect;
    };
    for (const Case& c :
         {Case{"port", "70000", "outside [1, 65535]"},
          Case{"port", "eighty", "expected an integer"},
          Case{"prot", "80", "unknown key 'prot'; allowed keys: greeting, port"},
          Case{"fail", "maybe", "'maybe' is not one of none|create|start|stop"},
          Case{"tick", "soon", "expected a duration"}, Case{"tick", "1h30", "expected a duration"},
          Case{"max_message", "1.0001K", "expected a size"},
          Case{"verbose", "1", "expected true or false"}}) {
        FakeHost fake;
        fake.set_config(c.key, c.value);
        FakeInstance inst = fake.load(echo_descriptor());
        EXPECT_EQ(inst.create(), PARLEY_ERR_INVALID) << c.key;
        EXPECT_NE(inst.error().find(c.expect), std::string::npos) << inst.error();
        EXPECT_EQ(inst.handle(), nullptr) << "the plugin's create never ran";
    }
}

TEST(SdkConfig, PerInstanceOverlay) {
    FakeHost fake;
    fake.set_config("greeting", "shared");
    FakeInstance a = fake.load(echo_descriptor(), "a");
    FakeInstance b = fake.load(echo_descriptor(), "b");
    b.set_config("greeting", "own");
    ASSERT_EQ(a.create(), PARLEY_OK);
    ASSERT_EQ(b.create(), PARLEY_OK);
    EXPECT_EQ(a.as<Echo>()->greeting_, "shared");
    EXPECT_EQ(b.as<Echo>()->greeting_, "own");
}

// ---- exceptions never cross the boundary ----

TEST(SdkExceptions, ConstructorThrowBecomesSetError) {
    FakeHost fake;
    fake.set_config("fail", "create");
    FakeInstance inst = fake.load(echo_descriptor());
    parley_t_status s = PARLEY_OK;
    EXPECT_NO_THROW(s = inst.create());
    EXPECT_EQ(s, PARLEY_ERR);
    EXPECT_EQ(inst.state(), State::Failed);
    EXPECT_EQ(inst.error(), "boom in create");
    EXPECT_EQ(fake.last_error(), "boom in create");
    EXPECT_TRUE(fake.violations().empty()) << "the SDK caught it; nothing escaped the hook";
}

TEST(SdkExceptions, StartThrowBecomesErrorThenStopAndDestroy) {
    FakeHost fake;
    fake.set_config("fail", "start");
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    parley_t_status s = PARLEY_OK;
    EXPECT_NO_THROW(s = inst.start());
    EXPECT_EQ(s, PARLEY_ERR);
    EXPECT_EQ(inst.error(), "boom in start");
    EXPECT_EQ(inst.state(), State::Destroyed) << "like parleyd: a failed start is stopped";
    EXPECT_TRUE(fake.violations().empty());
}

TEST(SdkExceptions, StopThrowIsContained) {
    FakeHost fake;
    fake.set_config("fail", "stop");
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    EXPECT_NO_THROW(inst.stop());
    EXPECT_EQ(inst.state(), State::Stopped);
    EXPECT_EQ(fake.last_error(), "boom in stop");
    EXPECT_TRUE(fake.violations().empty());
}

// ---- frames ----

TEST(SdkFrames, RefcountingThroughTheTable) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    const parley_t_host* t = fake.table();

    parley_t_frame_hptr f = t->frame_alloc(inst.ctx(), 16);
    ASSERT_NE(f, nullptr);
    EXPECT_GE(f->capacity, 16u);
    EXPECT_EQ(f->len, 0u);
    EXPECT_EQ(fake.live_frames(), 1u);
    t->frame_retain(f);
    t->frame_release(f);
    EXPECT_EQ(fake.live_frames(), 1u);
    t->frame_release(f);
    EXPECT_EQ(fake.live_frames(), 0u);
    EXPECT_TRUE(fake.violations().empty());

    t->frame_release(f); // a plugin bug the fake must catch, not crash on
    ASSERT_EQ(fake.violations().size(), 1u);
    EXPECT_NE(fake.violations()[0].find("double release"), std::string::npos);
}

TEST(SdkFrames, SdkFrameHandleBalancesReferences) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    const Host& h = inst.as<Echo>()->host();
    {
        Frame a = h.frame_of("hello");
        EXPECT_EQ(a.view(), "hello");
        EXPECT_FALSE(a.append("!")) << "frame_of allocates exactly the size";
        Frame b = a;            // retain
        Frame c = std::move(a); // no change
        EXPECT_FALSE(a);
        EXPECT_EQ(fake.live_frames(), 1u);
        Frame d = h.frame(8);
        EXPECT_TRUE(d.append("12345678"));
        EXPECT_FALSE(d.append("9"));
        EXPECT_EQ(fake.live_frames(), 2u);
    }
    EXPECT_EQ(fake.live_frames(), 0u);
    EXPECT_TRUE(fake.violations().empty());
}

// ---- timers ----

TEST(SdkTimers, ManualClockFiresDueTimers) {
    FakeHost fake;
    fake.set_config("tick", "100ms");
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    auto* e = inst.as<Echo>();
    fake.advance(99);
    EXPECT_EQ(e->ticks_, 0);
    fake.advance(1);
    EXPECT_EQ(e->ticks_, 1);
    fake.advance(250); // due at 200 and 300
    EXPECT_EQ(e->ticks_, 3);
    EXPECT_EQ(fake.now_ms(), 350u);
    EXPECT_EQ(fake.metric("echo_ticks_total"), 3);
    inst.stop(); // cancels
    EXPECT_EQ(fake.pending_timers(), 0u);
    fake.advance(1000);
    EXPECT_EQ(e->ticks_, 3);
}

struct OneShot {
    const parley_t_host* t;
    parley_t_host_ctx_hptr ctx;
    uint64_t id = 0;
    int fired = 0;
};

TEST(SdkTimers, OneShotAndCancelFromInsideTheCallback) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    OneShot once{fake.table(), inst.ctx()};
    once.id = fake.table()->timer_start(
        inst.ctx(), 50, 0, [](void* u) { ++static_cast<OneShot*>(u)->fired; }, &once);
    ASSERT_NE(once.id, 0u);
    fake.advance(49);
    EXPECT_EQ(once.fired, 0);
    fake.advance(1000);
    EXPECT_EQ(once.fired, 1);
    EXPECT_EQ(fake.pending_timers(), 0u);

    OneShot self{fake.table(), inst.ctx()};
    self.id = fake.table()->timer_start(
        inst.ctx(), 10, 10,
        [](void* u) {
            auto* s = static_cast<OneShot*>(u);
            if (++s->fired == 2) s->t->timer_cancel(s->ctx, s->id); // must not deadlock
        },
        &self);
    fake.advance(100);
    EXPECT_EQ(self.fired, 2);
}

// ---- rooms ----

TEST(SdkRooms, PublishDeliversToTheTransportHookAndRecordsOthers) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    auto* e = inst.as<Echo>();
    const parley_t_host* t = fake.table();

    parley_t_conn_id a = e->accept(11), b = e->accept(12);
    parley_t_conn_id c = fake.connect(); // a client of some other transport
    ASSERT_NE(a, 0u);
    ASSERT_NE(b, a);

    parley_t_join_result jr{};
    jr.struct_size = sizeof jr;
    ASSERT_EQ(t->room_join(inst.ctx(), a, bytes("r1"), bytes("alice"), &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 1u);
    EXPECT_EQ(jr.members, 1u);
    ASSERT_EQ(t->room_join(inst.ctx(), b, bytes("r1"), bytes("bob"), &jr), PARLEY_OK);
    EXPECT_EQ(jr.created, 0u);
    EXPECT_EQ(jr.members, 2u);
    EXPECT_EQ(t->room_join(inst.ctx(), b, bytes("r1"), bytes("bob"), &jr), PARLEY_ERR_EXISTS);
    ASSERT_EQ(fake.join(c, "r1", "carol"), PARLEY_OK);

    ASSERT_EQ(fake.publish("r1", "msg-1", a), PARLEY_OK); // everyone but the sender
    ASSERT_EQ(e->queued_.size(), 1u);
    EXPECT_EQ(e->queued_[0].first.conn, b);
    EXPECT_EQ(e->queued_[0].first.tag, 12u) << "the transport gets its own tag back";
    EXPECT_EQ(e->queued_[0].second.view(), "msg-1");
    auto to_c = fake.deliveries_to(c);
    ASSERT_EQ(to_c.size(), 1u);
    EXPECT_EQ(to_c[0].text, "msg-1");
    EXPECT_FALSE(to_c[0].via_hook);
    EXPECT_TRUE(fake.deliveries_to(b).at(0).via_hook);
    EXPECT_TRUE(fake.deliveries_to(a).empty());
    EXPECT_EQ(fake.live_frames(), 1u) << "the transport still holds the queued frame";

    // Counted visit and typed metadata with set-once semantics.
    EXPECT_EQ(t->room_members(inst.ctx(), bytes("r1"), nullptr, nullptr), 3u);
    EXPECT_EQ(t->room_meta_set(inst.ctx(), bytes("r1"), PARLEY_META_ADMIN_HASH, bytes("h1"),
                               PARLEY_META_SET_ONCE),
              PARLEY_OK);
    EXPECT_EQ(t->room_meta_set(inst.ctx(), bytes("r1"), PARLEY_META_ADMIN_HASH, bytes("h2"),
                               PARLEY_META_SET_ONCE),
              PARLEY_ERR_EXISTS);
    char buf[8];
    size_t n = 0;
    ASSERT_EQ(
        t->room_meta_get(inst.ctx(), bytes("r1"), PARLEY_META_ADMIN_HASH, buf, sizeof buf, &n),
        PARLEY_OK);
    EXPECT_EQ(std::string(buf, n), "h1");
    EXPECT_EQ(t->room_meta_get(inst.ctx(), bytes("r1"), PARLEY_META_PUBLIC, buf, sizeof buf, &n),
              PARLEY_ERR_NOT_FOUND);

    // Direct messages to one member by label.
    Frame dm = e->host().frame_of("psst");
    EXPECT_EQ(t->room_send_to_member(inst.ctx(), bytes("r1"), bytes("carol"), dm.get()), PARLEY_OK);
    EXPECT_EQ(fake.deliveries_to(c).back().text, "psst");
    EXPECT_EQ(t->room_send_to_member(inst.ctx(), bytes("r1"), bytes("dave"), dm.get()),
              PARLEY_ERR_NOT_FOUND);

    // A closed connection leaves every room; the last leave frees the room and its metadata.
    t->conn_closed(inst.ctx(), c);
    EXPECT_EQ(fake.room_members("r1").size(), 2u);
    uint32_t left = 99;
    EXPECT_EQ(t->room_leave(inst.ctx(), a, bytes("r1"), &left), PARLEY_OK);
    EXPECT_EQ(left, 1u);
    EXPECT_EQ(t->room_leave(inst.ctx(), a, bytes("r1"), &left), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(t->room_leave(inst.ctx(), b, bytes("r1"), nullptr), PARLEY_OK);
    EXPECT_FALSE(fake.room_exists("r1"));
    EXPECT_EQ(fake.publish("r1", "late"), PARLEY_ERR_NOT_FOUND);

    dm = Frame();
    inst.stop();
    EXPECT_EQ(fake.live_frames(), 0u) << "no frame leaked";
    EXPECT_TRUE(fake.violations().empty());
}

TEST(SdkRooms, KickGoesToTheOwningTransport) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    auto* e = inst.as<Echo>();
    parley_t_conn_id a = e->accept(7);
    fake.table()->conn_close(inst.ctx(), a, 4000, bytes("kicked"));
    ASSERT_EQ(e->closed_.size(), 1u);
    EXPECT_EQ(e->closed_[0], std::make_pair(a, uint16_t(4000)));
    EXPECT_EQ(fake.close_requests().at(0).reason, "kicked");
}

TEST(SdkRooms, PersistedPublishHistoryAndJoinSequence) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    const parley_t_host* t = fake.table();
    parley_t_conn_id early = fake.connect(), late = fake.connect();
    ASSERT_EQ(fake.join(early, "r"), PARLEY_OK);

    struct Done {
        int calls = 0;
        parley_t_status st = PARLEY_ERR;
    } done;
    auto on_done = [](void* u, parley_t_status st) {
        auto* d = static_cast<Done*>(u);
        ++d->calls;
        d->st = st;
    };
    Frame m1 = inst.as<Echo>()->host().frame_of("m1");
    ASSERT_EQ(
        t->room_publish_persist(inst.ctx(), bytes("r"), m1.get(), 0, bytes("rec1"), on_done, &done),
        PARLEY_OK);
    EXPECT_EQ(done.calls, 1);
    EXPECT_EQ(done.st, PARLEY_OK);
    ASSERT_EQ(fake.history("r").size(), 1u);
    uint64_t seq1 = fake.history("r")[0].seq;

    parley_t_join_result jr{};
    jr.struct_size = sizeof jr;
    ASSERT_EQ(fake.join(late, "r", "", &jr), PARLEY_OK);
    EXPECT_EQ(jr.join_seq, seq1) << "history up to join_seq, live after it";

    Frame m2 = inst.as<Echo>()->host().frame_of("m2");
    ASSERT_EQ(t->room_publish_persist(inst.ctx(), bytes("r"), m2.get(), 0, bytes("rec2"), nullptr,
                                      nullptr),
              PARLEY_OK);
    EXPECT_EQ(fake.deliveries_to(early).size(), 2u);
    ASSERT_EQ(fake.deliveries_to(late).size(), 1u);
    EXPECT_EQ(fake.deliveries_to(late)[0].text, "m2");

    // The late joiner reads what it missed from the store, oldest first.
    std::vector<std::string> got;
    ASSERT_EQ(t->history_fetch(
                  inst.ctx(), bytes("r"), 10, jr.join_seq,
                  [](void* u, parley_t_status st, const parley_t_history_entry* e, size_t n) {
                      ASSERT_EQ(st, PARLEY_OK);
                      for (size_t i = 0; i < n; ++i)
                          static_cast<std::vector<std::string>*>(u)->emplace_back(
                              view(e[i].record));
                  },
                  &got),
              PARLEY_OK);
    EXPECT_EQ(got, std::vector<std::string>{"rec1"});

    fake.set_store_available(false);
    EXPECT_EQ(
        t->room_publish_persist(inst.ctx(), bytes("r"), m2.get(), 0, bytes("x"), nullptr, nullptr),
        PARLEY_ERR_UNAVAILABLE);
    m1 = Frame();
    m2 = Frame();
    EXPECT_EQ(fake.live_frames(), 0u);
}

TEST(SdkStore, MemoryBlobs) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    const parley_t_host* t = fake.table();
    std::string id;
    auto on_put = [](void* u, parley_t_status st, parley_t_bytes got) {
        if (st == PARLEY_OK) *static_cast<std::string*>(u) = std::string(view(got));
    };
    int64_t now = fake.wall_ms();
    ASSERT_EQ(t->blob_put(inst.ctx(), bytes("bob"), bytes("c1"), now + 2000, on_put, &id),
              PARLEY_OK);
    std::string id2;
    ASSERT_EQ(t->blob_put(inst.ctx(), bytes("bob"), bytes("c2"), now + 1000, on_put, &id2),
              PARLEY_OK);
    ASSERT_FALSE(id.empty());
    std::vector<std::string> listed;
    auto on_list = [](void* u, parley_t_status, const parley_t_blob* b, size_t n) {
        for (size_t i = 0; i < n; ++i)
            static_cast<std::vector<std::string>*>(u)->emplace_back(view(b[i].data));
    };
    ASSERT_EQ(t->blob_list(inst.ctx(), bytes("bob"), 0, 10, on_list, &listed), PARLEY_OK);
    EXPECT_EQ(listed, (std::vector<std::string>{"c2", "c1"})) << "sorted by expiry";
    fake.advance(1500); // c2 expires
    listed.clear();
    ASSERT_EQ(t->blob_list(inst.ctx(), bytes("bob"), 0, 10, on_list, &listed), PARLEY_OK);
    EXPECT_EQ(listed, std::vector<std::string>{"c1"});
    parley_t_status del = PARLEY_ERR;
    auto on_done = [](void* u, parley_t_status st) { *static_cast<parley_t_status*>(u) = st; };
    ASSERT_EQ(t->blob_delete(inst.ctx(), bytes(id), on_done, &del), PARLEY_OK);
    EXPECT_EQ(del, PARLEY_OK);
    ASSERT_EQ(t->blob_delete(inst.ctx(), bytes(id), on_done, &del), PARLEY_OK);
    EXPECT_EQ(del, PARLEY_ERR_NOT_FOUND);
}

// A store that holds every append until the test acknowledges it, to check that parleyd's
// ordering rule (fan out in sequence order, whatever order the acks come in) holds.
class HeldStore final : public Plugin {
  public:
    explicit HeldStore(Host h) : Plugin(h) {}
    void history_append(std::string_view room, uint64_t seq, std::string_view record,
                        parley_t_store_done_fn fn, void* user) override {
        held_.push_back({std::string(room), seq, std::string(record), fn, user});
    }
    void history_fetch(std::string_view, uint32_t, uint64_t, parley_t_history_fn fn,
                       void* user) override {
        std::vector<parley_t_history_entry> e;
        for (auto& h : acked_)
            e.push_back({h.seq, bytes(h.record)});
        fn(user, PARLEY_OK, e.data(), e.size());
    }
    void ack(size_t i, parley_t_status st = PARLEY_OK) {
        auto h = held_.at(i);
        if (st == PARLEY_OK) acked_.push_back(h);
        h.fn(h.user, st);
    }
    struct Held {
        std::string room;
        uint64_t seq;
        std::string record;
        parley_t_store_done_fn fn;
        void* user;
    };
    std::vector<Held> held_, acked_;
};

constexpr parley_t_config_key kNoKeys[] = {key("unused", PARLEY_CFG_BOOL, "false", "Unused.")};
constexpr parley_t_plugin_vtable kHeldStoreVt =
    detail::Trampolines<HeldStore>::vtable(PARLEY_KIND_STORE);
const parley_t_descriptor kHeldStoreDesc = {sizeof(parley_t_descriptor),
                                            PARLEY_ABI_MAJOR,
                                            PARLEY_ABI_MINOR,
                                            "held-store",
                                            PARLEY_KIND_STORE,
                                            "0.1.0",
                                            "Store that acks on demand (tests).",
                                            kNoKeys,
                                            1,
                                            &kHeldStoreVt};

TEST(SdkStore, StorePluginAcksOutOfOrderFanOutInSequenceOrder) {
    FakeHost fake;
    FakeInstance store = fake.load(&kHeldStoreDesc);
    FakeInstance echo = fake.load(echo_descriptor());
    ASSERT_EQ(store.up(), PARLEY_OK);
    ASSERT_EQ(echo.up(), PARLEY_OK);
    fake.use_store(&store);
    const parley_t_host* t = fake.table();
    parley_t_conn_id c = fake.connect();
    ASSERT_EQ(fake.join(c, "r"), PARLEY_OK);

    std::vector<parley_t_status> done;
    auto on_done = [](void* u, parley_t_status st) {
        static_cast<std::vector<parley_t_status>*>(u)->push_back(st);
    };
    for (const char* m : {"m1", "m2", "m3"}) {
        Frame f = echo.as<Echo>()->host().frame_of(m);
        ASSERT_EQ(
            t->room_publish_persist(echo.ctx(), bytes("r"), f.get(), 0, bytes(m), on_done, &done),
            PARLEY_OK);
    }
    auto* s = store.as<HeldStore>();
    ASSERT_EQ(s->held_.size(), 3u);
    EXPECT_LT(s->held_[0].seq, s->held_[1].seq);
    EXPECT_EQ(fake.live_frames(), 3u) << "pending publishes keep their frames";

    s->ack(1); // m2 is durable first: it must wait for m1
    EXPECT_TRUE(fake.deliveries_to(c).empty());
    s->ack(2, PARLEY_ERR_UNAVAILABLE); // m3 failed: never delivered, caller told
    s->ack(0);
    auto got = fake.deliveries_to(c);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].text, "m1");
    EXPECT_EQ(got[1].text, "m2");
    EXPECT_EQ(done, (std::vector<parley_t_status>{PARLEY_OK, PARLEY_ERR_UNAVAILABLE, PARLEY_OK}));
    EXPECT_EQ(fake.live_frames(), 0u);

    // Reads go to the store plugin too.
    size_t n = 0;
    ASSERT_EQ(t->history_fetch(
                  echo.ctx(), bytes("r"), 10, 0,
                  [](void* u, parley_t_status, const parley_t_history_entry*, size_t k) {
                      *static_cast<size_t*>(u) = k;
                  },
                  &n),
              PARLEY_OK);
    EXPECT_EQ(n, 2u);
    EXPECT_TRUE(fake.history("r").empty()) << "the built-in memory store was not used";
    EXPECT_TRUE(fake.violations().empty());
}

// ---- commands, HTTP, metrics, draining, workers ----

TEST(SdkCommands, CallRepliesAndPublishes) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    parley_t_conn_id me = fake.connect(), other = fake.connect();
    EXPECT_EQ(fake.call("echo", me, R"({"x":1})"), PARLEY_OK);
    ASSERT_EQ(fake.deliveries_to(me).size(), 1u);
    EXPECT_EQ(fake.deliveries_to(me)[0].text, R"({"x":1})");

    ASSERT_EQ(fake.join(me, "lobby"), PARLEY_OK);
    ASSERT_EQ(fake.join(other, "lobby"), PARLEY_OK);
    EXPECT_EQ(fake.call("echo", me, "to-all", "lobby"), PARLEY_OK);
    EXPECT_EQ(fake.deliveries_to(other).back().text, "to-all");
    EXPECT_EQ(fake.deliveries_to(me).size(), 1u) << "the sender is excepted";

    EXPECT_EQ(fake.call("nope", me), PARLEY_ERR_NOT_FOUND);
    EXPECT_EQ(fake.call("echo", 999, "x"), PARLEY_ERR_NOT_FOUND) << "unknown connection";
    EXPECT_EQ(fake.live_frames(), 0u);
}

TEST(SdkCommands, HttpRoutes) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    auto r = fake.http("GET", "/echo/abc?q=1", "", {{"User-Agent", "gtest"}});
    EXPECT_TRUE(r.routed);
    EXPECT_TRUE(r.answered);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/plain");
    EXPECT_EQ(r.body, "/echo/abc?q=1 ua=gtest");
    auto wrong_method = fake.http("POST", "/echo/abc");
    EXPECT_FALSE(wrong_method.routed);
    EXPECT_EQ(wrong_method.status, 404);
    EXPECT_EQ(fake.http("GET", "/other").status, 404);
}

TEST(SdkMetrics, CountersGaugesAndRender) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    const Host& h = inst.as<Echo>()->host();
    auto* g = h.gauge("echo_queue_bytes", "Queued bytes.");
    auto* k = h.counter(R"(echo_closed_total{code="1002"})", "Closes by code.");
    ASSERT_NE(g, nullptr);
    ASSERT_NE(k, nullptr);
    h.set(g, 42);
    h.add(k);
    h.add(k, 2);
    EXPECT_EQ(fake.metric("echo_queue_bytes"), 42);
    EXPECT_EQ(fake.metric(R"(echo_closed_total{code="1002"})"), 3);
    EXPECT_EQ(fake.metric_kind("echo_queue_bytes"), PARLEY_METRIC_GAUGE);
    EXPECT_EQ(h.counter("bad name", "x"), nullptr);
    EXPECT_EQ(h.counter("echo_queue_bytes", "x"), nullptr) << "same name, other kind";
    EXPECT_EQ(fake.violations().size(), 1u);
    std::string text = fake.metrics_text();
    EXPECT_NE(text.find("# TYPE echo_queue_bytes gauge\necho_queue_bytes 42\n"), std::string::npos);
    EXPECT_NE(text.find(R"(echo_closed_total{code="1002"} 3)"), std::string::npos);
}

TEST(SdkLifecycle, DrainRefusesNewConnections) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    auto* e = inst.as<Echo>();
    EXPECT_NE(e->accept(1), 0u);
    fake.drain(5000);
    EXPECT_EQ(e->drained_grace_, 5000u);
    EXPECT_EQ(fake.table()->draining(inst.ctx()), 1);
    EXPECT_EQ(e->accept(2), 0u);
}

TEST(SdkWorkers, InlineAndQueued) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    int runs = 0;
    auto bump = [](void* u) { ++*static_cast<int*>(u); };
    ASSERT_EQ(fake.table()->work_submit(inst.ctx(), bump, &runs), PARLEY_OK);
    EXPECT_EQ(runs, 1);
    fake.set_work_inline(false);
    fake.set_work_queue_limit(1);
    ASSERT_EQ(fake.table()->work_submit(inst.ctx(), bump, &runs), PARLEY_OK);
    EXPECT_EQ(fake.table()->work_submit(inst.ctx(), bump, &runs), PARLEY_ERR_LIMIT);
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(fake.run_work(), 1u);
    EXPECT_EQ(runs, 2);
}

// ---- append-only tables: PARLEY_HAS with a smaller struct_size ----

TEST(SdkAbi, HasReadsOnlyDeclaredFieldsOfAnOlderPluginTable) {
    // An "older" vtable that ends before `reload`, in a buffer exactly that long, so reading a
    // field past struct_size would be caught by ASan.
    const parley_t_plugin_vtable full = detail::Trampolines<Echo>::vtable(PARLEY_KIND_SERVICE);
    const size_t old_size = offsetof(parley_t_plugin_vtable, reload);
    auto storage = std::make_unique<unsigned char[]>(old_size);
    std::memcpy(storage.get(), &full, old_size);
    const uint32_t declared = uint32_t(old_size);
    std::memcpy(storage.get(), &declared, sizeof declared); // struct_size is the first field
    // A real old table lives in another .so, where the compiler cannot see its size; the
    // volatile hop hides this buffer's size the same way (else GCC's -Warray-bounds fires on
    // the very accesses PARLEY_HAS guards).
    parley_t_plugin_vtable* volatile opaque =
        reinterpret_cast<parley_t_plugin_vtable*>(storage.get());
    parley_t_plugin_vtable* old_vt = opaque;

    EXPECT_TRUE(PARLEY_HAS(old_vt, create));
    EXPECT_TRUE(PARLEY_HAS(old_vt, destroy));
    EXPECT_FALSE(PARLEY_HAS(old_vt, reload));
    EXPECT_FALSE(PARLEY_HAS(old_vt, deliver));
    EXPECT_FALSE(PARLEY_HAS(old_vt, blob_delete));
    const parley_t_plugin_vtable* none = nullptr;
    EXPECT_FALSE(PARLEY_HAS(none, create));

    // The host copies it into a zeroed table: the plugin loads, the missing hook stays NULL.
    parley_t_descriptor d = *echo_descriptor();
    d.kind = PARLEY_KIND_SERVICE;
    d.vtable = old_vt;
    FakeHost fake;
    FakeInstance inst = fake.load(&d);
    ASSERT_TRUE(inst.loaded()) << inst.error();
    EXPECT_EQ(inst.vtable().reload, nullptr);
    ASSERT_EQ(inst.up(), PARLEY_OK);
    EXPECT_EQ(inst.reload(), PARLEY_ERR);
    EXPECT_NE(inst.error().find("no reload hook"), std::string::npos);
}

TEST(SdkAbi, PluginSeesAnOlderHostThroughHas) {
    FakeHost fake;
    fake.set_host_struct_size(offsetof(parley_t_host, work_submit));
    EXPECT_FALSE(PARLEY_HAS(fake.table(), work_submit));
    EXPECT_TRUE(PARLEY_HAS(fake.table(), draining));
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.create(), PARLEY_OK);
    EXPECT_FALSE(inst.as<Echo>()->has_work_submit_);

    FakeHost current;
    FakeInstance inst2 = current.load(echo_descriptor());
    ASSERT_EQ(inst2.create(), PARLEY_OK);
    EXPECT_TRUE(inst2.as<Echo>()->has_work_submit_);
}

TEST(SdkAbi, HostCallAfterDestroyIsAViolation) {
    FakeHost fake;
    FakeInstance inst = fake.load(echo_descriptor());
    ASSERT_EQ(inst.up(), PARLEY_OK);
    parley_t_host_ctx_hptr ctx = inst.ctx();
    inst.destroy();
    fake.table()->log(ctx, PARLEY_LOG_INFO, bytes("zombie"));
    ASSERT_EQ(fake.violations().size(), 1u);
    EXPECT_NE(fake.violations()[0].find("after destroy"), std::string::npos);
}

} // namespace
