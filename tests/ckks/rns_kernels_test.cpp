// The scheme-layer RNS kernels: AVX-512 and portable paths agree bit for bit and match
// a direct reference; whole key switches agree across paths.
#include <gtest/gtest.h>

#include "ckks/cpu_features.h"
#include "ckks/primes.h"
#include "ckks/rns_kernels.h"
#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

// Restores the SIMD setting at scope exit.
struct SimdGuard {
  bool saved = simd_enabled();
  ~SimdGuard() { set_simd_enabled(saved); }
};

int64_t centered(uint64_t v, uint64_t q) {
  return v > q / 2 ? static_cast<int64_t>(v) - static_cast<int64_t>(q) : static_cast<int64_t>(v);
}
uint64_t mod(int64_t v, uint64_t m) {
  const int64_t r = v % static_cast<int64_t>(m);
  return static_cast<uint64_t>(r < 0 ? r + static_cast<int64_t>(m) : r);
}

}  // namespace

TEST(RnsKernels, MatchReferenceOnBothPaths) {
  SimdGuard guard;
  const size_t n = 1000;  // not a multiple of the vector width
  const auto p = generate_ntt_primes({30, 49, 50, 60}, 1024);
  std::mt19937_64 rng(5);
  std::vector<int8_t> e(n);
  for (auto& v : e) v = static_cast<int8_t>(static_cast<int>(rng() % 39) - 19);
  for (bool simd : {false, true}) {
    set_simd_enabled(simd);
    for (uint64_t from : p) {
      for (uint64_t to : p) {
        const Modulus m(to);
        std::vector<uint64_t> in(n), out(n);
        for (auto& v : in) v = rng() % from;
        const uint64_t s = rng() % to;
        detail::reduce_sub_limb(in.data(), from, s, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], sub_mod(in[x] % to, s, to));
        detail::reduce_limb(in.data(), from, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], in[x] % to);
        detail::centered_limb(in.data(), from, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], mod(centered(in[x], from), to)) << from << " " << to;
      }
      std::vector<uint64_t> x(n), y(n);
      for (auto& v : x) v = rng() % from;
      const uint64_t s = rng() % from;
      y = x;
      detail::add_small(y.data(), e.data(), s, from, n);
      for (size_t c = 0; c < n; ++c) ASSERT_EQ(y[c], mod(static_cast<int64_t>((x[c] + s) % from) + e[c], from));
      y = x;
      detail::sub_small(y.data(), e.data(), s, from, n);
      for (size_t c = 0; c < n; ++c) {
        ASSERT_EQ(y[c], mod(static_cast<int64_t>(sub_mod(x[c], s, from)) - e[c], from));
      }
      y = x;
      detail::add_small(y.data(), nullptr, s, from, n);
      for (size_t c = 0; c < n; ++c) ASSERT_EQ(y[c], add_mod(x[c], s, from));
    }
  }
}

TEST(RnsKernels, KeySwitchIsIdenticalOnBothPaths) {
  if (!cpu_has_avx512_ifma()) GTEST_SKIP() << "no AVX-512 IFMA on this CPU: one path only";
  SimdGuard guard;
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2()}) {
    const GaloisKeys gk = b->keygen->create_galois_keys({3});
    Ciphertext c = b->encrypt_real(random_reals(64, 1.0, 1), std::ldexp(1.0, 30), 3), t;
    b->eval->multiply(c, c, t);
    Ciphertext r[2], s[2], q[2];
    for (int simd = 0; simd < 2; ++simd) {
      set_simd_enabled(simd == 1);
      b->eval->relinearize(t, b->rk, r[simd]);
      b->eval->rotate(c, 3, gk, s[simd]);
      b->eval->rescale(r[simd], q[simd]);
    }
    EXPECT_EQ(r[0].data(), r[1].data());
    EXPECT_EQ(s[0].data(), s[1].data());
    EXPECT_EQ(q[0].data(), q[1].data());
  }
}

}  // namespace heinfer::ckks::test
