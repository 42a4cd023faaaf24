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
};

/// Counts of one call (for the run's statistics).
struct PrivateReluStats {
  int refresh_rounds = 0;
  std::int64_t refreshed_ciphertexts = 0;
  std::int64_t products = 0;  ///< ciphertext products (relinearized)
};

/// y = (x + x·p(x/B))/2 = (B/2)·(u + u·p(u)) with u = x/B, for every ciphertext of `x`
/// (real packing, size 2, one scale and level), p = approximation.sign and
/// B = approximation.bound. u costs one level (a scalar product landing on x's scale);
/// each composition 3 (ckks::evaluate_odd_septic); the final product one, with B/2 in
/// its scale. Before a composition that would leave fewer levels than a refresh needs
/// (ckks::refresh_fits with mask_bits), all the tensor's iterates are refreshed in one
/// round, taken down to that lowest level first (u too, the first time: the final
/// product needs it at the iterate's level);
/// an input below floor + 1 is refreshed first. The outputs are at or above the lowest
/// level that can still be refreshed, at one scale. Throws std::invalid_argument when
/// the parameters cannot hold the normalization, a composition and the final product
/// above that level, and what the round throws.
std::vector<ckks::Ciphertext> private_relu(std::span<const ckks::Ciphertext* const> x,
                                           const plan::ReluApproximation& approximation, const PrivateReluContext& c,
                                           PrivateReluStats* stats = nullptr);

}  // namespace heinfer::runtime
