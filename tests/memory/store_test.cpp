// memory::CiphertextStore and memory::SecondaryTier: budgets, placement by next use,
// prefetch, compaction of seeded ciphertexts on demotion, 32-bit limb words, accounting, and that the tier's
// pages are not anonymous memory.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "../ckks/test_util.h"
#include "memory/ciphertext_store.h"
#include "memory/memory_monitor.h"
#include "memory/secondary_tier.h"
#include "ring/aligned_memory.h"

namespace heinfer::memory {
namespace {

namespace fs = std::filesystem;
using Ptr = CiphertextStore::Ptr;

/// A scratch directory for the tier, removed at the end.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("heinfer_store_" + std::to_string(::getpid()) + "_" +
                                               std::to_string(reinterpret_cast<std::uintptr_t>(this)));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), {})); }
};

/// A ciphertext-shaped object of n coefficients per limb with a recognisable pattern.
Ptr pattern_ct(std::size_t n, std::size_t level, std::uint64_t tag) {
  auto c = std::make_shared<ckks::Ciphertext>();
  c->resize(n, 2, level);
  for (std::size_t i = 0; i < c->data().size(); ++i) c->data()[i] = tag * 1000003 + i;
  return c;
}

bool has_pattern(const ckks::Ciphertext& c, std::uint64_t tag) {
  for (std::size_t i = 0; i < c.data().size(); ++i) {
    if (c.data()[i] != tag * 1000003 + i) return false;
  }
  return true;
}

constexpr std::size_t kN = 1024, kLevel = 1;
constexpr std::int64_t kBytes = 2 * 2 * 1024 * 8;  // 2 polynomials x 2 limbs x N x 8 B

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

TEST(CiphertextStore, DramOnlyAccountsAndReleases) {
  CiphertextStore store({});
  const auto g = store.open_group(1);
  std::vector<Ptr> cts;
  for (int i = 0; i < 5; ++i) cts.push_back(pattern_ct(kN, kLevel, static_cast<std::uint64_t>(i)));
  cts.push_back(nullptr);  // exact zeros stay null
  store.adopt(cts, iota(6), g);
  EXPECT_EQ(store.dram().bytes, 5 * kBytes);
  EXPECT_EQ(store.live_ciphertexts(), 5);
  EXPECT_EQ(cts[5], nullptr);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(has_pattern(*cts[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(i)));
  Ptr shared = cts[2];
  cts.clear();
  EXPECT_EQ(store.dram().bytes, kBytes);  // one still referenced
  EXPECT_EQ(store.live_ciphertexts(), 1);
  shared.reset();
  EXPECT_EQ(store.dram().bytes, 0);
  EXPECT_EQ(store.dram().peak_bytes, 5 * kBytes);
  EXPECT_EQ(store.dram().bytes_written, 5 * kBytes);
}

TEST(CiphertextStore, DramOnlyBudgetIsAClearError) {
  StoreOptions o;
  o.dram_budget = 3 * kBytes;
  CiphertextStore store(o);
  const auto g = store.open_group(1);
  std::vector<Ptr> cts;
  for (int i = 0; i < 4; ++i) cts.push_back(pattern_ct(kN, kLevel, 7));
  try {
    store.adopt(cts, iota(4), g);
    FAIL() << "expected BudgetExceeded";
  } catch (const BudgetExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("the DRAM budget of 96.00 KiB is exceeded"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--pmem-dir"), std::string::npos) << e.what();
  }
  EXPECT_LE(store.dram().bytes, 3 * kBytes);
}

TEST(CiphertextStore, TieredRequiresDirectoryAndBudget) {
  StoreOptions o;
  o.policy = Placement::Tiered;
  o.dram_budget = kBytes;
  EXPECT_THROW(CiphertextStore{o}, std::invalid_argument);
  o.pmem_dir = "/nonexistent/heinfer-tier";
  EXPECT_THROW(CiphertextStore{o}, std::runtime_error);
  TempDir dir;
  o.pmem_dir = dir.path;
  o.dram_budget = 0;
  EXPECT_THROW(CiphertextStore{o}, std::invalid_argument);
}

TEST(CiphertextStore, TieredPlacesByNextUseAndPrefetches) {
  TempDir dir;
  StoreOptions o;
  o.policy = Placement::Tiered;
  o.dram_budget = 4 * kBytes;
  o.pmem_dir = dir.path;
  CiphertextStore store(o);
  const auto cold = store.open_group(10), hot = store.open_group(5);
  std::vector<Ptr> a, b;
  for (int i = 0; i < 4; ++i) a.push_back(pattern_ct(kN, kLevel, static_cast<std::uint64_t>(100 + i)));
  for (int i = 0; i < 3; ++i) b.push_back(pattern_ct(kN, kLevel, static_cast<std::uint64_t>(200 + i)));
  store.adopt(a, iota(4), cold);
  EXPECT_EQ(store.dram().bytes, 4 * kBytes);
  EXPECT_EQ(store.pmem().bytes, 0);
  // The hot group displaces the cold one (read later) from DRAM.
  store.adopt(b, iota(3), hot);
  EXPECT_EQ(store.dram().bytes, 4 * kBytes);
  EXPECT_EQ(store.pmem().bytes, 3 * kBytes);
  EXPECT_EQ(store.pmem().bytes_written, 3 * kBytes);
  int in_dram_a = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(has_pattern(*a[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(100 + i)));
    in_dram_a += a[static_cast<std::size_t>(i)]->resource() == ring::aligned_resource();
  }
  EXPECT_EQ(in_dram_a, 1);
  for (const auto& c : b) EXPECT_EQ(c->resource(), ring::aligned_resource());
  // A colder newcomer goes straight to the tier: nothing resident is colder.
  const auto coldest = store.open_group(50);
  std::vector<Ptr> c{pattern_ct(kN, kLevel, 300)};
  store.adopt(c, iota(1), coldest);
  EXPECT_NE(c[0]->resource(), ring::aligned_resource());
  EXPECT_EQ(store.dram().bytes, 4 * kBytes);
  // Prefetch never displaces data: with DRAM full, `cold` is read in place.
  const CiphertextStore::GroupId reading[] = {cold};
  store.prefetch(reading);
  EXPECT_EQ(store.pmem().bytes, 4 * kBytes);
  EXPECT_EQ(store.pmem().bytes_read, 3 * kBytes);
  // Once `hot` is released, prefetch brings `cold` back into the freed DRAM.
  b.clear();
  EXPECT_EQ(store.dram().bytes, kBytes);
  store.prefetch(reading);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a[static_cast<std::size_t>(i)]->resource(), ring::aligned_resource()) << i;
    EXPECT_TRUE(has_pattern(*a[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(100 + i)));
  }
  EXPECT_EQ(store.dram().bytes, 4 * kBytes);
  EXPECT_EQ(store.pmem().bytes, kBytes);
  EXPECT_EQ(store.pmem().bytes_read, 6 * kBytes);
  EXPECT_LE(store.dram().peak_bytes, 4 * kBytes);
  a.clear();
  b.clear();
  c.clear();
  EXPECT_EQ(store.dram().bytes, 0);
  EXPECT_EQ(store.pmem().bytes, 0);
  EXPECT_EQ(store.live_ciphertexts(), 0);
  EXPECT_EQ(dir.entries(), 0u) << "the tier file must have no name";
}

TEST(CiphertextStore, PrefetchMembersMovesOnlyWhatABandReads) {
  TempDir dir;
  StoreOptions o;
  o.policy = Placement::Tiered;
  o.dram_budget = 3 * kBytes;
  o.pmem_dir = dir.path;
  CiphertextStore store(o);
  const auto cold = store.open_group(10), hot = store.open_group(5);
  std::vector<Ptr> a, b;
  for (int i = 0; i < 4; ++i) a.push_back(pattern_ct(kN, kLevel, static_cast<std::uint64_t>(400 + i)));
  for (int i = 0; i < 3; ++i) b.push_back(pattern_ct(kN, kLevel, static_cast<std::uint64_t>(500 + i)));
  store.adopt(a, iota(4), cold);
  store.adopt(b, iota(3), hot);  // `cold` goes to the tier
  ASSERT_EQ(store.pmem().bytes, 4 * kBytes);
  // DRAM full: the band's two members (one listed twice) are read in place, the others
  // are not counted.
  Ptr foreign = pattern_ct(kN, kLevel, 600), none;
  std::vector<const Ptr*> band{&a[1], &a[2], &a[1], &foreign, &none};
  store.prefetch_members(band);
  EXPECT_EQ(store.pmem().bytes_read, 2 * kBytes);
  EXPECT_EQ(store.pmem().bytes, 4 * kBytes);
  // With room for one: the first of the band moves in, the second is read in place.
  b.pop_back();
  store.prefetch_members(band);
  EXPECT_EQ(store.pmem().bytes_read, 4 * kBytes);
  EXPECT_EQ(store.dram().bytes, 3 * kBytes);
  EXPECT_EQ(store.pmem().bytes, 3 * kBytes);
  int in_dram = 0;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(has_pattern(*a[static_cast<std::size_t>(i)], static_cast<std::uint64_t>(400 + i)));
    in_dram += a[static_cast<std::size_t>(i)]->resource() == ring::aligned_resource();
  }
  EXPECT_EQ(in_dram, 1);
  EXPECT_TRUE(a[1]->resource() == ring::aligned_resource() || a[2]->resource() == ring::aligned_resource());
  a.clear();
  b.clear();
  EXPECT_EQ(store.live_ciphertexts(), 0);
}

TEST(CiphertextStore, SeededCiphertextsAreCompactedOnDemotion) {
  const auto& b = ckks::test::bundle_8192();
  TempDir dir;
  StoreOptions o;
  o.policy = Placement::Tiered;
  const std::int64_t full = 2 * 4 * 8192 * 8;  // level 3: 4 limbs
  o.dram_budget = full;
  o.pmem_dir = dir.path;
  CiphertextStore store(o);
  std::vector<double> v(8192);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.01 * static_cast<double>(i));
  ckks::Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 40), 3, p);
  auto seeded = std::make_shared<ckks::Ciphertext>();
  b.encryptor->encrypt_symmetric(p, *seeded);
  ASSERT_TRUE(seeded->is_seeded());
  seeded->expand(*b.ctx);
  const auto g_seeded = store.open_group(9), g_hot = store.open_group(2);
  std::vector<Ptr> s{seeded}, h{pattern_ct(8192, 3, 1)};
  seeded.reset();
  store.adopt(s, iota(1), g_seeded);
  store.adopt(h, iota(1), g_hot);  // demotes the seeded one, compacted: half the bytes
  EXPECT_TRUE(s[0]->is_compact());
  EXPECT_EQ(store.pmem().bytes, full / 2);
  // Read back after the other group is gone: moved to DRAM, still compact, and it
  // decrypts correctly once c1 is regenerated from the seed.
  h.clear();
  const CiphertextStore::GroupId reading[] = {g_seeded};
  store.prefetch(reading);
  EXPECT_TRUE(s[0]->is_compact());
  EXPECT_EQ(s[0]->resource(), ring::aligned_resource());
  EXPECT_EQ(store.dram().bytes, full / 2);
  ckks::Ciphertext expanded = *s[0];
  expanded.expand(*b.ctx);
  const auto out = b.decrypt_packed(expanded);
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(out[i], v[i], 1e-6) << i;
}

TEST(CiphertextStore, LevelCapStoresAtTheLowestNeededLevel) {
  const auto& b = ckks::test::bundle_8192();
  CiphertextStore store(StoreOptions{});
  std::vector<double> v(8192);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::cos(0.02 * static_cast<double>(i));
  ckks::Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 40), 3, p);
  auto seeded = std::make_shared<ckks::Ciphertext>();
  b.encryptor->encrypt_symmetric(p, *seeded);
  ASSERT_TRUE(seeded->is_seeded());
  seeded->compact();
  auto plain = pattern_ct(8192, 3, 7);
  const auto capped = store.open_group(1, 1), uncapped = store.open_group(1);
  std::vector<Ptr> a{seeded, plain}, c{pattern_ct(8192, 3, 8)};
  seeded.reset();
  plain.reset();
  store.adopt(a, iota(2), capped);
  store.adopt(c, iota(1), uncapped);
  EXPECT_EQ(a[0]->level(), 1u);
  EXPECT_EQ(a[1]->level(), 1u);
  EXPECT_EQ(c[0]->level(), 3u);
  // Compact (1 polynomial) + expanded (2) at 2 limbs, and the uncapped one at 4 limbs.
  EXPECT_EQ(store.dram().bytes, (1 + 2) * 2 * 8192 * 8 + 2 * 4 * 8192 * 8);
  EXPECT_EQ(a[1]->data().capacity(), a[1]->data().size()) << "the dropped limbs' memory was kept";
  // The first limbs are unchanged, and the seeded one still decrypts: c1 is regenerated
  // from the seed at the lower level (modulus switching in the NTT domain).
  const auto ref = pattern_ct(8192, 3, 7);
  for (std::size_t i = 0; i < 2 * 8192; ++i) ASSERT_EQ(a[1]->data()[i], ref->data()[i]) << i;
  for (std::size_t i = 0; i < 2 * 8192; ++i) ASSERT_EQ(a[1]->data()[2 * 8192 + i], ref->data()[4 * 8192 + i]) << i;
  ckks::Ciphertext expanded = *a[0];
  expanded.expand(*b.ctx);
  const auto out = b.decrypt_packed(expanded);
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(out[i], v[i], 1e-6) << i;
}

TEST(CiphertextStore, AdoptGivesBackCapacityBeyondTheLimbs) {
  // A ciphertext rescaled in place keeps the dropped limb's memory: the store must hold
  // (and count) only its limbs, so that resident memory follows the DRAM budget.
  const auto& b = ckks::test::bundle_8192();
  CiphertextStore store(StoreOptions{});
  auto ct = std::make_shared<ckks::Ciphertext>(*pattern_ct(8192, 3, 9));
  b.eval->rescale_inplace(*ct);
  ASSERT_EQ(ct->level(), 2u);
  ASSERT_GT(ct->data().capacity(), ct->data().size());
  const std::vector<std::uint64_t> before(ct->data().begin(), ct->data().end());
  std::vector<Ptr> a{ct};
  ct.reset();
  store.adopt(a, iota(1), store.open_group(1));
  EXPECT_EQ(a[0]->storage_bytes(), 2u * 3 * 8192 * 8);
  EXPECT_EQ(store.dram().bytes, static_cast<std::int64_t>(a[0]->storage_bytes()));
  EXPECT_TRUE(std::equal(before.begin(), before.end(), a[0]->data().begin(), a[0]->data().end()));
}

TEST(CiphertextStore, ExpandGrowsInDramThenInTheTier) {
  const auto& b = ckks::test::bundle_8192();
  TempDir dir;
  StoreOptions o;
  o.policy = Placement::Tiered;
  const std::int64_t half = 4 * 8192 * 8;  // one polynomial at level 3
  o.dram_budget = 3 * half;                // room for two compact ones + one expansion
  o.pmem_dir = dir.path;
  CiphertextStore store(o);
  std::vector<double> v(8192);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::cos(0.003 * static_cast<double>(i));
  ckks::Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 40), 3, p);
  std::vector<Ptr> cts(2);
  for (auto& c : cts) {
    auto e = std::make_shared<ckks::Ciphertext>();
    b.encryptor->encrypt_symmetric(p, *e);
    e->compact();
    c = e;
  }
  const auto g = store.open_group(1);
  store.adopt(cts, iota(2), g);
  EXPECT_EQ(store.dram().bytes, 2 * half);
  const CiphertextStore::GroupId reading[] = {g};
  store.expand(reading, *b.ctx);
  // The first grows in DRAM; the second no longer fits: it moves to the tier and grows there.
  EXPECT_FALSE(cts[0]->is_compact());
  EXPECT_FALSE(cts[1]->is_compact());
  EXPECT_EQ(cts[0]->resource(), ring::aligned_resource());
  EXPECT_NE(cts[1]->resource(), ring::aligned_resource());
  EXPECT_EQ(store.dram().bytes, 2 * half);
  EXPECT_EQ(store.pmem().bytes, 2 * half);
  for (const auto& c : cts) {
    const auto out = b.decrypt_packed(*c);
    for (std::size_t i = 0; i < v.size(); i += 97) ASSERT_NEAR(out[i], v[i], 1e-6) << i;
  }
  cts.clear();
  EXPECT_EQ(store.dram().bytes, 0);
  EXPECT_EQ(store.pmem().bytes, 0);
}

TEST(CiphertextStore, PacksNarrowLimbsIntoWordsAndAccountsForThem) {
  // {40, 30, 30, 30}: at level 3 one wide limb and three narrow ones, so a stored
  // ciphertext holds (8 + 3 * 4) / (4 * 8) = 5/8 of its bytes.
  const auto& b = ckks::test::bundle_8192_alpha2();
  TempDir dir;
  StoreOptions o;
  o.policy = Placement::Tiered;
  const std::int64_t full = 2 * 4 * 8192 * 8, packed = full * 5 / 8;
  o.dram_budget = full;
  o.pmem_dir = dir.path;
  CiphertextStore store(o);
  store.pack_words(b.ctx);
  EXPECT_TRUE(store.packs_words());
  std::vector<double> v(8192);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.007 * static_cast<double>(i));
  ckks::Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 30), 3, p);
  std::vector<Ptr> cts(2);
  for (auto& c : cts) {
    auto e = std::make_shared<ckks::Ciphertext>();
    b.encryptor->encrypt(p, *e);  // public-key encryption: not seeded, c1 stays
    c = e;
  }
  const std::vector<std::uint64_t> before(cts[1]->data().begin(), cts[1]->data().end());
  const auto cold = store.open_group(9), hot = store.open_group(2);
  store.adopt(cts, std::vector<std::int64_t>{0}, cold);
  EXPECT_TRUE(cts[0]->is_packed());
  EXPECT_EQ(store.dram().bytes, packed);
  // The second one does not fit beside the first: the colder one is demoted, packed.
  store.adopt(cts, std::vector<std::int64_t>{1}, hot);
  EXPECT_TRUE(cts[1]->is_packed());
  EXPECT_NE(cts[0]->resource(), ring::aligned_resource());
  EXPECT_EQ(store.dram().bytes, packed);
  EXPECT_EQ(store.pmem().bytes, packed);
  EXPECT_EQ(store.pmem().bytes_written, packed);
  // Expansion in place grows each by the unpacked difference: the hot one in DRAM while
  // the budget allows (it does: full), the cold one in the tier.
  const CiphertextStore::GroupId both[] = {cold, hot};
  store.expand(both, *b.ctx);
  EXPECT_FALSE(cts[0]->is_compact());
  EXPECT_FALSE(cts[1]->is_compact());
  EXPECT_EQ(store.dram().bytes, full);
  EXPECT_EQ(store.pmem().bytes, full);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), cts[1]->data().begin(), cts[1]->data().end()));
  for (const auto& c : cts) {
    const auto out = b.decrypt_packed(*c);
    for (std::size_t i = 0; i < v.size(); i += 61) ASSERT_NEAR(out[i], v[i], 1e-5) << i;
  }
  cts.clear();
  EXPECT_EQ(store.dram().bytes, 0);
  EXPECT_EQ(store.pmem().bytes, 0);
}

TEST(SecondaryTier, PagesAreNotAnonymousMemory) {
  TempDir dir;
  SecondaryTier tier(dir.path);
  const std::int64_t before = rss_anon_bytes();
  std::vector<std::pmr::vector<std::uint64_t>> blocks;
  for (int i = 0; i < 32; ++i) {  // 32 x 8 MiB, touched
    blocks.emplace_back(std::size_t{1} << 20, static_cast<std::uint64_t>(i), &tier);
  }
  EXPECT_EQ(tier.bytes(), std::int64_t{32} << 23);
  const std::int64_t after = rss_anon_bytes();
  EXPECT_GT(before, 0);
  EXPECT_LT(after - before, std::int64_t{64} << 20) << "tier pages counted as anonymous memory";
  for (int i = 0; i < 32; ++i) EXPECT_EQ(blocks[static_cast<std::size_t>(i)][12345], static_cast<std::uint64_t>(i));
  blocks.clear();
  EXPECT_EQ(tier.bytes(), 0);
  EXPECT_EQ(dir.entries(), 0u);
}

TEST(SecondaryTier, FullTierThrowsBadAlloc) {
  TempDir dir;
  SecondaryTier tier(dir.path, std::int64_t{64} << 20);  // memkind's minimum is 16 MiB
  std::vector<std::pmr::vector<std::uint64_t>> blocks;
  EXPECT_THROW(
      {
        for (int i = 0; i < 64; ++i) blocks.emplace_back(std::size_t{1} << 20, 0, &tier);
      },
      std::bad_alloc);
}

}  // namespace
}  // namespace heinfer::memory
