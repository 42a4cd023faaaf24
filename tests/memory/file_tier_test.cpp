// The named tier file of resumable runs: extents reused at once until a checkpoint
// commits, quarantined after it until the next; data survives the process and is
// claimed back in place; a file of another run, outside extents and overlaps are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>

#include "memory/file_tier.h"

namespace heinfer::memory {
namespace {

namespace fs = std::filesystem;
constexpr std::int64_t kG = FileTier::kGranule;

class FileTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("heinfer_file_tier_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(FileTierTest, ReusesAtOnceBeforeACommitAndQuarantinesAfter) {
  auto t = FileTier::create(dir_ / "t.bin", 0);
  struct stat s {};
  ASSERT_EQ(::stat((dir_ / "t.bin").c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 0777, 0600u);
  EXPECT_EQ(t->id().size(), 32u);
  void* a = t->allocate(3 * kG + 5, 64);
  void* b = t->allocate(kG, 64);
  EXPECT_EQ(t->offset_of(a) % kG, 0);
  EXPECT_EQ(t->offset_of(b), t->offset_of(a) + 4 * kG) << "whole granules, packed";
  t->deallocate(a, 3 * kG + 5, 64);
  EXPECT_EQ(t->quarantined_bytes(), 0);
  void* a2 = t->allocate(4 * kG, 64);
  EXPECT_EQ(a2, a) << "no checkpoint references it yet: reused at once";
  t->commit();  // a checkpoint now references a2 and b
  t->deallocate(a2, 4 * kG, 64);
  EXPECT_EQ(t->quarantined_bytes(), 4 * kG);
  void* c = t->allocate(4 * kG, 64);
  EXPECT_NE(c, a2) << "a committed checkpoint's extent was reused before the next commit";
  t->deallocate(c, 4 * kG, 64);  // allocated after the commit: freed at once
  EXPECT_EQ(t->quarantined_bytes(), 4 * kG);
  t->commit();
  EXPECT_EQ(t->quarantined_bytes(), 0);
  EXPECT_EQ(t->allocate(4 * kG, 64), a2) << "reusable after the next commit (best fit)";
  void* x = t->allocate(2 * kG, 64);
  void* y = t->allocate(2 * kG, 64);
  EXPECT_EQ(t->offset_of(y), t->offset_of(x) + 2 * kG);
  t->deallocate(x, 2 * kG, 64);
  t->deallocate(y, 2 * kG, 64);
  EXPECT_EQ(t->allocate(4 * kG, 64), x) << "freed neighbours coalesce";
}

TEST_F(FileTierTest, DataSurvivesAndIsClaimedBackInPlace) {
  std::string id;
  std::int64_t offset = 0;
  constexpr std::size_t kWords = 3000;
  {
    auto t = FileTier::create(dir_ / "t.bin", 0);
    id = t->id();
    (void)t->allocate(kG, 64);
    auto* w = static_cast<std::uint64_t*>(t->allocate(kWords * 8, 8));
    for (std::size_t i = 0; i < kWords; ++i) w[i] = 0x9e3779b97f4a7c15ull * (i + 1);
    offset = t->offset_of(w);
    t->sync();
  }  // the process "dies": the file stays
  auto t = FileTier::open(dir_ / "t.bin", id, 0);
  auto* w = static_cast<std::uint64_t*>(t->claim(offset, kWords * 8));
  EXPECT_EQ(t->allocate(kWords * 8, 8), w) << "the claimed extent is the next allocation of its size";
  for (std::size_t i = 0; i < kWords; ++i) ASSERT_EQ(w[i], 0x9e3779b97f4a7c15ull * (i + 1)) << i;
  EXPECT_NE(t->allocate(kWords * 8, 8), w) << "a claim serves one allocation";
  t->deallocate(w, kWords * 8, 8);
  EXPECT_EQ(t->quarantined_bytes(), (kWords * 8 + kG - 1) / kG * kG)
      << "a claimed extent belongs to the committed checkpoint";
}

TEST_F(FileTierTest, RefusesBadClaimsAndOtherFiles) {
  std::string id;
  {
    auto t = FileTier::create(dir_ / "t.bin", 0);
    id = t->id();
    (void)t->allocate(10 * kG, 64);
  }
  EXPECT_THROW(FileTier::create(dir_ / "t.bin", 0), std::runtime_error) << "an existing file is not overwritten";
  auto t = FileTier::open(dir_ / "t.bin", id, 0);
  const std::int64_t end = t->file_bytes();
  EXPECT_THROW(t->claim(0, kG), std::runtime_error) << "the header";
  EXPECT_THROW(t->claim(kG + 8, kG), std::runtime_error) << "misaligned";
  EXPECT_THROW(t->claim(end, kG), std::runtime_error) << "beyond the end";
  EXPECT_THROW(t->claim(kG, -1), std::runtime_error) << "negative size";
  EXPECT_THROW(t->claim(std::int64_t{1} << 62, kG), std::runtime_error) << "far beyond the end";
  (void)t->claim(kG, 2 * kG);
  EXPECT_THROW(t->claim(2 * kG, kG), std::runtime_error) << "a claim is pending";
  (void)t->allocate(2 * kG, 64);
  EXPECT_THROW(t->claim(2 * kG, kG), std::runtime_error) << "overlaps the first";
  t.reset();
  std::string other(32, '0');
  try {
    (void)FileTier::open(dir_ / "t.bin", other, 0);
    ADD_FAILURE() << "another identifier was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another run's tier file"), std::string::npos) << e.what();
  }
  std::ofstream(dir_ / "junk.bin") << std::string(2 * kG, 'x');
  EXPECT_THROW(FileTier::open(dir_ / "junk.bin", id, 0), std::runtime_error);
  EXPECT_THROW(FileTier::open(dir_ / "missing.bin", id, 0), std::runtime_error);
}

TEST_F(FileTierTest, TheLimitIsABadAlloc) {
  auto t = FileTier::create(dir_ / "t.bin", 16 * kG);
  void* a = t->allocate(10 * kG, 64);
  EXPECT_THROW((void)t->allocate(10 * kG, 64), std::bad_alloc);
  t->deallocate(a, 10 * kG, 64);
  EXPECT_NO_THROW((void)t->allocate(10 * kG, 64));
}

}  // namespace
}  // namespace heinfer::memory
