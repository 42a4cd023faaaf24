// Key switching, rotation and rescale give bit-identical ciphertexts on the AVX-512 and the
// portable paths of the ring kernels (kernel-level checks: tests/ring/).
#include <gtest/gtest.h>

#include <cmath>

#include "ring/cpu_features.h"
#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

// Restores the SIMD setting at scope exit.
struct SimdGuard {
  bool saved = ring::simd_enabled();
  ~SimdGuard() { ring::set_simd_enabled(saved); }
};

}  // namespace

TEST(SimdPaths, KeySwitchIsIdenticalOnBothPaths) {
  if (!ring::cpu_has_avx512_ifma()) GTEST_SKIP() << "no AVX-512 IFMA on this CPU: one path only";
  SimdGuard guard;
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2()}) {
    const GaloisKeys gk = b->keygen->create_galois_keys({3});
    Ciphertext c = b->encrypt_real(random_reals(64, 1.0, 1), std::ldexp(1.0, 30), 3), t;
    b->eval->multiply(c, c, t);
    Ciphertext r[2], s[2], q[2];
    for (int simd = 0; simd < 2; ++simd) {
      ring::set_simd_enabled(simd == 1);
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
