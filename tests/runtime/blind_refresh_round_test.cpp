// A blind refresh round between the server's helper (runtime/blind_refresh_round.h) and
// the in-process client (RoundFunction::BlindRefresh): values come back at the top level,
// the client records only mask-sized numbers, and it refuses requests outside the
// contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ckks/encoder.h"
#include "ckks/evaluator.h"
#include "runtime/blind_refresh_round.h"
#include "runtime/local_client.h"

namespace heinfer::runtime {
namespace {

struct Parties {
  // N = 8192, chain {60, 40, 30, 30, 30} (190 bits), no special prime: 128-bit secure.
  ckks::ContextPtr ctx = ckks::CKKSContext::create(ckks::EncryptionParameters(8192, {60, 40, 30, 30, 30}, {}));
  LocalClient client{ctx, ckks::Packing::Real, 0x1p30};
  ckks::Encryptor server_encryptor{ctx, client.evaluation_keys().public_key};
  ckks::CKKSEncoder encoder{ctx};
  ckks::Evaluator eval{ctx};

  /// Encrypts `values` (the server can: public key) and takes them to level 2 through a
  /// weight w, as a linear layer would.
  ckks::Ciphertext at_level_2(const std::vector<double>& values, double w) {
    ckks::Plaintext p;
    encoder.encode(values, 0x1p30, ctx->max_level(), p);
    ckks::Ciphertext c;
    server_encryptor.encrypt(p, c);
    eval.multiply_scalar_inplace(c, w, 0x1p30);
    eval.rescale_inplace(c);
    eval.multiply_scalar_inplace(c, 1.0, 0x1p30);
    eval.rescale_inplace(c);
    return c;
  }
};

TEST(BlindRefreshRound, ValuesReturnAtTheTopLevelAndTheClientSeesMasks) {
  Parties s;
  std::vector<double> x(4096);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.01 * static_cast<double>(i)) * 3;
  std::vector<ckks::Ciphertext> cts;
  for (double w : {0.5, -1.25, 2.0}) cts.push_back(s.at_level_2(x, w));
  std::vector<const ckks::Ciphertext*> ptrs;
  for (const auto& c : cts) ptrs.push_back(&c);
  s.client.set_recording(true, 4096);
  const std::vector<ckks::Ciphertext> fresh = blind_refresh_round(s.client, ptrs, 77, s.server_encryptor, *s.ctx, 0, "x");
  ASSERT_EQ(fresh.size(), 3u);
  std::vector<const ckks::Ciphertext*> out;
  for (const auto& c : fresh) {
    EXPECT_EQ(c.level(), s.ctx->max_level());
    out.push_back(&c);
  }
  const PlainTensor y = s.client.decrypt(out, {}, {3}, 4096, "x", 100.0);
  double err = 0;
  const double w[] = {0.5, -1.25, 2.0};
  for (std::size_t e = 0; e < 3; ++e) {
    for (std::size_t b = 0; b < 4096; ++b) err = std::max(err, std::fabs(y.element(static_cast<std::int64_t>(e))[b] - w[e] * x[b]));
  }
  EXPECT_LT(err, 5e-4);
  // What the client recorded: every coefficient within the mask range [-R, R), spanning it.
  const std::vector<double>& seen = s.client.observed();
  ASSERT_EQ(seen.size(), 3u * 4096);
  const auto [lo, hi] = std::minmax_element(seen.begin(), seen.end());
  EXPECT_GE(*lo, -1.0 - 1e-9);
  EXPECT_LT(*hi, 1.0 + 1e-9);
  EXPECT_LT(*lo, -0.99);
  EXPECT_GT(*hi, 0.99);
}

TEST(BlindRefreshRound, TheClientRefusesRequestsOutsideTheContract) {
  Parties s;
  const ckks::Ciphertext c = s.at_level_2(std::vector<double>(4096, 1.5), 1.0);
  RoundRequest r;
  r.node = 0;
  r.layer = "x";
  r.function = RoundFunction::BlindRefresh;
  r.windows = {{&c}};
  r.bound = 1000.0;  // not 2^(bits + 1)
  EXPECT_THROW(s.client.round(r), OverflowError);
  // An unmasked ciphertext announced with a 20-bit mask: its coefficients (about 2^30
  // and beyond) exceed 2^21, and nothing comes back.
  r.bound = 0x1p21;
  try {
    s.client.round(r);
    ADD_FAILURE() << "refreshed";
  } catch (const OverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the announced mask bound"), std::string::npos) << e.what();
  }
  r.windows = {{&c, &c}};  // a window of two
  r.bound = 0x1p78;
  EXPECT_THROW(s.client.round(r), OverflowError);
  // The server's side refuses a level that cannot carry the mask.
  ckks::Ciphertext low = c;
  s.eval.mod_switch_to_inplace(low, 0);
  const ckks::Ciphertext* p = &low;
  EXPECT_THROW(blind_refresh_round(s.client, {&p, 1}, 77, s.server_encryptor, *s.ctx, 0, "x"), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer::runtime
