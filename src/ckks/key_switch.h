// Hybrid key switching and division by the special modulus P (internal building blocks
// of the evaluator and the encryptor).
//
// Han & Ki, "Better bootstrapping for approximate homomorphic encryption", CT-RSA 2020,
// section 3 (generalising the special-modulus method of Gentry–Halevi–Smart, CRYPTO
// 2012, and its RNS form in Bajard et al., SAC 2016 / Cheon et al., SAC 2018):
//  1. ModUp: cut c (level l) into digits of α = K limbs; extend each digit from its
//     own primes to q_0..q_l, p_0..p_{K-1} by fast base conversion (lazy 128-bit
//     accumulation, one reduction per coefficient); NTT.
//  2. Inner product with the key digits (lazy 128-bit accumulation over digits).
//  3. ModDown: divide by P with rounding (fast base conversion of the p-limbs).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ckks/context.h"
#include "ckks/keys.h"

namespace heinfer::ckks::detail {

/// One polynomial to divide by P.
struct ModDownTarget {
  uint64_t* extended;    ///< in: l+1+K limbs, NTT form (q's then p's); destroyed
  const int8_t* error;   ///< optional small polynomial (coefficient form) added first
  uint64_t* out;         ///< out: l+1 limbs, NTT form
  bool accumulate;       ///< out += result instead of out = result
};

/// out = round((x + e) / P) mod q_0..q_l for each target (parallel over limbs).
void mod_down(const CKKSContext& ctx, size_t level, ModDownTarget* targets, size_t count);

/// (out0, out1) (+)= key-switch of c (level l, NTT form, l+1 limbs): the pair decrypts
/// under s to approximately c · s', where `key` switches s' -> s. accumulate0/1 select
/// out += result or out = result per output. c must not alias out0 or out1.
void key_switch(const CKKSContext& ctx, size_t level, const uint64_t* c,
                const KeySwitchingKey& key, uint64_t* out0, bool accumulate0, uint64_t* out1,
                bool accumulate1);

}  // namespace heinfer::ckks::detail
