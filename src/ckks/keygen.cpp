#include "ckks/keygen.h"

#include <omp.h>
#include <sodium.h>

#include <set>
#include <stdexcept>

#include "ring/parallel.h"
#include "ring/poly_arith.h"
#include "ring/random.h"

namespace heinfer::ckks {

namespace {

// out = -a·s + e (+ extra) per limb; e is NTT'd here. out/a/s/extra: [limb][coeff].
void rlwe_limb(const CKKSContext& ctx, size_t i, const int8_t* e, const uint64_t* a,
               const uint64_t* s, uint64_t* out) {
  const size_t n = ctx.n();
  const ring::Modulus& q = ctx.modulus(i);
  std::vector<uint64_t> e_ntt(n);
  ring::small_to_limb(e, n, q, e_ntt.data());
  ctx.ntt(i).forward(e_ntt.data());
  ring::multiply_poly(a, s, out, n, q);
  ring::sub_poly(e_ntt.data(), out, out, n, q);
}

}  // namespace

KeyGenerator::KeyGenerator(ContextPtr context) : context_(std::move(context)) {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  std::vector<int8_t> s(n);
  {
    ring::Prng prng(ring::random_seed(), ring::StreamPurpose::Secret);
    ring::sample_ternary(prng, s.data(), n);
  }
  secret_.data().resize(limbs * n);
#pragma omp parallel for if (ring::detail::use_parallel(limbs, n * 16))
  for (size_t i = 0; i < limbs; ++i) {
    uint64_t* dst = secret_.data().data() + i * n;
    ring::small_to_limb(s.data(), n, ctx.modulus(i), dst);
    ctx.ntt(i).forward(dst);
  }
  sodium_memzero(s.data(), s.size());
}

KeyGenerator::KeyGenerator(ContextPtr context, const SecretKey& secret)
    : context_(std::move(context)), secret_(secret) {
  if (secret_.data().size() != context_->key_limb_count() * context_->n()) {
    throw std::invalid_argument("KeyGenerator: secret key does not match the context");
  }
}

PublicKey KeyGenerator::create_public_key() const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  PublicKey pk;
  pk.seeded = true;
  pk.seed = ring::random_seed();
  expand_public_key_mask(ctx, pk);
  std::vector<int8_t> e(n);
  ring::Prng prng(ring::random_seed(), ring::StreamPurpose::Error);
  ring::sample_gaussian(prng, e.data(), n);
#pragma omp parallel for if (ring::detail::use_parallel(limbs, n * 16))
  for (size_t i = 0; i < limbs; ++i) {
    rlwe_limb(ctx, i, e.data(), pk.data.data() + (limbs + i) * n, secret_.limb(i, n),
              pk.data.data() + i * n);
  }
  return pk;
}

KeySwitchingKey KeyGenerator::make_key_switching_key(const uint64_t* new_secret) const {
  const CKKSContext& ctx = *context_;
  if (ctx.special_count() == 0) {
    throw std::invalid_argument("KeyGenerator: these parameters have no special prime, so no key switching "
                                "(relinearization or Galois) keys");
  }
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  const size_t alpha = ctx.special_count(), q_count = ctx.coeff_modulus_count();
  KeySwitchingKey key;
  key.digits = ctx.digit_count(ctx.max_level());
  key.seeded = true;
  key.seed = ring::random_seed();
  expand_key_switching_mask(ctx, key);
  const ring::Seed error_seed = ring::random_seed();
  std::vector<int8_t> errors(key.digits * n);
  for (size_t j = 0; j < key.digits; ++j) {
    ring::Prng prng(error_seed, ring::StreamPurpose::Error, static_cast<uint32_t>(j));
    ring::sample_gaussian(prng, errors.data() + j * n, n);
  }
  const size_t tasks = key.digits * limbs;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n * 16))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t j = t / limbs, i = t % limbs;
    uint64_t* b = key.data.data() + ((j * 2) * limbs + i) * n;
    const uint64_t* a = key.data.data() + ((j * 2 + 1) * limbs + i) * n;
    rlwe_limb(ctx, i, errors.data() + j * n, a, secret_.limb(i, n), b);
    if (i < q_count && i / alpha == j) {  // q_i in digit j: + (P mod q_i) · s'
      const ring::Modulus& q = ctx.modulus(i);
      std::vector<uint64_t> t2(n);
      ring::multiply_scalar_poly(new_secret + i * n, ctx.mod_down().p_mod_q[i], t2.data(), n, q);
      ring::add_poly(b, t2.data(), b, n, q);
    }
  }
  return key;
}

RelinKeys KeyGenerator::create_relin_keys() const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  std::vector<uint64_t> s2(limbs * n);
  for (size_t i = 0; i < limbs; ++i) {
    ring::multiply_poly(secret_.limb(i, n), secret_.limb(i, n), s2.data() + i * n, n,
                        ctx.modulus(i));
  }
  RelinKeys rk;
  rk.key = make_key_switching_key(s2.data());
  sodium_memzero(s2.data(), s2.size() * sizeof(uint64_t));
  return rk;
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int>& steps,
                                            bool conjugation) const {
  const size_t n = context_->n();
  std::vector<uint32_t> elements;
  for (int s : steps) {
    const uint32_t g = galois_element_for_step(s, n);
    if (g != 1) elements.push_back(g);
  }
  if (conjugation) elements.push_back(galois_element_conjugate(n));
  return create_galois_keys_for_elements(elements);
}

GaloisKeys KeyGenerator::create_galois_keys_for_elements(
    const std::vector<uint32_t>& elements) const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  const std::set<uint32_t> unique(elements.begin(), elements.end());
  GaloisKeys gk;
  std::vector<uint64_t> rotated(limbs * n);
  for (uint32_t g : unique) {
    if (g == 1) throw std::invalid_argument("Galois element 1 is the identity");
    const std::vector<uint32_t>& perm = ctx.galois_permutation(g);  // validates g
    for (size_t i = 0; i < limbs; ++i) {
      const uint64_t* s = secret_.limb(i, n);
      uint64_t* r = rotated.data() + i * n;
      for (size_t x = 0; x < n; ++x) r[x] = s[perm[x]];
    }
    gk.keys.emplace(g, make_key_switching_key(rotated.data()));
  }
  sodium_memzero(rotated.data(), rotated.size() * sizeof(uint64_t));
  return gk;
}

}  // namespace heinfer::ckks
