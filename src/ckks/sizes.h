// Sizes of CKKS objects, in one place: bytes held in memory and bytes serialized (the
// format of ckks/serialization.h). Everyone who budgets memory or counts traffic (the
// plan's footprint, the store, the executor's statistics, the server's admission)
// reads them here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encryption_params.h"

namespace heinfer::ckks {

/// Bytes of the coefficients of one ciphertext of ring degree n at `level` held in
/// memory: 2·(level+1)·n·8 (two polynomials of level+1 RNS limbs of 64-bit words), or
/// (level+1)·n·8 when compact (seeded, c1 dropped). 0 for level < 0.
std::int64_t ciphertext_bytes(std::size_t n, int level, bool compact = false);

/// Whether a limb of a prime of `prime_bits` bits fits a 32-bit word at rest (32-bit
/// limb words: ckks::Ciphertext::pack_words, memory::CiphertextStore::pack_words).
constexpr bool fits_32_bit_word(int prime_bits) { return prime_bits <= 32; }

/// Bytes in memory of one key-switching key of `params` as KeyGenerator makes it
/// (hybrid key switching with the special primes P as one digit's extension, Han & Ki,
/// CT-RSA 2020, §3): ceil((L+1)/K) digits × 2 polynomials × (L+1+K) limbs × N × 8, with
/// K special primes; 0 without special primes.
std::int64_t key_switching_key_bytes(const EncryptionParameters& params);

/// Bytes save(ct, context) writes: the 48-byte header, 16 bytes of fields, the 32-byte
/// seed of a compact ciphertext, and ceil(bits(q_i)/8)·N bytes per limb of each stored
/// polynomial (one when compact).
std::int64_t serialized_size(const Ciphertext& ct, const CKKSContext& context);

/// The same for a ciphertext of `params` at `level` that does not exist yet (traffic
/// predictions): primes of b bits take ceil(b/8) bytes per coefficient. 0 for level < 0.
std::int64_t serialized_ciphertext_bytes(const EncryptionParameters& params, int level, bool compact);

}  // namespace heinfer::ckks
