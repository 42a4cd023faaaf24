// Key switching, rotation and rescale give bit-identical ciphertexts on every path of the
// ring kernels: AVX-512 IFMA, AVX2 and portable (kernel-level checks: tests/ring/).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ring/cpu_features.h"
#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

// Restores the SIMD path at scope exit.
struct SimdGuard {
  ring::SimdPath saved = ring::simd_path();
  ~SimdGuard() { ring::set_simd_path(saved); }
};

}  // namespace

class SimdPaths : public ::testing::TestWithParam<ring::SimdPath> {};

TEST_P(SimdPaths, KeySwitchIsIdenticalToPortable) {
  SimdGuard guard;
  if (ring::set_simd_path(GetParam()) != GetParam()) {
    GTEST_SKIP() << "CPU lacks the " << ring::simd_path_name(GetParam()) << " path";
  }
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2()}) {
    const GaloisKeys gk = b->keygen->create_galois_keys({3});
    Ciphertext c = b->encrypt_real(random_reals(64, 1.0, 1), std::ldexp(1.0, 30), 3), t;
    b->eval->multiply(c, c, t);
    Ciphertext r[2], s[2], q[2];
    for (int simd = 0; simd < 2; ++simd) {
      ring::set_simd_path(simd == 1 ? GetParam() : ring::SimdPath::Portable);
      b->eval->relinearize(t, b->rk, r[simd]);
      b->eval->rotate(c, 3, gk, s[simd]);
      b->eval->rescale(r[simd], q[simd]);
    }
    EXPECT_EQ(r[0].data(), r[1].data());
    EXPECT_EQ(s[0].data(), s[1].data());
    EXPECT_EQ(q[0].data(), q[1].data());
  }
}

INSTANTIATE_TEST_SUITE_P(Ckks, SimdPaths, ::testing::Values(ring::SimdPath::Avx2, ring::SimdPath::Ifma),
                         [](const auto& info) { return std::string(ring::simd_path_name(info.param)); });

}  // namespace heinfer::ckks::test
