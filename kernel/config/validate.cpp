// Schema validation: a YAML mapping plus a parley_t_config_key table in, a normalised Value
// tree and diagnostics out.
#include "config/detail.hpp"

#include <limits>
#include <unordered_map>

namespace parley::config {

namespace {

using Key = parley_t_config_key;
using detail::quote;
using detail::range_text;

// Values built per validate call. Aliases can make a small file stand for a huge tree (a list
// of aliases of lists of aliases...); past this it is refused instead of expanded.
constexpr size_t kMaxValues = 1'000'000;

bool is_scalar_type(uint32_t t) {
    return t >= PARLEY_CFG_STRING && t <= PARLEY_CFG_ENUM;
}
bool has_children(const Key& k) {
    return k.children != nullptr && k.children_len > 0;
}
bool is_list_of_maps(const Key& k) {
    return k.item_type == 0 && has_children(k);
}
bool bounded(const Key& k) {
    return k.min <= k.max;
}

size_t lookup(const Key* schema, size_t n, std::string_view name) {
    for (size_t i = 0; i < n; ++i)
        if (schema[i].name && name == schema[i].name) return i;
    return SIZE_MAX;
}

struct Ctx {
    std::string file;
    Diagnostics& diag;
    size_t errors = 0;
    size_t values = 0;

    void error(const YAML::Node& at, const std::string& path, std::string msg) {
        ++errors;
        diag.error(file, at, path, std::move(msg));
    }
    void warning(const YAML::Node& at, const std::string& path, std::string msg) {
        diag.warning(file, at, path, std::move(msg));
    }
    // Counts one more value against kMaxValues; false (reported once) when over.
    bool spend(const YAML::Node& at, const std::string& path) {
        if (++values <= kMaxValues) return true;
        if (values == kMaxValues + 1)
            error(at, path,
                  "configuration too large (more than " + std::to_string(kMaxValues) + " values)");
        else
            ++errors;
        return false;
    }
    SourceMark mark(const YAML::Node& n) const {
        auto [line, col] = detail::position(n);
        return {file, line, col};
    }
};

std::string expected(const Key& k, uint32_t type) {
    switch (type) {
    case PARLEY_CFG_STRING:
        return "a string";
    case PARLEY_CFG_INT:
        return "an integer";
    case PARLEY_CFG_BOOL:
        return "a boolean (true/false, yes/no, on/off)";
    case PARLEY_CFG_SIZE:
        return "a size (e.g. 512, 64K, 2M, 1G)";
    case PARLEY_CFG_DURATION:
        return "a duration (e.g. 250ms, 30s, 5m, 24h)";
    case PARLEY_CFG_ENUM:
        return "one of: " + detail::join(detail::split_enum(k.enum_values), ", ");
    case PARLEY_CFG_LIST:
        return "a list";
    case PARLEY_CFG_MAP:
        return "a mapping";
    default:
        return type_name(type);
    }
}

// Converts scalar text to `type` with the key's min/max/enum_values. Empty string = ok.
std::string convert_scalar(const Key& k, uint32_t type, const std::string& text, Value& v) {
    // Checked first: an out-of-range value must not even be stored in the enum.
    if (!is_scalar_type(type))
        return "the plugin's schema gives this key an unknown " + type_name(type);
    v.type = parley_t_config_type(type);
    v.str = text;
    std::string why;
    std::optional<int64_t> num;
    switch (type) {
    case PARLEY_CFG_STRING:
        return {};
    case PARLEY_CFG_BOOL: {
        auto b = parse_bool(text);
        if (!b) return "expected " + expected(k, type) + ", found " + quote(text);
        v.i = *b ? 1 : 0;
        return {};
    }
    case PARLEY_CFG_ENUM: {
        auto values = detail::split_enum(k.enum_values);
        for (size_t idx = 0; idx < values.size(); ++idx)
            if (values[idx] == text) {
                v.i = int64_t(idx);
                return {};
            }
        std::string msg = quote(text) + " is not one of: " + detail::join(values, ", ");
        if (auto s = detail::suggest(text, values); !s.empty())
            msg += "; did you mean " + quote(s) + "?";
        return msg;
    }
    case PARLEY_CFG_INT:
        num = parse_int(text, &why);
        if (!num)
            return why == "not a decimal integer"
                       ? "expected " + expected(k, type) + ", found " + quote(text)
                       : quote(text) + " is " + why;
        break;
    case PARLEY_CFG_SIZE:
        num = parse_size(text, &why);
        if (!num) return "invalid size " + quote(text) + ": " + why + "; use e.g. 512, 64K, 2M, 1G";
        break;
    case PARLEY_CFG_DURATION:
        num = parse_duration(text, &why);
        if (!num)
            return "invalid duration " + quote(text) + ": " + why +
                   "; use e.g. 250ms, 30s, 5m, 24h, or plain milliseconds";
        break;
    default:
        break; // unreachable: checked above
    }
    if (!num) return "the plugin's schema gives this key an unknown " + type_name(type);
    v.i = *num;
    if (bounded(k) && (v.i < k.min || v.i > k.max))
        return quote(text) + " is out of range; must be " + range_text(type, k.min, k.max);
    return {};
}

void mark_defaulted(Value& v) {
    v.mark = {};
    v.defaulted = true;
    for (auto& item : v.items)
        mark_defaulted(item);
    for (auto& [name, child] : v.entries)
        mark_defaulted(child);
}

void validate_map(Ctx& ctx, const YAML::Node& node, const Key* schema, size_t n,
                  const std::string& prefix, Value& out, int depth);

std::optional<Value> validate_value(Ctx& ctx, const YAML::Node& node, const Key& k, uint32_t type,
                                    const std::string& path, int depth) {
    if (depth > kMaxDepth) {
        ctx.error(node, path, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        return std::nullopt;
    }
    if (!ctx.spend(node, path)) return std::nullopt;
    Value v;
    v.mark = ctx.mark(node);
    if (type == PARLEY_CFG_MAP) {
        if (!node.IsMap()) {
            ctx.error(node, path, "expected a mapping, found " + detail::describe_node(node));
            return std::nullopt;
        }
        validate_map(ctx, node, k.children, has_children(k) ? k.children_len : 0, path, v,
                     depth + 1);
        return v;
    }
    if (type == PARLEY_CFG_LIST) {
        if (!node.IsSequence()) {
            ctx.error(node, path, "expected a list, found " + detail::describe_node(node));
            return std::nullopt;
        }
        v.type = PARLEY_CFG_LIST;
        if (!is_list_of_maps(k) && !is_scalar_type(k.item_type)) {
            ctx.error(node, path, "the plugin's schema gives this list no valid item type");
            return std::nullopt;
        }
        size_t idx = 0;
        for (const auto& item : node) {
            std::string ipath = path + "[" + std::to_string(idx++) + "]";
            if (item.IsNull()) {
                // yaml-cpp marks an empty item at the token after it; the list's own mark and
                // the index in the path are more accurate.
                ctx.error(node, ipath, "empty list item");
                continue;
            }
            if (is_list_of_maps(k)) {
                if (!item.IsMap()) {
                    ctx.error(item, ipath,
                              "expected a mapping, found " + detail::describe_node(item));
                    continue;
                }
                Value m;
                validate_map(ctx, item, k.children, k.children_len, ipath, m, depth + 1);
                v.items.push_back(std::move(m));
            } else if (auto iv = validate_value(ctx, item, k, k.item_type, ipath, depth + 1)) {
                v.items.push_back(std::move(*iv));
            }
        }
        return v;
    }
    if (!node.IsScalar()) {
        ctx.error(node, path,
                  "expected " + expected(k, type) + ", found " + detail::describe_node(node));
        return std::nullopt;
    }
    if (std::string err = convert_scalar(k, type, node.Scalar(), v); !err.empty()) {
        ctx.error(node, path, std::move(err));
        return std::nullopt;
    }
    return v;
}

// The key's default, parsed with the same rules as a value in the file. A default that does not
// validate is the plugin's bug; it is reported at `where` (the enclosing mapping).
std::optional<Value> default_value(Ctx& ctx, const Key& k, const std::string& path,
                                   const YAML::Node& where, int depth) {
    Diagnostics scratch;
    Ctx sub{"", scratch};
    std::optional<Value> v;
    try {
        if (is_scalar_type(k.type)) {
            // YAML text, so `"a b"` means a b; text that is not a YAML scalar ("", "~", "{")
            // is taken as written, which is what a string default like "" means.
            std::string text = k.default_value;
            try {
                YAML::Node parsed = YAML::Load(k.default_value);
                if (parsed.IsScalar()) text = parsed.Scalar();
            } catch (const YAML::Exception&) {
            }
            Value s;
            if (std::string err = convert_scalar(k, k.type, text, s); !err.empty())
                sub.error(YAML::Node(), path, std::move(err));
            else
                v = std::move(s);
        } else {
            YAML::Node parsed = YAML::Load(k.default_value);
            if (parsed.IsNull())
                parsed = YAML::Node(k.type == PARLEY_CFG_MAP ? YAML::NodeType::Map
                                                             : YAML::NodeType::Sequence);
            v = validate_value(sub, parsed, k, k.type, path, depth);
        }
    } catch (const std::exception& e) {
        sub.error(YAML::Node(), path, std::string("not valid YAML: ") + e.what());
    }
    if (sub.errors > 0 || !v) {
        std::string why = scratch.empty() ? "" : ": " + scratch.entries().front().message;
        ctx.error(where, path,
                  "the plugin's default " + quote(k.default_value) + " is invalid" + why);
        return std::nullopt;
    }
    mark_defaulted(*v);
    return v;
}

enum class State { Absent, Null, Given };

void validate_map(Ctx& ctx, const YAML::Node& node, const Key* schema, size_t n,
                  const std::string& prefix, Value& out, int depth) {
    out.type = PARLEY_CFG_MAP;
    out.mark = ctx.mark(node);
    if (depth > kMaxDepth) {
        ctx.error(node, prefix, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        return;
    }
    if (!ctx.spend(node, prefix)) return;
    if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
        ctx.error(node, prefix, "expected a mapping, found " + detail::describe_node(node));
        return;
    }
    if (!schema) n = 0;
    std::vector<State> state(n, State::Absent);
    std::vector<std::optional<Value>> found(n);
    std::vector<YAML::Node> key_at(n);

    if (node.IsMap()) {
        std::vector<std::string_view> allowed;
        for (size_t i = 0; i < n; ++i)
            if (schema[i].name && !(schema[i].flags & PARLEY_CFG_DEPRECATED))
                allowed.push_back(schema[i].name);
        std::unordered_map<std::string, YAML::Node> seen;
        // By value: yaml-cpp iterators yield temporaries (see load.cpp).
        for (const auto& kv : node) {
            const YAML::Node& kn = kv.first;
            const YAML::Node& vn = kv.second;
            if (!kn.IsScalar()) {
                ctx.error(kn, prefix, detail::key_problem(kn));
                continue;
            }
            const std::string& name = kn.Scalar();
            std::string path = detail::join_path(prefix, name);
            if (auto [at, fresh] = seen.emplace(name, kn); !fresh) {
                ctx.error(kn, path, detail::duplicate_message(name, at->second, kn));
                continue;
            }
            size_t idx = lookup(schema, n, name);
            if (idx == SIZE_MAX) {
                std::string msg;
                if (name == "<<") {
                    msg = "YAML merge keys ('<<') are not supported;";
                } else {
                    msg = "unknown key " + quote(name) + ";";
                    if (auto s = detail::suggest(name, allowed); !s.empty())
                        msg += " did you mean " + quote(s) + "?";
                }
                msg += allowed.empty() ? " this section takes no keys"
                                       : " allowed keys: " + detail::join(allowed, ", ");
                ctx.error(kn, path, std::move(msg));
                continue;
            }
            const Key& k = schema[idx];
            key_at[idx] = kn;
            if (vn.IsNull()) {
                state[idx] = State::Null;
                continue;
            }
            state[idx] = State::Given;
            if (k.flags & PARLEY_CFG_DEPRECATED)
                ctx.warning(kn, path,
                            quote(name) + " is deprecated" +
                                (k.replaced_by ? "; use " + quote(k.replaced_by) : ""));
            found[idx] = validate_value(ctx, vn, k, k.type, path, depth);
        }
    }

    for (size_t i = 0; i < n; ++i) {
        const Key& k = schema[i];
        if (!k.name) continue;
        std::string path = detail::join_path(prefix, k.name);
        if (found[i]) {
            out.entries.push_back({k.name, std::move(*found[i])});
            continue;
        }
        if (state[i] == State::Given) continue; // invalid; already reported
        if (k.flags & PARLEY_CFG_REQUIRED) {
            if (state[i] == State::Null)
                ctx.error(key_at[i], path, "required key " + quote(k.name) + " has no value");
            else
                ctx.error(node, path, "missing required key " + quote(k.name));
            continue;
        }
        if (k.default_value) {
            if (auto v = default_value(ctx, k, path, node, depth))
                out.entries.push_back({k.name, std::move(*v)});
            continue;
        }
        if (k.type == PARLEY_CFG_MAP) {
            // An optional section with a required key inside means "if you configure this,
            // say X": leave it absent. Otherwise materialise it so every defaulted key below
            // can be read without checking each level.
            bool needs_input = false;
            for (size_t c = 0; has_children(k) && c < k.children_len; ++c)
                needs_input |= (k.children[c].flags & PARLEY_CFG_REQUIRED) != 0;
            if (needs_input) continue;
            Value m;
            validate_map(ctx, YAML::Node(), k.children, has_children(k) ? k.children_len : 0, path,
                         m, depth + 1);
            mark_defaulted(m);
            out.entries.push_back({k.name, std::move(m)});
        }
    }
}

void check_keys(const Key* schema, size_t n, const std::string& prefix, int depth,
                std::vector<std::string>& out) {
    if (depth > kMaxDepth) {
        out.push_back(prefix + ": nested deeper than " + std::to_string(kMaxDepth) +
                      " levels (does a key list itself as a child?)");
        return;
    }
    if (n > 0 && !schema) {
        out.push_back((prefix.empty() ? "schema" : prefix) + ": NULL table with " +
                      std::to_string(n) + " keys");
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        const Key& k = schema[i];
        if (!k.name || !*k.name) {
            out.push_back((prefix.empty() ? "" : prefix + ": ") + "key #" + std::to_string(i) +
                          " has no name");
            continue;
        }
        std::string path = detail::join_path(prefix, k.name);
        auto problem = [&](const std::string& what) { out.push_back(path + ": " + what); };
        if (k.struct_size != sizeof(Key))
            problem("struct_size is " + std::to_string(k.struct_size) + ", expected " +
                    std::to_string(sizeof(Key)));
        if (lookup(schema, i, k.name) != SIZE_MAX) problem("declared twice");
        if (k.type < PARLEY_CFG_STRING || k.type > PARLEY_CFG_MAP) {
            problem("unknown " + type_name(k.type));
            continue;
        }
        if (k.type == PARLEY_CFG_ENUM && detail::split_enum(k.enum_values).empty())
            problem("ENUM without enum_values");
        if (k.type == PARLEY_CFG_MAP && !has_children(k)) problem("MAP without children");
        if (k.type == PARLEY_CFG_LIST) {
            if (k.item_type != 0 && has_children(k))
                problem("LIST with both item_type and children");
            else if (k.item_type == 0 && !has_children(k))
                problem("LIST needs item_type (list of scalars) or children (list of maps)");
            else if (k.item_type != 0 && !is_scalar_type(k.item_type))
                problem("LIST item_type must be a scalar type, not " + type_name(k.item_type));
            else if (k.item_type == PARLEY_CFG_ENUM && detail::split_enum(k.enum_values).empty())
                problem("LIST of ENUM without enum_values");
        }
        if ((k.flags & PARLEY_CFG_REQUIRED) && k.default_value)
            problem("REQUIRED key with a default (the default never applies)");
        if (k.default_value) {
            Diagnostics scratch;
            Ctx ctx{"", scratch};
            default_value(ctx, k, path, YAML::Node(), depth);
            if (!scratch.empty()) problem(scratch.entries().front().message);
        }
        if (has_children(k) && (k.type == PARLEY_CFG_MAP || k.type == PARLEY_CFG_LIST))
            check_keys(k.children, k.children_len, path, depth + 1, out);
    }
}

} // namespace

namespace detail {

namespace {
std::string human(uint32_t type, int64_t v) {
    if (type == PARLEY_CFG_SIZE) return format_size(v);
    if (type == PARLEY_CFG_DURATION) return format_duration(v);
    return std::to_string(v);
}
} // namespace

std::string range_text(uint32_t type, int64_t min, int64_t max) {
    // Sizes and durations are never negative, so a lower bound of 0 says nothing.
    bool no_min = min == std::numeric_limits<int64_t>::min() ||
                  (min <= 0 && (type == PARLEY_CFG_SIZE || type == PARLEY_CFG_DURATION));
    bool no_max = max == std::numeric_limits<int64_t>::max();
    if (min == max) return "exactly " + human(type, min);
    if (no_min && !no_max) return "at most " + human(type, max);
    if (no_max && !no_min) return "at least " + human(type, min);
    return "between " + human(type, min) + " and " + human(type, max);
}

} // namespace detail

bool validate(const YAML::Node& node, const parley_t_config_key* schema, size_t n,
              std::string path_prefix, std::string file, Value& out, Diagnostics& diag) {
    out = Value{};
    Ctx ctx{std::move(file), diag};
    try {
        // An invalid node (from a failed const lookup) throws on most accessors; it means
        // "not there", like null.
        validate_map(ctx, node.IsDefined() ? node : YAML::Node(), schema, n, path_prefix, out, 1);
    } catch (const std::exception& e) {
        // yaml-cpp accessors may throw on nodes we did not expect; report, never propagate.
        ctx.error(YAML::Node(), path_prefix, std::string("internal error: ") + e.what());
    }
    return ctx.errors == 0;
}

bool is_restart_key(const parley_t_config_key* schema, size_t n, std::string_view path) {
    while (schema && !path.empty()) {
        size_t dot = path.find('.');
        std::string_view seg = path.substr(0, dot);
        path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
        size_t idx = lookup(schema, n, seg);
        if (idx == SIZE_MAX) return false;
        const Key& k = schema[idx];
        if (k.flags & PARLEY_CFG_RESTART) return true;
        if (k.type == PARLEY_CFG_LIST && !path.empty()) {
            // Skip the item index: "routes.2.path" -> "path" within the item map.
            dot = path.find('.');
            path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
        }
        schema = has_children(k) ? k.children : nullptr;
        n = has_children(k) ? k.children_len : 0;
    }
    return false;
}

std::vector<std::string> check_schema(const parley_t_config_key* schema, size_t n) {
    std::vector<std::string> out;
    try {
        check_keys(schema, n, "", 1, out);
    } catch (const std::exception& e) {
        out.push_back(std::string("internal error: ") + e.what());
    }
    return out;
}

} // namespace parley::config
