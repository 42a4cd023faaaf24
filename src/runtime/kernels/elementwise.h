// Element-wise kernels (Add/Sub/Mul/Div with broadcasting, BatchNormalization, square and
// products of two activations), generic over the backend.
#pragma once

#include <span>

#include "model/op_params.h"
#include "model/op_type.h"
#include "runtime/backend.h"
#include "runtime/kernels/output_tile.h"

namespace heinfer::runtime::kernels {

/// An operand that is either a data-dependent tensor or a constant array.
template <KernelBackend B>
struct Operand {
  const typename B::Tensor* tensor = nullptr;  ///< data operand, or nullptr for a constant
  std::span<const double> constant;            ///< constant values (row-major)
};

/// Offset of row-major output index o in an operand read with broadcast `strides`.
inline std::int64_t broadcast_offset(std::int64_t o, const model::Shape& out,
                                     const model::Shape& strides) {
  std::int64_t off = 0;
  for (std::size_t d = out.size(); d-- > 0;) {
    off += (o % out[d]) * strides[d];
    o /= out[d];
  }
  return off;
}

/// ONNX Add/Sub/Mul/Div (numpy broadcasting, model::BinaryParams) where at least one
/// operand is data-dependent: data +- data, data +- c, c - data, data * c, c * data,
/// data / c (as a multiplication by 1/c). Zero multipliers leave the element 0.
template <KernelBackend B>
void binary(const B& be, model::OpType op, const model::BinaryParams& p,
            const model::Shape& y_shape, const Operand<B>& a, const Operand<B>& b,
            typename B::Tensor& y, const OutputTile* tile = nullptr) {
  const OutputTile part = tile ? *tile : OutputTile::all(model::numel(y_shape));
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(2 * total))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t o = part.at(t);
    const std::int64_t ia = broadcast_offset(o, y_shape, p.a_strides);
    const std::int64_t ib = broadcast_offset(o, y_shape, p.b_strides);
    auto acc = be.start(y, o);
    if (a.tensor && b.tensor) {
      be.add(acc, *a.tensor, ia);
      if (op == model::OpType::Sub) be.sub(acc, *b.tensor, ib);
      else be.add(acc, *b.tensor, ib);
    } else {
      const bool data_first = a.tensor != nullptr;
      const auto& x = data_first ? *a.tensor : *b.tensor;
      const std::int64_t ix = data_first ? ia : ib;
      const double c = data_first ? b.constant[static_cast<std::size_t>(ib)]
                                  : a.constant[static_cast<std::size_t>(ia)];
      switch (op) {
        case model::OpType::Add: be.add(acc, x, ix); be.add_const(acc, c); break;
        case model::OpType::Sub:
          if (data_first) {
            be.add(acc, x, ix);
            be.add_const(acc, -c);
          } else {
            be.sub(acc, x, ix);
            be.add_const(acc, c);
          }
          break;
        case model::OpType::Mul: if (c != 0.0) be.mac(acc, x, ix, c); break;
        default: be.mac(acc, x, ix, 1.0 / c); break;  // Div by a constant
      }
    }
    be.finish(y, o, acc);
  }
}

/// Y = scale[c] * X + shift[c] over a [C, spatial...] tensor (model::BatchNormParams).
template <KernelBackend B>
void batchnorm(const B& be, const model::BatchNormParams& p, std::span<const double> scale,
               std::span<const double> shift, const typename B::Tensor& x, typename B::Tensor& y,
               const OutputTile* tile = nullptr) {
  const OutputTile part = tile ? *tile : OutputTile::all(p.channels * p.spatial);
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(2 * total))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t e = part.at(t);
    const auto c = static_cast<std::size_t>(e / p.spatial);
    auto acc = be.start(y, e);
    if (scale[c] != 0.0) be.mac(acc, x, e, scale[c]);
    be.add_const(acc, shift[c]);
    be.finish(y, e, acc);
  }
}

/// Y = X^2 element-wise (Pow(x, 2), Mul(x, x)); `elements` per sample.
template <KernelBackend B>
void square(const B& be, std::int64_t elements, const typename B::Tensor& x, typename B::Tensor& y,
            const OutputTile* tile = nullptr) {
  const OutputTile part = tile ? *tile : OutputTile::all(elements);
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(total))
  for (std::int64_t t = 0; t < total; ++t) be.multiply(y, part.at(t), x, part.at(t), x, part.at(t));
}

/// Y = A * B element-wise with numpy broadcasting (Mul of two activations: gating,
/// squeeze-and-excitation; model::ProductParams).
template <KernelBackend B>
void product(const B& be, const model::ProductParams& p, const model::Shape& y_shape, const typename B::Tensor& a,
             const typename B::Tensor& b, typename B::Tensor& y, const OutputTile* tile = nullptr) {
  const OutputTile part = tile ? *tile : OutputTile::all(model::numel(y_shape));
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(total))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t o = part.at(t);
    be.multiply(y, o, a, broadcast_offset(o, y_shape, p.a_strides), b, broadcast_offset(o, y_shape, p.b_strides));
  }
}

}  // namespace heinfer::runtime::kernels
