// Secret-key save/load: a client-side-only unit, separate from serialization.h (whose
// loaders refuse secret keys).
//
// Format: the common 48-byte header (serialization.h) with ObjectType::SecretKey and
// the context fingerprint, then: u64 N | N bytes, one per coefficient of the ternary
// secret (0 -> 0, 1 -> 1, 2 -> -1). Loading validates header, fingerprint, N and every
// byte, then rebuilds the NTT form over all key primes.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <vector>

#include "ckks/context.h"
#include "ckks/keys.h"

namespace heinfer::ckks {

/// Throws SerializationError on a stream failure, a key that does not match the context
/// or one whose coefficients are not ternary.
void save_secret_key(const SecretKey& sk, const CKKSContext& context, std::ostream& out);
std::vector<uint8_t> secret_key_to_bytes(const SecretKey& sk, const CKKSContext& context);

/// Throws SerializationError naming the problem.
SecretKey load_secret_key(std::istream& in, const CKKSContext& context);
SecretKey load_secret_key(std::span<const uint8_t> bytes, const CKKSContext& context);

}  // namespace heinfer::ckks
