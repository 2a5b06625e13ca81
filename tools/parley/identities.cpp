// parley identities: the operator's one-time key ceremony for a relay circle.
//
//   generate --count N --out DIR [--circle NAME] [--force]
//       one identity file per member (mode 0600, secret keys inside), directory.json (public
//       keys only) and allowlist.json (key hashes only, for the relay plugin).
//   import-relay FILE --out allowlist.json
//       converts a Relay allowed-keys-seed.json (or any accepted allowlist shape) to parley's.
//
// Formats and the key hash are specified in docs/relay-identities.md. Secret keys are only
// ever written to the member's own file and wiped from memory after use.
#include "commands.hpp"

#include "relay_core.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace parley::cli {

namespace fs = std::filesystem;

namespace {

int identities_usage(FILE* out) {
    std::fprintf(out, "usage: parley identities generate --count N --out DIR [--circle NAME] "
                      "[--force]\n"
                      "       parley identities import-relay FILE --out allowlist.json\n"
                      "generate writes DIR/identity-NN.json (secret, mode 0600; hand each to its "
                      "member in person),\nDIR/directory.json (public keys) and DIR/allowlist.json "
                      "(key hashes, for the relay plugin).\nSee docs/relay-identities.md.\n");
    return out == stdout ? 0 : 2;
}

struct Member {
    unsigned index = 0;
    unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sign_sk[crypto_sign_SECRETKEYBYTES];
    unsigned char box_pk[crypto_box_PUBLICKEYBYTES];
    unsigned char box_sk[crypto_box_SECRETKEYBYTES];
    std::string key_hash;

    Member() = default;
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;
    ~Member() {
        sodium_memzero(sign_sk, sizeof sign_sk);
        sodium_memzero(box_sk, sizeof box_sk);
    }
};

std::string b64(const unsigned char* p, size_t n) {
    return relay::b64_encode(std::string_view(reinterpret_cast<const char*>(p), n));
}

std::string directory_entry(const Member& m) {
    return R"({"member":)" + std::to_string(m.index) + R"(,"keyHash":")" + m.key_hash +
           R"(","signingPublicKey":")" + b64(m.sign_pk, sizeof m.sign_pk) +
           R"(","exchangePublicKey":")" + b64(m.box_pk, sizeof m.box_pk) + R"("})";
}

// Writes `text` to `path` with `mode`, refusing to replace a file unless `force`.
bool write_file(const fs::path& path, const std::string& text, mode_t mode, bool force) {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL);
    int fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) {
        std::fprintf(stderr, "parley identities: cannot create %s: %s%s\n", path.c_str(),
                     std::strerror(errno), errno == EEXIST ? " (use --force to replace)" : "");
        return false;
    }
    bool ok = ::fchmod(fd, mode) == 0; // an existing file keeps its old mode otherwise
    size_t off = 0;
    while (ok && off < text.size()) {
        ssize_t n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            ok = false;
        else
            off += size_t(n);
    }
    ok = ::fsync(fd) == 0 && ok;
    ok = ::close(fd) == 0 && ok;
    if (!ok) std::fprintf(stderr, "parley identities: cannot write %s\n", path.c_str());
    return ok;
}

int generate(const std::vector<std::string>& args) {
    long count = 0;
    std::string out, circle = "relay";
    bool force = false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto next = [&]() -> const std::string* {
            return i + 1 < args.size() ? &args[++i] : nullptr;
        };
        if (a == "--count") {
            auto* v = next();
            if (!v) return identities_usage(stderr);
            char* end = nullptr;
            count = std::strtol(v->c_str(), &end, 10);
            if (*end || count < 1 || count > 1000) {
                std::fprintf(stderr, "parley identities: --count must be 1..1000\n");
                return 2;
            }
        } else if (a == "--out") {
            auto* v = next();
            if (!v) return identities_usage(stderr);
            out = *v;
        } else if (a == "--circle") {
            auto* v = next();
            if (!v || v->empty() || v->size() > 64) return identities_usage(stderr);
            circle = *v;
        } else if (a == "--force") {
            force = true;
        } else if (a == "-h" || a == "--help") {
            return identities_usage(stdout);
        } else {
            return identities_usage(stderr);
        }
    }
    if (count == 0 || out.empty()) return identities_usage(stderr);

    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) {
        std::fprintf(stderr, "parley identities: cannot create %s: %s\n", out.c_str(),
                     ec.message().c_str());
        return 1;
    }
    ::chmod(out.c_str(), 0700); // best effort: it holds secret files until they are handed out

    std::vector<std::unique_ptr<Member>> members;
    for (long i = 0; i < count; ++i) {
        auto m = std::make_unique<Member>();
        m->index = unsigned(i + 1);
        crypto_sign_keypair(m->sign_pk, m->sign_sk);
        crypto_box_keypair(m->box_pk, m->box_sk);
        m->key_hash = relay::key_hash_of_public_key(
            std::string_view(reinterpret_cast<const char*>(m->sign_pk), sizeof m->sign_pk));
        members.push_back(std::move(m));
    }

    std::string circle_json = relay::json_escape(circle);
    std::string dir_array = "[";
    for (size_t i = 0; i < members.size(); ++i)
        dir_array += (i ? ",\n    " : "\n    ") + directory_entry(*members[i]);
    dir_array += "\n  ]";

    int width = count >= 100 ? (count >= 1000 ? 4 : 3) : 2;
    for (auto& m : members) {
        std::string text = "{\n  \"format\": \"parley-relay-identity\",\n  \"version\": 1,\n"
                           "  \"circle\": \"" +
                           circle_json + "\",\n  \"member\": " + std::to_string(m->index) +
                           ",\n  \"keyHash\": \"" + m->key_hash +
                           "\",\n  \"signing\": {\"algorithm\": \"Ed25519\", \"publicKey\": \"" +
                           b64(m->sign_pk, sizeof m->sign_pk) + "\", \"secretKey\": \"" +
                           b64(m->sign_sk, sizeof m->sign_sk) +
                           "\"},\n  \"exchange\": {\"algorithm\": \"X25519\", \"publicKey\": \"" +
                           b64(m->box_pk, sizeof m->box_pk) + "\", \"secretKey\": \"" +
                           b64(m->box_sk, sizeof m->box_sk) +
                           "\"},\n  \"directory\": " + dir_array + "\n}\n";
        char name[32];
        std::snprintf(name, sizeof name, "identity-%0*u.json", width, m->index);
        bool ok = write_file(fs::path(out) / name, text, 0600, force);
        sodium_memzero(text.data(), text.size());
        if (!ok) return 1;
    }

    std::string directory = "{\n  \"format\": \"parley-relay-directory\",\n  \"version\": 1,\n"
                            "  \"circle\": \"" +
                            circle_json + "\",\n  \"members\": " + dir_array + "\n}\n";
    if (!write_file(fs::path(out) / "directory.json", directory, 0644, force)) return 1;

    std::string allow = "{\n  \"format\": \"parley-relay-allowlist\",\n  \"version\": 1,\n"
                        "  \"circle\": \"" +
                        circle_json + "\",\n  \"keyHashes\": [";
    for (size_t i = 0; i < members.size(); ++i)
        allow += (i ? ",\n    \"" : "\n    \"") + members[i]->key_hash + "\"";
    allow += "\n  ]\n}\n";
    if (!write_file(fs::path(out) / "allowlist.json", allow, 0644, force)) return 1;

    std::printf("wrote %ld identities, directory.json and allowlist.json to %s\n"
                "identity files hold secret keys: hand each to its member in person, then "
                "delete it here.\n",
                count, out.c_str());
    return 0;
}

int import_relay(const std::vector<std::string>& args) {
    std::string in, out;
    bool force = false;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--out" && i + 1 < args.size()) {
            out = args[++i];
        } else if (args[i] == "--force") {
            force = true;
        } else if (args[i] == "-h" || args[i] == "--help") {
            return identities_usage(stdout);
        } else if (in.empty() && !args[i].starts_with("-")) {
            in = args[i];
        } else {
            return identities_usage(stderr);
        }
    }
    if (in.empty() || out.empty()) return identities_usage(stderr);
    std::ifstream f(in, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "parley identities: cannot read %s\n", in.c_str());
        return 1;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string err;
    auto hashes = relay::parse_allowlist(ss.str(), err);
    if (!hashes) {
        std::fprintf(stderr, "parley identities: %s: %s\n", in.c_str(), err.c_str());
        return 1;
    }
    if (hashes->empty()) { // as Relay's seed-allowed-keys.mjs: an empty circle is a mistake
        std::fprintf(stderr, "parley identities: %s: no key hashes\n", in.c_str());
        return 1;
    }
    std::string allow =
        "{\n  \"format\": \"parley-relay-allowlist\",\n  \"version\": 1,\n  \"keyHashes\": [";
    bool first = true;
    for (auto& h : *hashes) {
        allow += (first ? "\n    \"" : ",\n    \"") + h + "\"";
        first = false;
    }
    allow += "\n  ]\n}\n";
    if (!write_file(out, allow, 0644, force)) return 1;
    std::printf("wrote %zu key hashes to %s\n", hashes->size(), out.c_str());
    return 0;
}

} // namespace

int cmd_identities(std::vector<std::string> args) {
    if (args.empty()) return identities_usage(stderr);
    if (!relay::crypto_init()) {
        std::fprintf(stderr, "parley identities: libsodium unavailable\n");
        return 1;
    }
    std::string sub = args[0];
    args.erase(args.begin());
    if (sub == "generate") return generate(args);
    if (sub == "import-relay") return import_relay(args);
    if (sub == "-h" || sub == "--help") return identities_usage(stdout);
    std::fprintf(stderr, "parley identities: unknown subcommand '%s'\n", sub.c_str());
    return 2;
}

} // namespace parley::cli
