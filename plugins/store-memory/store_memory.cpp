// store-memory: the store contract (capped, expiring room history and expiring blobs) in
// process memory. Operations complete inline on the caller's thread, which trivially keeps the
// per-room FIFO order the kernel relies on. Total bytes are bounded; a full store refuses writes
// with PARLEY_ERR_LIMIT instead of growing.
#include <parley/sdk.hpp>

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using parley::sdk::key;
using parley::sdk::key_range;

constexpr parley_t_config_key kConfig[] = {
    key_range("history_limit", PARLEY_CFG_INT, "10", 0, 100000,
              "Messages kept per room (Secure Chat keeps 10, ByteChat 512); 0 keeps none."),
    key_range("history_ttl", PARLEY_CFG_DURATION, "24h", 1000, 365LL * 86400 * 1000,
              "Every history record expires after this; nothing lives forever."),
    key_range("max_bytes", PARLEY_CFG_SIZE, "256M", 1024, int64_t(1) << 40,
              "Bound on stored bytes (history + blobs); writes past it are refused."),
    key_range("max_record", PARLEY_CFG_SIZE, "1M", 16, int64_t(1) << 30,
              "Largest single history record or blob."),
    key_range("sweep_interval", PARLEY_CFG_DURATION, "60s", 100, 86400 * 1000,
              "How often expired records and blobs are removed."),
};

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class MemoryStore final : public parley::sdk::Plugin {
  public:
    explicit MemoryStore(parley::sdk::Host host) : Plugin(host) {
        if (sodium_init() < 0) throw std::runtime_error("libsodium init failed");
        load_config();
        m_bytes_ = host.gauge("parley_store_bytes", "Bytes held by the store.");
        m_records_ = host.gauge("parley_store_records", "History records held.");
        m_blobs_ = host.gauge("parley_store_blobs", "Blobs held.");
        m_full_ =
            host.counter("parley_store_full_total", "Writes refused because the store is full.");
        m_expired_ = host.counter("parley_store_expired_total", "Records and blobs expired.");
    }

    parley_t_status start() override {
        auto interval = uint64_t(host().config_int("sweep_interval"));
        timer_ = host().table()->timer_start(
            host().ctx(), interval, interval,
            [](void* self) { static_cast<MemoryStore*>(self)->sweep(now_ms()); }, this);
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
            if (record.size() > max_record_) {
                st = PARLEY_ERR_LIMIT;
            } else if (history_limit_ == 0) {
                st = PARLEY_OK; // history disabled: acknowledged, nothing kept
            } else if (bytes_ + record.size() > max_bytes_ && !evict_for(record.size())) {
                st = PARLEY_ERR_LIMIT;
                host().add(m_full_);
            } else {
                auto& h = history_[std::string(room)];
                Entry e{seq, std::string(record), now_ms() + history_ttl_};
                // Keep seq order even if appends for one room arrive out of order.
                auto pos = std::upper_bound(h.begin(), h.end(), seq,
                                            [](uint64_t s, const Entry& x) { return s < x.seq; });
                h.insert(pos, std::move(e));
                bytes_ += record.size();
                ++records_;
                while (h.size() > history_limit_)
                    drop_front(h);
            }
            publish_gauges();
        }
        fn(user, st);
    }

    void history_fetch(std::string_view room, uint32_t max, uint64_t upto, parley_t_history_fn fn,
                       void* user) override {
        // Copy out so the callback runs without our lock (it may call back into the store).
        std::vector<std::pair<uint64_t, std::string>> copy;
        {
            std::lock_guard lk(mu_);
            auto it = history_.find(std::string(room));
            int64_t now = now_ms();
            if (it != history_.end())
                for (auto& e : it->second)
                    if ((upto == 0 || e.seq <= upto) && e.expires_ms > now)
                        copy.emplace_back(e.seq, e.record);
        }
        if (max && copy.size() > max) copy.erase(copy.begin(), copy.end() - max);
        std::vector<parley_t_history_entry> out;
        out.reserve(copy.size());
        for (auto& [seq, rec] : copy)
            out.push_back({seq, {rec.data(), rec.size()}});
        fn(user, PARLEY_OK, out.data(), out.size());
    }

    void history_clear(std::string_view room, parley_t_store_done_fn fn, void* user) override {
        {
            std::lock_guard lk(mu_);
            auto it = history_.find(std::string(room));
            if (it != history_.end()) {
                while (!it->second.empty())
                    drop_front(it->second);
                history_.erase(it);
            }
            publish_gauges();
        }
        fn(user, PARLEY_OK);
    }

    void blob_put(std::string_view recipient, std::string_view data, int64_t expires_at_ms,
                  parley_t_blob_put_fn fn, void* user) override {
        std::string id;
        parley_t_status st = PARLEY_OK;
        {
            std::lock_guard lk(mu_);
            if (data.size() > max_record_) {
                st = PARLEY_ERR_LIMIT;
            } else if (bytes_ + data.size() > max_bytes_) {
                st = PARLEY_ERR_LIMIT; // blobs are never evicted early: refuse instead
                host().add(m_full_);
            } else {
                unsigned char raw[16];
                randombytes_buf(raw, sizeof raw);
                char hex[33];
                sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
                id = hex;
                blobs_[id] = Blob{std::string(recipient), std::string(data), expires_at_ms};
                bytes_ += data.size();
            }
            publish_gauges();
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
        std::optional<std::pair<std::string, Blob>> found;
        {
            std::lock_guard lk(mu_);
            auto it = blobs_.find(std::string(id));
            if (it != blobs_.end() && it->second.expires_ms > now_ms()) found.emplace(*it);
        }
        if (!found) {
            fn(user, PARLEY_ERR_NOT_FOUND, nullptr, 0);
            return;
        }
        parley_t_blob b = view_of(found->first, found->second);
        fn(user, PARLEY_OK, &b, 1);
    }

    void blob_delete(std::string_view id, parley_t_store_done_fn fn, void* user) override {
        parley_t_status st = PARLEY_ERR_NOT_FOUND;
        {
            std::lock_guard lk(mu_);
            auto it = blobs_.find(std::string(id));
            if (it != blobs_.end()) {
                bytes_ -= it->second.data.size();
                blobs_.erase(it);
                st = PARLEY_OK;
            }
            publish_gauges();
        }
        fn(user, st);
    }

    void sweep(int64_t now) {
        std::lock_guard lk(mu_);
        int64_t expired = 0;
        for (auto it = history_.begin(); it != history_.end();) {
            auto& h = it->second;
            while (!h.empty() && h.front().expires_ms <= now) {
                drop_front(h);
                ++expired;
            }
            // Records are appended with increasing expiry, so the rest of the deque is newer.
            it = h.empty() ? history_.erase(it) : std::next(it);
        }
        for (auto it = blobs_.begin(); it != blobs_.end();) {
            if (it->second.expires_ms <= now) {
                bytes_ -= it->second.data.size();
                it = blobs_.erase(it);
                ++expired;
            } else {
                ++it;
            }
        }
        host().add(m_expired_, expired);
        publish_gauges();
    }

  private:
    struct Entry {
        uint64_t seq;
        std::string record;
        int64_t expires_ms;
    };
    struct Blob {
        std::string recipient;
        std::string data;
        int64_t expires_ms;
    };

    void load_config() {
        history_limit_ = size_t(host().config_int("history_limit"));
        history_ttl_ = host().config_int("history_ttl");
        max_bytes_ = size_t(host().config_int("max_bytes"));
        max_record_ = size_t(host().config_int("max_record"));
    }
    void drop_front(std::deque<Entry>& h) {
        bytes_ -= h.front().record.size();
        --records_;
        h.pop_front();
    }
    // History is a cache of recent ciphertext: under memory pressure the oldest expiring
    // records of other rooms may go first. Returns true once `need` bytes fit.
    bool evict_for(size_t need) {
        sweep_locked_expired();
        return bytes_ + need <= max_bytes_;
    }
    void sweep_locked_expired() {
        int64_t now = now_ms();
        for (auto& [_, h] : history_)
            while (!h.empty() && h.front().expires_ms <= now)
                drop_front(h);
    }
    static parley_t_blob view_of(const std::string& id, const Blob& b) {
        return parley_t_blob{{id.data(), id.size()},
                             {b.recipient.data(), b.recipient.size()},
                             {b.data.data(), b.data.size()},
                             b.expires_ms};
    }
    void publish_gauges() {
        host().set(m_bytes_, int64_t(bytes_));
        host().set(m_records_, int64_t(records_));
        host().set(m_blobs_, int64_t(blobs_.size()));
    }

    std::mutex mu_;
    std::unordered_map<std::string, std::deque<Entry>> history_;
    std::map<std::string, Blob> blobs_;
    size_t bytes_ = 0;
    size_t records_ = 0;
    size_t history_limit_ = 10;
    int64_t history_ttl_ = 0;
    size_t max_bytes_ = 0;
    size_t max_record_ = 0;
    uint64_t timer_ = 0;
    parley_t_metric_hptr m_bytes_, m_records_, m_blobs_, m_full_, m_expired_;
};

} // namespace

PARLEY_PLUGIN(MemoryStore, "store-memory", PARLEY_KIND_STORE, "0.1.0",
              "Expiring room history and blobs in memory, bounded in bytes.", kConfig)
