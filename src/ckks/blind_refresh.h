// Blind refresh: the secret-key holder brings a ciphertext back to the top level without
// learning its value, and without learning anything of the computation that produced it.
//
//   server: mask_for_refresh(ct)   -> ct + Enc_pk(0) + r      (r kept by the server)
//   client: refresh_at_top_level   -> decrypt to the integer coefficients c = Δ·m + e + r,
//                                     check |c| <= the announced bound, extend c exactly
//                                     to every prime of the chain, encrypt at the top level
//   server: unmask_refreshed       -> subtract r: an encryption of Δ·m + e at the top level
//
// r is a polynomial with independent integer coefficients uniform in [-R, R), R a power
// of two >= 2^h times the bound B on |Δ·m + e| (h: the hiding bits). The client's view
// of each coefficient is c = a + r with |a| <= B: by the smudging lemma (Asharov et al.,
// EUROCRYPT 2012, Lemma 2.1) its distribution is within statistical distance B/(2R) <=
// 2^-(h+1) of r's whatever a is, so the N coefficients of one ciphertext are within
// N·2^-(h+1) of a distribution that depends on nothing but R: the message m and the noise
// e, which depends on the weights (Li and Micciancio, EUROCRYPT 2021, §3), are both
// hidden. The mask lives in the coefficient domain, where message and noise are one
// integer; a mask per slot would leave the noise readable.
//
// Enc_pk(0) re-randomizes the second component: c_1 of a linear combination of the
// client's fresh ciphertexts is the same combination of their c_1, which the client
// knows, so without it the weights are read off c_1 by linear algebra (circuit privacy,
// Gentry's thesis 2009, §21). With it c_1 + u·a + e_1 is an RLWE sample with secret u.
#pragma once

#include <cstdint>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/decryptor.h"
#include "ckks/encryptor.h"
#include "ring/aligned_memory.h"

namespace heinfer::ckks {

/// The server's mask of one ciphertext: r over every limb of the top level, NTT form.
struct RefreshMask {
  ring::LimbVector residues;  ///< [(L + 1) · N] words: r mod q_i, i = 0..L (NTT domain)
  int log2_range = 0;         ///< R = 2^log2_range: r in [-R, R)
};

/// The bits of R for a bound B (>= 1) on |Δ·m + e| and h hiding bits:
/// ceil(log2 B) + h. Throws std::invalid_argument when B is not finite and >= 1 or h < 0.
int refresh_mask_bits(double coefficient_bound, int hiding_bits);

/// The largest |c| the client accepts for a mask of `log2_range` bits: 2R (the mask plus
/// at most R of message and noise).
double refresh_coefficient_limit(int log2_range);

/// Whether level `level` of `context` can carry a mask of `log2_range` bits: q_0···q_level
/// > 8R, so that |c| <= 2R is read without ambiguity, and R < 2^124.
bool refresh_fits(const CKKSContext& context, std::size_t level, int log2_range);

/// Server: re-randomizes `ct` (size 2, NTT form) with `public_key_encryptor` (an
/// encryption of zero at ct's level) and adds a fresh mask r of `log2_range` bits
/// (libsodium CSPRNG, ring::random_seed). Returns r. Throws std::invalid_argument for a
/// ciphertext of size 3 or not in NTT form, or when !refresh_fits at ct's level.
RefreshMask mask_for_refresh(Ciphertext& ct, const Encryptor& public_key_encryptor, int log2_range,
                             const CKKSContext& context);

/// Client: the masked ciphertext decrypted to its integer coefficients c, each checked
/// against |c| <= refresh_coefficient_limit(log2_range) (the announced bound, never one
/// the request carries), extended exactly to every prime of the chain and encrypted
/// there (symmetric, fresh noise) at the same scale. The result is at the top level.
/// Throws std::runtime_error naming the coefficient when one is out of range (a malformed
/// or malicious request; nothing is encrypted), std::invalid_argument for a ciphertext
/// of size 3, not in NTT form, or a level where !refresh_fits.
Ciphertext refresh_at_top_level(const Ciphertext& masked, int log2_range, const Decryptor& decryptor,
                                const Encryptor& secret_key_encryptor, const CKKSContext& context);

/// Server: subtracts the mask from the client's refreshed ciphertext (top level, NTT).
/// Throws std::invalid_argument when `fresh` is not at the top level or not size 2.
void unmask_refreshed(Ciphertext& fresh, const RefreshMask& mask, const CKKSContext& context);

}  // namespace heinfer::ckks
