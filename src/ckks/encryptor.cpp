#include "ckks/encryptor.h"

#include <omp.h>

#include <stdexcept>
#include <vector>

#include "ckks/key_switch.h"
#include "ckks/scratch.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"
#include "ring/random.h"

namespace heinfer::ckks {

Encryptor::Encryptor(ContextPtr context, const PublicKey& public_key)
    : context_(std::move(context)), public_key_(public_key) {
  if (public_key_->data.size() != 2 * context_->key_limb_count() * context_->n()) {
    throw std::invalid_argument("Encryptor: public key does not match the context");
  }
}

Encryptor::Encryptor(ContextPtr context, const SecretKey& secret_key)
    : context_(std::move(context)), secret_key_(secret_key) {
  if (secret_key_->data().size() != context_->key_limb_count() * context_->n()) {
    throw std::invalid_argument("Encryptor: secret key does not match the context");
  }
}

Encryptor::Encryptor(ContextPtr context, const PublicKey& public_key,
                     const SecretKey& secret_key)
    : Encryptor(context, public_key) {
  secret_key_ = secret_key;
  if (secret_key_->data().size() != context_->key_limb_count() * context_->n()) {
    throw std::invalid_argument("Encryptor: secret key does not match the context");
  }
}

void Encryptor::check_plain(const Plaintext& plain) const {
  if (plain.n() != context_->n() || plain.level() > context_->max_level() ||
      plain.data().size() != plain.n() * plain.limb_count()) {
    throw std::invalid_argument("Encryptor: plaintext does not match the context");
  }
}

void Encryptor::encrypt(const Plaintext& plain, Ciphertext& out) const {
  if (!public_key_) throw std::logic_error("Encryptor: no public key");
  check_plain(plain);
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = plain.level(), lq = level + 1;
  const size_t q_count = ctx.coeff_modulus_count(), key_limbs = ctx.key_limb_count();
  const size_t targets = lq + ctx.special_count();

  std::vector<int8_t> small(3 * n);  // u, e0, e1
  {
    ring::Prng prng(ring::random_seed(), ring::StreamPurpose::Error);
    ring::sample_ternary(prng, small.data(), n);
    ring::sample_gaussian(prng, small.data() + n, 2 * n);
  }
  uint64_t* ext = detail::scratch(detail::Scratch::Encrypt, 2 * targets * n);
  const uint64_t* pk = public_key_->data.data();
#pragma omp parallel for if (ring::detail::use_parallel(targets, n * 16))
  for (size_t t = 0; t < targets; ++t) {
    const size_t gi = t < lq ? t : q_count + (t - lq);
    const ring::Modulus& q = ctx.modulus(gi);
    uint64_t* u = detail::scratch(detail::Scratch::EncryptLimb, n);
    ring::small_to_limb(small.data(), n, q, u);
    ctx.ntt(gi).forward(u);
    ring::multiply_poly(u, pk + gi * n, ext + t * n, n, q);
    ring::multiply_poly(u, pk + (key_limbs + gi) * n, ext + (targets + t) * n, n, q);
  }
  out.resize(n, 2, level);
  detail::ModDownTarget md[2] = {{ext, small.data() + n, out.poly(0), false},
                                 {ext + targets * n, small.data() + 2 * n, out.poly(1), false}};
  detail::mod_down(ctx, level, md, 2);
  for (size_t i = 0; i < lq; ++i) {
    ring::add_poly(out.limb(0, i), plain.limb(i), out.limb(0, i), n, ctx.modulus(i));
  }
  out.set_scale(plain.scale());
  out.set_ntt_form(true);
}

void Encryptor::encrypt_symmetric(const Plaintext& plain, Ciphertext& out) const {
  if (!secret_key_) throw std::logic_error("Encryptor: no secret key");
  check_plain(plain);
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = plain.level(), lq = level + 1;
  const ring::Seed seed = ring::random_seed();
  out.resize(n, 2, level);
  expand_ciphertext_mask(ctx, seed, level, out.poly(1));
  std::vector<int8_t> e(n);
  {
    ring::Prng prng(ring::random_seed(), ring::StreamPurpose::Error);
    ring::sample_gaussian(prng, e.data(), n);
  }
#pragma omp parallel for if (ring::detail::use_parallel(lq, n * 16))
  for (size_t i = 0; i < lq; ++i) {
    const ring::Modulus& q = ctx.modulus(i);
    uint64_t* en = detail::scratch(detail::Scratch::EncryptLimb, n);
    ring::small_to_limb(e.data(), n, q, en);
    ctx.ntt(i).forward(en);
    uint64_t* c0 = out.limb(0, i);
    ring::multiply_poly(out.limb(1, i), secret_key_->limb(i, n), c0, n, q);
    ring::sub_poly(en, c0, c0, n, q);
    ring::add_poly(c0, plain.limb(i), c0, n, q);
  }
  out.set_scale(plain.scale());
  out.set_ntt_form(true);
  out.set_seed(seed);
}

}  // namespace heinfer::ckks
