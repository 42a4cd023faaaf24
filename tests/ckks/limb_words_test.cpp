// Ciphertexts at rest in 32-bit words: limbs of primes below 2^32 two coefficients per
// word, bit-exact round trips, and every reader either refuses or unpacks.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cmath>
#include <cstring>
#include <memory_resource>
#include <sstream>

#include "ckks/serialization.h"
#include "test_util.h"

namespace heinfer::ckks {
namespace {

using test::Bundle;

// {40, 30, 30, 30} + {44, 44}: one wide limb (q_0), three narrow ones.
const Bundle& mixed() { return test::bundle_8192_alpha2(); }

size_t narrow_limbs(const CKKSContext& ctx, size_t level) {
  size_t k = 0;
  for (size_t i = 0; i <= level; ++i) k += ctx.modulus(i).value < (uint64_t{1} << 32) ? 1 : 0;
  return k;
}

Ciphertext product(const Bundle& b) {
  const auto v = test::random_reals(b.ctx->n(), 1.0, 3);
  const Ciphertext a = b.encrypt_packed(v, std::ldexp(1.0, 30), b.ctx->max_level());
  Ciphertext m;
  b.eval->multiply(a, a, m);  // size 3, all coefficients of full width
  return m;
}

TEST(LimbWords, PackHalvesNarrowLimbsAndUnpacksBitExact) {
  const Bundle& b = mixed();
  const size_t n = b.ctx->n();
  for (size_t level : {size_t{0}, size_t{1}, b.ctx->max_level()}) {
    Ciphertext c = product(b);
    while (c.level() > level) b.eval->mod_switch_inplace(c);
    const Ciphertext::Storage full = c.data();
    const size_t narrow = narrow_limbs(*b.ctx, level);
    c.pack_words(*b.ctx);
    EXPECT_EQ(c.is_packed(), narrow > 0) << "level " << level;
    EXPECT_EQ(c.data().size(), 3 * (c.limb_count() * n - narrow * n / 2)) << "level " << level;
    if (narrow > 0) {
      EXPECT_EQ(c.storage_bytes(), c.data().size() * 8) << "capacity is given back";
    }
    EXPECT_EQ(c.is_compact(), narrow > 0);
    c.expand(*b.ctx);
    EXPECT_FALSE(c.is_compact());
    EXPECT_EQ(c.data(), full) << "level " << level;
  }
}

TEST(LimbWords, ReadersRefuseOrUnpack) {
  const Bundle& b = mixed();
  const auto v = test::random_reals(b.ctx->n(), 1.0, 5);
  Ciphertext c = b.encrypt_packed(v, std::ldexp(1.0, 30), b.ctx->max_level());
  const std::vector<double> expected = b.decrypt_packed(c);
  std::ostringstream plain_bytes;
  save(c, *b.ctx, plain_bytes);

  Ciphertext packed = c;
  packed.pack_words(*b.ctx);
  ASSERT_TRUE(packed.is_packed());
  Ciphertext out;
  EXPECT_THROW(b.eval->add(packed, packed, out), std::invalid_argument);
  EXPECT_THROW(packed.drop_limbs(1), std::logic_error);
  EXPECT_EQ(b.decrypt_packed(packed), expected);  // the decryptor unpacks a copy
  std::ostringstream packed_bytes;
  save(packed, *b.ctx, packed_bytes);  // the wire form does not depend on the form at rest
  EXPECT_EQ(packed_bytes.str(), plain_bytes.str());
  // A copy keeps the form and the storage id; a new packing gets a new id.
  const Ciphertext copy = packed;
  EXPECT_TRUE(copy.is_packed());
  EXPECT_EQ(copy.storage_id(), packed.storage_id());
  Ciphertext again = c;
  again.pack_words(*b.ctx);
  EXPECT_NE(again.storage_id(), packed.storage_id());
}

TEST(LimbWords, SeededCiphertextDropsC1AndPacks) {
  const Bundle& b = mixed();
  const size_t n = b.ctx->n(), lq = b.ctx->max_level() + 1;
  const auto v = test::random_reals(n, 1.0, 9);
  Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 30), b.ctx->max_level(), p);
  Ciphertext c;
  b.encryptor->encrypt_symmetric(p, c);
  const Ciphertext::Storage full = c.data();
  const size_t narrow = narrow_limbs(*b.ctx, b.ctx->max_level());
  // Either order of dropping c1 and packing gives c0 in 32-bit words.
  Ciphertext a = c, d = c;
  a.compact();
  a.pack_words(*b.ctx);
  d.pack_words(*b.ctx);
  d.compact();
  EXPECT_EQ(a.data(), d.data());
  EXPECT_EQ(a.data().size(), lq * n - narrow * n / 2);
  EXPECT_EQ(a.packed_words(*b.ctx), a.data().size());
  EXPECT_EQ(b.decrypt_packed(a), b.decrypt_packed(c));
  a.expand(*b.ctx);
  EXPECT_EQ(a.data(), full);
}

// Hands out one read-only region (as FileTier::claim hands a resumed run's extent back):
// rebuilding a ciphertext over its own words must neither copy nor write them (a write
// faults).
class ReadOnlyRegion : public std::pmr::memory_resource {
 public:
  explicit ReadOnlyRegion(std::span<const uint64_t> words) : bytes_(words.size_bytes()) {
    at_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::memcpy(at_, words.data(), bytes_);
    ::mprotect(at_, bytes_, PROT_READ);
  }
  ~ReadOnlyRegion() override { ::munmap(at_, bytes_); }
  std::span<const uint64_t> words() const { return {static_cast<const uint64_t*>(at_), bytes_ / sizeof(uint64_t)}; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t) override {
    if (bytes != bytes_) throw std::bad_alloc();
    return at_;
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
  void* at_;
  std::size_t bytes_;
};

TEST(LimbWords, AFormRebuiltOverItsOwnWordsIsNotCopied) {
  const Bundle& b = mixed();
  const Ciphertext c = product(b);
  ReadOnlyRegion region(c.data());
  const Ciphertext r = Ciphertext::from_form(c.form(), region.words(), *b.ctx, &region);
  EXPECT_EQ(r.data().data(), region.words().data());
  EXPECT_EQ(b.decrypt_packed(r), b.decrypt_packed(c));
}

TEST(LimbWords, AStoredFormIsRebuiltFromItsWordsAndChecked) {
  const Bundle& b = mixed();
  const auto v = test::random_reals(b.ctx->n(), 1.0, 11);
  Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 30), b.ctx->max_level(), p);
  Ciphertext c;
  b.encryptor->encrypt_symmetric(p, c);
  c.compact();
  c.pack_words(*b.ctx);
  const Ciphertext::Form f = c.form();
  EXPECT_EQ(Ciphertext::words_of(f, *b.ctx), c.data().size());
  const Ciphertext r = Ciphertext::from_form(f, c.data(), *b.ctx, ring::aligned_resource());
  EXPECT_TRUE(r.c1_dropped() && r.is_packed() && r.is_seeded());
  EXPECT_EQ(r.data(), c.data());
  EXPECT_NE(r.storage_id(), c.storage_id()) << "a rebuilt ciphertext is a new stored form";
  EXPECT_EQ(b.decrypt_packed(r), b.decrypt_packed(c));
  // Forms that do not fit: a word too few, another ring degree, a level beyond the chain,
  // c1 dropped without a seed, packing without a narrow limb, a non-positive scale.
  const std::span<const uint64_t> words(c.data());
  EXPECT_THROW(Ciphertext::from_form(f, words.first(words.size() - 1), *b.ctx, ring::aligned_resource()),
               std::invalid_argument);
  auto bad = [&](auto edit) {
    Ciphertext::Form g = f;
    edit(g);
    return g;
  };
  for (const Ciphertext::Form& g : {bad([](auto& g) { g.n *= 2; }), bad([&](auto& g) { g.level = b.ctx->max_level() + 1; }),
                                    bad([](auto& g) { g.seeded = false; }), bad([](auto& g) { g.size = 4; }),
                                    bad([](auto& g) { g.scale = -1; })}) {
    EXPECT_THROW(Ciphertext::words_of(g, *b.ctx), std::invalid_argument);
  }
  const Bundle& wide = test::bundle_8192();  // every prime above 2^32
  Ciphertext::Form w = f;
  w.level = 0;
  EXPECT_THROW(Ciphertext::words_of(w, *wide.ctx), std::invalid_argument) << "packed, but no narrow limb";
}

TEST(LimbWords, WideOnlyChainIsUnchanged) {
  const Bundle& b = test::bundle_8192();  // every prime above 2^32
  Ciphertext c = product(b);
  const Ciphertext::Storage full = c.data();
  c.pack_words(*b.ctx);
  EXPECT_FALSE(c.is_packed());
  EXPECT_EQ(c.data(), full);
}

}  // namespace
}  // namespace heinfer::ckks
