#include "ckks/scalar_encoding.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "ckks/context.h"

namespace heinfer::ckks {

uint64_t double_to_residue(double x, const ring::Modulus& q) {
  const double ax = std::fabs(x);
  uint64_t r;
  if (ax < 9223372036854775808.0) {  // 2^63
    r = ring::reduce_64(static_cast<uint64_t>(ax), q);
  } else {
    int e = 0;
    const double mant = std::frexp(ax, &e);  // ax = mant · 2^e, mant in [0.5, 1)
    const uint64_t m53 = static_cast<uint64_t>(std::ldexp(mant, 53));
    r = ring::mul_mod(ring::reduce_64(m53, q), ring::pow_mod(2, static_cast<uint64_t>(e - 53), q),
                      q);
  }
  return x < 0 ? ring::negate_mod(r, q.value) : r;
}

void encode_scalar(const CKKSContext& context, double value, double scale, size_t level,
                   uint64_t* out) {
  if (level > context.max_level()) {
    throw std::invalid_argument("encode_scalar: level " + std::to_string(level) +
                                " exceeds the top level " + std::to_string(context.max_level()));
  }
  const double scaled = std::nearbyint(value * scale);
  if (!std::isfinite(scaled)) {
    throw std::invalid_argument("encode_scalar: value · scale is not finite");
  }
  if (scaled != 0 && std::log2(std::fabs(scaled)) >= context.level_data(level).log2_q - 1) {
    std::ostringstream m;
    m << "encode_scalar: |" << value << " · " << scale << "| >= Q/2 at level " << level
      << " (log2 Q = " << context.level_data(level).log2_q << "); it would wrap";
    throw std::invalid_argument(m.str());
  }
  for (size_t i = 0; i <= level; ++i) out[i] = double_to_residue(scaled, context.modulus(i));
}

}  // namespace heinfer::ckks
