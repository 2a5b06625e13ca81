// Helpers shared by the parley_config sources; not part of the public API.
#pragma once

#include "config/config.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::config::detail {

// User text inside a message: single-quoted, control bytes escaped, cut after 60 bytes so a
// 1 MB scalar does not become a 1 MB log line.
std::string quote(std::string_view s);
// As quote without the quotes, for key names inside paths.
std::string clean(std::string_view s);
// "a mapping", "a list", "nothing", or the quoted scalar.
std::string describe_node(const YAML::Node& n);
// 1-based line/column of a node, {0,0} if it has no mark. Never throws.
std::pair<int, int> position(const YAML::Node& n);
// "a.b" or "b" when the prefix is empty.
std::string join_path(const std::string& prefix, std::string_view key);
// "a|b|c" -> {"a","b","c"}; NULL or "" -> {}.
std::vector<std::string_view> split_enum(const char* values);
// Optimal string alignment distance (adjacent transpositions count 1), case-insensitive.
size_t edit_distance(std::string_view a, std::string_view b);
// Closest candidate within distance 2 (1 for names of up to 3 bytes), or empty.
std::string_view suggest(std::string_view word, const std::vector<std::string_view>& candidates);
// Problem with a mapping key that is not a plain scalar ("empty mapping key", ...). The loader
// and validate both use it so the same problem is worded (and deduplicated) identically.
std::string key_problem(const YAML::Node& key);
// "duplicate key 'port' (first at line 3)", naming the column too when both are on one line.
std::string duplicate_message(std::string_view name, const YAML::Node& first,
                              const YAML::Node& again);
// Allowed range in human units: "between 1K and 1M", "at least 1", "at most 30s".
std::string range_text(uint32_t type, int64_t min, int64_t max);
// "a, b, c".
std::string join(const std::vector<std::string_view>& parts, std::string_view sep);

} // namespace parley::config::detail
