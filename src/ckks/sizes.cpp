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

std::int64_t serialized_size(const Ciphertext& ct, const CKKSContext& context) {
  std::int64_t limb_bytes = 0;
  for (std::size_t i = 0; i <= ct.level(); ++i) {
    limb_bytes += static_cast<std::int64_t>(detail::coeff_width(context.modulus(i)) * context.n());
  }
  const std::int64_t polys = ct.c1_dropped() ? 1 : static_cast<std::int64_t>(ct.size());
  return static_cast<std::int64_t>(detail::kHeaderBytes) + 16 + (ct.c1_dropped() ? 32 : 0) + polys * limb_bytes;
}

}  // namespace heinfer::ckks
