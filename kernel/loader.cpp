#include "loader.hpp"

#include <cstring>
#include <dlfcn.h>
#include <unistd.h>

namespace parley::kernel {

namespace fs = std::filesystem;

std::string check_abi(const std::string& name, const std::string& file, uint16_t major,
                      uint16_t minor) {
    auto ver = [](unsigned a, unsigned b) { return std::to_string(a) + "." + std::to_string(b); };
    std::string who = "plugin '" + name + "' (" + fs::path(file).filename().string() + ")";
    if (major != PARLEY_ABI_MAJOR)
        return who + " built for ABI " + ver(major, minor) + ", host provides " +
               ver(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR) + " (different major)";
    if (minor > PARLEY_ABI_MINOR)
        return who + " built for ABI " + ver(major, minor) + ", host provides " +
               ver(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR) + " (newer minor)";
    // 0.x is unstable: every minor may change the layout, so it must match exactly.
    if (PARLEY_ABI_MAJOR == 0 && minor != PARLEY_ABI_MINOR)
        return who + " built for ABI " + ver(major, minor) + ", host provides " +
               ver(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR) + " (0.x minors must match; rebuild it)";
    return {};
}

fs::path Loader::default_plugin_dir() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    auto prefix = exe.parent_path().parent_path();
    // The install's libdir may be multiarch (lib/x86_64-linux-gnu under /usr); the build tree
    // always uses lib/.
    auto installed = prefix / PARLEY_PLUGIN_RELDIR;
    if (fs::is_directory(installed, ec)) return installed;
    return prefix / "lib" / "parley" / "plugins";
}

namespace {
bool valid_name(const char* s) {
    if (!s || !*s || std::strlen(s) > 64) return false;
    for (const char* p = s; *p; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return false;
    return true;
}

// A plugin's config rows have the size of parley_t_config_key in the header it was built with,
// which may differ from ours once the ABI grows. Walk them by their own struct_size and copy
// each into a zeroed host-sized row (children too), so the kernel only reads its own layout.
bool copy_config_rows(const parley_t_config_key* rows, size_t n,
                      std::deque<std::vector<parley_t_config_key>>& store,
                      const parley_t_config_key*& out, std::string& why, int depth) {
    out = nullptr;
    if (n == 0 || !rows) return true; // the validator reports NULL tables with keys
    if (depth > 16) {
        why = "children nested deeper than 16 levels";
        return false;
    }
    constexpr size_t kMin =
        offsetof(parley_t_config_key, children_len) + sizeof(parley_t_config_key::children_len);
    uint32_t stride = rows[0].struct_size;
    if (stride < kMin || stride > 4096 || n > 100000) {
        why = "rows of struct_size " + std::to_string(stride) + " (need " + std::to_string(kMin) +
              ".." + "4096)";
        return false;
    }
    auto& copy = store.emplace_back(n, parley_t_config_key{});
    const auto* base = reinterpret_cast<const unsigned char*>(rows);
    for (size_t i = 0; i < n; ++i) {
        std::memcpy(&copy[i], base + i * stride, std::min<size_t>(stride, sizeof copy[i]));
        if (copy[i].struct_size != stride) {
            why = "row " + std::to_string(i) + " has struct_size " +
                  std::to_string(copy[i].struct_size) + ", row 0 has " + std::to_string(stride);
            return false;
        }
        copy[i].struct_size = sizeof copy[i];
        if (copy[i].children_len && !copy_config_rows(copy[i].children, copy[i].children_len, store,
                                                      copy[i].children, why, depth + 1))
            return false;
    }
    out = copy.data();
    return true;
}
} // namespace

bool Loader::load(const std::string& plugin, const std::string& file, LoadedPlugin& out,
                  std::string& error) {
    fs::path path;
    if (!file.empty()) {
        path = file;
        if (!fs::exists(path)) {
            error = "plugin '" + plugin + "': file not found: " + file;
            return false;
        }
    } else {
        std::string wanted = "parley-" + plugin + ".so";
        std::string looked;
        for (auto& d : dirs_) {
            if (fs::exists(d / wanted)) {
                path = d / wanted;
                break;
            }
            looked += (looked.empty() ? "" : ", ") + d.string();
        }
        if (path.empty()) {
            error =
                "plugin '" + plugin + "': " + wanted + " not found in plugin path [" + looked + "]";
            return false;
        }
    }
    std::error_code ec;
    auto canon = fs::canonical(path, ec);
    std::string key = ec ? path.string() : canon.string();

    std::lock_guard lk(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
        out = it->second;
        return true;
    }
    // RTLD_LOCAL: plugins never see each other's symbols; RTLD_NOW: fail here, not mid-request.
    void* h = dlopen(key.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* e = dlerror();
        error = "plugin '" + plugin + "': cannot load " + key + ": " + (e ? e : "unknown error");
        return false;
    }
    auto entry = reinterpret_cast<parley_t_entry_fn>(dlsym(h, PARLEY_ENTRY_SYMBOL));
    if (!entry) {
        // Name an entry of another major if there is one: the usual cause of this error.
        std::string hint;
        for (int m = 0; m < 10; ++m) {
            std::string sym = "parley_plugin_entry_v" + std::to_string(m);
            if (sym != PARLEY_ENTRY_SYMBOL && dlsym(h, sym.c_str()))
                hint = " (it exports " + sym + ": built for ABI major " + std::to_string(m) +
                       ", host provides " + std::to_string(PARLEY_ABI_MAJOR) + "." +
                       std::to_string(PARLEY_ABI_MINOR) + ")";
        }
        error = "plugin '" + plugin + "' (" + key + "): no entry point " PARLEY_ENTRY_SYMBOL + hint;
        return false;
    }
    const char* why = nullptr;
    const parley_t_descriptor* d = entry(PARLEY_ABI_MAJOR, PARLEY_ABI_MINOR, &why);
    if (!d) {
        error = "plugin '" + plugin + "' (" + key +
                ") refused to load: " + (why ? why : "no reason given");
        return false;
    }
    if (d->struct_size < offsetof(parley_t_descriptor, vtable) + sizeof(d->vtable)) {
        error = "plugin '" + plugin + "' (" + key + "): descriptor too small (struct_size " +
                std::to_string(d->struct_size) + ")";
        return false;
    }
    LoadedPlugin lp;
    lp.file = key;
    // Copy only the bytes the plugin declared into zeroed tables: newer fields stay NULL.
    std::memcpy(&lp.desc, d, std::min<size_t>(d->struct_size, sizeof lp.desc));
    lp.desc.struct_size = sizeof lp.desc;
    std::string name = valid_name(lp.desc.name) ? lp.desc.name : "";
    if (name.empty()) {
        error = "plugin '" + plugin + "' (" + key + "): invalid plugin name in descriptor";
        return false;
    }
    if (auto bad = check_abi(name, key, d->abi_major, d->abi_minor); !bad.empty()) {
        error = bad;
        return false;
    }
    if (!file.empty() ? false : name != plugin) {
        error = "plugin '" + plugin + "' (" + key + ") calls itself '" + name + "'";
        return false;
    }
    if (lp.desc.kind < PARLEY_KIND_TRANSPORT || lp.desc.kind > PARLEY_KIND_SERVICE) {
        error = "plugin '" + name + "': unknown kind " + std::to_string(lp.desc.kind);
        return false;
    }
    {
        auto rows = std::make_shared<std::deque<std::vector<parley_t_config_key>>>();
        const parley_t_config_key* copied = nullptr;
        std::string why;
        if (!copy_config_rows(lp.desc.config, lp.desc.config_len, *rows, copied, why, 0)) {
            error = "plugin '" + name + "': config table: " + why;
            return false;
        }
        lp.desc.config = copied;
        lp.config_rows = std::move(rows);
    }
    const parley_t_plugin_vtable* vt = lp.desc.vtable;
    if (!vt || vt->struct_size < offsetof(parley_t_plugin_vtable, destroy) + sizeof(vt->destroy)) {
        error = "plugin '" + name + "': vtable missing or too small";
        return false;
    }
    std::memcpy(&lp.vt, vt, std::min<size_t>(vt->struct_size, sizeof lp.vt));
    lp.vt.struct_size = sizeof lp.vt;
    struct Req {
        const char* field;
        const void* ptr;
    };
    std::vector<Req> required = {{"create", (const void*)lp.vt.create},
                                 {"start", (const void*)lp.vt.start},
                                 {"stop", (const void*)lp.vt.stop},
                                 {"destroy", (const void*)lp.vt.destroy}};
    if (lp.desc.kind == PARLEY_KIND_TRANSPORT) {
        required.push_back({"deliver", (const void*)lp.vt.deliver});
        required.push_back({"close_conn", (const void*)lp.vt.close_conn});
    }
    if (lp.desc.kind == PARLEY_KIND_STORE) {
        required.push_back({"history_append", (const void*)lp.vt.history_append});
        required.push_back({"history_fetch", (const void*)lp.vt.history_fetch});
        required.push_back({"history_clear", (const void*)lp.vt.history_clear});
        required.push_back({"blob_put", (const void*)lp.vt.blob_put});
        required.push_back({"blob_list", (const void*)lp.vt.blob_list});
        required.push_back({"blob_get", (const void*)lp.vt.blob_get});
        required.push_back({"blob_delete", (const void*)lp.vt.blob_delete});
    }
    for (auto& r : required)
        if (!r.ptr) {
            error = "plugin '" + name + "': required function '" + r.field + "' missing";
            return false;
        }
    if (!lp.desc.version) lp.desc.version = "unknown";
    cache_.emplace(key, lp);
    out = lp;
    return true;
}

} // namespace parley::kernel
