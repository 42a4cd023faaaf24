// Shared helpers for the ring-layer tests (modulus, primes, NTT, per-limb kernels).
// Test data only: std::mt19937_64 with fixed seeds.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ring/cpu_features.h"
#include "ring/modulus.h"
#include "ring/primes.h"

namespace heinfer::ring::test {

/// Restores the SIMD path of the process when it goes out of scope.
class SimdGuard {
 public:
  SimdGuard() : saved_(simd_path()) {}
  ~SimdGuard() { set_simd_path(saved_); }
  SimdGuard(const SimdGuard&) = delete;
  SimdGuard& operator=(const SimdGuard&) = delete;

 private:
  SimdPath saved_;
};

/// Every kernel path, and the SIMD ones (each compared with the portable path).
inline constexpr SimdPath kAllPaths[] = {SimdPath::Portable, SimdPath::Avx2, SimdPath::Ifma};
inline constexpr SimdPath kSimdPaths[] = {SimdPath::Avx2, SimdPath::Ifma};

inline std::string path_name(SimdPath path) { return std::string(simd_path_name(path)); }

/// Selects a path; returns false (the caller skips) if this CPU lacks it.
inline bool select_path(SimdPath path) { return set_simd_path(path) == path; }

/// The message of a test skipped for want of a path.
inline std::string missing(SimdPath path) { return "CPU lacks the " + path_name(path) + " path"; }

/// The path a multiplying kernel takes for prime q and length n under `selected`.
inline SimdPath expected_path(SimdPath selected, uint64_t q, size_t n) {
  if (n < 16) return SimdPath::Portable;
  if (selected == SimdPath::Ifma && q < kIfmaModulusBound) return SimdPath::Ifma;
  if (selected == SimdPath::Avx2 && q < kAvx2ModulusBound) return SimdPath::Avx2;
  return SimdPath::Portable;
}

inline std::vector<uint64_t> random_vector(size_t n, uint64_t q, std::mt19937_64& rng) {
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = rng() % q;
  return v;
}

/// Random values with edge values (0, 1, q-1) sprinkled in at fixed positions.
inline std::vector<uint64_t> random_with_edges(size_t n, uint64_t q, std::mt19937_64& rng) {
  std::vector<uint64_t> v = random_vector(n, q, rng);
  for (size_t i = 0; i < n; i += 5) v[i] = q - 1;
  for (size_t i = 1; i < n; i += 7) v[i] = 0;
  for (size_t i = 3; i < n; i += 11) v[i] = 1;
  return v;
}

/// One NTT-friendly prime of `bits` bits for ring degree n (the largest one).
inline uint64_t ntt_prime(int bits, size_t n) { return generate_ntt_primes({bits}, n)[0]; }

/// Reference (a * b) mod q with plain 128-bit arithmetic.
inline uint64_t ref_mul(uint64_t a, uint64_t b, uint64_t q) {
  return static_cast<uint64_t>((static_cast<u128>(a) * b) % q);
}

}  // namespace heinfer::ring::test
