// CKKSContext: validated, immutable RNS-CKKS parameters with all precomputation
// (NTT tables per prime, per-level rescale / key-switching / CRT constants, the
// parameter fingerprint). Shared as std::shared_ptr<const CKKSContext>.
//
// Prime indexing: 0..L are the ciphertext primes q_0..q_L (a ciphertext at level l
// uses q_0..q_l, l + 1 "limbs"); L+1..L+K are the special primes p_0..p_{K-1} of
// hybrid key switching (Han & Ki, CT-RSA 2020, section 3): the chain is cut into
// dnum = ceil((L+1)/α) digits of α = K consecutive primes each. The key-switching noise
// is about max_j Q_Dj / P · σ·√(N·dnum): choose P = p_0···p_{K-1} at least as large as
// every digit product (with one special prime: p_0 >= every q_i). K = 0 is allowed: no
// key switching (no relinearization or Galois key can be made) and log2(QP) = log2(Q).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckks/encryption_params.h"
#include "ring/modulus.h"
#include "ring/ntt.h"

namespace heinfer::ckks {

/// SHA-256 of the canonical encoding of N and all primes (see CKKSContext::create).
using Fingerprint = std::array<uint8_t, 32>;

/// One key-switching digit at one level: limbs [first, first + count). The digit value
/// is used as its centered representative in (-Q_D/2, Q_D/2] (a non-centered one adds a
/// coherent error of mean Q_D/2 · Σ_k X^k · e / P). When count > 1, base conversion
/// (Han & Ki section 3, mod-up) with the exact rounding correction of Halevi, Polyakov,
/// Shoup (CT-RSA 2019, section 2.2): y_i = x_i · [(Q_D/q_i)^-1]_{q_i},
/// v = round(Σ_i y_i / q_i), x mod t = Σ_i y_i · [Q_D/q_i]_t - v · [Q_D]_t.
struct DigitData {
  size_t first = 0, count = 0;
  std::vector<uint64_t> inv_punctured, inv_punctured_shoup;  // [count]
  std::vector<uint64_t> punctured_mod_target;                // [count][targets]
  std::vector<double> inv_q;                                 // [count] 1 / q_i
  std::vector<uint64_t> neg_qd_mod_target;                   // [targets] -Q_D mod t
};

/// Precomputation for ciphertexts at level l (limbs q_0..q_l).
struct LevelData {
  size_t level = 0;
  double log2_q = 0;  ///< log2(q_0 ··· q_l)
  /// Rescale by q_l, for i < l: q_l^-1 mod q_i (+ Shoup) and floor(q_l/2) mod q_i.
  std::vector<uint64_t> inv_q_last, inv_q_last_shoup, half_q_last_mod;
  /// Key-switching digits; targets are q_0..q_l then p_0..p_{K-1}.
  std::vector<DigitData> digits;
  /// Exact CRT (decode): words = l + 2; Q, floor(Q/2), Q/q_i ([l+1][words]) and
  /// [(Q/q_i)^-1]_{q_i} (+ Shoup).
  size_t crt_words = 0;
  std::vector<uint64_t> q_product, half_q, punctured;
  std::vector<uint64_t> inv_punctured, inv_punctured_shoup;
};

/// Constants for dividing by P = p_0 ··· p_{K-1} with rounding (the mod-down of key
/// switching and of public-key encryption): base conversion P -> q_i, exact thanks to
/// the floating-point correction v = floor(Σ_k y_k / p_k) (Halevi–Polyakov–Shoup).
struct ModDownData {
  std::vector<uint64_t> inv_p_mod_q, inv_p_mod_q_shoup;  ///< [L+1] P^-1 mod q_i
  std::vector<uint64_t> p_mod_q;                         ///< [L+1] P mod q_i
  std::vector<uint64_t> half_p_mod_q;                    ///< [L+1] floor(P/2) mod q_i
  std::vector<uint64_t> half_p_mod_p;                    ///< [K]   floor(P/2) mod p_k
  std::vector<uint64_t> inv_p_hat, inv_p_hat_shoup;      ///< [K] (P/p_k)^-1 mod p_k
  std::vector<uint64_t> p_hat_mod_q;                     ///< [K][L+1] (P/p_k) mod q_i
  std::vector<double> inv_p;                             ///< [K] 1 / p_k
};

class CKKSContext {
 public:
  /// Validates and precomputes. Throws std::invalid_argument when: N is not a power of
  /// two in [2^11, 2^16]; there is no ciphertext prime; more than
  /// 64 special or 256 chain primes; a prime is not prime, >= 2^60, not ≡ 1 (mod 2N),
  /// or repeated; or the 128-bit security check fails (security.h; message names N,
  /// log2(QP) and the limit). With SecurityLevel::None a warning goes to stderr.
  ///
  /// Fingerprint: SHA-256 (libsodium crypto_hash_sha256) of the bytes
  /// "heinfer-ckks-params-v1" || u64 N || u32 (L+1) || q_0..q_L as u64 || u32 K ||
  /// p_0..p_{K-1} as u64, all little-endian.
  static std::shared_ptr<const CKKSContext> create(const EncryptionParameters& parms);

  size_t n() const { return n_; }
  int log_n() const { return log_n_; }
  /// L: the top level (fresh ciphertexts); a ciphertext at level l has l + 1 limbs.
  size_t max_level() const { return coeff_count_ - 1; }
  size_t coeff_modulus_count() const { return coeff_count_; }  ///< L + 1
  size_t special_count() const { return special_count_; }      ///< K (= α)
  size_t key_limb_count() const { return coeff_count_ + special_count_; }
  /// Digits at level l: ceil((l + 1) / K).
  size_t digit_count(size_t level) const { return levels_.at(level).digits.size(); }

  /// Prime i (q's first, then p's) and its NTT tables.
  const ring::Modulus& modulus(size_t i) const { return moduli_[i]; }
  const std::vector<ring::Modulus>& moduli() const { return moduli_; }
  const ring::NTTTables& ntt(size_t i) const { return ntt_[i]; }
  const LevelData& level_data(size_t level) const { return levels_.at(level); }
  const ModDownData& mod_down() const { return mod_down_; }

  const Fingerprint& fingerprint() const { return fingerprint_; }
  /// log2 of the product of all primes (QP).
  double log2_qp() const { return log2_qp_; }
  SecurityLevel security_level() const { return security_; }
  /// The parameters with explicit primes (chain, then special).
  const EncryptionParameters& parameters() const { return parms_; }

  /// X^{N/2} in the NTT domain of q_i: slots [0, N/2) hold I_i = ψ_i^{N/2} (a square
  /// root of -1), slots [N/2, N) hold -I_i (bit-reversed evaluation order, ntt.h).
  uint64_t imag_unit(size_t i) const { return imag_unit_[i]; }

  /// Index map of the automorphism X -> X^elt in the NTT domain (bit-reversed order):
  /// out[j] = in[perm[j]]. elt odd in [1, 2N). Computed once per element and cached
  /// (thread-safe). Throws std::invalid_argument for an invalid element.
  const std::vector<uint32_t>& galois_permutation(uint32_t elt) const;

  /// One-line summary: N, L+1 chain primes with bit sizes, K special, log2(QP), security.
  std::string describe() const;

  CKKSContext(const CKKSContext&) = delete;
  CKKSContext& operator=(const CKKSContext&) = delete;

 private:
  explicit CKKSContext(const EncryptionParameters& parms);
  void build_levels();
  void build_mod_down();

  EncryptionParameters parms_;
  size_t n_ = 0;
  int log_n_ = 0;
  size_t coeff_count_ = 0, special_count_ = 0;
  SecurityLevel security_ = SecurityLevel::TC128;
  std::vector<ring::Modulus> moduli_;
  std::vector<ring::NTTTables> ntt_;
  std::vector<LevelData> levels_;
  ModDownData mod_down_;
  std::vector<uint64_t> imag_unit_;
  Fingerprint fingerprint_{};
  double log2_qp_ = 0;

  mutable std::mutex galois_mutex_;
  mutable std::map<uint32_t, std::unique_ptr<const std::vector<uint32_t>>> galois_cache_;
};

using ContextPtr = std::shared_ptr<const CKKSContext>;

/// The fingerprint of parameters N, chain primes q and special primes p (the encoding
/// documented at CKKSContext::create).
Fingerprint parameter_fingerprint(size_t n, const std::vector<uint64_t>& q,
                                  const std::vector<uint64_t>& p);

}  // namespace heinfer::ckks
