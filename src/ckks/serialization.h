// Versioned binary serialization of public CKKS objects.
//
// Every object: a 48-byte header, then a body (all integers little-endian):
//   magic "HECK" (4 bytes) | u16 format version (1) | u16 object type (ObjectType) |
//   32-byte parameter fingerprint (CKKSContext::fingerprint) | u64 body size in bytes.
// Coefficients modulo q_i are stored in ceil(bits(q_i) / 8) bytes each; seeded objects
// store the 32-byte seed instead of their uniform polynomials.
// Bodies:
//   Parameters: u64 N | u32 #q | u32 #p | u8 security | 3 zero bytes | q's, p's as u64
//               (the header fingerprint is that of these primes).
//   Ciphertext: u8 size (2|3) | u8 ntt_form | u8 compact (seeded) | u8 0 | u32 level |
//               f64 scale | [seed] | (compact ? 1 : size) polys × (level+1) limbs × N.
//   PublicKey:  u8 seeded | 3 zero bytes | u32 limbs (L+1+K) | [seed] | b [, a].
//   RelinKeys:  one key-switching key: u8 seeded | 3 zero bytes | u32 digits | u32 limbs |
//               [seed] | per digit: b_j [, a_j].
//   GaloisKeys: u32 count | count × (u32 element | key-switching key), elements strictly
//               increasing.
// Loading validates magic, version, type, body size (against max_bytes and against the
// exact size implied by the declared shape), fingerprint (against the context), levels,
// sizes, flags, every coefficient < its modulus, and trailing bytes (byte-span loaders),
// and throws SerializationError naming the problem. Secret keys have their own unit
// (secret_key_io.h); the loaders here refuse them.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <stdexcept>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encryption_params.h"
#include "ckks/keys.h"

namespace heinfer::ckks {

class SerializationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ObjectType : uint16_t {
  Parameters = 1,
  Ciphertext = 2,
  PublicKey = 3,
  RelinKeys = 4,
  GaloisKeys = 5,
  SecretKey = 6,
};

inline constexpr uint16_t kFormatVersion = 1;
/// Default limit on a body's declared size (16 GiB).
inline constexpr uint64_t kDefaultMaxBodyBytes = uint64_t{1} << 34;

// ---- save (throws SerializationError on a stream failure or a shape mismatch) ----
void save(const EncryptionParameters& parms, std::ostream& out);
void save(const Ciphertext& ct, const CKKSContext& context, std::ostream& out);
void save(const PublicKey& pk, const CKKSContext& context, std::ostream& out);
void save(const RelinKeys& rk, const CKKSContext& context, std::ostream& out);
void save(const GaloisKeys& gk, const CKKSContext& context, std::ostream& out);

std::vector<uint8_t> to_bytes(const EncryptionParameters& parms);
std::vector<uint8_t> to_bytes(const Ciphertext& ct, const CKKSContext& context);
std::vector<uint8_t> to_bytes(const PublicKey& pk, const CKKSContext& context);
std::vector<uint8_t> to_bytes(const RelinKeys& rk, const CKKSContext& context);
std::vector<uint8_t> to_bytes(const GaloisKeys& gk, const CKKSContext& context);

// ---- load ----
/// Parameters with explicit primes (validated: N, counts, primality, ≡ 1 mod 2N, the
/// fingerprint); the security level is restored as saved.
EncryptionParameters load_parameters(std::istream& in, uint64_t max_bytes = kDefaultMaxBodyBytes);
/// A compact (seeded) ciphertext is returned compact; call expand(context).
Ciphertext load_ciphertext(std::istream& in, const CKKSContext& context,
                           uint64_t max_bytes = kDefaultMaxBodyBytes);
/// Seeded keys are expanded on load.
PublicKey load_public_key(std::istream& in, const CKKSContext& context,
                          uint64_t max_bytes = kDefaultMaxBodyBytes);
RelinKeys load_relin_keys(std::istream& in, const CKKSContext& context,
                          uint64_t max_bytes = kDefaultMaxBodyBytes);
GaloisKeys load_galois_keys(std::istream& in, const CKKSContext& context,
                            uint64_t max_bytes = kDefaultMaxBodyBytes);

/// Byte-span versions; the span must hold exactly one object (no trailing bytes).
EncryptionParameters load_parameters(std::span<const uint8_t> bytes,
                                     uint64_t max_bytes = kDefaultMaxBodyBytes);
Ciphertext load_ciphertext(std::span<const uint8_t> bytes, const CKKSContext& context,
                           uint64_t max_bytes = kDefaultMaxBodyBytes);
PublicKey load_public_key(std::span<const uint8_t> bytes, const CKKSContext& context,
                          uint64_t max_bytes = kDefaultMaxBodyBytes);
RelinKeys load_relin_keys(std::span<const uint8_t> bytes, const CKKSContext& context,
                          uint64_t max_bytes = kDefaultMaxBodyBytes);
GaloisKeys load_galois_keys(std::span<const uint8_t> bytes, const CKKSContext& context,
                            uint64_t max_bytes = kDefaultMaxBodyBytes);

}  // namespace heinfer::ckks
