// Negacyclic number-theoretic transform over Z_q[X]/(X^n + 1).
//
// Forward: Cooley-Tukey butterflies with powers of a primitive 2n-th root ψ in
// bit-reversed order; inverse: Gentleman-Sande. Harvey's lazy butterflies keep
// intermediate values in [0, 4q) and reduce only at the end (D. Harvey, "Faster
// arithmetic for number-theoretic transforms", J. Symb. Comp. 60, 2014, alg. 4);
// negacyclic merging of the ψ twist as in T. Pöppelmann, T. Oder, T. Güneysu,
// "High-performance ideal lattice-based cryptography on 8-bit ATxmega
// microcontrollers", LATINCRYPT 2015, alg. 1-2.
//
// AVX-512 IFMA path (ntt_avx512.cpp; q < 2^50, n >= 16): the same butterflies with 52-bit
// Shoup constants floor(w·2^52/q) (vpmadd52luq/huq), values in [0, 4q) ⊂ [0, 2^52);
// radix-2/4/8 register passes, the last five forward (first five inverse) stages fused on
// 64 coefficients with in-register shuffles for distances 4, 2, 1, the 1/n factor merged
// into the last inverse stage. Vectorization strategy after Intel HEXL (F. Boemer et al.,
// "Intel HEXL: Accelerating Homomorphic Encryption with Intel AVX512-IFMA52", WAHC 2021).
//
// AVX2 + FMA path (ntt_avx2.cpp; q < 2^49, n >= 16): residues held exactly in doubles, lazily
// reduced in a signed representation below 2^50, products exact by FMA (J. van der Hoeven,
// G. Lecerf, G. Quintin, "Modular SIMD arithmetic in Mathemagix", ACM TOMS 2016); the
// stages of distance 2 and 1 fused in registers, the conversions fused into the first and
// last passes.
//
// Ordering (every path: scalar, AVX2, AVX-512 IFMA): after forward(), slot j holds
// the evaluation a(ψ^(2·bitrev(j, log2 n) + 1)) — "bit-reversed evaluation order".
// Inputs must be in [0, q); outputs are in [0, q).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/cpu_features.h"
#include "ring/modulus.h"

namespace heinfer::ring {

/// Precomputed twiddle factors for one prime. Immutable after construction; share freely.
class NTTTables {
 public:
  /// n: power of two in [8, 2^17]; q: prime ≡ 1 (mod 2n), q < 2^61.
  /// Throws std::invalid_argument otherwise.
  NTTTables(size_t n, const Modulus& q);

  size_t n() const { return n_; }
  int log_n() const { return log_n_; }
  const Modulus& modulus() const { return q_; }
  /// The primitive 2n-th root ψ used (the smallest one, so tables are deterministic).
  uint64_t root() const { return root_; }

  /// In-place forward transform of n coefficients in [0, q). Runs the kernel of path()
  /// (AVX-512 IFMA, AVX2 or forward_scalar()); the results are identical.
  void forward(uint64_t* a) const;
  /// In-place inverse transform (includes the 1/n factor); inputs and outputs in [0, q).
  /// Dispatches like forward().
  void inverse(uint64_t* a) const;

  /// Portable scalar implementations (always available; used for testing both paths).
  void forward_scalar(uint64_t* a) const;
  void inverse_scalar(uint64_t* a) const;

  // Twiddles, index k holds ψ^(bitrev(k)) (forward) / ψ^(-bitrev(k)) (inverse), with
  // their Shoup constants floor(w·2^64/q). Exposed for the SIMD kernels.
  const std::vector<uint64_t>& root_powers() const { return root_powers_; }
  const std::vector<uint64_t>& root_powers_shoup() const { return root_powers_shoup_; }
  const std::vector<uint64_t>& inv_root_powers() const { return inv_root_powers_; }
  const std::vector<uint64_t>& inv_root_powers_shoup() const { return inv_root_powers_shoup_; }
  uint64_t inv_n() const { return inv_n_; }
  uint64_t inv_n_shoup() const { return inv_n_shoup_; }

  /// True if forward()/inverse() run the AVX-512 IFMA kernels for these tables right now:
  /// q < 2^50, n >= 16, and use_ifma(q) (CPU support, not disabled; cpu_features.h).
  bool uses_ifma() const;
  /// True if forward()/inverse() run the AVX2 kernels: q < 2^49, n >= 16, use_avx2(q).
  bool uses_avx2() const;
  /// The path forward()/inverse() take right now.
  SimdPath path() const;

 private:
  size_t n_;
  int log_n_;
  Modulus q_;
  uint64_t root_;
  std::vector<uint64_t> root_powers_, root_powers_shoup_;
  std::vector<uint64_t> inv_root_powers_, inv_root_powers_shoup_;
  uint64_t inv_n_, inv_n_shoup_;

  // IFMA path tables (built only when q < 2^50, n >= 16 and the CPU has AVX-512 IFMA):
  // 52-bit Shoup constants floor(w·2^52/q) of the twiddles, and the twiddles of the stages
  // t = 4 and t = 2 expanded to the vector-lane layout of ntt_avx512.cpp.
  std::vector<uint64_t> ifma_;  // one allocation, see ntt.cpp for the offsets
  // AVX2 path tables (built only when q < 2^49, n >= 16 and the CPU has AVX2 + FMA): the
  // twiddles and their quotients fl(w/q) as doubles, and the stages that must reduce.
  std::vector<double> avx2_;
  uint32_t avx2_forward_reduce_ = 0, avx2_inverse_reduce_ = 0;
};

/// Reverses the low `bits` bits of x.
inline uint32_t bit_reverse(uint32_t x, int bits) {
  uint32_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

}  // namespace heinfer::ring
