// Unit test of parley-hello on the SDK's FakeHost: no parleyd needed.
//
// hello.cpp is compiled into this test, so its PARLEY_PLUGIN entry point is called directly.
// When PARLEY_HELLO_SO names the built module, one more test loads that very .so the way
// parleyd does (dlopen RTLD_NOW | RTLD_LOCAL, one entry symbol).
#include <parley/sdk.hpp>
#include <parley/sdk_testing.hpp>

#include <gtest/gtest.h>

#include <string>

extern "C" const parley_t_descriptor* parley_plugin_entry_v0(uint16_t, uint16_t, const char**);

namespace {

using parley::sdk::testing::FakeHost;
using parley::sdk::testing::FakeInstance;

void expect_hello_works(FakeHost& fake, FakeInstance& inst, const std::string& greeting) {
    ASSERT_EQ(inst.up(), PARLEY_OK) << inst.error();
    EXPECT_TRUE(fake.has_log(PARLEY_LOG_INFO, "hello started"));

    auto conn = fake.connect();
    ASSERT_EQ(fake.call("hello", conn), PARLEY_OK);
    auto got = fake.deliveries_to(conn);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].text, R"({"type":"hello","text":")" + greeting + R"("})");

    auto r = fake.http("GET", "/hello");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u) << r.content_type;
    EXPECT_EQ(r.body, greeting + "\n");
    EXPECT_EQ(fake.http("POST", "/hello").status, 404);

    EXPECT_EQ(fake.metric("parley_hello_calls_total"), 2);
    EXPECT_EQ(fake.live_frames(), 0u) << "the reply frame was released";
    EXPECT_TRUE(fake.violations().empty());
}

TEST(Hello, Defaults) {
    FakeHost fake;
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_TRUE(inst.loaded()) << inst.error();
    EXPECT_STREQ(inst.descriptor().name, "hello");
    EXPECT_EQ(inst.descriptor().kind, uint32_t(PARLEY_KIND_SERVICE));
    expect_hello_works(fake, inst, "hello");
}

TEST(Hello, GreetingFromConfigIsJsonEscaped) {
    FakeHost fake;
    fake.set_config("greeting", R"(say "hi")");
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_EQ(inst.up(), PARLEY_OK) << inst.error();
    auto conn = fake.connect();
    ASSERT_EQ(fake.call("hello", conn), PARLEY_OK);
    EXPECT_EQ(fake.deliveries_to(conn).at(0).text, R"({"type":"hello","text":"say \"hi\""})");
    EXPECT_EQ(fake.http("GET", "/hello").body, "say \"hi\"\n");
}

TEST(Hello, CommandWithoutConnectionIsRefused) {
    FakeHost fake;
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_EQ(inst.up(), PARLEY_OK);
    EXPECT_EQ(fake.call("hello", 0), PARLEY_ERR_INVALID);
    EXPECT_TRUE(fake.deliveries().empty());
}

TEST(Hello, IntervalTimerLogsTheCount) {
    FakeHost fake;
    fake.set_config("interval", "30s");
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_EQ(inst.up(), PARLEY_OK);
    fake.call("hello", fake.connect());
    fake.advance(29'999);
    EXPECT_EQ(fake.count_logs("calls so far"), 0u);
    fake.advance(1);
    EXPECT_TRUE(fake.has_log(PARLEY_LOG_INFO, "hello: 1 calls so far"));
    fake.advance(60'000);
    EXPECT_EQ(fake.count_logs("calls so far"), 3u);
    inst.stop();
    EXPECT_EQ(fake.pending_timers(), 0u);
}

TEST(Hello, ReloadAppliesTheNewGreeting) {
    FakeHost fake;
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    ASSERT_EQ(inst.up(), PARLEY_OK);
    fake.set_config("greeting", "bonjour");
    fake.set_config("interval", "1s");
    ASSERT_EQ(inst.reload(), PARLEY_OK);
    EXPECT_EQ(fake.http("GET", "/hello").body, "bonjour\n");
    EXPECT_EQ(fake.pending_timers(), 1u);
}

TEST(Hello, BadConfigIsRefusedBeforeCreate) {
    FakeHost fake;
    fake.set_config("interval", "soon");
    FakeInstance inst = fake.load_entry(&parley_plugin_entry_v0);
    EXPECT_EQ(inst.create(), PARLEY_ERR_INVALID);
    EXPECT_NE(inst.error().find("interval"), std::string::npos) << inst.error();
}

TEST(Hello, SecondInstanceCannotTakeTheCommand) {
    FakeHost fake;
    FakeInstance a = fake.load_entry(&parley_plugin_entry_v0, "hello-a");
    FakeInstance b = fake.load_entry(&parley_plugin_entry_v0, "hello-b");
    ASSERT_EQ(a.up(), PARLEY_OK);
    EXPECT_EQ(b.up(), PARLEY_ERR_EXISTS);
    EXPECT_NE(b.error().find("already registered"), std::string::npos);
}

#ifdef PARLEY_HELLO_SO
TEST(Hello, BuiltModuleLoadsLikeParleydLoadsIt) {
    FakeHost fake;
    FakeInstance inst = fake.load_library(PARLEY_HELLO_SO);
    ASSERT_TRUE(inst.loaded()) << inst.error();
    // A different descriptor object than the one linked into this test: the .so's own.
    EXPECT_NE(inst.descriptor().vtable,
              parley_plugin_entry_v0(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR, nullptr)->vtable);
    expect_hello_works(fake, inst, "hello");
}
#endif

} // namespace
