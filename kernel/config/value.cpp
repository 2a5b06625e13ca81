// The normalised config tree: lookup by path, export to the C ABI, comparison for reload.
#include "config/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace parley::config {

namespace {

// Splits the next segment off `path`: "a.b" -> "a", "x[2].y" -> "x", "2", "y" (brackets are
// sugar for ".2"). Returns false on an unmatched '['.
bool next_segment(std::string_view& path, std::string_view& seg) {
    if (path.front() == '[') {
        size_t close = path.find(']');
        if (close == std::string_view::npos) return false;
        seg = path.substr(1, close - 1);
        path.remove_prefix(close + 1);
    } else {
        size_t end = path.find_first_of(".[");
        seg = path.substr(0, end);
        path.remove_prefix(end == std::string_view::npos ? path.size() : end);
    }
    if (!path.empty() && path.front() == '.') path.remove_prefix(1);
    return true;
}

bool scalar_equal(const Value& a, const Value& b) {
    switch (a.type) {
    case PARLEY_CFG_STRING:
    case PARLEY_CFG_ENUM:
        return a.str == b.str;
    default:
        return a.i == b.i;
    }
}

void diff(const Value& a, const Value& b, const std::string& path, std::vector<std::string>& out) {
    auto sub = [&](std::string_view k) {
        return path.empty() ? std::string(k) : path + "." + std::string(k);
    };
    if (a.type != b.type) {
        out.push_back(path);
        return;
    }
    if (a.type == PARLEY_CFG_MAP) {
        for (const auto& [k, v] : a.entries) {
            const Value* w = b.get(k);
            if (!w)
                out.push_back(sub(k));
            else
                diff(v, *w, sub(k), out);
        }
        for (const auto& [k, v] : b.entries)
            if (!a.get(k)) out.push_back(sub(k));
    } else if (a.type == PARLEY_CFG_LIST) {
        if (a.items.size() != b.items.size()) {
            out.push_back(path);
            return;
        }
        for (size_t k = 0; k < a.items.size(); ++k)
            diff(a.items[k], b.items[k], sub(std::to_string(k)), out);
    } else if (!scalar_equal(a, b)) {
        out.push_back(path);
    }
}

} // namespace

const Value* Value::get(std::string_view key) const {
    if (type != PARLEY_CFG_MAP) return nullptr;
    for (const auto& [k, v] : entries)
        if (k == key) return &v;
    return nullptr;
}

size_t Value::count() const {
    if (type == PARLEY_CFG_LIST) return items.size();
    if (type == PARLEY_CFG_MAP) return entries.size();
    return 0;
}

const Value* Value::find(std::string_view path) const {
    const Value* cur = this;
    while (!path.empty() && cur) {
        std::string_view seg;
        if (!next_segment(path, seg)) return nullptr;
        if (cur->type == PARLEY_CFG_MAP) {
            cur = cur->get(seg);
        } else if (cur->type == PARLEY_CFG_LIST) {
            size_t idx = 0;
            auto [end, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), idx);
            if (ec != std::errc() || end != seg.data() + seg.size() || seg.empty() ||
                idx >= cur->items.size())
                return nullptr;
            cur = &cur->items[idx];
        } else {
            return nullptr;
        }
    }
    return cur;
}

void fill(const Value& v, parley_t_config_value* out) {
    if (!out) return;
    parley_t_config_value full{};
    full.struct_size = out->struct_size;
    full.type = v.type;
    full.i = v.i;
    full.s = {v.str.data(), v.str.size()};
    full.count = v.count();
    size_t n = std::min<size_t>(out->struct_size, sizeof full);
    std::memcpy(static_cast<void*>(out), &full, n);
}

void fill_absent(parley_t_config_value* out) {
    if (!out) return;
    parley_t_config_value full{};
    full.struct_size = out->struct_size;
    size_t n = std::min<size_t>(out->struct_size, sizeof full);
    std::memcpy(static_cast<void*>(out), &full, n);
}

bool equal(const Value& a, const Value& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
    case PARLEY_CFG_MAP:
        if (a.entries.size() != b.entries.size()) return false;
        for (const auto& [k, v] : a.entries) {
            const Value* w = b.get(k);
            if (!w || !equal(v, *w)) return false;
        }
        return true;
    case PARLEY_CFG_LIST:
        return std::equal(a.items.begin(), a.items.end(), b.items.begin(), b.items.end(),
                          [](const Value& x, const Value& y) { return equal(x, y); });
    default:
        return scalar_equal(a, b);
    }
}

std::vector<std::string> changed_paths(const Value& old, const Value& neu) {
    std::vector<std::string> out;
    diff(old, neu, "", out);
    return out;
}

} // namespace parley::config
