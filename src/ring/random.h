// Randomness for RNS-CKKS, from libsodium only.
//
//  - Seeds: randombytes_buf (the OS CSPRNG).
//  - Expansion: ChaCha20 (IETF variant, RFC 8439) keyed by a 32-byte seed with a
//    96-bit nonce that separates streams (purpose, index, limb); deterministic, so a
//    uniform polynomial can be regenerated from its seed (seeded ciphertexts/keys).
//  - Uniform mod q: rejection sampling of ceil(log2 q)-bit candidates.
//  - Ternary secret: uniform {-1, 0, 1} by rejection sampling of bytes (< 255, mod 3).
//  - Discrete Gaussian, σ = 3.19, tail-cut at 6σ (|x| <= 19): inversion sampling from
//    a 63-bit cumulative distribution table with a full, branch-free table scan
//    (constant time in the sampled value), as in J. Bos et al., "Frodo: Take off the
//    ring!", ACM CCS 2016, section 6 (and the FrodoKEM specification, 2.2.4).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ring {

/// A 32-byte PRNG seed.
using Seed = std::array<uint8_t, 32>;

/// A fresh seed from the operating system CSPRNG (libsodium randombytes_buf).
Seed random_seed();

/// Stream purposes (the first nonce word), so no two uses of a seed share a stream.
enum class StreamPurpose : uint32_t {
  Secret = 1,          ///< secret key sampling
  Error = 2,           ///< error / ephemeral sampling
  CiphertextMask = 3,  ///< the uniform c1 of a seeded (symmetric) ciphertext
  PublicKeyMask = 4,   ///< the uniform a of a public key
  KeySwitchMask = 5,   ///< the uniform a_j of key-switching key digit j
  SampleInputs = 6,    ///< public, reproducible sample inputs (inspect's calibration; not secret)
  RefreshMask = 7,     ///< the server's uniform masks of a blind refresh (ckks/blind_refresh.h)
};

/// Deterministic byte stream: ChaCha20-IETF(key = seed, nonce = (purpose, a, b)).
/// Not thread-safe (one per thread); cheap to construct.
class Prng {
 public:
  Prng(const Seed& seed, StreamPurpose purpose, uint32_t a = 0, uint32_t b = 0);
  ~Prng();
  Prng(const Prng&) = delete;
  Prng& operator=(const Prng&) = delete;

  void fill(uint8_t* out, size_t len);
  uint64_t next_u64();

 private:
  void refill();

  Seed key_;
  std::array<uint8_t, 12> nonce_{};
  uint32_t counter_ = 0;  // next ChaCha20 block
  size_t pos_ = 0, filled_ = 0;
  alignas(64) uint8_t buffer_[4096];
};

/// out[i] uniform in {-1, 0, 1}.
void sample_ternary(Prng& prng, int8_t* out, size_t n);

/// out[i] from the discrete Gaussian of σ = 3.19 restricted to [-19, 19].
void sample_gaussian(Prng& prng, int8_t* out, size_t n);

/// Gaussian width and tail cut used by sample_gaussian.
inline constexpr double kErrorSigma = 3.19;
inline constexpr int kErrorBound = 19;  // floor(6σ)

/// out[i] uniform in [0, q).
void sample_uniform(Prng& prng, const Modulus& q, uint64_t* out, size_t n);

/// out[i] = x[i] mod q (x small, signed).
void small_to_limb(const int8_t* x, size_t n, const Modulus& q, uint64_t* out);

}  // namespace heinfer::ring
