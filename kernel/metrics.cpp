#include "metrics.hpp"

#include <algorithm>
#include <map>
#include <vector>

namespace parley::kernel {

namespace {
bool valid_base(std::string_view s) {
    if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == ':';
    });
}
} // namespace

parley_t_metric* Metrics::get(parley_t_metric_kind kind, std::string_view name,
                              std::string_view help, std::string_view instance) {
    auto brace = name.find('{');
    std::string_view base = name.substr(0, brace);
    if (!valid_base(base)) return nullptr;
    std::string labels;
    if (!instance.empty()) labels = "instance=\"" + std::string(instance) + "\"";
    if (brace != std::string_view::npos) {
        if (name.back() != '}') return nullptr;
        auto inner = name.substr(brace + 1, name.size() - brace - 2);
        if (!inner.empty()) {
            if (!labels.empty()) labels += ',';
            labels += inner;
        }
    }
    std::string full(base);
    if (!labels.empty()) full += "{" + labels + "}";
    std::lock_guard lk(mu_);
    auto& slot = metrics_[full];
    if (!slot) {
        slot = std::make_unique<parley_t_metric>();
        slot->kind = kind;
        slot->full_name = full;
        slot->base_name = std::string(base);
        slot->help = std::string(help);
    }
    return slot.get();
}

std::string Metrics::render() const {
    std::map<std::string, std::vector<const parley_t_metric*>> by_base;
    {
        std::lock_guard lk(mu_);
        for (auto& [_, m] : metrics_)
            by_base[m->base_name].push_back(m.get());
    }
    std::string out;
    for (auto& [base, list] : by_base) {
        std::sort(list.begin(), list.end(),
                  [](auto* a, auto* b) { return a->full_name < b->full_name; });
        out += "# HELP " + base + " " + list.front()->help + "\n";
        out += "# TYPE " + base +
               (list.front()->kind == PARLEY_METRIC_COUNTER ? " counter\n" : " gauge\n");
        for (auto* m : list)
            out += m->full_name + " " + std::to_string(m->value.load(std::memory_order_relaxed)) +
                   "\n";
    }
    return out;
}

int64_t Metrics::value(std::string_view full_name) const {
    std::lock_guard lk(mu_);
    auto it = metrics_.find(std::string(full_name));
    return it == metrics_.end() ? 0 : it->second->value.load();
}

} // namespace parley::kernel
