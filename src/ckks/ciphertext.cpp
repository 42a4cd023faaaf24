#include "ckks/ciphertext.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "ckks/context.h"
#include "ckks/sizes.h"
#include "ring/parallel.h"

namespace heinfer::ckks {

void Ciphertext::resize(size_t n, size_t size, size_t level) {
  n_ = n;
  size_ = size;
  level_ = level;
  data_.resize(n * size * (level + 1));
  packed_ = false;
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

namespace {

std::atomic<std::uint64_t> next_storage_id{1};

bool narrow(const CKKSContext& context, size_t limb) { return fits_32_bit_word(context.modulus(limb).bit_count); }

}  // namespace

void Ciphertext::compact() {
  if (!seeded_) throw std::logic_error("Ciphertext::compact: ciphertext is not seeded");
  if (compact_) return;
  // c0 comes first, packed or not (a packed ciphertext with c1 holds size_ equal polys).
  data_.resize(packed_ ? data_.size() / size_ : n_ * limb_count());
  data_.shrink_to_fit();
  compact_ = true;
  storage_id_ = next_storage_id.fetch_add(1, std::memory_order_relaxed);
}

size_t Ciphertext::packed_words(const CKKSContext& context) const {
  size_t per_poly = 0;
  for (size_t i = 0; i < limb_count(); ++i) per_poly += narrow(context, i) ? n_ / 2 : n_;
  return (compact_ ? 1 : size_) * per_poly;
}

void Ciphertext::pack_words(const CKKSContext& context) {
  if (packed_) return;
  const size_t polys = compact_ ? 1 : size_, lq = limb_count();
  if (context.n() != n_ || level_ > context.max_level() || n_ % 2 != 0 || data_.size() != polys * lq * n_) {
    throw std::invalid_argument("Ciphertext::pack_words: ciphertext does not match the context");
  }
  const size_t words = packed_words(context);
  if (words == data_.size()) return;  // no limb below 2^32
  // One pass into exactly-sized storage from the same resource (no capacity to give back).
  Storage packed(words, data_.get_allocator());
  uint64_t* dst = packed.data();
  for (size_t p = 0; p < polys; ++p) {
    for (size_t i = 0; i < lq; ++i) {
      const uint64_t* src = data_.data() + (p * lq + i) * n_;
      if (narrow(context, i)) {
        for (size_t k = 0; k < n_ / 2; ++k) dst[k] = src[2 * k] | (src[2 * k + 1] << 32);
        dst += n_ / 2;
      } else {
        std::memcpy(dst, src, n_ * sizeof(uint64_t));
        dst += n_;
      }
    }
  }
  data_ = std::move(packed);  // same allocator: the buffer is taken over
  packed_ = true;
  storage_id_ = next_storage_id.fetch_add(1, std::memory_order_relaxed);
}

void Ciphertext::unpack_words(const CKKSContext& context) {
  if (!packed_) return;
  const size_t polys = compact_ ? 1 : size_, lq = limb_count();
  if (context.n() != n_ || level_ > context.max_level() || data_.size() != packed_words(context)) {
    throw std::invalid_argument("Ciphertext::unpack_words: ciphertext does not match the context");
  }
  Storage full(polys * lq * n_, data_.get_allocator());
  const uint64_t* src = data_.data();
  for (size_t p = 0; p < polys; ++p) {
    for (size_t i = 0; i < lq; ++i) {
      uint64_t* dst = full.data() + (p * lq + i) * n_;
      if (narrow(context, i)) {
        for (size_t k = 0; k < n_ / 2; ++k) {
          dst[2 * k] = src[k] & 0xffffffffu;
          dst[2 * k + 1] = src[k] >> 32;
        }
        src += n_ / 2;
      } else {
        std::memcpy(dst, src, n_ * sizeof(uint64_t));
        src += n_;
      }
    }
  }
  data_ = std::move(full);
  packed_ = false;
}

void Ciphertext::expand(const CKKSContext& context) {
  unpack_words(context);
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
  if (packed_) throw std::logic_error("Ciphertext::drop_limbs: packed ciphertext; expand() first");
  const size_t old_limbs = level_ + 1, new_limbs = old_limbs - count;
  const size_t polys = compact_ ? 1 : size_;
  for (size_t p = 1; p < polys; ++p) {
    std::memmove(data_.data() + p * new_limbs * n_, data_.data() + p * old_limbs * n_,
                 new_limbs * n_ * sizeof(uint64_t));
  }
  level_ -= count;
  data_.resize(polys * new_limbs * n_);
}

Ciphertext::Form Ciphertext::form() const {
  return Form{n_, size_, level_, scale_, ntt_form_, seeded_, compact_, packed_, seed_};
}

size_t Ciphertext::words_of(const Form& f, const CKKSContext& context) {
  if (f.n != context.n() || f.level > context.max_level() || (f.size != 2 && f.size != 3) ||
      (f.c1_dropped && (!f.seeded || f.size != 2)) || !(f.scale > 0) || !std::isfinite(f.scale)) {
    throw std::invalid_argument("Ciphertext::words_of: the form does not fit the context");
  }
  Ciphertext shape;
  shape.n_ = f.n;
  shape.size_ = f.size;
  shape.level_ = f.level;
  shape.compact_ = f.c1_dropped;
  const size_t full = (f.c1_dropped ? 1 : f.size) * (f.level + 1) * f.n;
  if (!f.packed) return full;
  const size_t packed = shape.packed_words(context);
  if (packed == full) throw std::invalid_argument("Ciphertext::words_of: packed, but no limb is below 2^32");
  return packed;
}

Ciphertext Ciphertext::from_form(const Form& f, std::span<const uint64_t> words, const CKKSContext& context,
                                 std::pmr::memory_resource* resource) {
  if (words.size() != words_of(f, context)) {
    throw std::invalid_argument("Ciphertext::from_form: " + std::to_string(words.size()) + " words, the form holds " +
                                std::to_string(words_of(f, context)));
  }
  Ciphertext c(resource);
  c.n_ = f.n;
  c.size_ = f.size;
  c.level_ = f.level;
  c.scale_ = f.scale;
  c.ntt_form_ = f.ntt_form;
  c.seeded_ = f.seeded;
  c.compact_ = f.c1_dropped;
  c.packed_ = f.packed;
  if (f.seeded) c.seed_ = f.seed;
  if (c.is_compact()) c.storage_id_ = next_storage_id.fetch_add(1, std::memory_order_relaxed);
  c.data_ = Storage(resource);
  c.data_.resize(words.size());  // default-initialized: nothing written yet
  // A resource may hand back the words' own memory (a resumed run's tier extent,
  // FileTier::claim): copying them onto themselves would read and dirty every page.
  if (c.data_.data() != words.data()) std::copy(words.begin(), words.end(), c.data_.begin());
  return c;
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
