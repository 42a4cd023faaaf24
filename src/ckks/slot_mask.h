// Per-slot multiplicative masks that cost no level.
//
// A mask is an integer polynomial P, multiplied into a ciphertext as a plaintext of
// scale 1 (Evaluator::multiply_plain: no rescale, no level, the ciphertext's scale is
// unchanged). Under the canonical embedding it multiplies slot j by μ_j = P(ζ^(5^j))
// (Cheon, Kim, Kim, Song, ASIACRYPT 2017, section 3.2), a different real factor per
// slot: P is drawn as round(IFFT(t)) for target factors t_j = ±2^u_j, then made
// self-adjoint (p_{N-k} = -p_k, p_{N/2} = 0), which makes every μ_j exactly real, and
// the μ_j are computed exactly (double FFT of the integer coefficients) so that whoever
// holds the mask can divide it out. Rounding moves μ_j from t_j by a centred error of
// standard deviation sqrt(N/12) (26 at N = 8192), far below the smallest target 2^9.
//
// Used by client-aided rounds under real packing (one sample per slot): every sample of
// a masked ciphertext is scaled by its own secret factor, so that no ratio between two
// samples can be read from one observation (runtime/client.h).
#pragma once

#include <cstddef>
#include <vector>

#include "ckks/context.h"
#include "ckks/plaintext.h"
#include "ckks/special_fft.h"

namespace heinfer::ckks {

/// A drawn mask: P in the NTT domain over q_0..q_level (scale 1) and its slot factors.
struct SlotMask {
  Plaintext poly;               ///< the integer polynomial P, NTT form, scale 1
  std::vector<double> factors;  ///< N/2 reals: μ_j = P(ζ^(5^j)), 2^(min_bits - 2) <= |μ_j| <= 2^max_bits · kSlotMaskSlack
};

/// Largest |μ| / 2^max_bits a drawn mask may have (the rounding's excess, guaranteed).
inline constexpr double kSlotMaskSlack = 1.02;

/// Draws a mask from the libsodium CSPRNG: |t_j| = 2^u_j with u_j uniform in
/// [min_bits, max_bits), sign uniform when `random_sign` (else +); redrawn until every
/// factor is in the range of SlotMask::factors (with min_bits = 9: a redraw has
/// probability below 10^-15 for N <= 8192 and about 1 % at N = 2^16). Throws std::invalid_argument unless
/// 1 <= min_bits < max_bits <= 40 and level <= L, or when `fft` is not of the context's
/// degree; std::runtime_error after 16 draws outside the range.
SlotMask draw_slot_mask(const CKKSContext& context, const SpecialFFT& fft, std::size_t level, double min_bits,
                        double max_bits, bool random_sign);

}  // namespace heinfer::ckks
