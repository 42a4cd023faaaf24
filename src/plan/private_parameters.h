// The modulus chain of the model-private mode (plan/parameters.h, Privacy::Model), where
// the server evaluates Relu and MaxPool as polynomials (plan/private_approximation.h) and
// the client only refreshes blindly masked ciphertexts (ckks/blind_refresh.h).
//
// The chain: the base primes of q_0 (as in activations mode, sized for the logits the
// client decrypts), then scale-sized primes. The refresh floor is the lowest level whose
// modulus carries a mask of refresh_mask_bits (q_0···q_floor > 8R). The chain has
// floor + max(L, 5) levels, L the deepest linear segment between refreshes (the level
// rules' depth) and 5 what a private Relu needs above the floor (normalization, one
// composition of 3, the final product), at the smallest N whose 128-bit bound admits it
// with one special prime (the masks grow with log2 N). The rest of that bound goes to
// more special primes the size of the largest chain prime, not to more levels: hybrid
// key switching (Han and Ki, CT-RSA 2020, §3) with K special primes cuts a ciphertext
// into ceil(limbs / K) digits, and the compositions relinearize at every product. More
// levels would postpone refreshes, but a refresh costs less than what the extra limbs
// and digits cost every product (docs/performance.md: 0.34 s per Relu with 12 limbs and
// one special prime, 0.24 s with 8 limbs and three).
#pragma once

#include <vector>

#include "model/graph.h"
#include "plan/parameters.h"

namespace heinfer::plan {

/// ceil(log2 of the largest |coefficient| a refreshed ciphertext of `plan` (bounds and
/// scale set) holds): at most Δ × max(the largest approximation bound, 2) (inputs x,
/// iterates in [-1, 1], results at scale ≈ 2Δ/B), × 4 for the noise and the scale's
/// drift from Δ.
int private_coefficient_bits(const model::Graph& g, const Parameters& plan);

/// The lowest level of a chain of prime sizes `coeff_bits` whose modulus exceeds
/// 2^(mask_bits + 3) for certain (a prime of b bits exceeds 2^(b-1)); -1 if none does.
int refresh_floor_level(const std::vector<int>& coeff_bits, int mask_bits);

/// Sets plan.params (N, chain and special primes, key_switching = true) and
/// plan.refresh_mask_bits for the model-private mode from `base` (the primes of q_0),
/// plan.needs and plan.scale_bits (see the file comment). The masks have
/// coefficient_bits + hiding_bits + log2 N bits: the N coefficients of one refresh are
/// then within 2^-(hiding_bits + 1) of uniform together (ckks/blind_refresh.h). Throws
/// std::invalid_argument when no N up to 2^16 is secure for the chain.
void plan_private_chain(Parameters& plan, const std::vector<int>& base, int coefficient_bits, int hiding_bits);

/// Bits of the noise that floods an output before the client decrypts it
/// (ckks/noise_flooding.h): the largest F whose slot error, about
/// max_factor·2^F·sqrt(N)/scale on the true value, stays below 2^-16 of the output's
/// `bound` (|true value| <= bound, true value = factor × decrypted value, factors <=
/// max_factor), and whose modulus of `log2_q` bits still exceeds 2^(F+3); at least 1
/// (re-randomization alone, when the output has no precision to spare).
int output_flood_bits(double scale, double bound, double max_factor, std::size_t n, double log2_q);

}  // namespace heinfer::plan
