#include "ckks/secret_key_io.h"

#include <sodium.h>

#include "ckks/serialization_format.h"

namespace heinfer::ckks {

void save_secret_key(const SecretKey& sk, const CKKSContext& ctx, std::ostream& out) {
  const size_t n = ctx.n();
  if (sk.data().size() != ctx.key_limb_count() * n) {
    throw SerializationError("save_secret_key: key does not match the context");
  }
  // Recover the ternary coefficients from limb 0.
  std::vector<uint64_t> c(sk.data().begin(), sk.data().begin() + static_cast<long>(n));
  ctx.ntt(0).inverse(c.data());
  const uint64_t q = ctx.modulus(0).value;
  std::vector<uint8_t> bytes(n);
  for (size_t k = 0; k < n; ++k) {
    if (c[k] == 0) bytes[k] = 0;
    else if (c[k] == 1) bytes[k] = 1;
    else if (c[k] == q - 1) bytes[k] = 2;
    else throw SerializationError("save_secret_key: the secret is not ternary");
  }
  sodium_memzero(c.data(), c.size() * sizeof(uint64_t));
  detail::Writer w(out);
  w.header(ObjectType::SecretKey, ctx.fingerprint(), 8 + n);
  w.u64(n);
  w.bytes(bytes.data(), n);
  sodium_memzero(bytes.data(), n);
}

std::vector<uint8_t> secret_key_to_bytes(const SecretKey& sk, const CKKSContext& ctx) {
  return detail::save_to_vector([&](std::ostream& os) { save_secret_key(sk, ctx, os); });
}

SecretKey load_secret_key(std::istream& in, const CKKSContext& ctx) {
  const size_t n = ctx.n(), limbs = ctx.key_limb_count();
  detail::Reader r(in);
  const detail::Header h = r.header(ObjectType::SecretKey, 8 + n);
  detail::check_fingerprint(h, ctx);
  const uint64_t declared_n = r.u64();
  if (declared_n != n) {
    throw SerializationError("SecretKey: N = " + std::to_string(declared_n) +
                             " does not match the context (" + std::to_string(n) + ")");
  }
  r.require(n, "SecretKey");
  std::vector<uint8_t> bytes(n);
  r.bytes(bytes.data(), n);
  r.finish("SecretKey");
  SecretKey sk;
  sk.data().resize(limbs * n);
  for (size_t i = 0; i < limbs; ++i) {
    const uint64_t q = ctx.modulus(i).value;
    uint64_t* dst = sk.data().data() + i * n;
    for (size_t k = 0; k < n; ++k) {
      if (bytes[k] > 2) {
        sodium_memzero(bytes.data(), n);
        throw SerializationError("SecretKey: coefficient byte " + std::to_string(bytes[k]) +
                                 " is not a ternary code (0, 1, 2)");
      }
      dst[k] = bytes[k] == 2 ? q - 1 : bytes[k];
    }
    ctx.ntt(i).forward(dst);
  }
  sodium_memzero(bytes.data(), n);
  return sk;
}

SecretKey load_secret_key(std::span<const uint8_t> bytes, const CKKSContext& ctx) {
  return detail::load_from_span(bytes, [&](std::istream& is) { return load_secret_key(is, ctx); });
}

}  // namespace heinfer::ckks
