#include "ckks/keys.h"

#include <omp.h>
#include <sodium.h>

#include <stdexcept>

#include "ckks/context.h"
#include "ring/parallel.h"

namespace heinfer::ckks {

SecretKey::~SecretKey() {
  if (!data_.empty()) sodium_memzero(data_.data(), data_.size() * sizeof(uint64_t));
}

uint32_t galois_element_for_step(int step, size_t n) {
  const uint64_t two_n = 2 * n;
  const int64_t slots = static_cast<int64_t>(n / 2);
  int64_t e = step % slots;
  if (e < 0) e += slots;
  uint64_t g = 1;
  for (int64_t i = 0; i < e; ++i) g = g * 5 % two_n;
  return static_cast<uint32_t>(g);
}

void expand_public_key_mask(const CKKSContext& context, PublicKey& pk) {
  if (!pk.seeded) throw std::logic_error("expand_public_key_mask: key is not seeded");
  const size_t n = context.n(), limbs = context.key_limb_count();
  pk.data.resize(2 * limbs * n);
#pragma omp parallel for if (ring::detail::use_parallel(limbs, n * 8))
  for (size_t i = 0; i < limbs; ++i) {
    ring::Prng prng(pk.seed, ring::StreamPurpose::PublicKeyMask, 0, static_cast<uint32_t>(i));
    ring::sample_uniform(prng, context.modulus(i), pk.data.data() + (limbs + i) * n, n);
  }
}

void expand_key_switching_mask(const CKKSContext& context, KeySwitchingKey& key) {
  if (!key.seeded) throw std::logic_error("expand_key_switching_mask: key is not seeded");
  const size_t n = context.n(), limbs = context.key_limb_count();
  key.data.resize(key.digits * 2 * limbs * n);
  const size_t tasks = key.digits * limbs;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n * 8))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t j = t / limbs, i = t % limbs;
    ring::Prng prng(key.seed, ring::StreamPurpose::KeySwitchMask, static_cast<uint32_t>(j),
                    static_cast<uint32_t>(i));
    uint64_t* a = key.data.data() + ((j * 2 + 1) * limbs + i) * n;
    ring::sample_uniform(prng, context.modulus(i), a, n);
  }
}

}  // namespace heinfer::ckks
