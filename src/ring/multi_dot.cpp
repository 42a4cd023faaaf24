#include "ring/multi_dot.h"

#include <algorithm>
#include <vector>

#include "ring/cpu_features.h"
#include "ring/poly_arith.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring::detail {

void multi_dot(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
               std::size_t outputs, std::uint64_t* const* out, std::size_t len, const Modulus& q,
               const std::uint64_t* const* own, const std::uint64_t* own_scalars) {
  if (use_ifma(q.value) && len % 16 == 0 && count > 0) {
    for (std::size_t m = 0; m < outputs; m += 4) {
      multi_dot_ifma(inputs, count, scalars + m, std::min<std::size_t>(4, outputs - m), out + m, len, q,
                     own ? own + m : nullptr, own ? own_scalars + m : nullptr);
    }
    return;
  }
  if (use_avx2(q.value) && len % 4 == 0) {
    avx2::multi_dot(inputs, count, scalars, outputs, out, len, q.value);
  } else {
    for (std::size_t m = 0; m < outputs; ++m) dot_scalar_poly(inputs, scalars[m], count, out[m], len, q);
  }
  if (!own) return;
  thread_local std::vector<std::uint64_t> product;
  product.resize(len);
  for (std::size_t m = 0; m < outputs; ++m) {
    if (!own[m]) continue;
    multiply_scalar_poly(own[m], own_scalars[m], product.data(), len, q);
    add_poly(out[m], product.data(), out[m], len, q);
  }
}

}  // namespace heinfer::ring::detail
