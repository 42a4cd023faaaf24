// Data-movement kernels (Reshape/Flatten, Transpose, Concat, element maps), generic over the
// backend. They only copy elements or fill constants: no arithmetic, no level.
#pragma once

#include <span>
#include <vector>

#include "model/op_params.h"
#include "runtime/backend.h"
#include "runtime/kernels/elementwise.h"

namespace heinfer::runtime::kernels {

/// Y[e] = X[e] for `elements` elements (Reshape, Flatten, Identity: same row-major order).
template <KernelBackend B>
void copy_elements(const B& be, std::int64_t elements, const typename B::Tensor& x,
                   typename B::Tensor& y) {
#pragma omp parallel for schedule(static) if (be.parallel(elements))
  for (std::int64_t e = 0; e < elements; ++e) be.copy(y, e, x, e);
}

/// Data movement by an explicit element map (Gather, Slice, Expand, Pad):
/// Y[o] = X[p.source[o]], or p.fill where the source is -1.
template <KernelBackend B>
void map_elements(const B& be, const model::ElementMapParams& p, const typename B::Tensor& x,
                  typename B::Tensor& y) {
  const auto total = static_cast<std::int64_t>(p.source.size());
#pragma omp parallel for schedule(static) if (be.parallel(total))
  for (std::int64_t o = 0; o < total; ++o) {
    const std::int64_t s = p.source[static_cast<std::size_t>(o)];
    if (s >= 0) be.copy(y, o, x, s);
    else be.fill(y, o, p.fill);
  }
}

/// ONNX Transpose with a per-sample permutation: Y[i_0..] = X[j] where j_perm[d] = i_d.
template <KernelBackend B>
void transpose(const B& be, const model::TransposeParams& p, const model::Shape& x_shape,
               const model::Shape& y_shape, const typename B::Tensor& x, typename B::Tensor& y) {
  const model::Shape x_strides = model::row_major_strides(x_shape);
  model::Shape src(y_shape.size());
  for (std::size_t d = 0; d < y_shape.size(); ++d) src[d] = x_strides[static_cast<std::size_t>(p.perm[d])];
  const std::int64_t total = model::numel(y_shape);
#pragma omp parallel for schedule(static) if (be.parallel(total))
  for (std::int64_t o = 0; o < total; ++o) be.copy(y, o, x, broadcast_offset(o, y_shape, src));
}

/// ONNX Concat along per-sample axis p.axis. Constant inputs (shape[0] == 1 dropped) are
/// written with fill (the same value for every sample).
template <KernelBackend B>
void concat(const B& be, const model::ConcatParams& p, const std::vector<model::Shape>& x_shapes,
            const std::vector<Operand<B>>& xs, const model::Shape& y_shape, typename B::Tensor& y) {
  const auto axis = static_cast<std::size_t>(p.axis);
  const std::int64_t outer = model::numel(model::Shape(y_shape.begin(), y_shape.begin() + static_cast<std::ptrdiff_t>(axis)));
  const std::int64_t inner = model::numel(model::Shape(y_shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, y_shape.end()));
  const std::int64_t y_chunk = y_shape[axis] * inner;
  std::int64_t start = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const std::int64_t chunk = x_shapes[k][axis] * inner;
    const Operand<B>& in = xs[k];
#pragma omp parallel for schedule(static) if (be.parallel(outer * chunk))
    for (std::int64_t e = 0; e < outer * chunk; ++e) {
      const std::int64_t o = (e / chunk) * y_chunk + start + e % chunk;
      if (in.tensor) be.copy(y, o, *in.tensor, e);
      else be.fill(y, o, in.constant[static_cast<std::size_t>(e)]);
    }
    start += chunk;
  }
}

}  // namespace heinfer::runtime::kernels
