// A CKKS ciphertext: 2 (or 3, after a tensor product) polynomials over q_0..q_l.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <span>
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
/// Packed form (32-bit words): pack_words() stores each limb whose prime is below 2^32
/// with two coefficients per 64-bit word (coefficient 2k in the low half of word k,
/// 2k + 1 in the high half), other limbs unchanged, in the same [poly][limb] order:
/// half the bytes of every such limb at rest (DRAM, secondary tier). expand() restores
/// one word per coefficient; the residues are unchanged, bit for bit.
///
/// is_compact() is true in either stored form (c1 dropped, or packed, or both): such a
/// ciphertext must be expand()ed before evaluator operations. Each call that makes a
/// ciphertext compact gives it a new storage_id(), which its copies keep: a cache of
/// expansions keyed by address checks it to tell a ciphertext from a later one at the
/// same address.
///
/// Storage: the coefficients live in a vector with a polymorphic allocator that does not
/// zero-fill on resize (ring::ForOverwriteAllocator). A default-constructed or copied
/// ciphertext uses ring::aligned_resource() (the heap, every limb on a 64-byte boundary);
/// memory::CiphertextStore moves stored
/// ciphertexts between DRAM and a secondary tier with rehome(). Assigning into a
/// ciphertext keeps the destination's resource.
class Ciphertext {
 public:
  using Storage = std::vector<uint64_t, ring::ForOverwriteAllocator<uint64_t>>;

  Ciphertext() : data_(ring::aligned_resource()) {}
  /// An empty ciphertext whose coefficients will be allocated from `resource`.
  explicit Ciphertext(std::pmr::memory_resource* resource) : data_(resource) {}
  /// A copy in aligned heap memory, whatever the resource of `other`.
  Ciphertext(const Ciphertext& other)
      : n_(other.n_), size_(other.size_), level_(other.level_), scale_(other.scale_), ntt_form_(other.ntt_form_),
        seeded_(other.seeded_), compact_(other.compact_), packed_(other.packed_), storage_id_(other.storage_id_),
        seed_(other.seed_), data_(other.data_, ring::aligned_resource()) {}
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
  /// In a stored form (c1 dropped and / or packed): expand() before use.
  bool is_compact() const { return compact_ || packed_; }
  /// c1 is not held (regenerated from the seed by expand()).
  bool c1_dropped() const { return compact_; }
  /// Limbs of primes below 2^32 hold two coefficients per word.
  bool is_packed() const { return packed_; }
  /// Identifies the stored form (see the class comment); 0 if never compacted.
  std::uint64_t storage_id() const { return storage_id_; }
  /// Words of the expanded form: size() · limb_count() · n().
  size_t expanded_words() const { return size_ * limb_count() * n_; }
  const ring::Seed& seed() const { return seed_; }
  /// Marks c1 as expanded from `seed` (used by the encryptor and loaders).
  void set_seed(const ring::Seed& seed);
  void clear_seed();

  /// Drops c1 of a seeded ciphertext. Throws std::logic_error if !is_seeded().
  void compact();
  /// Packs the limbs of primes below 2^32 (of `context`) into 32-bit words and releases
  /// the freed capacity. No-op if already packed or no limb is below 2^32. Throws
  /// std::invalid_argument if the ciphertext does not match the context.
  void pack_words(const CKKSContext& context);
  /// Words `pack_words` would leave (for c1_dropped(): c0 only).
  size_t packed_words(const CKKSContext& context) const;
  /// Undoes pack_words() (c1 stays dropped). No-op unless packed.
  void unpack_words(const CKKSContext& context);
  /// Unpacks and regenerates c1 from the seed. No-op unless compact.
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

  /// Drops the last `count` limbs of every polynomial in place (level -= count). Throws
  /// std::logic_error if packed.
  void drop_limbs(size_t count);

  /// Everything but the words: what a checkpoint records of a ciphertext whose words it
  /// references where they are (runtime/checkpoint.h).
  struct Form {
    size_t n = 0, size = 0, level = 0;
    double scale = 1.0;
    bool ntt_form = true, seeded = false, c1_dropped = false, packed = false;
    ring::Seed seed{};
  };
  Form form() const;
  /// Words a ciphertext of `form` holds under `context`. Throws std::invalid_argument
  /// when the form does not fit the context (n, level, size 2 or 3, c1 dropped only
  /// when seeded and of size 2, packing only with a limb below 2^32, a finite positive
  /// scale).
  static size_t words_of(const Form& form, const CKKSContext& context);
  /// A ciphertext of `form` whose words are copied from `words` into memory from
  /// `resource` (a secondary tier may hand back the very memory `words` lie in: see
  /// memory::FileTier::claim). Throws std::invalid_argument as words_of(), and when
  /// words.size() differs from it.
  static Ciphertext from_form(const Form& form, std::span<const uint64_t> words, const CKKSContext& context,
                              std::pmr::memory_resource* resource);

 private:
  size_t n_ = 0, size_ = 0, level_ = 0;
  double scale_ = 1.0;
  bool ntt_form_ = true;
  bool seeded_ = false, compact_ = false, packed_ = false;
  std::uint64_t storage_id_ = 0;
  ring::Seed seed_{};
  Storage data_;
};

/// The uniform c1 of a seeded ciphertext: limb i (0..level) sampled in the NTT domain
/// from ChaCha20(seed, (CiphertextMask, 0, i)). out: [limb][coeff].
void expand_ciphertext_mask(const CKKSContext& context, const ring::Seed& seed, size_t level,
                            uint64_t* out);

}  // namespace heinfer::ckks
