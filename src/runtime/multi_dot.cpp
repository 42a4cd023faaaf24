#include "runtime/multi_dot.h"

#include <algorithm>

#include "ckks/cpu_features.h"
#include "ckks/poly_arith.h"

namespace heinfer::runtime::detail {

void multi_dot(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
               std::size_t outputs, std::uint64_t* const* out, std::size_t len, const ckks::Modulus& q) {
  if (ckks::use_ifma(q.value) && len % 16 == 0 && count <= 4096 && count > 0) {
    for (std::size_t m = 0; m < outputs; m += 4) {
      multi_dot_ifma(inputs, count, scalars + m, std::min<std::size_t>(4, outputs - m), out + m, len, q);
    }
    return;
  }
  for (std::size_t m = 0; m < outputs; ++m) ckks::dot_scalar_poly(inputs, scalars[m], count, out[m], len, q);
}

}  // namespace heinfer::runtime::detail
