// The scratch-buffer slots of the scheme layer (key switching, rescale, rotation,
// encryption) over the per-thread, grow-only buffers of ring/scratch.h. Internal to src/ckks.
//
// Each slot is one buffer per thread; a function must not hold a slot while calling
// another function that uses the same slot. OpenMP worker threads have their own.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/scratch.h"

namespace heinfer::ckks::detail {

enum class Scratch : int {
  KsCoeff,      // key switching: input in coefficient form (caller thread)
  KsExtended,   // key switching: inner-product result over q's and p's (caller thread)
  KsDigits,     // key switching: NTT'd digits of one target (worker)
  KsRound,      // key switching: rounding corrections v of multi-prime digits (caller thread)
  ModDownTmp,   // mod-down: one limb (worker)
  GaloisInput,  // rotation: permuted c1 (caller thread)
  GaloisC0,     // rotation in place: permuted c0 (caller thread)
  Tensor,       // multiply_relinearize: c2 (caller thread)
  Rescale,      // rescale: last limbs in coefficient form (caller thread)
  RescaleTmp,   // rescale: one limb (worker)
  Encrypt,      // encryption: extended polynomials (caller thread)
  EncryptLimb,  // encryption: one limb (worker)
  Count
};

/// A buffer of at least `words` 64-bit words for this thread and slot (contents
/// unspecified).
inline uint64_t* scratch(Scratch slot, size_t words) { return ring::detail::scratch(slot, words); }

}  // namespace heinfer::ckks::detail
