// A CKKS ciphertext: 2 (or 3, after a tensor product) polynomials over q_0..q_l.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <vector>

#include "ring/aligned_memory.h"
#include "ring/random.h"

namespace heinfer::ckks {

class CKKSContext;

/// Layout: data()[(p * (level + 1) + i) * n + k] = coefficient k of limb i of
/// polynomial p ([poly][limb][coeff], contiguous). Decrypts to Σ_p c_p · s^p.
///
/// Seeded form: a fresh symmetric encryption has c1 = a uniform polynomial expanded
/// from a 32-byte seed (random.h, StreamPurpose::CiphertextMask, one stream per limb).
/// is_seeded() says c1 can be regenerated; compact() then drops c1 (half the memory /
/// bytes on the wire) and expand() regenerates it. Evaluator operations need expanded
/// ciphertexts and produce unseeded results. Writing c1 through data() of a seeded
/// ciphertext invalidates the seed: call clear_seed().
///
/// Storage: the coefficients live in a std::pmr vector. A default-constructed or copied
/// ciphertext uses ring::aligned_resource() (the heap, every limb on a 64-byte boundary);
/// memory::CiphertextStore moves stored
/// ciphertexts between DRAM and a secondary tier with rehome(). Assigning into a
/// ciphertext keeps the destination's resource.
class Ciphertext {
 public:
  using Storage = std::pmr::vector<uint64_t>;

  Ciphertext() : data_(ring::aligned_resource()) {}
  /// An empty ciphertext whose coefficients will be allocated from `resource`.
  explicit Ciphertext(std::pmr::memory_resource* resource) : data_(resource) {}
  /// A copy in aligned heap memory, whatever the resource of `other`.
  Ciphertext(const Ciphertext& other)
      : n_(other.n_), size_(other.size_), level_(other.level_), scale_(other.scale_), ntt_form_(other.ntt_form_),
        seeded_(other.seeded_), compact_(other.compact_), seed_(other.seed_),
        data_(other.data_, ring::aligned_resource()) {}
  Ciphertext(Ciphertext&&) noexcept = default;
  Ciphertext& operator=(const Ciphertext&) = default;
  Ciphertext& operator=(Ciphertext&&) = default;

  /// Sets the shape: `size` polynomials (2 or 3) of level + 1 limbs of n coefficients;
  /// existing capacity is reused. Contents are unspecified; clears the seed.
  void resize(size_t n, size_t size, size_t level);

  size_t n() const { return n_; }
  size_t size() const { return size_; }
  size_t level() const { return level_; }
  size_t limb_count() const { return level_ + 1; }
  double scale() const { return scale_; }
  void set_scale(double scale) { scale_ = scale; }
  bool is_ntt_form() const { return ntt_form_; }
  void set_ntt_form(bool ntt) { ntt_form_ = ntt; }

  bool is_seeded() const { return seeded_; }
  bool is_compact() const { return compact_; }
  const ring::Seed& seed() const { return seed_; }
  /// Marks c1 as expanded from `seed` (used by the encryptor and loaders).
  void set_seed(const ring::Seed& seed);
  void clear_seed();

  /// Drops c1 of a seeded ciphertext. Throws std::logic_error if !is_seeded().
  void compact();
  /// Regenerates c1 from the seed. No-op unless compact.
  void expand(const CKKSContext& context);

  uint64_t* poly(size_t p) { return data_.data() + p * limb_count() * n_; }
  const uint64_t* poly(size_t p) const { return data_.data() + p * limb_count() * n_; }
  uint64_t* limb(size_t p, size_t i) { return poly(p) + i * n_; }
  const uint64_t* limb(size_t p, size_t i) const { return poly(p) + i * n_; }
  Storage& data() { return data_; }
  const Storage& data() const { return data_; }
  /// Bytes of coefficient storage held (capacity, not size).
  size_t storage_bytes() const { return data_.capacity() * sizeof(uint64_t); }
  /// The memory resource holding the coefficients.
  std::pmr::memory_resource* resource() const { return data_.get_allocator().resource(); }
  /// Moves the coefficients into memory from `resource` (copy, then the old storage is
  /// released; capacity shrinks to the size). Not thread-safe against readers.
  void rehome(std::pmr::memory_resource* resource);

  /// Drops the last `count` limbs of every polynomial in place (level -= count).
  void drop_limbs(size_t count);

 private:
  size_t n_ = 0, size_ = 0, level_ = 0;
  double scale_ = 1.0;
  bool ntt_form_ = true;
  bool seeded_ = false, compact_ = false;
  ring::Seed seed_{};
  Storage data_;
};

/// The uniform c1 of a seeded ciphertext: limb i (0..level) sampled in the NTT domain
/// from ChaCha20(seed, (CiphertextMask, 0, i)). out: [limb][coeff].
void expand_ciphertext_mask(const CKKSContext& context, const ring::Seed& seed, size_t level,
                            uint64_t* out);

}  // namespace heinfer::ckks
