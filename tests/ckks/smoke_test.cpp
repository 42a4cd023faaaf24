// End-to-end smoke test: encode, encrypt, multiply, relinearize, rescale, rotate, decrypt.
#include <gtest/gtest.h>

#include "test_util.h"

namespace heinfer::ckks::test {

TEST(CkksSmoke, EncryptMultiplyRotateDecrypt) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const double scale = std::ldexp(1.0, 40);
  const auto x = random_reals(n / 2, 1.0, 1);
  Ciphertext c = b.encrypt_real(x, scale, b.ctx->max_level());
  auto d = b.decrypt_real(c);
  EXPECT_LT(max_abs_error(d, x), 1e-6);

  Ciphertext sq;
  b.eval->multiply_relinearize(c, c, b.rk, sq);
  b.eval->rescale_inplace(sq);
  auto d2 = b.decrypt_real(sq);
  std::vector<double> expect(n / 2);
  for (size_t i = 0; i < n / 2; ++i) expect[i] = x[i] * x[i];
  EXPECT_LT(max_abs_error(d2, expect), 1e-5);

  GaloisKeys gk = b.keygen->create_galois_keys({3});
  Ciphertext r;
  b.eval->rotate(c, 3, gk, r);
  auto d3 = b.decrypt_real(r);
  std::vector<double> rot(n / 2);
  for (size_t i = 0; i < n / 2; ++i) rot[i] = x[(i + 3) % (n / 2)];
  EXPECT_LT(max_abs_error(d3, rot), 1e-5);
}

}  // namespace heinfer::ckks::test
