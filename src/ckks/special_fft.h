// The "special FFT" of CKKS: evaluation of a polynomial at the primitive 2N-th roots
// of unity ζ^(5^j), j = 0..N/2-1 (the canonical embedding restricted to one root of
// each conjugate pair, ordered by powers of 5 so that slot rotations are Galois
// automorphisms). J. H. Cheon, K. Han, A. Kim, M. Kim, Y. Song, "Bootstrapping for
// approximate homomorphic encryption", EUROCRYPT 2018 / "A full RNS variant of
// approximate homomorphic encryption", SAC 2018 (the variant in HEAAN), and
// Cheon, Kim, Kim, Song, "Homomorphic encryption for arithmetic of approximate
// numbers", ASIACRYPT 2017 (the embedding). Complex doubles, O(N log N).
#pragma once

#include <complex>
#include <cstddef>
#include <vector>

namespace heinfer::ckks {

class SpecialFFT {
 public:
  /// n: ring degree N (power of two >= 4); transforms have N/2 points.
  explicit SpecialFFT(size_t n);

  size_t slots() const { return slots_; }
  /// In place: u[0..N/2) -> z_j = Σ_k u_k ζ^(5^j · k) (decode direction; with
  /// u_k = m_k + i·m_{k+N/2} this is m(ζ^(5^j)) for the real polynomial m).
  void forward(std::complex<double>* u) const;
  /// In place: the exact inverse of forward (encode direction), including 1/(N/2).
  void inverse(std::complex<double>* z) const;

 private:
  void bit_reverse_permute(std::complex<double>* a) const;
  size_t n_, slots_;
  int log_slots_;
  std::vector<std::complex<double>> twiddles_;  // per stage len: len/2 roots, offset len/2-1
  std::vector<uint32_t> bitrev_;
};

}  // namespace heinfer::ckks
