#include "ckks/blind_refresh.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/plaintext.h"
#include "ring/multiprecision.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"
#include "ring/random.h"

namespace heinfer::ckks {
namespace {

using ring::u128;
__extension__ typedef __int128 i128;

/// x mod q for a signed 128-bit x.
uint64_t reduce_signed(i128 x, const ring::Modulus& q) {
  const u128 magnitude = x < 0 ? -static_cast<u128>(x) : static_cast<u128>(x);
  const uint64_t r = ring::reduce_128(magnitude, q);
  return x < 0 && r != 0 ? q.value - r : r;
}

void check_shape(const Ciphertext& ct, const char* who) {
  if (ct.size() != 2 || !ct.is_ntt_form() || ct.is_compact()) {
    throw std::invalid_argument(std::string(who) + ": needs an expanded ciphertext of size 2 in NTT form");
  }
}

}  // namespace

int refresh_mask_bits(double coefficient_bound, int hiding_bits) {
  if (!std::isfinite(coefficient_bound) || coefficient_bound < 1.0 || hiding_bits < 0) {
    throw std::invalid_argument("refresh_mask_bits: the bound must be finite and >= 1, the hiding bits >= 0");
  }
  return static_cast<int>(std::ceil(std::log2(coefficient_bound))) + hiding_bits;
}

double refresh_coefficient_limit(int log2_range) { return std::ldexp(2.0, log2_range); }

bool refresh_fits(const CKKSContext& context, std::size_t level, int log2_range) {
  return log2_range >= 1 && log2_range < 124 && level <= context.max_level() &&
         context.level_data(level).log2_q > static_cast<double>(log2_range) + 3.0;
}

RefreshMask mask_for_refresh(Ciphertext& ct, const Encryptor& public_key_encryptor, int log2_range,
                             const CKKSContext& context) {
  check_shape(ct, "mask_for_refresh");
  const std::size_t n = context.n(), level = ct.level(), top = context.max_level();
  if (ct.n() != n || !refresh_fits(context, level, log2_range)) {
    throw std::invalid_argument("mask_for_refresh: level " + std::to_string(level) + " (" +
                                std::to_string(static_cast<int>(context.level_data(std::min(level, top)).log2_q)) +
                                " bits) cannot carry a mask of " + std::to_string(log2_range) + " bits");
  }
  // Re-randomize: + Enc_pk(0) at the ciphertext's level.
  Plaintext zero;
  zero.resize(n, level);
  std::fill(zero.data().begin(), zero.data().end(), 0);
  zero.set_scale(ct.scale());
  Ciphertext z;
  public_key_encryptor.encrypt(zero, z);
  for (std::size_t p = 0; p < 2; ++p) {
    for (std::size_t i = 0; i <= level; ++i) {
      ring::add_poly(ct.limb(p, i), z.limb(p, i), ct.limb(p, i), n, context.modulus(i));
    }
  }
  ct.clear_seed();  // c1 is no longer the seed's expansion
  // r uniform in [-2^t, 2^t): t + 1 uniform bits, minus 2^t.
  std::vector<i128> r(n);
  {
    ring::Prng prng(ring::random_seed(), ring::StreamPurpose::RefreshMask);
    const u128 mask_bits = (static_cast<u128>(1) << (log2_range + 1)) - 1;
    const i128 offset = static_cast<i128>(static_cast<u128>(1) << log2_range);
    for (std::size_t k = 0; k < n; ++k) {
      const u128 lo = prng.next_u64();
      const u128 hi = prng.next_u64();
      r[k] = static_cast<i128>((lo | (hi << 64)) & mask_bits) - offset;
    }
  }
  RefreshMask mask;
  mask.log2_range = log2_range;
  mask.residues.resize((top + 1) * n);
#pragma omp parallel for if (ring::detail::use_parallel(top + 1, n * 16))
  for (std::size_t i = 0; i <= top; ++i) {
    uint64_t* limb = mask.residues.data() + i * n;
    for (std::size_t k = 0; k < n; ++k) limb[k] = reduce_signed(r[k], context.modulus(i));
    context.ntt(i).forward(limb);
  }
  for (std::size_t i = 0; i <= level; ++i) {
    ring::add_poly(ct.limb(0, i), mask.residues.data() + i * n, ct.limb(0, i), n, context.modulus(i));
  }
  return mask;
}

Ciphertext refresh_at_top_level(const Ciphertext& masked, int log2_range, const Decryptor& decryptor,
                                const Encryptor& secret_key_encryptor, const CKKSContext& context) {
  check_shape(masked, "refresh_at_top_level");
  const std::size_t n = context.n(), level = masked.level(), top = context.max_level();
  if (masked.n() != n || !refresh_fits(context, level, log2_range)) {
    throw std::invalid_argument("refresh_at_top_level: a ciphertext at level " + std::to_string(level) +
                                " cannot carry a mask of " + std::to_string(log2_range) + " bits");
  }
  Plaintext plain;
  decryptor.decrypt(masked, plain);
  for (std::size_t i = 0; i <= level; ++i) context.ntt(i).inverse(plain.limb(i));
  // c = Σ_i y_i·(Q/q_i) - v·Q with y_i = [x_i (Q/q_i)^-1]_{q_i} and v = round(Σ_i y_i/q_i),
  // computed modulo 2^128 and read as a signed integer (Q = q_0···q_level). Whatever v's
  // rounding, a c that agrees with every residue and has |c| <= limit < Q/2 is the
  // centered representative, so the two checks below are the whole proof.
  const LevelData& ld = context.level_data(level);
  const std::size_t words = ld.crt_words, limbs = level + 1;
  std::vector<double> inv_q(limbs);
  std::vector<u128> punctured_low(limbs);
  for (std::size_t i = 0; i < limbs; ++i) {
    inv_q[i] = 1.0 / static_cast<double>(context.modulus(i).value);
    punctured_low[i] = static_cast<u128>(ld.punctured[i * words]) |
                       (words > 1 ? static_cast<u128>(ld.punctured[i * words + 1]) << 64 : 0);
  }
  const u128 q_low = static_cast<u128>(ld.q_product[0]) | (words > 1 ? static_cast<u128>(ld.q_product[1]) << 64 : 0);
  const u128 limit = static_cast<u128>(1) << (log2_range + 1);
  std::vector<i128> c(n);
  std::size_t bad = n;
#pragma omp parallel for reduction(min : bad) if (ring::detail::use_parallel(n, limbs * 8))
  for (std::size_t k = 0; k < n; ++k) {
    double f = 0.0;
    u128 x = 0;
    for (std::size_t i = 0; i < limbs; ++i) {
      const uint64_t y = ring::mul_mod_shoup(plain.limb(i)[k], ld.inv_punctured[i], ld.inv_punctured_shoup[i],
                                             context.modulus(i).value);
      f += static_cast<double>(y) * inv_q[i];
      x += static_cast<u128>(y) * punctured_low[i];
    }
    x -= static_cast<u128>(static_cast<uint64_t>(std::nearbyint(f))) * q_low;
    const auto v = static_cast<i128>(x);
    bool ok = (v < 0 ? -x : x) <= limit;
    for (std::size_t i = 0; i < limbs && ok; ++i) ok = reduce_signed(v, context.modulus(i)) == plain.limb(i)[k];
    c[k] = v;
    if (!ok) bad = std::min(bad, k);
  }
  if (bad < n) {
    throw std::runtime_error("blind refresh: coefficient " + std::to_string(bad) +
                             " of the decrypted ciphertext exceeds the announced mask bound 2^" +
                             std::to_string(log2_range + 1) + "; nothing was encrypted");
  }
  Plaintext top_plain;
  top_plain.resize(n, top);
  top_plain.set_scale(masked.scale());
#pragma omp parallel for if (ring::detail::use_parallel(top + 1, n * 16))
  for (std::size_t i = 0; i <= top; ++i) {
    uint64_t* limb = top_plain.limb(i);
    for (std::size_t k = 0; k < n; ++k) limb[k] = reduce_signed(c[k], context.modulus(i));
    context.ntt(i).forward(limb);
  }
  Ciphertext fresh;
  secret_key_encryptor.encrypt_symmetric(top_plain, fresh);
  return fresh;
}

void unmask_refreshed(Ciphertext& fresh, const RefreshMask& mask, const CKKSContext& context) {
  check_shape(fresh, "unmask_refreshed");
  const std::size_t n = context.n(), top = context.max_level();
  if (fresh.n() != n || fresh.level() != top || mask.residues.size() != (top + 1) * n) {
    throw std::invalid_argument("unmask_refreshed: the ciphertext is not at the top level of the mask's context");
  }
  for (std::size_t i = 0; i <= top; ++i) {  // c0 only: a seeded c1 stays the seed's
    ring::sub_poly(fresh.limb(0, i), mask.residues.data() + i * n, fresh.limb(0, i), n, context.modulus(i));
  }
}

}  // namespace heinfer::ckks
