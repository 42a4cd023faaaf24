#include "ckks/decryptor.h"

#include <omp.h>

#include <stdexcept>

#include "ring/parallel.h"
#include "ring/poly_arith.h"

namespace heinfer::ckks {

Decryptor::Decryptor(ContextPtr context, const SecretKey& secret_key)
    : context_(std::move(context)), secret_(secret_key) {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), q_count = ctx.coeff_modulus_count();
  if (secret_.data().size() != ctx.key_limb_count() * n) {
    throw std::invalid_argument("Decryptor: secret key does not match the context");
  }
  secret_squared_.data().resize(q_count * n);
  for (size_t i = 0; i < q_count; ++i) {
    ring::multiply_poly(secret_.limb(i, n), secret_.limb(i, n), secret_squared_.data().data() + i * n, n,
                        ctx.modulus(i));
  }
}

void Decryptor::decrypt(const Ciphertext& ct, Plaintext& out) const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = ct.level(), lq = level + 1;
  if (ct.is_packed()) {
    Ciphertext unpacked = ct;
    unpacked.unpack_words(ctx);
    decrypt(unpacked, out);
    return;
  }
  const size_t stored = ct.c1_dropped() ? 1 : ct.size();
  if (ct.n() != n || level > ctx.max_level() || ct.size() < 2 || ct.size() > 3 ||
      ct.data().size() != stored * lq * n) {
    throw std::invalid_argument("Decryptor: ciphertext does not match the context");
  }
  if (!ct.is_ntt_form()) throw std::invalid_argument("Decryptor: ciphertext not in NTT form");
  std::vector<uint64_t> mask;
  const uint64_t* c1 = nullptr;
  if (ct.c1_dropped()) {
    mask.resize(lq * n);
    expand_ciphertext_mask(ctx, ct.seed(), level, mask.data());
    c1 = mask.data();
  } else {
    c1 = ct.poly(1);
  }
  out.resize(n, level);
  out.set_scale(ct.scale());
#pragma omp parallel for if (ring::detail::use_parallel(lq, 3 * n))
  for (size_t i = 0; i < lq; ++i) {
    const ring::Modulus& q = ctx.modulus(i);
    uint64_t* m = out.limb(i);
    ring::multiply_poly(c1 + i * n, secret_.limb(i, n), m, n, q);
    if (ct.size() == 3)
      ring::multiply_add_poly(ct.limb(2, i), secret_squared_.data().data() + i * n, m, n, q);
    ring::add_poly(m, ct.limb(0, i), m, n, q);
  }
}

}  // namespace heinfer::ckks
