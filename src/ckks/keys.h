// Key material. All polynomials are in the NTT domain over the key primes
// q_0..q_L, p_0..p_{K-1} (context.key_limb_count() limbs, [limb][coeff]).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "ring/aligned_memory.h"
#include "ring/random.h"

namespace heinfer::ckks {

class CKKSContext;

/// The ternary secret s, NTT form over all key primes: data[i * n + k]. Client-side
/// only; its memory is wiped (sodium_memzero) on destruction. Save/load: secret_key_io.h.
class SecretKey {
 public:
  SecretKey() = default;
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();
  ring::LimbVector& data() { return data_; }
  const ring::LimbVector& data() const { return data_; }
  const uint64_t* limb(size_t i, size_t n) const { return data_.data() + i * n; }

 private:
  ring::LimbVector data_;
};

/// pk = (b, a) = (-a·s + e, a): data [poly][limb][coeff] over all key primes.
/// When seeded, a is ChaCha20(seed, (PublicKeyMask, 0, limb)) and only b needs storing.
struct PublicKey {
  ring::LimbVector data;
  bool seeded = false;
  ring::Seed seed{};
};

/// A hybrid key-switching key from s' to s (Han & Ki, CT-RSA 2020, section 3):
/// for digit j (limbs D_j = [jα, (j+1)α) of the chain), (b_j, a_j) with
/// b_j = -a_j·s + e_j + P·[Q/Q_j · (Q/Q_j)^-1 mod Q_j]·s', i.e. over q_i ∈ D_j the
/// extra term is (P mod q_i)·s', elsewhere 0.
/// data: [digit][poly][limb][coeff] over all key primes (dnum digits of the top level).
/// When seeded, a_j limb i is ChaCha20(seed, (KeySwitchMask, j, i)).
struct KeySwitchingKey {
  ring::LimbVector data;
  size_t digits = 0;
  bool seeded = false;
  ring::Seed seed{};

  /// Polynomial `poly` (0: b, 1: a) of digit j, limb i (key_limbs = limbs per poly).
  const uint64_t* limb(size_t j, size_t poly, size_t i, size_t key_limbs, size_t n) const {
    return data.data() + ((j * 2 + poly) * key_limbs + i) * n;
  }
};

/// Relinearization key: switches s^2 -> s.
struct RelinKeys {
  KeySwitchingKey key;
};

/// Galois keys: switch σ_g(s) -> s for each element g (odd, < 2N) that was asked for.
struct GaloisKeys {
  std::map<uint32_t, KeySwitchingKey> keys;
  bool has(uint32_t elt) const { return keys.count(elt) != 0; }
};

/// Galois element of a left rotation of the N/2 slots by `step` (negative: right):
/// 5^(step mod N/2) mod 2N.
uint32_t galois_element_for_step(int step, size_t n);
/// Galois element of complex conjugation of the slots: 2N - 1.
inline uint32_t galois_element_conjugate(size_t n) { return static_cast<uint32_t>(2 * n - 1); }

/// Regenerates the uniform parts of seeded keys (used by key generation and loaders).
void expand_public_key_mask(const CKKSContext& context, PublicKey& pk);
void expand_key_switching_mask(const CKKSContext& context, KeySwitchingKey& key);

}  // namespace heinfer::ckks
