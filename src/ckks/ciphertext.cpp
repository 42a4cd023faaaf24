#include "ckks/ciphertext.h"

#include <omp.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "ckks/context.h"
#include "ring/parallel.h"

namespace heinfer::ckks {

void Ciphertext::resize(size_t n, size_t size, size_t level) {
  n_ = n;
  size_ = size;
  level_ = level;
  data_.resize(n * size * (level + 1));
  clear_seed();
}

void Ciphertext::set_seed(const ring::Seed& seed) {
  seed_ = seed;
  seeded_ = true;
}

void Ciphertext::clear_seed() {
  seeded_ = false;
  compact_ = false;
  seed_.fill(0);
}

void Ciphertext::compact() {
  if (!seeded_) throw std::logic_error("Ciphertext::compact: ciphertext is not seeded");
  if (compact_) return;
  data_.resize(n_ * limb_count());
  data_.shrink_to_fit();
  compact_ = true;
}

void Ciphertext::expand(const CKKSContext& context) {
  if (!compact_) return;
  if (context.n() != n_ || level_ > context.max_level()) {
    throw std::invalid_argument("Ciphertext::expand: ciphertext does not match the context");
  }
  data_.resize(2 * n_ * limb_count());
  expand_ciphertext_mask(context, seed_, level_, poly(1));
  compact_ = false;
}

void Ciphertext::rehome(std::pmr::memory_resource* resource) {
  if (resource == data_.get_allocator().resource() && data_.capacity() == data_.size()) return;
  Storage moved(data_.begin(), data_.end(), resource);
  std::destroy_at(&data_);
  std::construct_at(&data_, std::move(moved));  // move construction keeps `resource`
}

void Ciphertext::drop_limbs(size_t count) {
  if (count == 0) return;
  if (count > level_) throw std::invalid_argument("Ciphertext::drop_limbs: not enough limbs");
  const size_t old_limbs = level_ + 1, new_limbs = old_limbs - count;
  const size_t polys = compact_ ? 1 : size_;
  for (size_t p = 1; p < polys; ++p) {
    std::memmove(data_.data() + p * new_limbs * n_, data_.data() + p * old_limbs * n_,
                 new_limbs * n_ * sizeof(uint64_t));
  }
  level_ -= count;
  data_.resize(polys * new_limbs * n_);
}

void expand_ciphertext_mask(const CKKSContext& context, const ring::Seed& seed, size_t level,
                            uint64_t* out) {
  const size_t n = context.n();
#pragma omp parallel for if (ring::detail::use_parallel(level + 1, n * 16))
  for (size_t i = 0; i <= level; ++i) {
    ring::Prng prng(seed, ring::StreamPurpose::CiphertextMask, 0, static_cast<uint32_t>(i));
    ring::sample_uniform(prng, context.modulus(i), out + i * n, n);
  }
}

}  // namespace heinfer::ckks
