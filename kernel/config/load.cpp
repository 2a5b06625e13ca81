// YAML loading with the checks yaml-cpp 0.7 does not make: duplicate keys (it keeps both pairs
// and lookups silently see the first), non-scalar keys, excessive nesting, extra documents.
#include "config/detail.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

namespace parley::config {

namespace {

constexpr size_t kMaxFileBytes = size_t(64) << 20;
// Node visits while checking one document. Aliases are visited once (see `seen`), so only a
// document with millions of real nodes gets here.
constexpr size_t kMaxVisits = 4'000'000;

class Checker {
  public:
    Checker(const std::string& file, Diagnostics& diag) : file_(file), diag_(diag) {}

    void walk(const YAML::Node& n, const std::string& path, int depth) {
        if (!n.IsDefined() || !(n.IsMap() || n.IsSequence())) return;
        if (depth > kMaxDepth) {
            if (!too_deep_)
                diag_.error(file_, n, path,
                            "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
            too_deep_ = true;
            return;
        }
        if (visits_++ >= kMaxVisits) {
            if (visits_ == kMaxVisits + 1)
                diag_.error(file_, n, path, "document too large to check");
            return;
        }
        // An alias is the anchored node itself (same mark): check it once, or a chain of
        // aliases ("billion laughs") would make this walk exponential.
        YAML::Mark m = n.Mark();
        if (!m.is_null() && !seen_.insert({m.pos, int(n.Type())}).second) return;

        if (n.IsSequence()) {
            size_t idx = 0;
            for (const auto& item : n)
                walk(item, path + "[" + std::to_string(idx++) + "]", depth + 1);
            return;
        }
        std::unordered_map<std::string, YAML::Node> first;
        // By value: yaml-cpp iterators yield temporaries, and a reference to `it->first`
        // dangles at the end of the statement.
        for (const auto& kv : n) {
            const YAML::Node& key = kv.first;
            if (!key.IsScalar()) {
                diag_.error(file_, key, path, detail::key_problem(key));
                continue;
            }
            const std::string& name = key.Scalar();
            std::string kp = detail::join_path(path, name);
            auto [at, fresh] = first.emplace(name, key);
            if (!fresh)
                diag_.error(file_, key, kp, detail::duplicate_message(name, at->second, key));
            walk(kv.second, kp, depth + 1);
        }
    }

  private:
    const std::string& file_;
    Diagnostics& diag_;
    std::set<std::pair<size_t, int>> seen_;
    size_t visits_ = 0;
    bool too_deep_ = false;
};

// Records where each document starts; everything else is ignored.
class DocumentCounter : public YAML::EventHandler {
  public:
    YAML::Mark second = YAML::Mark::null_mark();

    void OnDocumentStart(const YAML::Mark& mark) override {
        if (++count_ == 2) second = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}

  private:
    int count_ = 0;
};

} // namespace

Document load_yaml_string(std::string_view text, const std::string& name, Diagnostics& diag) {
    Document doc;
    doc.file = name;
    doc.root = YAML::Node(YAML::NodeType::Null);
    const std::string str(text);
    YAML::Node root;
    try {
        // Pass 1 finds syntax errors and extra documents. Not YAML::LoadAll: in yaml-cpp 0.7 a
        // stray ',' after the document ("[a],", "&a,") makes it produce empty documents
        // forever (jbeder/yaml-cpp#1040, fixed upstream in 2024), so stop at the second one.
        std::istringstream in(str);
        YAML::Parser parser(in);
        DocumentCounter counter;
        int docs = 0;
        while (docs < 2 && parser.HandleNextDocument(counter))
            ++docs;
        if (docs == 2) {
            const YAML::Mark& at = counter.second;
            bool explicit_doc = !at.is_null() && str.compare(size_t(at.pos), 3, "---") == 0;
            diag.error(name, at, "",
                       explicit_doc
                           ? "more than one YAML document ('---'); a config file holds exactly one"
                           : "invalid YAML: unexpected " +
                                 detail::quote(size_t(at.pos) < str.size()
                                                   ? str.substr(size_t(at.pos), 1)
                                                   : "") +
                                 " after the end of the document");
            return doc;
        }
        // Pass 2 builds the nodes of that one document.
        root = YAML::Load(str);
    } catch (const YAML::DeepRecursion& e) {
        diag.error(name, e.mark, "",
                   "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        return doc;
    } catch (const YAML::Exception& e) {
        diag.error(name, e.mark, "", "invalid YAML: " + e.msg);
        return doc;
    } catch (const std::exception& e) {
        // bad_alloc and friends: refuse the file rather than take the process down.
        diag.error(name, 0, 0, "", std::string("cannot parse YAML: ") + e.what());
        return doc;
    }
    try {
        Checker(name, diag).walk(root, "", 1);
    } catch (const std::exception& e) {
        diag.error(name, 0, 0, "", std::string("cannot check YAML: ") + e.what());
        return doc;
    }
    doc.root = root;
    return doc;
}

Document load_yaml_file(const std::string& path, Diagnostics& diag) {
    Document doc;
    doc.file = path;
    doc.root = YAML::Node(YAML::NodeType::Null);
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        diag.error(path, 0, 0, "", "cannot read: is a directory");
        return doc;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.error(path, 0, 0, "", std::string("cannot open: ") + std::strerror(errno));
        return doc;
    }
    // Read in chunks with a cap: the path might be a FIFO or /dev/zero.
    std::string text;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, size_t(in.gcount()));
        if (text.size() > kMaxFileBytes) {
            diag.error(path, 0, 0, "",
                       "file larger than " + format_size(int64_t(kMaxFileBytes)) + "B");
            return doc;
        }
    }
    if (in.bad()) {
        diag.error(path, 0, 0, "", std::string("cannot read: ") + std::strerror(errno));
        return doc;
    }
    return load_yaml_string(text, path, diag);
}

} // namespace parley::config
