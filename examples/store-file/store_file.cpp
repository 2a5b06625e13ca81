// store-file: an out-of-tree parley store plugin that keeps room history and blobs in plain files
// under its own directory, so they survive a parleyd restart. It is an example of the store
// contract, not a database: every record is also held in memory (bounded by history_limit and
// max_bytes), writes are appended and optionally fdatasync'ed before they are acknowledged, and
// a room's file is rewritten when it holds far more records than the limit.
//
// Layout under <dir> (default <state_dir>/<instance>):
//   history/<hex(room)>.log   records: u64 seq, i64 expires_ms, u32 len, bytes (host order)
//   blobs/<id>.blob           i64 expires_ms, u32 recipient len, recipient, data
//
// Operations run inline on the caller's thread under one mutex, which keeps per-room order.
// File writes therefore block a reactor briefly; a store for real load would hand them to the
// host's worker pool (host->work_submit) and complete from there.
#include <parley/sdk.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using parley::sdk::key;
using parley::sdk::key_range;

constexpr parley_t_config_key kConfig[] = {
    key("dir", PARLEY_CFG_STRING, "",
        "Directory of the files; empty = <state_dir>/<instance name>.", PARLEY_CFG_RESTART),
    key_range("history_limit", PARLEY_CFG_INT, "10", 0, 100000,
              "Messages kept per room; 0 keeps none."),
    key_range("history_ttl", PARLEY_CFG_DURATION, "24h", 1000, 365LL * 86400 * 1000,
              "Every history record expires after this."),
    key_range("max_record", PARLEY_CFG_SIZE, "1M", 16, int64_t(1) << 30,
              "Largest single history record or blob."),
    key_range("max_bytes", PARLEY_CFG_SIZE, "256M", 1024, int64_t(1) << 40,
              "Bound on stored bytes (history + blobs); writes past it are refused."),
    key("fsync", PARLEY_CFG_BOOL, "true",
        "fdatasync each write before acknowledging it (durable across a power loss)."),
    key_range("sweep_interval", PARLEY_CFG_DURATION, "60s", 100, 86400 * 1000,
              "How often expired records and blobs are removed."),
};

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

std::string unhex(std::string_view h) {
    std::string out;
    auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        out += char(v(h[i]) << 4 | v(h[i + 1]));
    return out;
}

template <typename T> void put(std::string& b, T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T> bool get(std::string_view& b, T& v) {
    if (b.size() < sizeof v) return false;
    std::memcpy(&v, b.data(), sizeof v);
    b.remove_prefix(sizeof v);
    return true;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes `data` at the end of `p` (or replaces the file), then fdatasyncs when asked.
bool write_file(const fs::path& p, const std::string& data, bool append, bool sync) {
    int fd =
        ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
    if (fd < 0) return false;
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n <= 0) {
            ::close(fd);
            return false;
        }
        off += size_t(n);
    }
    bool ok = !sync || ::fdatasync(fd) == 0;
    return ::close(fd) == 0 && ok;
}

class FileStore final : public parley::sdk::Plugin {
  public:
    explicit FileStore(parley::sdk::Host host) : Plugin(host) {
        load_config();
        std::string d = host.config_string("dir");
        dir_ = d.empty() ? fs::path(host.state_dir()) / host.instance_name() : fs::path(d);
        m_records_ = host.gauge("parley_store_file_records", "History records held.");
        m_blobs_ = host.gauge("parley_store_file_blobs", "Blobs held.");
        m_bytes_ = host.gauge("parley_store_file_bytes", "Bytes of records and blobs held.");
        m_errors_ = host.counter("parley_store_file_errors_total", "File writes that failed.");
    }

    parley_t_status start() override {
        std::error_code ec;
        fs::create_directories(dir_ / "history", ec);
        if (!ec) fs::create_directories(dir_ / "blobs", ec);
        if (ec) {
            host().set_error("cannot create " + dir_.string() + ": " + ec.message());
            return PARLEY_ERR;
        }
        std::lock_guard lk(mu_);
        load_all();
        host().logf(PARLEY_LOG_INFO, "store-file: %zu rooms, %zu blobs loaded from %s",
                    history_.size(), blobs_.size(), dir_.c_str());
        auto every = uint64_t(host().config_int("sweep_interval"));
        timer_ = host().table()->timer_start(
            host().ctx(), every, every, [](void* self) { static_cast<FileStore*>(self)->sweep(); },
            this);
        return PARLEY_OK;
    }
    void stop() override {
        if (timer_) host().table()->timer_cancel(host().ctx(), timer_);
        timer_ = 0;
    }
    parley_t_status reload() override {
        std::lock_guard lk(mu_);
        load_config();
        return PARLEY_OK;
    }

    void history_append(std::string_view room, uint64_t seq, std::string_view record,
                        parley_t_store_done_fn fn, void* user) override {
        parley_t_status st = PARLEY_OK;
        {
            std::lock_guard lk(mu_);
            if (record.size() > max_record_ || bytes_ + record.size() > max_bytes_) {
                st = PARLEY_ERR_LIMIT;
            } else if (history_limit_ > 0) {
                Entry e{seq, now_ms() + history_ttl_, std::string(record)};
                std::string buf;
                encode(buf, e);
                auto& r = history_[std::string(room)];
                if (!write_file(room_file(room), buf, true, fsync_)) {
                    host().add(m_errors_);
                    st = PARLEY_ERR_UNAVAILABLE;
                } else {
                    bytes_ += e.record.size();
                    r.entries.push_back(std::move(e));
                    ++r.on_disk;
                    while (r.entries.size() > history_limit_)
                        drop_front(r);
                    // Rewrite the file once it holds mostly trimmed records.
                    if (r.on_disk > 2 * history_limit_ + 16) rewrite_room(room, r);
                }
            }
            publish();
        }
        fn(user, st);
    }

    void history_fetch(std::string_view room, uint32_t max, uint64_t upto, parley_t_history_fn fn,
                       void* user) override {
        std::vector<Entry> copy;
        {
            std::lock_guard lk(mu_);
            auto it = history_.find(std::string(room));
            int64_t now = now_ms();
            if (it != history_.end())
                for (auto& e : it->second.entries)
                    if ((upto == 0 || e.seq <= upto) && e.expires_ms > now) copy.push_back(e);
        }
        if (max && copy.size() > max) copy.erase(copy.begin(), copy.end() - max);
        std::vector<parley_t_history_entry> out;
        for (auto& e : copy)
            out.push_back({e.seq, {e.record.data(), e.record.size()}});
        fn(user, PARLEY_OK, out.data(), out.size());
    }

    void history_clear(std::string_view room, parley_t_store_done_fn fn, void* user) override {
        {
            std::lock_guard lk(mu_);
            auto it = history_.find(std::string(room));
            if (it != history_.end()) {
                while (!it->second.entries.empty())
                    drop_front(it->second);
                history_.erase(it);
            }
            std::error_code ec;
            fs::remove(room_file(room), ec);
            publish();
        }
        fn(user, PARLEY_OK);
    }

    void blob_put(std::string_view recipient, std::string_view data, int64_t expires_at_ms,
                  parley_t_blob_put_fn fn, void* user) override {
        std::string id;
        parley_t_status st = PARLEY_OK;
        {
            std::lock_guard lk(mu_);
            if (data.size() > max_record_ || bytes_ + data.size() > max_bytes_) {
                st = PARLEY_ERR_LIMIT;
            } else {
                std::random_device rd; // the OS's random source: ids must not be guessable
                std::string raw;
                for (int i = 0; i < 4; ++i)
                    put(raw, uint32_t(rd()));
                id = hex(raw);
                Blob b{std::string(recipient), std::string(data), expires_at_ms};
                std::string buf;
                put(buf, b.expires_ms);
                put(buf, uint32_t(b.recipient.size()));
                buf += b.recipient;
                buf += b.data;
                if (!write_file(blob_file(id), buf, false, fsync_)) {
                    host().add(m_errors_);
                    st = PARLEY_ERR_UNAVAILABLE;
                    id.clear();
                } else {
                    bytes_ += b.data.size();
                    blobs_.emplace(id, std::move(b));
                }
            }
            publish();
        }
        fn(user, st, parley_t_bytes{id.data(), id.size()});
    }

    void blob_list(std::string_view recipient, uint32_t offset, uint32_t limit,
                   parley_t_blob_list_fn fn, void* user) override {
        std::vector<std::pair<std::string, Blob>> found;
        {
            std::lock_guard lk(mu_);
            int64_t now = now_ms();
            for (auto& [id, b] : blobs_)
                if (b.recipient == recipient && b.expires_ms > now) found.emplace_back(id, b);
        }
        std::sort(found.begin(), found.end(), [](auto& a, auto& b) {
            return a.second.expires_ms != b.second.expires_ms
                       ? a.second.expires_ms < b.second.expires_ms
                       : a.first < b.first;
        });
        std::vector<parley_t_blob> out;
        for (size_t i = offset; i < found.size() && (limit == 0 || out.size() < limit); ++i)
            out.push_back(view_of(found[i].first, found[i].second));
        fn(user, PARLEY_OK, out.data(), out.size());
    }

    void blob_get(std::string_view id, parley_t_blob_list_fn fn, void* user) override {
        std::string key;
        Blob b;
        bool found = false;
        {
            std::lock_guard lk(mu_);
            auto it = blobs_.find(std::string(id));
            if (it != blobs_.end() && it->second.expires_ms > now_ms()) {
                key = it->first;
                b = it->second;
                found = true;
            }
        }
        if (!found) return fn(user, PARLEY_ERR_NOT_FOUND, nullptr, 0);
        parley_t_blob out = view_of(key, b);
        fn(user, PARLEY_OK, &out, 1);
    }

    void blob_delete(std::string_view id, parley_t_store_done_fn fn, void* user) override {
        parley_t_status st = PARLEY_ERR_NOT_FOUND;
        {
            std::lock_guard lk(mu_);
            auto it = blobs_.find(std::string(id));
            if (it != blobs_.end()) {
                erase_blob(it);
                st = PARLEY_OK;
            }
            publish();
        }
        fn(user, st);
    }

    void sweep() {
        std::lock_guard lk(mu_);
        int64_t now = now_ms();
        for (auto it = history_.begin(); it != history_.end();) {
            auto& r = it->second;
            size_t before = r.entries.size();
            while (!r.entries.empty() && r.entries.front().expires_ms <= now)
                drop_front(r);
            if (r.entries.size() != before) rewrite_room(it->first, r);
            it = r.entries.empty() ? history_.erase(it) : std::next(it);
        }
        for (auto it = blobs_.begin(); it != blobs_.end();)
            it = it->second.expires_ms <= now ? erase_blob(it) : std::next(it);
        publish();
    }

  private:
    struct Entry {
        uint64_t seq;
        int64_t expires_ms;
        std::string record;
    };
    struct Room {
        std::deque<Entry> entries;
        size_t on_disk = 0; // records in the file, trimmed ones included
    };
    struct Blob {
        std::string recipient;
        std::string data;
        int64_t expires_ms = 0;
    };

    void load_config() {
        history_limit_ = size_t(host().config_int("history_limit"));
        history_ttl_ = host().config_int("history_ttl");
        max_record_ = size_t(host().config_int("max_record"));
        max_bytes_ = size_t(host().config_int("max_bytes"));
        fsync_ = host().config_bool("fsync", true);
    }
    fs::path room_file(std::string_view room) const {
        return dir_ / "history" / (hex(room) + ".log");
    }
    fs::path blob_file(std::string_view id) const {
        return dir_ / "blobs" / (std::string(id) + ".blob");
    }

    static void encode(std::string& buf, const Entry& e) {
        put(buf, e.seq);
        put(buf, e.expires_ms);
        put(buf, uint32_t(e.record.size()));
        buf += e.record;
    }
    void drop_front(Room& r) {
        bytes_ -= r.entries.front().record.size();
        r.entries.pop_front();
    }
    // Replaces the room's file with what memory holds (write a temp file, then rename).
    void rewrite_room(std::string_view room, Room& r) {
        auto file = room_file(room);
        if (r.entries.empty()) {
            std::error_code ec;
            fs::remove(file, ec);
            r.on_disk = 0;
            return;
        }
        std::string buf;
        for (auto& e : r.entries)
            encode(buf, e);
        auto tmp = file;
        tmp += ".tmp";
        std::error_code ec;
        if (write_file(tmp, buf, false, fsync_)) fs::rename(tmp, file, ec);
        if (ec) host().add(m_errors_);
        r.on_disk = r.entries.size();
    }
    std::map<std::string, Blob>::iterator erase_blob(std::map<std::string, Blob>::iterator it) {
        bytes_ -= it->second.data.size();
        std::error_code ec;
        fs::remove(blob_file(it->first), ec);
        return blobs_.erase(it);
    }
    // Reads every file back at start; expired and excess records are dropped (and the files
    // compacted). A torn last record (crash mid-write) ends that room's file.
    void load_all() {
        int64_t now = now_ms();
        for (auto& f : fs::directory_iterator(dir_ / "history")) {
            if (f.path().extension() != ".log") continue;
            std::string room = unhex(f.path().stem().string());
            std::string data = slurp(f.path());
            std::string_view b(data);
            Room r;
            for (;;) {
                Entry e;
                uint32_t len;
                if (!get(b, e.seq) || !get(b, e.expires_ms) || !get(b, len) || b.size() < len)
                    break;
                e.record.assign(b.substr(0, len));
                b.remove_prefix(len);
                ++r.on_disk;
                if (e.expires_ms <= now) continue;
                bytes_ += e.record.size();
                r.entries.push_back(std::move(e));
                while (r.entries.size() > history_limit_)
                    drop_front(r);
            }
            if (r.on_disk != r.entries.size()) rewrite_room(room, r);
            if (!r.entries.empty()) history_.emplace(room, std::move(r));
        }
        for (auto& f : fs::directory_iterator(dir_ / "blobs")) {
            if (f.path().extension() != ".blob") continue;
            std::string data = slurp(f.path());
            std::string_view b(data);
            Blob blob;
            uint32_t rlen;
            if (!get(b, blob.expires_ms) || !get(b, rlen) || b.size() < rlen ||
                blob.expires_ms <= now) {
                std::error_code ec;
                fs::remove(f.path(), ec);
                continue;
            }
            blob.recipient.assign(b.substr(0, rlen));
            blob.data.assign(b.substr(rlen));
            bytes_ += blob.data.size();
            blobs_.emplace(f.path().stem().string(), std::move(blob));
        }
        publish();
    }
    static parley_t_blob view_of(const std::string& id, const Blob& b) {
        return parley_t_blob{{id.data(), id.size()},
                             {b.recipient.data(), b.recipient.size()},
                             {b.data.data(), b.data.size()},
                             b.expires_ms};
    }
    void publish() {
        size_t records = 0;
        for (auto& [_, r] : history_)
            records += r.entries.size();
        host().set(m_records_, int64_t(records));
        host().set(m_blobs_, int64_t(blobs_.size()));
        host().set(m_bytes_, int64_t(bytes_));
    }

    std::mutex mu_;
    fs::path dir_;
    std::map<std::string, Room> history_;
    std::map<std::string, Blob> blobs_;
    size_t bytes_ = 0;
    size_t history_limit_ = 10;
    int64_t history_ttl_ = 0;
    size_t max_record_ = 0;
    size_t max_bytes_ = 0;
    bool fsync_ = true;
    uint64_t timer_ = 0;
    parley_t_metric_hptr m_records_, m_blobs_, m_bytes_, m_errors_;
};

} // namespace

PARLEY_PLUGIN(FileStore, "store-file", PARLEY_KIND_STORE, "0.1.0",
              "Room history and blobs in files under the state directory (example).", kConfig)
