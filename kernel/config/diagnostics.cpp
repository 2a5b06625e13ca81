// Diagnostics and the small text helpers every part of parley_config uses for messages.
#include "config/detail.hpp"

#include <algorithm>
#include <cctype>

namespace parley::config {

namespace detail {

namespace {

constexpr size_t kQuoteLimit = 60;

void escape_into(std::string& out, std::string_view s, size_t limit = kQuoteLimit) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t k = 0; k < s.size(); ++k) {
        if (k == limit) {
            out += "...";
            return;
        }
        auto c = static_cast<unsigned char>(s[k]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            // Control bytes would let a config file write escape sequences into a terminal.
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else {
            out += char(c);
        }
    }
}

} // namespace

std::string quote(std::string_view s) {
    std::string out = "'";
    escape_into(out, s);
    out += '\'';
    return out;
}

std::string clean(std::string_view s) {
    std::string out;
    escape_into(out, s);
    return out;
}

std::string describe_node(const YAML::Node& n) {
    try {
        switch (n.Type()) {
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return quote(n.Scalar());
        default:
            return "nothing";
        }
    } catch (const std::exception&) {
        return "nothing";
    }
}

std::pair<int, int> position(const YAML::Node& n) {
    try {
        if (!n.IsDefined()) return {0, 0};
        YAML::Mark m = n.Mark();
        if (m.is_null()) return {0, 0};
        return {m.line + 1, m.column + 1};
    } catch (const std::exception&) {
        return {0, 0};
    }
}

std::string join_path(const std::string& prefix, std::string_view key) {
    std::string out = prefix;
    if (!out.empty()) out += '.';
    out += clean(key);
    return out;
}

std::vector<std::string_view> split_enum(const char* values) {
    std::vector<std::string_view> out;
    if (!values || !*values) return out;
    std::string_view s = values;
    while (true) {
        size_t bar = s.find('|');
        out.push_back(s.substr(0, bar));
        if (bar == std::string_view::npos) break;
        s.remove_prefix(bar + 1);
    }
    return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
    // Keys are short; a bound keeps a 1 MB key from costing a 1 MB x N table.
    if (a.size() > 64 || b.size() > 64) return std::max(a.size(), b.size());
    auto low = [](char c) { return char(std::tolower(static_cast<unsigned char>(c))); };
    const size_t w = b.size() + 1;
    std::vector<size_t> d((a.size() + 1) * w);
    for (size_t i = 0; i <= a.size(); ++i)
        d[i * w] = i;
    for (size_t j = 0; j <= b.size(); ++j)
        d[j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t cost = low(a[i - 1]) == low(b[j - 1]) ? 0 : 1;
            size_t v = std::min(
                {d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
            if (i > 1 && j > 1 && low(a[i - 1]) == low(b[j - 2]) && low(a[i - 2]) == low(b[j - 1]))
                v = std::min(v, d[(i - 2) * w + j - 2] + 1);
            d[i * w + j] = v;
        }
    return d[a.size() * w + b.size()];
}

std::string_view suggest(std::string_view word, const std::vector<std::string_view>& candidates) {
    // Short names are close to everything at distance 2; demand more similarity there.
    size_t limit = word.size() <= 3 ? 1 : 2;
    std::string_view best;
    size_t best_d = limit + 1;
    for (auto c : candidates) {
        size_t dist = edit_distance(word, c);
        if (dist < best_d) {
            best = c;
            best_d = dist;
        }
    }
    return best;
}

std::string key_problem(const YAML::Node& key) {
    if (key.IsNull()) return "empty mapping key";
    return "mapping keys must be plain strings, found " + describe_node(key);
}

std::string duplicate_message(std::string_view name, const YAML::Node& first,
                              const YAML::Node& again) {
    auto [line, col] = position(first);
    std::string where = "line " + std::to_string(line);
    if (line == position(again).first) where += ", column " + std::to_string(col);
    return "duplicate key " + quote(name) + " (first at " + where + ")";
}

std::string join(const std::vector<std::string_view>& parts, std::string_view sep) {
    std::string out;
    for (size_t k = 0; k < parts.size(); ++k) {
        if (k) out += sep;
        out += parts[k];
    }
    return out;
}

} // namespace detail

std::string Diagnostic::format() const {
    // Every part may carry bytes of the file (YAML parser messages quote the offending
    // character, loader errors the plugin name or path): control bytes are escaped here, once,
    // so no diagnostic can write escape sequences to an operator's terminal.
    auto printable = [](std::string_view s) {
        std::string r;
        detail::escape_into(r, s, std::string_view::npos);
        return r;
    };
    std::string out;
    if (!file.empty()) {
        out += printable(file);
        if (line > 0) {
            out += ':' + std::to_string(line);
            if (column > 0) out += ':' + std::to_string(column);
        }
        out += ": ";
    }
    out += severity == Severity::Error ? "error: " : "warning: ";
    if (!path.empty()) out += printable(path) + ": ";
    out += printable(message);
    return out;
}

void Diagnostics::add(Diagnostic d) {
    (d.severity == Severity::Error ? errors_ : warnings_)++;
    if (truncated_) return;
    for (const auto& e : entries_)
        if (e.severity == d.severity && e.line == d.line && e.column == d.column &&
            e.path == d.path && e.message == d.message && e.file == d.file) {
            // Counted once: the second report is the same problem, not a new one.
            (d.severity == Severity::Error ? errors_ : warnings_)--;
            return;
        }
    if (entries_.size() >= kMaxEntries) {
        truncated_ = true;
        Diagnostic more;
        more.severity = Severity::Error;
        more.file = d.file;
        more.message = "too many problems; the rest are not shown";
        entries_.push_back(std::move(more));
        return;
    }
    entries_.push_back(std::move(d));
}

void Diagnostics::error(const std::string& file, int line, int column, std::string path,
                        std::string message) {
    add({Severity::Error, file, line, column, std::move(path), std::move(message)});
}

void Diagnostics::warning(const std::string& file, int line, int column, std::string path,
                          std::string message) {
    add({Severity::Warning, file, line, column, std::move(path), std::move(message)});
}

void Diagnostics::error(const std::string& file, const YAML::Node& at, std::string path,
                        std::string message) {
    auto [line, col] = detail::position(at);
    error(file, line, col, std::move(path), std::move(message));
}

void Diagnostics::warning(const std::string& file, const YAML::Node& at, std::string path,
                          std::string message) {
    auto [line, col] = detail::position(at);
    warning(file, line, col, std::move(path), std::move(message));
}

void Diagnostics::error(const std::string& file, const YAML::Mark& at, std::string path,
                        std::string message) {
    if (at.is_null())
        error(file, 0, 0, std::move(path), std::move(message));
    else
        error(file, at.line + 1, at.column + 1, std::move(path), std::move(message));
}

std::vector<std::string> Diagnostics::lines() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_)
        out.push_back(e.format());
    return out;
}

std::string Diagnostics::format() const {
    std::string out;
    for (const auto& e : entries_)
        out += e.format() + '\n';
    return out;
}

void Diagnostics::clear() {
    *this = Diagnostics{};
}

} // namespace parley::config
