// Relu evaluated on the server with blind refreshes (runtime/private_relu.h) against the
// exact Relu and against the composite in double.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ckks/encoder.h"
#include "ckks/evaluator.h"
#include "runtime/local_client.h"
#include "runtime/private_relu.h"

namespace heinfer::runtime {
namespace {

TEST(PrivateRelu, MatchesTheApproximationWithRefreshesWhereLevelsRunOut) {
  // N = 4096, insecure (tests only): chain {60, 40, 30 x 7} + special {60}. A 77-bit mask
  // fits level 1 (100 bits): compositions run 8 -> 5 -> 2, then a refresh, and so on.
  const auto ctx = ckks::CKKSContext::create(
      ckks::EncryptionParameters(4096, {60, 40, 30, 30, 30, 30, 30, 30, 30}, {60}, ckks::SecurityLevel::None));
  LocalClient client(ctx, ckks::Packing::Real, 0x1p30);
  const EvaluationKeys& keys = client.evaluation_keys();
  const ckks::Encryptor pk(ctx, keys.public_key);
  const ckks::Evaluator ev(ctx);
  const ckks::CKKSEncoder enc(ctx);
  const double bound = 8.0;
  const plan::ReluApproximation r = plan::choose_relu_approximation(bound, 0x1p-7);
  ASSERT_EQ(r.sign.compositions(), 5);
  std::vector<std::vector<double>> xs(3, std::vector<double>(2048));
  std::vector<ckks::Ciphertext> cts(3);
  for (std::size_t e = 0; e < 3; ++e) {
    for (std::size_t b = 0; b < 2048; ++b) xs[e][b] = bound * std::sin(0.37 * static_cast<double>(b + 700 * e));
    ckks::Plaintext p;
    enc.encode(xs[e], 0x1p30, ctx->max_level() - 2, p);  // as a linear layer leaves it
    pk.encrypt(p, cts[e]);
  }
  std::vector<const ckks::Ciphertext*> ptrs{&cts[0], &cts[1], &cts[2]};
  PrivateReluContext c{&ev, &keys.relin, &pk, &client, 77, 0, "relu"};
  PrivateReluStats stats;
  client.set_recording(true, 4096);
  const std::vector<ckks::Ciphertext> y = private_relu(ptrs, r, c, &stats);
  EXPECT_GE(stats.refresh_rounds, 2);
  EXPECT_EQ(stats.products, 3 * (5 * 5 + 1));
  std::vector<const ckks::Ciphertext*> out;
  for (const auto& v : y) {
    EXPECT_GE(v.level(), 1u);
    out.push_back(&v);
  }
  const PlainTensor got = client.decrypt(out, {}, {3}, 2048, "relu", 100.0);
  double err_exact = 0, err_poly = 0;
  for (std::size_t e = 0; e < 3; ++e) {
    for (std::size_t b = 0; b < 2048; ++b) {
      const double v = got.element(static_cast<std::int64_t>(e))[b], x = xs[e][b];
      err_exact = std::max(err_exact, std::fabs(v - std::max(0.0, x)));
      err_poly = std::max(err_poly, std::fabs(v - r(x)));
    }
  }
  EXPECT_LE(err_exact, r.max_abs_error + 1e-2);  // the approximation's bound, plus CKKS noise
  EXPECT_LT(err_poly, 1e-2);                     // CKKS noise through 5 compositions
  // The client saw every refreshed ciphertext once (4,096 recorded coefficients each).
  EXPECT_EQ(client.observed().size(), static_cast<std::size_t>(stats.refreshed_ciphertexts) * 4096);
  // All the client decrypted were masked coefficients in [-R, R).
  for (double v : client.observed()) ASSERT_LT(std::fabs(v), 1.0 + 1e-9);
  // Inputs at two levels are refused before any work (the loops assume one level).
  ckks::Ciphertext lower = cts[1];
  ev.mod_switch_inplace(lower);
  const std::vector<const ckks::Ciphertext*> mixed{&cts[0], &lower};
  EXPECT_THROW(private_relu(mixed, r, c), std::invalid_argument);
  std::printf("private Relu: 3 ciphertexts, %d refresh rounds (%lld ciphertexts), %lld products; "
              "max error %.2e vs exact (bound %.2e), %.2e vs the composite in double\n",
              stats.refresh_rounds, static_cast<long long>(stats.refreshed_ciphertexts),
              static_cast<long long>(stats.products), err_exact, r.max_abs_error, err_poly);
}

}  // namespace
}  // namespace heinfer::runtime
