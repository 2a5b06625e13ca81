// Unit tests of store-file on the SDK's FakeHost: records written by one instance are read back
// by a fresh instance on the same directory (a restart), limits hold, blobs round-trip.
#include <parley/sdk.hpp>
#include <parley/sdk_testing.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

extern "C" const parley_t_descriptor* parley_plugin_entry_v0(uint16_t, uint16_t, const char**);

namespace {

namespace fs = std::filesystem;
using parley::sdk::bytes;
using parley::sdk::testing::FakeHost;
using parley::sdk::testing::FakeInstance;

struct Got {
    parley_t_status status = PARLEY_ERR;
    std::vector<std::pair<uint64_t, std::string>> history;
    std::vector<std::string> blobs; // "id recipient data"
    std::string id;
};

void on_done(void* u, parley_t_status s) {
    static_cast<Got*>(u)->status = s;
}
void on_history(void* u, parley_t_status s, const parley_t_history_entry* e, size_t n) {
    auto* g = static_cast<Got*>(u);
    g->status = s;
    for (size_t i = 0; i < n; ++i)
        g->history.emplace_back(e[i].seq, std::string(e[i].record.ptr, e[i].record.len));
}
void on_put(void* u, parley_t_status s, parley_t_bytes id) {
    auto* g = static_cast<Got*>(u);
    g->status = s;
    g->id.assign(id.ptr ? id.ptr : "", id.len);
}
void on_list(void* u, parley_t_status s, const parley_t_blob* b, size_t n) {
    auto* g = static_cast<Got*>(u);
    g->status = s;
    for (size_t i = 0; i < n; ++i)
        g->blobs.push_back(std::string(b[i].id.ptr, b[i].id.len) + " " +
                           std::string(b[i].recipient.ptr, b[i].recipient.len) + " " +
                           std::string(b[i].data.ptr, b[i].data.len));
}

int64_t in_an_hour() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           3600 * 1000;
}

class StoreFile : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("parley-store-file-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // A fresh host + instance on the same state dir: what a parleyd restart sees.
    FakeInstance open(FakeHost& fake, int limit = 3) {
        fake.set_state_dir(dir_.string());
        fake.set_config("history_limit", limit);
        fake.set_config("fsync", false);
        auto inst = fake.load_entry(&parley_plugin_entry_v0, "files");
        EXPECT_EQ(inst.up(), PARLEY_OK) << inst.error();
        return inst;
    }
    Got append(FakeInstance& i, std::string_view room, uint64_t seq, std::string_view rec) {
        Got g;
        i.vtable().history_append(i.handle(), bytes(room), seq, bytes(rec), on_done, &g);
        return g;
    }
    Got fetch(FakeInstance& i, std::string_view room, uint32_t max = 0, uint64_t upto = 0) {
        Got g;
        i.vtable().history_fetch(i.handle(), bytes(room), max, upto, on_history, &g);
        return g;
    }
    fs::path dir_;
};

using H = std::vector<std::pair<uint64_t, std::string>>;

TEST_F(StoreFile, HistorySurvivesARestartAndKeepsTheLimit) {
    {
        FakeHost fake;
        auto s = open(fake);
        for (uint64_t i = 1; i <= 5; ++i)
            ASSERT_EQ(append(s, "room-a", i, "rec" + std::to_string(i)).status, PARLEY_OK);
        ASSERT_EQ(append(s, "room-b", 9, "other").status, PARLEY_OK);
        EXPECT_EQ(fetch(s, "room-a").history, (H{{3, "rec3"}, {4, "rec4"}, {5, "rec5"}}));
        EXPECT_EQ(fetch(s, "room-a", 2).history, (H{{4, "rec4"}, {5, "rec5"}}));
        EXPECT_EQ(fetch(s, "room-a", 0, 4).history, (H{{3, "rec3"}, {4, "rec4"}}));
        EXPECT_EQ(fake.metric("parley_store_file_records"), 4);
    }
    EXPECT_TRUE(fs::exists(dir_ / "files" / "history"));
    FakeHost fake;
    auto s = open(fake);
    EXPECT_EQ(fetch(s, "room-a").history, (H{{3, "rec3"}, {4, "rec4"}, {5, "rec5"}}));
    EXPECT_EQ(fetch(s, "room-b").history, (H{{9, "other"}}));
    Got g;
    s.vtable().history_clear(s.handle(), bytes("room-a"), on_done, &g);
    EXPECT_EQ(g.status, PARLEY_OK);
    EXPECT_TRUE(fetch(s, "room-a").history.empty());
}

TEST_F(StoreFile, ManyAppendsCompactTheFile) {
    FakeHost fake;
    auto s = open(fake, 2);
    for (uint64_t i = 1; i <= 200; ++i)
        ASSERT_EQ(append(s, "r", i, std::string(100, 'x')).status, PARLEY_OK);
    // 2 kept; the file is rewritten before it passes 2 * limit + 16 records.
    size_t total = 0;
    for (auto& f : fs::directory_iterator(dir_ / "files" / "history"))
        total += fs::file_size(f.path());
    EXPECT_LT(total, 25u * (100 + 20));
    EXPECT_EQ(fetch(s, "r").history.size(), 2u);
}

TEST_F(StoreFile, OversizedRecordIsRefused) {
    FakeHost fake;
    fake.set_config("max_record", "16");
    auto s = open(fake);
    EXPECT_EQ(append(s, "r", 1, std::string(17, 'x')).status, PARLEY_ERR_LIMIT);
    EXPECT_TRUE(fetch(s, "r").history.empty());
}

TEST_F(StoreFile, BlobsRoundTripAcrossARestart) {
    std::string id;
    {
        FakeHost fake;
        auto s = open(fake);
        Got put;
        s.vtable().blob_put(s.handle(), bytes("alice"), bytes("sealed"), in_an_hour(), on_put,
                            &put);
        ASSERT_EQ(put.status, PARLEY_OK);
        ASSERT_EQ(put.id.size(), 32u);
        id = put.id;
        Got gone;
        s.vtable().blob_put(s.handle(), bytes("bob"), bytes("x"), in_an_hour(), on_put, &gone);
        Got del;
        s.vtable().blob_delete(s.handle(), bytes(gone.id), on_done, &del);
        EXPECT_EQ(del.status, PARLEY_OK);
    }
    FakeHost fake;
    auto s = open(fake);
    Got list;
    s.vtable().blob_list(s.handle(), bytes("alice"), 0, 10, on_list, &list);
    EXPECT_EQ(list.blobs, std::vector<std::string>{id + " alice sealed"});
    Got get;
    s.vtable().blob_get(s.handle(), bytes(id), on_list, &get);
    EXPECT_EQ(get.status, PARLEY_OK);
    Got bob;
    s.vtable().blob_list(s.handle(), bytes("bob"), 0, 10, on_list, &bob);
    EXPECT_TRUE(bob.blobs.empty());
    Got missing;
    s.vtable().blob_get(s.handle(), bytes("00"), on_list, &missing);
    EXPECT_EQ(missing.status, PARLEY_ERR_NOT_FOUND);
}

} // namespace
