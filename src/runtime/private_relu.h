// Relu evaluated on the server for the model-private mode: the composite polynomial of
// plan/sign_approximation.h on ciphertexts (ckks/odd_polynomial.h), with blind refresh
// rounds (runtime/blind_refresh_round.h) wherever the levels run out. The client only
// refreshes masked ciphertexts; it never sees a value.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keys.h"
#include "plan/private_schedule.h"
#include "plan/sign_approximation.h"
#include "runtime/client.h"

namespace heinfer::runtime {

/// What a private Relu needs of the server's session.
struct PrivateReluContext {
  const ckks::Evaluator* evaluator = nullptr;
  const ckks::RelinKeys* relin_keys = nullptr;
  const ckks::Encryptor* public_key_encryptor = nullptr;  ///< the client's public key
  Client* client = nullptr;
  int mask_bits = 0;  ///< log2 R of every refresh (ckks::refresh_mask_bits)
  std::int64_t node = -1;
  std::string layer;
  /// The scale u = x/B (and a max's half-sum) land on; 0: the input's. The compositions
  /// need a scale near Δ: a smaller one (a max's output, at about 2Δ/B) loses bits at
  /// every product.
  double scale = 0;
  /// The level of every refresh (a plan's EncryptedPlan::refresh_floor); -1: the lowest
  /// level that carries the mask (refresh_floor).
  int floor = -1;
};

/// Counts of one call (for the run's statistics).
struct PrivateReluStats {
  int refresh_rounds = 0;
  std::int64_t refreshed_ciphertexts = 0;
  std::int64_t products = 0;  ///< ciphertext products (relinearized)
};

/// The refresh floor: the lowest level of `context` whose modulus carries a mask of
/// `mask_bits` (ckks::refresh_fits). Throws std::invalid_argument when no level does.
std::size_t refresh_floor(const ckks::CKKSContext& context, int mask_bits);

/// y = Relu(f·x + t) = (B/2)·(u + u·p(u)) with u = (f·x + t)/B (at c.scale), for every
/// ciphertext of `x` (real packing, size 2, one scale and level), its pending factor f
/// (`factors`: empty, all 1; else one per ciphertext, the true value being f·x) and its
/// offset t (`offsets`: empty, all 0; else one per ciphertext), p = approximation.sign and
/// B = approximation.bound. u costs one level (a scalar product landing on x's scale);
/// each composition 3 (ckks::evaluate_odd_septic); the final product one, with B/2 in
/// its scale. Before a composition that would leave fewer levels than a refresh needs
/// (ckks::refresh_fits with mask_bits), all the tensor's iterates are refreshed in one
/// round, taken down to that lowest level first (u too, the first time: the final
/// product needs it at the iterate's level);
/// an input below floor + 1 is refreshed first (the walk: plan::private_level_walk). The outputs are at or above the lowest
/// level that can still be refreshed, at one scale. Throws std::invalid_argument when
/// the parameters cannot hold the normalization, a composition and the final product
/// above that level, and what the round throws.
std::vector<ckks::Ciphertext> private_relu(std::span<const ckks::Ciphertext* const> x,
                                           const plan::ReluApproximation& approximation, const PrivateReluContext& c,
                                           PrivateReluStats* stats = nullptr, std::span<const double> factors = {},
                                           std::span<const double> offsets = {});

/// max(f_i·a_i, g_i·b_i) for every i as g·b + Relu(f·a - g·b) = (f·a + g·b)/2 +
/// (B/2)·u·p(u) with u = (f·a - g·b)/B (B = approximation.bound: a bound on the
/// differences), evaluated as private_relu does, the half-sum riding along in its
/// refreshes (`fa`, `fb`: the pending factors, empty for all 1). a and b: real packing,
/// size 2, all at one level and scale. The outputs are as private_relu's. Throws as
/// private_relu, and std::invalid_argument when the lists differ in length.
std::vector<ckks::Ciphertext> private_max(std::span<const ckks::Ciphertext* const> a,
                                          std::span<const ckks::Ciphertext* const> b,
                                          const plan::ReluApproximation& approximation, const PrivateReluContext& c,
                                          PrivateReluStats* stats = nullptr, std::span<const double> fa = {},
                                          std::span<const double> fb = {});

}  // namespace heinfer::runtime
