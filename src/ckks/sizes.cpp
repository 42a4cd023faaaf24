#include "ckks/sizes.h"

#include "ckks/serialization_format.h"

namespace heinfer::ckks {

std::int64_t ciphertext_bytes(std::size_t n, int level, bool compact) {
  if (level < 0) return 0;
  return (compact ? 1 : 2) * static_cast<std::int64_t>(level + 1) * static_cast<std::int64_t>(n) * 8;
}

std::int64_t key_switching_key_bytes(const EncryptionParameters& params) {
  const auto chain = static_cast<std::int64_t>(params.coeff_bits().size());
  const auto special = static_cast<std::int64_t>(params.special_bits().size());
  if (special == 0) return 0;  // no key switching
  const std::int64_t digits = (chain + special - 1) / special;
  return digits * 2 * (chain + special) * static_cast<std::int64_t>(params.poly_modulus_degree()) * 8;
}

namespace {

std::int64_t serialized_bytes(std::int64_t limb_bytes, std::int64_t polys, bool compact) {
  return static_cast<std::int64_t>(detail::kHeaderBytes) + 16 + (compact ? 32 : 0) + polys * limb_bytes;
}

}  // namespace

std::int64_t serialized_size(const Ciphertext& ct, const CKKSContext& context) {
  std::int64_t limb_bytes = 0;
  for (std::size_t i = 0; i <= ct.level(); ++i) {
    limb_bytes += static_cast<std::int64_t>(detail::coeff_width(context.modulus(i)) * context.n());
  }
  return serialized_bytes(limb_bytes, ct.c1_dropped() ? 1 : static_cast<std::int64_t>(ct.size()), ct.c1_dropped());
}

std::int64_t serialized_ciphertext_bytes(const EncryptionParameters& params, int level, bool compact) {
  if (level < 0) return 0;
  std::int64_t limb_bytes = 0;
  const auto& bits = params.coeff_bits();
  for (int i = 0; i <= level && i < static_cast<int>(bits.size()); ++i) {
    limb_bytes += static_cast<std::int64_t>((bits[static_cast<std::size_t>(i)] + 7) / 8) *
                  static_cast<std::int64_t>(params.poly_modulus_degree());
  }
  return serialized_bytes(limb_bytes, compact ? 1 : 2, compact);
}

}  // namespace heinfer::ckks
