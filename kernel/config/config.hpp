// parley::config: YAML loading, schema validation and the normalised config tree.
//
// The kernel validates its own profile keys and every plugin's `config:` block with the same
// machinery: a plugin declares a static parley_t_config_key table (plugin.h), `validate` checks
// a YAML mapping against it and produces a `Value` tree with units normalised (bytes,
// milliseconds) and defaults filled in. Every problem becomes a Diagnostic with file, line,
// column and key path so `parleyd --check-config` can point at the offending line.
//
// Nothing here throws to the caller for bad input: yaml-cpp exceptions are caught and turned
// into diagnostics.
#pragma once

#include <parley/plugin.h>

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::config {

// ---- normalised tree --------------------------------------------------------------------

// Where a value came from. Lines and columns are 1-based; 0 means unknown (e.g. a default).
struct SourceMark {
    std::string file;
    int line = 0;
    int column = 0;
};

class Value {
  public:
    // 0 (no enumerator) means "absent"; validate never stores absent values in a tree.
    parley_t_config_type type{};
    // INT: the integer. BOOL: 0/1. SIZE: bytes. DURATION: milliseconds. ENUM: index in the
    // enum_values list. LIST/MAP: unused.
    int64_t i = 0;
    // STRING/ENUM: the value. Other scalars: the text as written ("64K"), for messages.
    std::string str;
    struct Entry;               // one key of a MAP; defined below because it holds a Value
    std::vector<Value> items;   // LIST
    std::vector<Entry> entries; // MAP, in schema order
    SourceMark mark;
    bool defaulted = false; // filled from the schema default, not written in the file

    // Looks up a dotted path below this value: "limits.max_message", "origins.0" (or
    // "origins[0]"). The empty path is this value. nullptr when any step does not exist.
    const Value* find(std::string_view path) const;
    // Direct child of a MAP by key name; nullptr if absent or not a MAP.
    const Value* get(std::string_view key) const;
    // Items of a LIST, keys of a MAP, else 0.
    size_t count() const;
};

struct Value::Entry {
    std::string key;
    Value value;
};

// Fills a C ABI value from `v`. `out->s` points into `v.str`, so it stays valid only while `v`
// is neither modified nor moved: the kernel keeps trees immutable behind shared_ptr and retires
// them only when the instance is destroyed. Only the first out->struct_size bytes are written
// (an older plugin may pass a shorter struct); struct_size itself is left as the caller set it.
void fill(const Value& v, parley_t_config_value* out);
// As fill, for a key that does not exist: type 0, everything zero.
void fill_absent(parley_t_config_value* out);

// Deep comparison of the configured values. Source marks, the original text of numeric scalars
// ("1K" vs "1024") and `defaulted` are ignored, so moving lines around is not a change.
bool equal(const Value& a, const Value& b);
// Dotted paths (as accepted by find) whose values differ between `old` and `neu`: a key added,
// removed or changed; for lists of equal length the differing items ("routes.2.path"),
// otherwise the list itself. Empty when equal().
std::vector<std::string> changed_paths(const Value& old, const Value& neu);

// ---- scalar parsers (shared by validation and defaults) ---------------------------------

// "512", "64K", "2M", "1G", "1T", with an optional "B"/"iB" suffix ("64KB", "64KiB", "512B");
// units are case-insensitive powers of 1024; a space may separate number and unit; a decimal
// fraction is allowed when the result is a whole number of bytes ("1.5M"). Rejects negatives,
// overflow of int64 and anything else. On failure `why` (if given) gets a short reason.
std::optional<int64_t> parse_size(std::string_view text, std::string* why = nullptr);
// Milliseconds from "250ms", "30s", "5m", "24h", "1d", compounds "1h30m", "1.5s", or a plain
// integer which means milliseconds ("1500"). Rejects negatives, overflow, sub-millisecond
// results and junk.
std::optional<int64_t> parse_duration(std::string_view text, std::string* why = nullptr);
// true/false, yes/no, on/off, case-insensitive.
std::optional<bool> parse_bool(std::string_view text);
// A decimal integer with optional sign, within int64. No hex, exponents or separators.
std::optional<int64_t> parse_int(std::string_view text, std::string* why = nullptr);

// Human forms used in messages and describe output: the largest unit that divides exactly.
std::string format_size(int64_t bytes);  // 65536 -> "64K", 1536 -> "1536"
std::string format_duration(int64_t ms); // 30000 -> "30s", 1500 -> "1500ms"
// "string", "int", "bool", "size", "duration", "enum", "list", "map", or "type N".
std::string type_name(uint32_t type);

// ---- diagnostics ------------------------------------------------------------------------

enum class Severity { Error, Warning };

struct Diagnostic {
    Severity severity = Severity::Error;
    std::string file;
    int line = 0;     // 1-based, 0 = unknown
    int column = 0;   // 1-based, 0 = unknown
    std::string path; // key path, e.g. plugins[1].config.limits.max_message; may be empty
    std::string message;

    // "FILE:LINE:COL: error: KEYPATH: message"; unknown parts are left out.
    std::string format() const;
};

class Diagnostics {
  public:
    // At most this many entries are kept; one more entry says the rest were dropped. Hostile
    // input (an alias repeated a million times) must not turn into a million lines.
    static constexpr size_t kMaxEntries = 200;

    // An entry identical to one already recorded is dropped: the loader and validate both
    // check for duplicate keys and must not report the same one twice.
    void add(Diagnostic d);
    void error(const std::string& file, int line, int column, std::string path,
               std::string message);
    void warning(const std::string& file, int line, int column, std::string path,
                 std::string message);
    // Position taken from the node; a node without a mark (built in code, or an invalid
    // node from a failed lookup) gives an unknown position instead of throwing.
    void error(const std::string& file, const YAML::Node& at, std::string path,
               std::string message);
    void warning(const std::string& file, const YAML::Node& at, std::string path,
                 std::string message);
    void error(const std::string& file, const YAML::Mark& at, std::string path,
               std::string message);

    bool has_errors() const { return errors_ > 0; }
    size_t error_count() const { return errors_; }
    size_t warning_count() const { return warnings_; }
    bool empty() const { return entries_.empty(); }
    const std::vector<Diagnostic>& entries() const { return entries_; }
    // One formatted line per entry, in the order they were added.
    std::vector<std::string> lines() const;
    // All lines, each ending with '\n'.
    std::string format() const;
    void clear();

  private:
    std::vector<Diagnostic> entries_;
    size_t errors_ = 0; // counts dropped entries too
    size_t warnings_ = 0;
    bool truncated_ = false;
};

// ---- loading ----------------------------------------------------------------------------

struct Document {
    std::string file;
    // The single document in the file; a Null node when the file is empty or did not parse.
    // Not necessarily a mapping: callers check (validate reports it).
    YAML::Node root;
};

// Nesting deeper than this (in the document or a schema) is an error, not a stack overflow.
constexpr int kMaxDepth = 64;

// Parses YAML and checks what yaml-cpp lets through silently: duplicate keys in any mapping at
// any depth ("duplicate key 'port' (first at line 3)"), non-scalar keys, nesting deeper than
// kMaxDepth, more than one document and stray text after the document (which yaml-cpp 0.7
// would otherwise drop, or loop on). Syntax errors carry yaml-cpp's line and column. An error
// leaves `root` Null, which validates as "all defaults": callers must check `diag`.
// Never throws.
Document load_yaml_string(std::string_view text, const std::string& name, Diagnostics& diag);
// As load_yaml_string on the file's contents; an unreadable or oversized (> 64 MiB) file is an
// error.
Document load_yaml_file(const std::string& path, Diagnostics& diag);

// ---- validation -------------------------------------------------------------------------

// Validates `node` (a mapping; null or undefined counts as an empty one) against `schema` and
// writes the normalised MAP to `out`, defaults filled in. Paths in diagnostics start with
// `path_prefix` ("plugins[0].config"; empty at top level); `file` names the source.
//
// Rules: unknown keys are errors listing the allowed keys (with a "did you mean" hint); wrong
// types, out-of-range INT/SIZE/DURATION values and ENUM values not in the list are errors;
// a REQUIRED key that is missing or empty (`key:`) is an error; a DEPRECATED key gives a
// warning naming replaced_by; null values count as absent. LIST items are checked against
// item_type (min/max and enum_values of the LIST key apply to each item) or, for a list of
// maps, against children. An absent MAP without a default is materialised from its children's
// defaults unless one of its children is REQUIRED (then the whole section stays absent).
// Returns true when this call found no error. Never throws.
bool validate(const YAML::Node& node, const parley_t_config_key* schema, size_t n,
              std::string path_prefix, std::string file, Value& out, Diagnostics& diag);

// True when a dotted path from changed_paths lies at or below a key flagged RESTART.
bool is_restart_key(const parley_t_config_key* schema, size_t n, std::string_view path);

// Problems in a plugin's schema itself (missing names, duplicate names, unknown types, ENUM
// without values, MAP without children, defaults that do not validate, ...). Empty when the
// schema is sound; meant for the loader and for plugin unit tests.
std::vector<std::string> check_schema(const parley_t_config_key* schema, size_t n);

// ---- describe ---------------------------------------------------------------------------

// JSON array, one object per key: name, type, item_type (LIST of scalars), default (YAML text;
// never for SECRET keys), description, min/max and unit (only when bounded; "bytes" or "ms"),
// values (ENUM, also for a LIST of ENUM), flags (["required","deprecated","secret","restart"]),
// replaced_by, children (MAP and LIST of maps).
std::string describe_json(const parley_t_config_key* schema, size_t n);
// Indented, one key per block, for humans.
std::string describe_text(const parley_t_config_key* schema, size_t n);

} // namespace parley::config
