// How a batch of samples is laid out in the slots of one ciphertext (batch-axis packing:
// nGraph-HE2, Boemer et al., WAHC 2019, "batch-axis plaintext packing" and "complex
// packing").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace heinfer::ckks {

/// The slot layout of a batch.
///  - Complex: N samples per ciphertext, sample b in the real (b < N/2) or imaginary
///    (b >= N/2) part of slot b mod N/2 (CKKSEncoder::encode_packed). Linear maps with
///    real weights act on all N reals; squares need Evaluator::multiply_packed (the
///    conjugation Galois key).
///  - Real: N/2 samples per ciphertext, one per slot (CKKSEncoder::encode).
enum class Packing { Complex, Real };

std::string_view packing_name(Packing p);  ///< "complex" / "real"

/// Samples per ciphertext for ring degree n: n (complex) or n/2 (real).
std::int64_t samples_per_ciphertext(Packing p, std::size_t n);

}  // namespace heinfer::ckks
