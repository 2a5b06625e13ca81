// Schema descriptions for `parleyd --describe-plugin` (text) and `--json` (for tools and docs).
#include "config/detail.hpp"

namespace parley::config {

namespace {

using Key = parley_t_config_key;

bool has_children(const Key& k) {
    return k.children != nullptr && k.children_len > 0;
}
bool bounded(const Key& k) {
    uint32_t t = k.type == PARLEY_CFG_LIST ? k.item_type : k.type;
    return k.min <= k.max &&
           (t == PARLEY_CFG_INT || t == PARLEY_CFG_SIZE || t == PARLEY_CFG_DURATION);
}
// The type whose unit min/max are in (a LIST's bounds apply to its items).
uint32_t value_type(const Key& k) {
    return k.type == PARLEY_CFG_LIST ? k.item_type : k.type;
}

std::vector<std::string_view> flag_names(uint32_t flags) {
    std::vector<std::string_view> out;
    if (flags & PARLEY_CFG_REQUIRED) out.push_back("required");
    if (flags & PARLEY_CFG_DEPRECATED) out.push_back("deprecated");
    if (flags & PARLEY_CFG_SECRET) out.push_back("secret");
    if (flags & PARLEY_CFG_RESTART) out.push_back("restart");
    return out;
}

// Length of the valid UTF-8 sequence at s[0], or 0.
size_t utf8_len(std::string_view s) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
        if (c == 0xED && b(1) >= 0xA0) return 0; // surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xF0 && b(1) < 0x90) return 0;
        if (c == 0xF4 && b(1) >= 0x90) return 0;
        return 4;
    }
    return 0;
}

// Schema strings are plugin data: escape them, and replace invalid UTF-8 so the output stays
// valid JSON whatever a plugin put there.
void json_string(std::string& out, const char* text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string_view s = text ? text : "";
    out += '"';
    while (!s.empty()) {
        auto c = static_cast<unsigned char>(s.front());
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else if (size_t len = utf8_len(s); len > 1) {
            out.append(s.data(), len);
            s.remove_prefix(len);
            continue;
        } else if (len == 0) {
            out += "\\ufffd";
        } else {
            out += char(c);
        }
        s.remove_prefix(1);
    }
    out += '"';
}

void json_strings(std::string& out, const std::vector<std::string_view>& items) {
    out += '[';
    for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += ',';
        json_string(out, std::string(items[k]).c_str());
    }
    out += ']';
}

void json_keys(std::string& out, const Key* schema, size_t n, int depth) {
    out += '[';
    bool first = true;
    for (size_t i = 0; schema && i < n && depth <= kMaxDepth; ++i) {
        const Key& k = schema[i];
        if (!k.name) continue;
        if (!first) out += ',';
        first = false;
        out += "{\"name\":";
        json_string(out, k.name);
        out += ",\"type\":";
        json_string(out, type_name(k.type).c_str());
        if (k.type == PARLEY_CFG_LIST && k.item_type != 0) {
            out += ",\"item_type\":";
            json_string(out, type_name(k.item_type).c_str());
        }
        if (k.default_value && !(k.flags & PARLEY_CFG_SECRET)) {
            out += ",\"default\":";
            json_string(out, k.default_value);
        }
        out += ",\"description\":";
        json_string(out, k.description);
        if (bounded(k)) {
            out += ",\"min\":" + std::to_string(k.min) + ",\"max\":" + std::to_string(k.max);
            if (value_type(k) == PARLEY_CFG_SIZE) out += ",\"unit\":\"bytes\"";
            if (value_type(k) == PARLEY_CFG_DURATION) out += ",\"unit\":\"ms\"";
        }
        if (value_type(k) == PARLEY_CFG_ENUM) {
            out += ",\"values\":";
            json_strings(out, detail::split_enum(k.enum_values));
        }
        out += ",\"flags\":";
        json_strings(out, flag_names(k.flags));
        if (k.replaced_by) {
            out += ",\"replaced_by\":";
            json_string(out, k.replaced_by);
        }
        if (has_children(k) && (k.type == PARLEY_CFG_MAP || k.type == PARLEY_CFG_LIST)) {
            out += ",\"children\":";
            json_keys(out, k.children, k.children_len, depth + 1);
        }
        out += '}';
    }
    out += ']';
}

void text_keys(std::string& out, const Key* schema, size_t n, int depth) {
    std::string indent(size_t(depth) * 4 - 2, ' ');
    for (size_t i = 0; schema && i < n && depth <= kMaxDepth; ++i) {
        const Key& k = schema[i];
        if (!k.name) continue;
        std::vector<std::string> facts;
        if (k.type == PARLEY_CFG_LIST)
            facts.push_back("list of " +
                            (k.item_type ? type_name(k.item_type) : std::string("maps")));
        else
            facts.push_back(type_name(k.type));
        if (value_type(k) == PARLEY_CFG_ENUM)
            facts.push_back("one of " + detail::join(detail::split_enum(k.enum_values), "|"));
        if (k.default_value)
            facts.push_back(k.flags & PARLEY_CFG_SECRET
                                ? std::string("default hidden")
                                : "default " + (*k.default_value ? std::string(k.default_value)
                                                                 : std::string("\"\"")));
        if (bounded(k)) facts.push_back(detail::range_text(value_type(k), k.min, k.max));
        for (auto f : flag_names(k.flags))
            facts.emplace_back(f);
        if (k.replaced_by) facts.push_back("use " + std::string(k.replaced_by) + " instead");
        out += indent + detail::clean(k.name) + " (";
        for (size_t f = 0; f < facts.size(); ++f)
            out += (f ? ", " : "") + facts[f];
        out += ")\n";
        if (k.description && *k.description) {
            // Descriptions are one paragraph; keep embedded newlines but indent them.
            out += indent + "    ";
            for (const char* c = k.description; *c; ++c) {
                out += *c;
                if (*c == '\n' && c[1]) out += indent + "    ";
            }
            out += '\n';
        }
        if (has_children(k) && (k.type == PARLEY_CFG_MAP || k.type == PARLEY_CFG_LIST))
            text_keys(out, k.children, k.children_len, depth + 1);
    }
}

} // namespace

std::string describe_json(const parley_t_config_key* schema, size_t n) {
    std::string out;
    json_keys(out, schema, n, 1);
    return out;
}

std::string describe_text(const parley_t_config_key* schema, size_t n) {
    std::string out;
    text_keys(out, schema, n, 1);
    return out;
}

} // namespace parley::config
