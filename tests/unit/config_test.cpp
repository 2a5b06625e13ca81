// Unit tests for parley_config: scalar parsers, the Value tree, diagnostics, YAML loading and
// schema validation, including hostile input that must produce errors rather than crashes.
#include "config/config.hpp"

#include <parley/sdk.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <unistd.h>

namespace {

using namespace parley::config;
using namespace std::string_literals;
using parley::sdk::key;
using parley::sdk::key_enum;
using parley::sdk::key_list;
using parley::sdk::key_list_of_maps;
using parley::sdk::key_map;
using parley::sdk::key_range;

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

constexpr parley_t_config_key with_range(parley_t_config_key k, int64_t min, int64_t max) {
    k.min = min;
    k.max = max;
    return k;
}
constexpr parley_t_config_key with_default(parley_t_config_key k, const char* def) {
    k.default_value = def;
    return k;
}
constexpr parley_t_config_key deprecated(parley_t_config_key k, const char* replaced_by) {
    k.flags |= PARLEY_CFG_DEPRECATED;
    k.replaced_by = replaced_by;
    return k;
}

constexpr parley_t_config_key kLimits[] = {
    key_range("max_message", PARLEY_CFG_SIZE, "64K", 1024, 1 << 20, "Largest message."),
    key_range("idle", PARLEY_CFG_DURATION, "30s", 100, 3600 * 1000, "Idle timeout."),
};
constexpr parley_t_config_key kRoute[] = {
    key("path", PARLEY_CFG_STRING, nullptr, "Route path.", PARLEY_CFG_REQUIRED),
    key_enum("method", "GET|POST|ANY", "ANY", "HTTP method."),
};
constexpr parley_t_config_key kTls[] = {
    key("cert", PARLEY_CFG_STRING, nullptr, "Certificate file.", PARLEY_CFG_REQUIRED),
    key("key", PARLEY_CFG_STRING, nullptr, "Key file.", PARLEY_CFG_REQUIRED),
};
constexpr parley_t_config_key kSchema[] = {
    key_range("port", PARLEY_CFG_INT, "8080", 1, 65535, "Listen port.", PARLEY_CFG_RESTART),
    key("host", PARLEY_CFG_STRING, "0.0.0.0", "Bind address."),
    key_range("threads", PARLEY_CFG_INT, "2", 1, 64, "Reactor threads."),
    key("compress", PARLEY_CFG_BOOL, "false", "Compress."),
    key_enum("protocol", "link|bench|relay", "link", "Dialect."),
    key_list("origins", PARLEY_CFG_STRING, "Allowed origins."),
    with_range(key_list("backoff", PARLEY_CFG_DURATION, "Retry delays."), 100, 60 * 1000),
    key_map("limits", kLimits, "Limits."),
    key_list_of_maps("routes", kRoute, "Routes."),
    key_map("tls", kTls, "TLS files."),
    key("token", PARLEY_CFG_STRING, "s3cr3t-default", "Admin token.", PARLEY_CFG_SECRET),
    deprecated(key("max_frame", PARLEY_CFG_SIZE, nullptr, "Old name."), "limits.max_message"),
};
constexpr size_t kN = std::size(kSchema);
constexpr const char* kAllowed =
    "allowed keys: port, host, threads, compress, protocol, origins, backoff, limits, routes, "
    "tls, token";

// Loads `yaml` as "test.yaml" and validates it like a plugin block of a profile.
struct Run {
    Diagnostics diag;
    Value value;
    bool ok = false;
    std::string text;
};

Run run(const std::string& yaml, const parley_t_config_key* schema = kSchema, size_t n = kN,
        const std::string& prefix = "plugins[0].config") {
    Run r;
    Document doc = load_yaml_string(yaml, "test.yaml", r.diag);
    // Like the kernel: a file the loader refused is not validated (its root would be null,
    // which validates as "all defaults").
    r.ok = !r.diag.has_errors() &&
           validate(doc.root, schema, n, prefix, "test.yaml", r.value, r.diag) &&
           !r.diag.has_errors();
    r.text = r.diag.format();
    return r;
}

std::string nested(int depth, const std::string& open, const std::string& close) {
    std::string s;
    for (int k = 0; k < depth; ++k)
        s += open;
    s += "x";
    for (int k = 0; k < depth; ++k)
        s += close;
    return s;
}

// ---- scalar parsers -----------------------------------------------------------------------

TEST(ParseSize, AcceptsUnitsAndSuffixes) {
    EXPECT_EQ(parse_size("512"), 512);
    EXPECT_EQ(parse_size("0"), 0);
    EXPECT_EQ(parse_size("64K"), 65536);
    EXPECT_EQ(parse_size("64k"), 65536);
    EXPECT_EQ(parse_size("64KB"), 65536);
    EXPECT_EQ(parse_size("64KiB"), 65536);
    EXPECT_EQ(parse_size("64kib"), 65536);
    EXPECT_EQ(parse_size("2M"), 2 << 20);
    EXPECT_EQ(parse_size("2MiB"), 2 << 20);
    EXPECT_EQ(parse_size("1G"), int64_t(1) << 30);
    EXPECT_EQ(parse_size("1T"), int64_t(1) << 40);
    EXPECT_EQ(parse_size("512B"), 512);
    EXPECT_EQ(parse_size("10 MiB"), 10 << 20);
    EXPECT_EQ(parse_size("  64K  "), 65536);
    EXPECT_EQ(parse_size("1.5M"), 1572864);
    EXPECT_EQ(parse_size("0.5K"), 512);
    EXPECT_EQ(parse_size("007"), 7);
    EXPECT_EQ(parse_size("9223372036854775807"), kI64Max);
    EXPECT_EQ(parse_size("8388607T"), int64_t(8388607) << 40);
}

TEST(ParseSize, RejectsJunkNegativesAndOverflow) {
    std::string why;
    EXPECT_EQ(parse_size("", &why), std::nullopt);
    EXPECT_EQ(why, "empty");
    EXPECT_EQ(parse_size("-1", &why), std::nullopt);
    EXPECT_EQ(why, "negative sizes are not allowed");
    EXPECT_EQ(parse_size("-1K"), std::nullopt);
    EXPECT_EQ(parse_size("abc", &why), std::nullopt);
    EXPECT_EQ(why, "expected a number");
    EXPECT_EQ(parse_size("12Q", &why), std::nullopt);
    EXPECT_EQ(why, "unknown unit");
    EXPECT_EQ(parse_size("1.3K", &why), std::nullopt);
    EXPECT_EQ(why, "not a whole number of bytes");
    EXPECT_EQ(parse_size("1.5", &why), std::nullopt);
    EXPECT_EQ(why, "not a whole number of bytes");
    EXPECT_EQ(parse_size("9223372036854775808", &why), std::nullopt);
    EXPECT_EQ(why, "too large");
    EXPECT_EQ(parse_size("8388608T", &why), std::nullopt); // exactly 2^63
    EXPECT_EQ(why, "too large");
    EXPECT_EQ(parse_size("99999999999999999999999999K", &why), std::nullopt);
    EXPECT_EQ(why, "too large");
    EXPECT_EQ(parse_size("1.", &why), std::nullopt);
    EXPECT_EQ(why, "expected digits after '.'");
    EXPECT_EQ(parse_size("1.0000000001K", &why), std::nullopt);
    EXPECT_EQ(why, "too many decimal places");
    EXPECT_EQ(parse_size("1K2", &why), std::nullopt);
    EXPECT_EQ(why, "unexpected characters after the number");
    for (const char* bad :
         {".5K", "1KK", "0x10", "1e3", "1,000", "8E", "K", "1 K B", "1Kb2", "+5", "1Bi", "1MiBs"})
        EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
}

TEST(ParseDuration, AcceptsUnitsCompoundsAndPlainMilliseconds) {
    EXPECT_EQ(parse_duration("250ms"), 250);
    EXPECT_EQ(parse_duration("30s"), 30000);
    EXPECT_EQ(parse_duration("5m"), 300000);
    EXPECT_EQ(parse_duration("24h"), 86400000);
    EXPECT_EQ(parse_duration("1d"), 86400000);
    EXPECT_EQ(parse_duration("1500"), 1500);
    EXPECT_EQ(parse_duration("0"), 0);
    EXPECT_EQ(parse_duration("1h30m"), 5400000);
    EXPECT_EQ(parse_duration("1h 30m 15s"), 5415000);
    EXPECT_EQ(parse_duration("1.5s"), 1500);
    EXPECT_EQ(parse_duration("0.25h"), 900000);
    EXPECT_EQ(parse_duration("30 s"), 30000);
    EXPECT_EQ(parse_duration("2H"), 7200000);
    EXPECT_EQ(parse_duration("9223372036854775807"), kI64Max);
    EXPECT_EQ(parse_duration("9223372036854775807ms"), kI64Max);
}

TEST(ParseDuration, RejectsJunkNegativesAndOverflow) {
    std::string why;
    EXPECT_EQ(parse_duration("", &why), std::nullopt);
    EXPECT_EQ(why, "empty");
    EXPECT_EQ(parse_duration("-5s", &why), std::nullopt);
    EXPECT_EQ(why, "negative durations are not allowed");
    EXPECT_EQ(parse_duration("abc", &why), std::nullopt);
    EXPECT_EQ(why, "expected a number");
    EXPECT_EQ(parse_duration("1.5", &why), std::nullopt);
    EXPECT_EQ(why, "missing unit");
    EXPECT_EQ(parse_duration("1h30", &why), std::nullopt);
    EXPECT_EQ(why, "missing unit");
    EXPECT_EQ(parse_duration("0.5ms", &why), std::nullopt);
    EXPECT_EQ(why, "finer than a millisecond");
    EXPECT_EQ(parse_duration("5x", &why), std::nullopt);
    EXPECT_EQ(why, "unknown unit");
    EXPECT_EQ(parse_duration("5 minutes", &why), std::nullopt);
    EXPECT_EQ(why, "unknown unit");
    EXPECT_EQ(parse_duration("106751991168d", &why), std::nullopt);
    EXPECT_EQ(why, "too large");
    EXPECT_EQ(parse_duration("9223372036854775808", &why), std::nullopt);
    EXPECT_EQ(why, "too large");
    EXPECT_EQ(parse_duration("9223372036854775807ms1ms", &why), std::nullopt);
    EXPECT_EQ(why, "too large");
    for (const char* bad : {"1w", "s", "1s-", "1s,2s", "1ss", "1e3ms", "P1D", "10:00"})
        EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
}

TEST(ParseBool, YamlStyleCaseInsensitive) {
    for (const char* t : {"true", "TRUE", "True", "yes", "Yes", "on", "ON"})
        EXPECT_EQ(parse_bool(t), true) << t;
    for (const char* f : {"false", "False", "no", "NO", "off", "Off"})
        EXPECT_EQ(parse_bool(f), false) << f;
    for (const char* bad : {"", "1", "0", "y", "n", "truee", "enable"})
        EXPECT_EQ(parse_bool(bad), std::nullopt) << bad;
}

TEST(ParseInt, DecimalOnlyWithinInt64) {
    EXPECT_EQ(parse_int("42"), 42);
    EXPECT_EQ(parse_int("-7"), -7);
    EXPECT_EQ(parse_int("+5"), 5);
    EXPECT_EQ(parse_int("0"), 0);
    EXPECT_EQ(parse_int("9223372036854775807"), kI64Max);
    EXPECT_EQ(parse_int("-9223372036854775808"), kI64Min);
    std::string why;
    EXPECT_EQ(parse_int("9223372036854775808", &why), std::nullopt);
    EXPECT_EQ(why, "out of range for a 64-bit integer");
    EXPECT_EQ(parse_int("-9223372036854775809", &why), std::nullopt);
    EXPECT_EQ(why, "out of range for a 64-bit integer");
    for (const char* bad :
         {"", "-", "+", "+-1", "-+1", "1.0", "0x10", "1e3", "1_000", "12a", "--1"}) {
        EXPECT_EQ(parse_int(bad, &why), std::nullopt) << bad;
        EXPECT_EQ(why, "not a decimal integer") << bad;
    }
}

TEST(Format, LargestExactUnit) {
    EXPECT_EQ(format_size(65536), "64K");
    EXPECT_EQ(format_size(1536), "1536");
    EXPECT_EQ(format_size(0), "0");
    EXPECT_EQ(format_size(1 << 20), "1M");
    EXPECT_EQ(format_size(int64_t(3) << 30), "3G");
    EXPECT_EQ(format_size(int64_t(1) << 40), "1T");
    EXPECT_EQ(format_duration(30000), "30s");
    EXPECT_EQ(format_duration(1500), "1500ms");
    EXPECT_EQ(format_duration(86400000), "1d");
    EXPECT_EQ(format_duration(5400000), "90m");
    EXPECT_EQ(format_duration(0), "0");
    EXPECT_EQ(type_name(PARLEY_CFG_DURATION), "duration");
    EXPECT_EQ(type_name(99), "type 99");
}

// ---- Value ----------------------------------------------------------------------------------

TEST(Value, FindDottedPathsAndIndices) {
    auto r = run("origins: [a, b]\nroutes:\n  - path: /x\n  - path: /y\n    method: GET\n");
    ASSERT_TRUE(r.ok) << r.text;
    const Value& v = r.value;
    EXPECT_EQ(v.find(""), &v);
    EXPECT_EQ(v.find("port")->i, 8080);
    EXPECT_EQ(v.find("origins.1")->str, "b");
    EXPECT_EQ(v.find("origins[1]")->str, "b");
    EXPECT_EQ(v.find("routes.1.method")->str, "GET");
    EXPECT_EQ(v.find("routes[1].method")->str, "GET");
    EXPECT_EQ(v.find("routes.0.method")->str, "ANY");
    EXPECT_EQ(v.find("limits.max_message")->i, 65536);
    EXPECT_EQ(v.find("origins.2"), nullptr);
    EXPECT_EQ(v.find("origins.-1"), nullptr);
    EXPECT_EQ(v.find("origins.x"), nullptr);
    EXPECT_EQ(v.find("origins[1"), nullptr);
    EXPECT_EQ(v.find("port.x"), nullptr);
    EXPECT_EQ(v.find("nope"), nullptr);
    EXPECT_EQ(v.find("limits.nope"), nullptr);
    EXPECT_EQ(v.count(), v.entries.size());
    EXPECT_EQ(v.find("origins")->count(), 2u);
}

TEST(Value, FillPointsIntoTheTreeAndHonoursStructSize) {
    auto r = run("host: example.org\nprotocol: relay\norigins: [a, b, c]\n");
    ASSERT_TRUE(r.ok) << r.text;
    const Value* host = r.value.find("host");
    parley_t_config_value out{};
    out.struct_size = sizeof out;
    fill(*host, &out);
    EXPECT_EQ(out.struct_size, sizeof out);
    EXPECT_EQ(out.type, uint32_t(PARLEY_CFG_STRING));
    EXPECT_EQ(out.s.ptr, host->str.data());
    EXPECT_EQ(std::string(out.s.ptr, out.s.len), "example.org");

    fill(*r.value.find("protocol"), &out);
    EXPECT_EQ(out.type, uint32_t(PARLEY_CFG_ENUM));
    EXPECT_EQ(std::string(out.s.ptr, out.s.len), "relay");
    EXPECT_EQ(out.i, 2);
    fill(*r.value.find("origins"), &out);
    EXPECT_EQ(out.type, uint32_t(PARLEY_CFG_LIST));
    EXPECT_EQ(out.count, 3u);
    fill(*r.value.find("compress"), &out);
    EXPECT_EQ(out.type, uint32_t(PARLEY_CFG_BOOL));
    EXPECT_EQ(out.i, 0);

    // An older caller that only knows the first two fields gets nothing written past them.
    parley_t_config_value small{};
    small.struct_size = offsetof(parley_t_config_value, i);
    small.i = 12345;
    fill(*r.value.find("port"), &small);
    EXPECT_EQ(small.type, uint32_t(PARLEY_CFG_INT));
    EXPECT_EQ(small.i, 12345);

    fill_absent(&out);
    EXPECT_EQ(out.type, 0u);
    EXPECT_EQ(out.struct_size, sizeof out);
}

TEST(Value, EqualIgnoresMarksAndSpelling) {
    auto a = run("port: 80\nlimits:\n  max_message: 1K\n");
    auto b = run("\n\nlimits: {max_message: 1024}\nport: 80\n");
    ASSERT_TRUE(a.ok && b.ok);
    EXPECT_TRUE(equal(a.value, b.value));
    EXPECT_TRUE(changed_paths(a.value, b.value).empty());
    // Explicitly writing the default is not a change either.
    auto c = run("port: 80\nthreads: 2\nlimits: {max_message: 1024, idle: 30s}\n");
    EXPECT_TRUE(equal(a.value, c.value));
}

TEST(Value, ChangedPathsNameEachDifference) {
    auto a = run("port: 80\norigins: [a, b]\nroutes: [{path: /a}, {path: /b}]\n");
    auto b =
        run("port: 81\norigins: [a]\nroutes: [{path: /a}, {path: /c}]\ntls: {cert: c, key: k}\n");
    ASSERT_TRUE(a.ok && b.ok) << a.text << b.text;
    EXPECT_FALSE(equal(a.value, b.value));
    EXPECT_EQ(changed_paths(a.value, b.value),
              (std::vector<std::string>{"port", "origins", "routes.1.path", "tls"}));
    EXPECT_EQ(changed_paths(b.value, a.value),
              (std::vector<std::string>{"port", "origins", "routes.1.path", "tls"}));
    Value x, y;
    x.type = PARLEY_CFG_INT;
    y.type = PARLEY_CFG_STRING;
    EXPECT_FALSE(equal(x, y));
    EXPECT_EQ(changed_paths(x, y), std::vector<std::string>{""});
}

TEST(Value, RestartKeys) {
    EXPECT_TRUE(is_restart_key(kSchema, kN, "port"));
    EXPECT_FALSE(is_restart_key(kSchema, kN, "host"));
    EXPECT_FALSE(is_restart_key(kSchema, kN, "limits.max_message"));
    EXPECT_FALSE(is_restart_key(kSchema, kN, "routes.1.path"));
    EXPECT_FALSE(is_restart_key(kSchema, kN, "nope"));
    EXPECT_FALSE(is_restart_key(kSchema, kN, ""));
    static constexpr parley_t_config_key kInner[] = {key("a", PARLEY_CFG_INT, "1", "a")};
    static constexpr parley_t_config_key kOuter[] = {
        key_map("net", kInner, "net", PARLEY_CFG_RESTART),
        key_list_of_maps("items", kInner, "items"),
    };
    EXPECT_TRUE(is_restart_key(kOuter, 2, "net.a"));
    EXPECT_TRUE(is_restart_key(kOuter, 2, "net"));
    EXPECT_FALSE(is_restart_key(kOuter, 2, "items.0.a"));
}

// ---- Diagnostics -----------------------------------------------------------------------------

TEST(Diagnostics, FormatOmitsUnknownParts) {
    Diagnostics d;
    d.error("p.yaml", 3, 5, "plugins[1].config.port", "bad");
    d.warning("p.yaml", 4, 0, "", "meh");
    d.error("p.yaml", 0, 0, "x", "no position");
    d.error("", 0, 0, "", "bare");
    EXPECT_EQ(d.format(), "p.yaml:3:5: error: plugins[1].config.port: bad\n"
                          "p.yaml:4: warning: meh\n"
                          "p.yaml: error: x: no position\n"
                          "error: bare\n");
    EXPECT_EQ(d.error_count(), 3u);
    EXPECT_EQ(d.warning_count(), 1u);
    EXPECT_TRUE(d.has_errors());
    EXPECT_EQ(d.lines().size(), 4u);
    d.clear();
    EXPECT_TRUE(d.empty());
    EXPECT_FALSE(d.has_errors());
}

TEST(Diagnostics, DeduplicatesAndCaps) {
    Diagnostics d;
    d.error("f", 1, 1, "a", "same");
    d.error("f", 1, 1, "a", "same");
    EXPECT_EQ(d.entries().size(), 1u);
    EXPECT_EQ(d.error_count(), 1u);
    for (int k = 0; k < 1000; ++k)
        d.error("f", k + 2, 1, "a", "different");
    EXPECT_EQ(d.entries().size(), Diagnostics::kMaxEntries + 1);
    EXPECT_EQ(d.entries().back().message, "too many problems; the rest are not shown");
    EXPECT_EQ(d.error_count(), 1001u);
}

TEST(Diagnostics, NodeWithoutMarkDoesNotThrow) {
    Diagnostics d;
    YAML::Node fresh(YAML::NodeType::Map);
    d.error("f.yaml", fresh, "k", "built in code");
    const YAML::Node map = YAML::Load("a: 1");
    d.error("f.yaml", map["missing"], "k2", "failed lookup");
    EXPECT_EQ(d.format(), "f.yaml: error: k: built in code\nf.yaml: error: k2: failed lookup\n");
}

// ---- loading --------------------------------------------------------------------------------

TEST(Load, DuplicateKeyAtTopLevel) {
    Diagnostics d;
    load_yaml_string("host: a\nthreads: 2\nport: 1\nport: 2\n", "p.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:4:1: error: port: duplicate key 'port' (first at line 3)\n");
}

TEST(Load, DuplicateKeysAtDepth) {
    Diagnostics d;
    load_yaml_string("profile: x\n"                            // 1
                     "plugins:\n"                              // 2
                     "  - plugin: ws\n"                        // 3
                     "  - plugin: store\n"                     // 4
                     "    config:\n"                           // 5
                     "      limits:\n"                         // 6
                     "        max_message: 1K\n"               // 7
                     "        idle: 1s\n"                      // 8
                     "        max_message: 2K\n"               // 9
                     "      routes: [{path: /a, path: /b}]\n", // 10
                     "p.yaml", d);
    EXPECT_EQ(d.format(),
              "p.yaml:9:9: error: plugins[1].config.limits.max_message: duplicate key "
              "'max_message' (first at line 7)\n"
              "p.yaml:10:27: error: plugins[1].config.routes[0].path: duplicate key 'path' "
              "(first at line 10, column 17)\n");
}

TEST(Load, QuotedAndPlainKeysAreTheSameKey) {
    Diagnostics d;
    load_yaml_string("port: 1\n\"port\": 2\n", "p.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:2:1: error: port: duplicate key 'port' (first at line 1)\n");
}

TEST(Load, NonScalarKeys) {
    Diagnostics d;
    load_yaml_string("? [a, b]\n: 1\nok: 2\n", "p.yaml", d);
    load_yaml_string("a:\n  ~: 1\n", "q.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:1:3: error: mapping keys must be plain strings, found a list\n"
                          "q.yaml:2:3: error: a: empty mapping key\n");
}

TEST(Load, SyntaxErrorsCarryPosition) {
    Diagnostics d;
    auto doc = load_yaml_string("port: 1\nhost: [a, b\n", "p.yaml", d);
    ASSERT_EQ(d.entries().size(), 1u);
    EXPECT_EQ(d.entries()[0].line, 3);
    EXPECT_EQ(d.format(), "p.yaml:3:1: error: invalid YAML: end of sequence flow not found\n");
    EXPECT_TRUE(doc.root.IsNull());
}

TEST(Load, MoreThanOneDocument) {
    Diagnostics d;
    load_yaml_string("a: 1\n---\nb: 2\n", "p.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:2:1: error: more than one YAML document ('---'); a config "
                          "file holds exactly one\n");
    Diagnostics ok;
    auto doc = load_yaml_string("---\na: 1\n...\n", "p.yaml", ok);
    EXPECT_TRUE(ok.empty()) << ok.format();
    EXPECT_TRUE(doc.root.IsMap());
}

TEST(Load, StrayTextAfterTheDocument) {
    // yaml-cpp 0.7's LoadAll loops forever (allocating) on these; Load silently drops the ','.
    for (const char* text : {",", "&a,", "[a],", "{a: 1},"}) {
        Diagnostics d;
        auto doc = load_yaml_string(text, "p.yaml", d);
        ASSERT_EQ(d.entries().size(), 1u) << text;
        EXPECT_EQ(d.entries()[0].message,
                  "invalid YAML: unexpected ',' after the end of the document")
            << text;
        EXPECT_TRUE(doc.root.IsNull());
    }
    Diagnostics d;
    load_yaml_string("[a],", "p.yaml", d);
    EXPECT_EQ(d.format(),
              "p.yaml:1:4: error: invalid YAML: unexpected ',' after the end of the document\n");
}

TEST(Load, EmptyAndNonMapDocuments) {
    Diagnostics d;
    EXPECT_TRUE(load_yaml_string("", "p.yaml", d).root.IsNull());
    EXPECT_TRUE(load_yaml_string("# only a comment\n", "p.yaml", d).root.IsNull());
    EXPECT_TRUE(load_yaml_string("- a\n- b\n", "p.yaml", d).root.IsSequence());
    EXPECT_TRUE(load_yaml_string("just text", "p.yaml", d).root.IsScalar());
    EXPECT_TRUE(d.empty()) << d.format();

    auto r = run("- a\n- b\n");
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.text,
              "test.yaml:1:1: error: plugins[0].config: expected a mapping, found a list\n");
    r = run("42\n", kSchema, kN, "");
    EXPECT_EQ(r.text, "test.yaml:1:1: error: expected a mapping, found '42'\n");
}

TEST(Load, NestingDepthIsCapped) {
    Diagnostics ok;
    load_yaml_string(nested(kMaxDepth, "[", "]"), "p.yaml", ok);
    EXPECT_TRUE(ok.empty()) << ok.format();

    Diagnostics d;
    load_yaml_string(nested(kMaxDepth + 1, "[", "]"), "p.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:1:65: error: [0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
                          "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
                          "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
                          "[0][0][0][0]: nesting deeper than 64 levels\n");

    // Far past yaml-cpp's own recursion guard: an error, not a stack overflow.
    for (const auto& [open, close] : {std::pair{"[", "]"}, {"{a: ", "}"}, {"[", ""}, {"{", ""}}) {
        Diagnostics deep;
        load_yaml_string(nested(20000, open, close), "p.yaml", deep);
        ASSERT_TRUE(deep.has_errors()) << open;
    }
    Diagnostics blocks;
    std::string yaml;
    for (int k = 0; k < 300; ++k)
        yaml += std::string(size_t(k) * 2, ' ') + "- \n";
    load_yaml_string(yaml, "p.yaml", blocks);
    EXPECT_NE(blocks.format().find("nesting deeper than 64 levels"), std::string::npos)
        << blocks.format();
}

TEST(Load, AnchorsAndAliasesWork) {
    auto r = run("origins: &o [a, b]\nroutes:\n  - &r {path: /x}\n  - *r\n");
    EXPECT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("routes.1.path")->str, "/x");
    EXPECT_EQ(r.value.find("origins.1")->str, "b");
    // A mapping reached twice through an alias is checked once: one report.
    Diagnostics d;
    load_yaml_string("a: &l {idle: 1s, idle: 2s}\nb: [*l, *l]\n", "p.yaml", d);
    EXPECT_EQ(d.format(), "p.yaml:1:18: error: a.idle: duplicate key 'idle' (first at line 1, "
                          "column 8)\n");
    // An alias is the anchored node itself, so problems in it point at the anchor.
    r = run("limits: &l {idle: 1s}\nroutes: [{path: *l}]\n");
    EXPECT_EQ(r.text, "test.yaml:1:9: error: plugins[0].config.routes[0].path: expected a "
                      "string, found a mapping\n");
}

TEST(Load, AliasBombIsRefusedQuickly) {
    // Nine levels of ten aliases: 10^9 leaves if expanded naively.
    std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int k = 1; k <= 9; ++k) {
        // Appends only: g++ 12 -O2 warns falsely on "literal" + std::string&& (GCC PR 105651).
        std::string n = std::to_string(k), p = std::to_string(k - 1);
        yaml.append("a").append(n).append(": &a").append(n).append(" [*a").append(p);
        for (int j = 0; j < 9; ++j)
            yaml.append(", *a").append(p);
        yaml += "]\n";
    }
    Diagnostics d;
    auto doc = load_yaml_string(yaml, "bomb.yaml", d);
    EXPECT_TRUE(d.empty()) << d.format(); // checked once per anchored node
    static constexpr parley_t_config_key kBomb[] = {key_list("a9", PARLEY_CFG_STRING, "x")};
    Value v;
    YAML::Node root(YAML::NodeType::Map);
    root["a9"] = doc.root["a9"];
    validate(root, kBomb, 1, "", "bomb.yaml", v, d);
    EXPECT_TRUE(d.has_errors());
    EXPECT_LE(d.entries().size(), Diagnostics::kMaxEntries + 1);
}

TEST(Load, HostileInputNeverCrashes) {
    std::mt19937 rng(12345);
    const std::string alphabet = "[]{}:-,?&*!|>'\"#%@` \t\n\r\\abcxyz01.~<=\x00\xff\xc3"s;
    for (int iter = 0; iter < 8000; ++iter) {
        std::string s(rng() % 200, '\0');
        for (auto& c : s)
            c = iter % 2 ? char(rng() & 0xff) : alphabet[rng() % alphabet.size()];
        Diagnostics d;
        auto doc = load_yaml_string(s, "fuzz.yaml", d);
        Value v;
        validate(doc.root, kSchema, kN, "plugins[0].config", "fuzz.yaml", v, d);
        (void)d.format();
    }
}

TEST(Load, HugeScalarAndTabs) {
    std::string big(1 << 20, 'x');
    auto r = run("host: " + big + "\n");
    ASSERT_TRUE(r.ok) << r.text.substr(0, 200);
    EXPECT_EQ(r.value.find("host")->str.size(), big.size());

    // Messages quote at most 60 bytes of a huge value.
    r = run("port: " + std::string(1 << 20, '9') + "\n");
    EXPECT_EQ(r.text, "test.yaml:1:7: error: plugins[0].config.port: '" + std::string(60, '9') +
                          "...' is out of range for a 64-bit integer\n");

    r = run("host:\tlocalhost\n");
    EXPECT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("host")->str, "localhost");
    // Tabs may not indent in YAML.
    r = run("limits:\n\tmax_message: 1K\n");
    EXPECT_EQ(r.text, "test.yaml:2:13: error: invalid YAML: illegal map value\n");
    r = run("limits:\n  idle: 1s\n\tmax_message: 1K\n");
    EXPECT_EQ(r.text, "test.yaml:3:1: error: invalid YAML: illegal tab when looking for "
                      "indentation\n");
}

TEST(Load, ControlBytesAreEscapedInMessages) {
    auto r = run("host: [a]\nprot\x1b[31m: 1\n");
    EXPECT_NE(r.text.find("unknown key 'prot\\x1b[31m'"), std::string::npos) << r.text;
    EXPECT_EQ(r.text.find('\x1b'), std::string::npos);
}

TEST(Load, Files) {
    auto dir = std::filesystem::temp_directory_path() /
               ("parley-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto file = (dir / "p.yaml").string();
    {
        std::ofstream out(file);
        out << "port: 80\nport: 81\n";
    }
    Diagnostics d;
    auto doc = load_yaml_file(file, d);
    EXPECT_EQ(d.format(), file + ":2:1: error: port: duplicate key 'port' (first at line 1)\n");
    EXPECT_TRUE(doc.root.IsMap());
    EXPECT_EQ(doc.file, file);

    Diagnostics missing;
    load_yaml_file((dir / "nope.yaml").string(), missing);
    EXPECT_EQ(missing.format(),
              (dir / "nope.yaml").string() + ": error: cannot open: No such file or directory\n");
    Diagnostics directory;
    load_yaml_file(dir.string(), directory);
    EXPECT_EQ(directory.format(), dir.string() + ": error: cannot read: is a directory\n");
    std::filesystem::remove_all(dir);
}

// ---- validation -----------------------------------------------------------------------------

TEST(Validate, DefaultsFilledForAbsentKeys) {
    auto r = run("");
    ASSERT_TRUE(r.ok) << r.text;
    const Value& v = r.value;
    EXPECT_EQ(v.type, PARLEY_CFG_MAP);
    EXPECT_EQ(v.find("port")->i, 8080);
    EXPECT_TRUE(v.find("port")->defaulted);
    EXPECT_EQ(v.find("port")->mark.line, 0);
    EXPECT_EQ(v.find("host")->str, "0.0.0.0");
    EXPECT_EQ(v.find("compress")->type, PARLEY_CFG_BOOL);
    EXPECT_EQ(v.find("compress")->i, 0);
    EXPECT_EQ(v.find("protocol")->str, "link");
    EXPECT_EQ(v.find("limits.max_message")->i, 65536);
    EXPECT_EQ(v.find("limits.idle")->i, 30000);
    EXPECT_EQ(v.find("token")->str, "s3cr3t-default");
    // No default: absent. A section with required keys inside stays absent when not written.
    EXPECT_EQ(v.find("origins"), nullptr);
    EXPECT_EQ(v.find("routes"), nullptr);
    EXPECT_EQ(v.find("tls"), nullptr);
    EXPECT_EQ(v.find("max_frame"), nullptr);
    // Schema order, whatever the file order.
    std::vector<std::string> keys;
    for (auto& [k, child] : v.entries)
        keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"port", "host", "threads", "compress", "protocol",
                                              "limits", "token"}));
}

TEST(Validate, ValuesAreNormalisedWithMarks) {
    auto r = run("port: 9000\n"
                 "compress: On\n"
                 "limits:\n"
                 "  max_message: 1.5K\n"
                 "  idle: 1m30s\n"
                 "backoff: [100ms, 1s, 250]\n");
    ASSERT_TRUE(r.ok) << r.text;
    const Value& v = r.value;
    EXPECT_EQ(v.find("port")->i, 9000);
    EXPECT_EQ(v.find("port")->mark.file, "test.yaml");
    EXPECT_EQ(v.find("port")->mark.line, 1);
    EXPECT_EQ(v.find("port")->mark.column, 7);
    EXPECT_FALSE(v.find("port")->defaulted);
    EXPECT_EQ(v.find("compress")->i, 1);
    EXPECT_EQ(v.find("limits.max_message")->i, 1536);
    EXPECT_EQ(v.find("limits.max_message")->str, "1.5K");
    EXPECT_EQ(v.find("limits.idle")->i, 90000);
    EXPECT_EQ(v.find("limits.idle")->mark.line, 5);
    EXPECT_EQ(v.find("backoff.0")->i, 100);
    EXPECT_EQ(v.find("backoff.1")->i, 1000);
    EXPECT_EQ(v.find("backoff.2")->i, 250);
    EXPECT_EQ(v.find("backoff.2")->type, PARLEY_CFG_DURATION);
}

TEST(Validate, UnknownKeyListsAllowedKeysAndSuggests) {
    auto r = run("prot: 80\n");
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.text, std::string("test.yaml:1:1: error: plugins[0].config.prot: unknown key "
                                  "'prot'; did you mean 'port'? ") +
                          kAllowed + "\n");
    r = run("host: a\nzzzzzz: 1\n");
    EXPECT_EQ(r.text, std::string("test.yaml:2:1: error: plugins[0].config.zzzzzz: unknown key "
                                  "'zzzzzz'; ") +
                          kAllowed + "\n");
    r = run("Port: 80\n");
    EXPECT_NE(r.text.find("did you mean 'port'?"), std::string::npos) << r.text;
    r = run("limits:\n  max_mesage: 1K\n");
    EXPECT_EQ(r.text, "test.yaml:2:3: error: plugins[0].config.limits.max_mesage: unknown key "
                      "'max_mesage'; did you mean 'max_message'? allowed keys: max_message, "
                      "idle\n");
}

TEST(Validate, MergeKeysExplained) {
    // yaml-cpp 0.7 has no merge keys: '<<' is an ordinary (unknown) key.
    auto r = run("<<: {port: 1}\n");
    EXPECT_EQ(r.text, std::string("test.yaml:1:1: error: plugins[0].config.<<: YAML merge keys "
                                  "('<<') are not supported; ") +
                          kAllowed + "\n");
}

TEST(Validate, WrongTypesNameExpectedAndFound) {
    auto r = run("port: abc\n"
                 "host: {a: 1}\n"
                 "threads: [1]\n"
                 "compress: maybe\n"
                 "limits: 5\n"
                 "origins: foo\n"
                 "routes: {path: /x}\n");
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.text,
              "test.yaml:1:7: error: plugins[0].config.port: expected an integer, found 'abc'\n"
              "test.yaml:2:7: error: plugins[0].config.host: expected a string, found a mapping\n"
              "test.yaml:3:10: error: plugins[0].config.threads: expected an integer, found a "
              "list\n"
              "test.yaml:4:11: error: plugins[0].config.compress: expected a boolean "
              "(true/false, yes/no, on/off), found 'maybe'\n"
              "test.yaml:5:9: error: plugins[0].config.limits: expected a mapping, found '5'\n"
              "test.yaml:6:10: error: plugins[0].config.origins: expected a list, found 'foo'\n"
              "test.yaml:7:9: error: plugins[0].config.routes: expected a list, found a "
              "mapping\n");
}

TEST(Validate, IntegersMustBeDecimalInt64) {
    EXPECT_EQ(run("port: 1.5\n").text,
              "test.yaml:1:7: error: plugins[0].config.port: expected an integer, found '1.5'\n");
    EXPECT_EQ(run("port: 0x50\n").text,
              "test.yaml:1:7: error: plugins[0].config.port: expected an integer, found '0x50'\n");
    EXPECT_EQ(run("port: 99999999999999999999\n").text,
              "test.yaml:1:7: error: plugins[0].config.port: '99999999999999999999' is out of "
              "range for a 64-bit integer\n");
    auto r = run("port: \"443\"\n");
    EXPECT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("port")->i, 443);
}

TEST(Validate, RangesInHumanUnits) {
    EXPECT_EQ(run("port: 70000\n").text, "test.yaml:1:7: error: plugins[0].config.port: '70000' "
                                         "is out of range; must be between 1 and 65535\n");
    EXPECT_EQ(run("port: 0\n").text, "test.yaml:1:7: error: plugins[0].config.port: '0' is out "
                                     "of range; must be between 1 and 65535\n");
    EXPECT_EQ(run("limits:\n  max_message: 2M\n").text,
              "test.yaml:2:16: error: plugins[0].config.limits.max_message: '2M' is out of "
              "range; must be between 1K and 1M\n");
    EXPECT_EQ(run("limits:\n  idle: 2h\n").text,
              "test.yaml:2:9: error: plugins[0].config.limits.idle: '2h' is out of range; must "
              "be between 100ms and 1h\n");
    EXPECT_EQ(run("backoff: [1s, 2m]\n").text,
              "test.yaml:1:15: error: plugins[0].config.backoff[1]: '2m' is out of range; must "
              "be between 100ms and 1m\n");
    // Boundaries are inclusive.
    EXPECT_TRUE(run("port: 65535\nlimits: {max_message: 1M, idle: 100}\n").ok);

    static constexpr parley_t_config_key kOpen[] = {
        key_range("at_least", PARLEY_CFG_INT, nullptr, 10, kI64Max, "x"),
        key_range("at_most", PARLEY_CFG_SIZE, nullptr, 0, 4096, "x"),
        key_range("exactly", PARLEY_CFG_DURATION, nullptr, 1000, 1000, "x"),
        key_range("negative", PARLEY_CFG_INT, nullptr, kI64Min, -1, "x"),
    };
    EXPECT_EQ(run("at_least: 9\nat_most: 8K\nexactly: 2s\nnegative: 0\n", kOpen, 4, "").text,
              "test.yaml:1:11: error: at_least: '9' is out of range; must be at least 10\n"
              "test.yaml:2:10: error: at_most: '8K' is out of range; must be at most 4K\n"
              "test.yaml:3:10: error: exactly: '2s' is out of range; must be exactly 1s\n"
              "test.yaml:4:11: error: negative: '0' is out of range; must be at most -1\n");
    EXPECT_TRUE(run("negative: -9223372036854775808\n", kOpen, 4, "").ok);
}

TEST(Validate, SizeAndDurationErrors) {
    EXPECT_EQ(run("limits: {max_message: -1K}\n").text,
              "test.yaml:1:23: error: plugins[0].config.limits.max_message: invalid size '-1K': "
              "negative sizes are not allowed; use e.g. 512, 64K, 2M, 1G\n");
    EXPECT_EQ(run("limits: {max_message: 64Q}\n").text,
              "test.yaml:1:23: error: plugins[0].config.limits.max_message: invalid size '64Q': "
              "unknown unit; use e.g. 512, 64K, 2M, 1G\n");
    EXPECT_EQ(run("limits: {idle: 5 minutes}\n").text,
              "test.yaml:1:16: error: plugins[0].config.limits.idle: invalid duration '5 "
              "minutes': unknown unit; use e.g. 250ms, 30s, 5m, 24h, or plain milliseconds\n");
    EXPECT_EQ(run("limits: {idle: 1.5}\n").text,
              "test.yaml:1:16: error: plugins[0].config.limits.idle: invalid duration '1.5': "
              "missing unit; use e.g. 250ms, 30s, 5m, 24h, or plain milliseconds\n");
    EXPECT_EQ(run("limits: {idle: [1s]}\n").text,
              "test.yaml:1:16: error: plugins[0].config.limits.idle: expected a duration (e.g. "
              "250ms, 30s, 5m, 24h), found a list\n");
}

TEST(Validate, EnumValuesListedWithHint) {
    EXPECT_EQ(run("protocol: Link\n").text,
              "test.yaml:1:11: error: plugins[0].config.protocol: 'Link' is not one of: link, "
              "bench, relay; did you mean 'link'?\n");
    EXPECT_EQ(run("protocol: smtp\n").text,
              "test.yaml:1:11: error: plugins[0].config.protocol: 'smtp' is not one of: link, "
              "bench, relay\n");
    EXPECT_EQ(run("protocol: [link]\n").text,
              "test.yaml:1:11: error: plugins[0].config.protocol: expected one of: link, bench, "
              "relay, found a list\n");
    auto r = run("protocol: bench\n");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.value.find("protocol")->i, 1);
}

TEST(Validate, RequiredKeys) {
    EXPECT_EQ(run("tls:\n  cert: c.pem\n").text,
              "test.yaml:2:3: error: plugins[0].config.tls.key: missing required key 'key'\n");
    EXPECT_EQ(run("tls:\n  cert:\n  key: k.pem\n").text,
              "test.yaml:2:3: error: plugins[0].config.tls.cert: required key 'cert' has no "
              "value\n");
    EXPECT_EQ(run("tls: {}\n").text,
              "test.yaml:1:6: error: plugins[0].config.tls.cert: missing required key 'cert'\n"
              "test.yaml:1:6: error: plugins[0].config.tls.key: missing required key 'key'\n");
    auto r = run("tls: {cert: c.pem, key: k.pem}\n");
    EXPECT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("tls.key")->str, "k.pem");

    static constexpr parley_t_config_key kTop[] = {
        key("name", PARLEY_CFG_STRING, nullptr, "x", PARLEY_CFG_REQUIRED)};
    EXPECT_EQ(run("other: 1\n", kTop, 1, "").text,
              "test.yaml:1:1: error: other: unknown key 'other'; allowed keys: name\n"
              "test.yaml:1:1: error: name: missing required key 'name'\n");
    // A mapping built in code has no position: the message still names file and key.
    Diagnostics d;
    Value v;
    EXPECT_FALSE(validate(YAML::Node(YAML::NodeType::Map), kTop, 1, "", "p.yaml", v, d));
    EXPECT_EQ(d.format(), "p.yaml: error: name: missing required key 'name'\n");
}

TEST(Validate, NullValuesAreAbsent) {
    auto r = run("port:\nhost: ~\nlimits:\norigins:\n");
    ASSERT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("port")->i, 8080);
    EXPECT_EQ(r.value.find("host")->str, "0.0.0.0");
    EXPECT_EQ(r.value.find("limits.idle")->i, 30000);
    EXPECT_EQ(r.value.find("origins"), nullptr);
    // Quoted "null" is a string, not a null.
    r = run("host: \"null\"\n");
    EXPECT_EQ(r.value.find("host")->str, "null");
}

TEST(Validate, DeprecatedKeysWarn) {
    auto r = run("max_frame: 1M\n");
    EXPECT_TRUE(r.ok);
    EXPECT_FALSE(r.diag.has_errors());
    EXPECT_EQ(r.text, "test.yaml:1:1: warning: plugins[0].config.max_frame: 'max_frame' is "
                      "deprecated; use 'limits.max_message'\n");
    EXPECT_EQ(r.value.find("max_frame")->i, 1 << 20);
}

TEST(Validate, StringsAcceptAnyScalar) {
    auto r = run("host: 123\ntoken: yes\norigins: [1, true, 'x y', \"\"]\n");
    ASSERT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("host")->str, "123");
    EXPECT_EQ(r.value.find("token")->str, "yes");
    EXPECT_EQ(r.value.find("origins.1")->str, "true");
    EXPECT_EQ(r.value.find("origins.2")->str, "x y");
    EXPECT_EQ(r.value.find("origins.3")->str, "");
    r = run("host: |\n  multi\n  line\n");
    EXPECT_EQ(r.value.find("host")->str, "multi\nline\n");
}

TEST(Validate, ListItems) {
    EXPECT_EQ(run("origins:\n  - a\n  - {b: 1}\n  -\n  - [c]\n").text,
              "test.yaml:3:5: error: plugins[0].config.origins[1]: expected a string, found a "
              "mapping\n"
              "test.yaml:2:3: error: plugins[0].config.origins[2]: empty list item\n"
              "test.yaml:5:5: error: plugins[0].config.origins[3]: expected a string, found a "
              "list\n");
    auto r = run("origins: []\n");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.value.find("origins")->type, PARLEY_CFG_LIST);
    EXPECT_EQ(r.value.find("origins")->count(), 0u);
}

TEST(Validate, NestedListOfMapsErrorPaths) {
    auto r = run("routes:\n"
                 "  - path: /a\n"
                 "  - path: /b\n"
                 "    method: PUT\n"
                 "  - path: [x]\n"
                 "    verb: GET\n"
                 "  - /d\n"
                 "  - method: GET\n");
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.text,
              "test.yaml:4:13: error: plugins[0].config.routes[1].method: 'PUT' is not one of: "
              "GET, POST, ANY\n"
              "test.yaml:5:11: error: plugins[0].config.routes[2].path: expected a string, found "
              "a list\n"
              "test.yaml:6:5: error: plugins[0].config.routes[2].verb: unknown key 'verb'; "
              "allowed keys: path, method\n"
              "test.yaml:7:5: error: plugins[0].config.routes[3]: expected a mapping, found "
              "'/d'\n"
              "test.yaml:8:5: error: plugins[0].config.routes[4].path: missing required key "
              "'path'\n");
}

TEST(Validate, ProfileShapedFileReportsFullPaths) {
    // What the kernel does: load the profile, pick plugins[i].config, validate it.
    Diagnostics d;
    auto doc = load_yaml_string("profile: demo\n"
                                "plugins:\n"
                                "  - plugin: store-memory\n"
                                "  - plugin: transport-ws\n"
                                "    config:\n"
                                "      port: 8080\n"
                                "      limits:\n"
                                "        max_message: 4M\n"
                                "      routes:\n"
                                "        - path: /a\n"
                                "        - path: /b\n"
                                "        - path: {x: 1}\n",
                                "etc/demo.yaml", d);
    ASSERT_TRUE(d.empty()) << d.format();
    Value v;
    EXPECT_FALSE(validate(doc.root["plugins"][1]["config"], kSchema, kN, "plugins[1].config",
                          "etc/demo.yaml", v, d));
    EXPECT_EQ(d.format(),
              "etc/demo.yaml:8:22: error: plugins[1].config.limits.max_message: '4M' is out of "
              "range; must be between 1K and 1M\n"
              "etc/demo.yaml:12:17: error: plugins[1].config.routes[2].path: expected a string, "
              "found a mapping\n");
}

TEST(Validate, DuplicatesFoundWithoutTheLoaderAndReportedOnce) {
    Diagnostics d;
    Value v;
    EXPECT_FALSE(validate(YAML::Load("port: 1\nport: 2\n"), kSchema, kN, "", "p.yaml", v, d));
    EXPECT_EQ(d.format(), "p.yaml:2:1: error: port: duplicate key 'port' (first at line 1)\n");
    EXPECT_EQ(v.find("port")->i, 1);

    auto r = run("limits:\n  idle: 1s\n  idle: 2s\n", kSchema, kN, "");
    EXPECT_EQ(r.text, "test.yaml:3:3: error: limits.idle: duplicate key 'idle' (first at line "
                      "2)\n");
    EXPECT_EQ(r.diag.error_count(), 1u);
}

TEST(Validate, NonScalarKeys) {
    Diagnostics d;
    Value v;
    EXPECT_FALSE(
        validate(YAML::Load("? {a: 1}\n: x\nport: 1\n"), kSchema, kN, "cfg", "p.yaml", v, d));
    EXPECT_EQ(d.format(), "p.yaml:1:3: error: cfg: mapping keys must be plain strings, found a "
                          "mapping\n");
}

TEST(Validate, NeverThrowsOnOddNodes) {
    Diagnostics d;
    Value v;
    const YAML::Node map = YAML::Load("a: 1");
    EXPECT_TRUE(validate(map["missing"], kSchema, kN, "", "p.yaml", v, d)) << d.format();
    EXPECT_EQ(v.find("port")->i, 8080);
    EXPECT_TRUE(validate(YAML::Node(), kSchema, kN, "", "p.yaml", v, d));
    EXPECT_TRUE(validate(YAML::Node(), nullptr, 0, "", "p.yaml", v, d));
    EXPECT_EQ(v.type, PARLEY_CFG_MAP);
    EXPECT_EQ(v.count(), 0u);
    EXPECT_FALSE(validate(YAML::Load("a: 1"), nullptr, 0, "", "p.yaml", v, d));
    EXPECT_EQ(d.format(), "p.yaml:1:1: error: a: unknown key 'a'; this section takes no keys\n");
}

TEST(Validate, DefaultsParsedLikeValues) {
    static constexpr parley_t_config_key kDefaults[] = {
        key("empty", PARLEY_CFG_STRING, "", "x"),
        key("quoted", PARLEY_CFG_STRING, "\"a b\"", "x"),
        key("brace", PARLEY_CFG_STRING, "{", "x"),
        key("size", PARLEY_CFG_SIZE, "1.5K", "x"),
        key("dur", PARLEY_CFG_DURATION, "1h30m", "x"),
        key("flag", PARLEY_CFG_BOOL, "yes", "x"),
        with_default(key_list("hosts", PARLEY_CFG_STRING, "x"), "[a, b]"),
        with_default(key_list("none", PARLEY_CFG_INT, "x"), ""),
    };
    auto r = run("", kDefaults, std::size(kDefaults), "");
    ASSERT_TRUE(r.ok) << r.text;
    EXPECT_EQ(r.value.find("empty")->str, "");
    EXPECT_EQ(r.value.find("empty")->type, PARLEY_CFG_STRING);
    EXPECT_EQ(r.value.find("quoted")->str, "a b");
    EXPECT_EQ(r.value.find("brace")->str, "{");
    EXPECT_EQ(r.value.find("size")->i, 1536);
    EXPECT_EQ(r.value.find("dur")->i, 5400000);
    EXPECT_EQ(r.value.find("flag")->i, 1);
    EXPECT_EQ(r.value.find("hosts.1")->str, "b");
    EXPECT_TRUE(r.value.find("hosts.1")->defaulted);
    EXPECT_EQ(r.value.find("none")->count(), 0u);
    EXPECT_TRUE(check_schema(kDefaults, std::size(kDefaults)).empty());
}

TEST(Validate, InvalidDefaultIsReported) {
    static constexpr parley_t_config_key kBad[] = {
        key_range("n", PARLEY_CFG_INT, "abc", 1, 10, "x"),
        key_range("m", PARLEY_CFG_INT, "11", 1, 10, "x"),
    };
    auto r = run("{}\n", kBad, 2, "cfg");
    EXPECT_EQ(r.text,
              "test.yaml:1:1: error: cfg.n: the plugin's default 'abc' is invalid: expected an "
              "integer, found 'abc'\n"
              "test.yaml:1:1: error: cfg.m: the plugin's default '11' is invalid: '11' is out of "
              "range; must be between 1 and 10\n");
}

TEST(Validate, RecursiveSchemaAndDeepInputStopAtTheDepthCap) {
    // A schema whose map lists itself as its own child: a plugin bug that must not recurse
    // forever, neither on input nor when materialising defaults.
    parley_t_config_key self[2]{};
    self[0] = key("child", PARLEY_CFG_MAP, nullptr, "loop");
    self[0].children = self;
    self[0].children_len = 2;
    self[1] = key("v", PARLEY_CFG_INT, "1", "leaf");
    std::string yaml;
    for (int k = 0; k < 60; ++k)
        yaml += std::string(size_t(k) * 2, ' ') + "child:\n";
    Diagnostics d;
    auto doc = load_yaml_string(yaml, "p.yaml", d);
    Value v;
    EXPECT_FALSE(validate(doc.root, self, 2, "", "p.yaml", v, d));
    EXPECT_NE(d.format().find("nesting deeper than 64 levels"), std::string::npos);
    auto problems = check_schema(self, 2);
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(problems.back().find("nested deeper than 64 levels"), std::string::npos);
}

TEST(Validate, ListOfMapsMaterialisesNothingAndMapsAreMaterialised) {
    static constexpr parley_t_config_key kInner[] = {key("a", PARLEY_CFG_INT, "7", "x")};
    static constexpr parley_t_config_key kOuter[] = {key_map("m", kInner, "x"),
                                                     key_list_of_maps("l", kInner, "x")};
    auto r = run("", kOuter, 2, "");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.value.find("m.a")->i, 7);
    EXPECT_TRUE(r.value.find("m")->defaulted);
    EXPECT_EQ(r.value.find("l"), nullptr);
    r = run("l: [{}, {a: 3}]\n", kOuter, 2, "");
    EXPECT_EQ(r.value.find("l.0.a")->i, 7);
    EXPECT_EQ(r.value.find("l.1.a")->i, 3);
}

// ---- schema checks and describe ---------------------------------------------------------------

TEST(Schema, CheckSchemaFindsPluginBugs) {
    parley_t_config_key bad[7]{};
    bad[0] = key("dup", PARLEY_CFG_INT, nullptr, "x");
    bad[1] = key("dup", PARLEY_CFG_INT, nullptr, "x");
    bad[2] = key("mode", PARLEY_CFG_ENUM, "a", "x");
    bad[3] = key("section", PARLEY_CFG_MAP, nullptr, "x");
    bad[4] = key("items", PARLEY_CFG_LIST, nullptr, "x");
    bad[5] = key("weird", PARLEY_CFG_INT, nullptr, "x");
    bad[5].type = 42; // the field is a uint32_t on the wire: any value can arrive
    bad[6].name = nullptr;
    EXPECT_EQ(check_schema(bad, 7),
              (std::vector<std::string>{
                  "dup: declared twice",
                  "mode: ENUM without enum_values",
                  "mode: the plugin's default 'a' is invalid: 'a' is not one of: ",
                  "section: MAP without children",
                  "items: LIST needs item_type (list of scalars) or children (list of maps)",
                  "weird: unknown type 42",
                  "key #6 has no name",
              }));
    EXPECT_TRUE(check_schema(kSchema, kN).empty());
}

TEST(Describe, JsonNeverShowsSecretDefaults) {
    std::string json = describe_json(kSchema, kN);
    EXPECT_EQ(json.find("s3cr3t"), std::string::npos);
    EXPECT_NE(json.find("\"name\":\"token\",\"type\":\"string\",\"description\":\"Admin "
                        "token.\",\"flags\":[\"secret\"]"),
              std::string::npos)
        << json;
    std::string text = describe_text(kSchema, kN);
    EXPECT_EQ(text.find("s3cr3t"), std::string::npos);
    EXPECT_NE(text.find("token (string, default hidden, secret)"), std::string::npos) << text;
}

TEST(Describe, JsonShape) {
    static constexpr parley_t_config_key kInner[] = {
        key_range("max", PARLEY_CFG_SIZE, "64K", 1024, 1 << 20, "Max \"bytes\"\\.")};
    static constexpr parley_t_config_key kKeys[] = {
        key_range("port", PARLEY_CFG_INT, "8080", 1, 65535, "Port.",
                  PARLEY_CFG_REQUIRED | PARLEY_CFG_RESTART),
        key_enum("mode", "a|b", "a", "Mode\n\x01."),
        key_list("tags", PARLEY_CFG_STRING, "Tags \xff."),
        key_map("limits", kInner, "Limits."),
        deprecated(key("old", PARLEY_CFG_DURATION, "1s", "Old."), "new"),
    };
    EXPECT_EQ(describe_json(kKeys, std::size(kKeys)),
              "[{\"name\":\"port\",\"type\":\"int\",\"default\":\"8080\",\"description\":"
              "\"Port.\",\"min\":1,\"max\":65535,\"flags\":[\"required\",\"restart\"]},"
              "{\"name\":\"mode\",\"type\":\"enum\",\"default\":\"a\",\"description\":"
              "\"Mode\\n\\u0001.\",\"values\":[\"a\",\"b\"],\"flags\":[]},"
              "{\"name\":\"tags\",\"type\":\"list\",\"item_type\":\"string\",\"description\":"
              "\"Tags \\ufffd.\",\"flags\":[]},"
              "{\"name\":\"limits\",\"type\":\"map\",\"description\":\"Limits.\",\"flags\":[],"
              "\"children\":[{\"name\":\"max\",\"type\":\"size\",\"default\":\"64K\","
              "\"description\":\"Max \\\"bytes\\\"\\\\.\",\"min\":1024,\"max\":1048576,"
              "\"unit\":\"bytes\",\"flags\":[]}]},"
              "{\"name\":\"old\",\"type\":\"duration\",\"default\":\"1s\",\"description\":"
              "\"Old.\",\"flags\":[\"deprecated\"],\"replaced_by\":\"new\"}]");
    EXPECT_EQ(describe_json(nullptr, 0), "[]");
}

TEST(Describe, Text) {
    static constexpr parley_t_config_key kInner[] = {
        key_range("max", PARLEY_CFG_SIZE, "64K", 1024, 1 << 20, "Largest message.")};
    static constexpr parley_t_config_key kKeys[] = {
        key_range("port", PARLEY_CFG_INT, "8080", 1, 65535, "Listen port.", PARLEY_CFG_RESTART),
        key("socket", PARLEY_CFG_STRING, "", "Socket path."),
        key_enum("mode", "a|b", "a", "Mode."),
        key_map("limits", kInner, "Limits."),
        with_range(key_list("delays", PARLEY_CFG_DURATION, "Delays."), 0, 60000),
    };
    EXPECT_EQ(describe_text(kKeys, std::size(kKeys)),
              "  port (int, default 8080, between 1 and 65535, restart)\n"
              "      Listen port.\n"
              "  socket (string, default \"\")\n"
              "      Socket path.\n"
              "  mode (enum, one of a|b, default a)\n"
              "      Mode.\n"
              "  limits (map)\n"
              "      Limits.\n"
              "      max (size, default 64K, between 1K and 1M)\n"
              "          Largest message.\n"
              "  delays (list of duration, at most 1m)\n"
              "      Delays.\n");
}

} // namespace
