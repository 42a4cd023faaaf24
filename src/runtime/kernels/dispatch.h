// Backend-generic node dispatch: one place that maps a prepared node to its kernel, shared
// by the plaintext executor and the encrypted executor so both run the same op semantics.
#pragma once

#include <cstddef>
#include <span>
#include <variant>
#include <vector>

#include "model/graph.h"
#include "model/op_params.h"
#include "runtime/kernels/conv.h"
#include "runtime/kernels/data_movement.h"
#include "runtime/kernels/elementwise.h"
#include "runtime/kernels/gemm.h"
#include "runtime/kernels/linear_map.h"
#include "runtime/kernels/pool.h"

namespace heinfer::runtime::kernels {

/// Values of constant input i of node n; empty for an omitted optional input.
inline std::span<const double> constant_input(const model::Graph& g, const model::Node& n,
                                              std::size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == model::kNoTensor) return {};
  return g.tensors[static_cast<std::size_t>(n.inputs[i])].data;
}

/// Input i as a kernel operand: the data tensor in[i], or the constant when in[i] is null.
template <class B>
Operand<B> operand(const model::Graph& g, const model::Node& n,
                   const std::vector<const typename B::Tensor*>& in, std::size_t i) {
  if (in[i]) return {in[i], {}};
  return {nullptr, constant_input(g, n, i)};
}

/// Runs a linear, polynomial (square, product) or data-movement node on backend B.
/// `in` is parallel to n.inputs (nullptr for constants and omitted inputs); `y` is
/// preallocated with the output shape. Returns false, doing nothing, for the
/// client-aided ops (Relu, Clip, LeakyRelu, MaxPool, Softmax, LogSoftmax, the smooth
/// activations) and any op
/// without a backend kernel: the caller handles those. With a `tile`, only those output
/// elements are produced (tileable() nodes; data movement always runs whole).
template <class B>
bool run_backend_node(const B& be, const model::Graph& g, const model::Node& n,
                      const std::vector<const typename B::Tensor*>& in, typename B::Tensor& y,
                      const OutputTile* tile = nullptr) {
  using model::OpType;
  const typename B::Tensor* x = in.empty() ? nullptr : in[0];
  const auto& p = n.params;
  if (std::holds_alternative<model::SquareParams>(p)) {
    square(be, y.elements(), *x, y, tile);
    return true;
  }
  if (const auto* m = std::get_if<model::ProductParams>(&p)) {
    product(be, *m, y.shape, *x, *in.at(1), y, tile);
    return true;
  }
  if (std::holds_alternative<model::ActivationParams>(p)) return false;  // the caller's
  if (const auto* m = std::get_if<model::ElementMapParams>(&p)) {
    map_elements(be, *m, *x, y);
    return true;
  }
  if (const auto* m = std::get_if<model::LinearMapParams>(&p)) {
    linear_map(be, *m, *x, y, tile);
    return true;
  }
  switch (n.op) {
    case OpType::Conv: {
      const auto& cp = std::get<model::ConvParams>(p);
      conv(be, cp, x->shape, y.shape, constant_input(g, n, 1), constant_input(g, n, 2), *x, y, tile,
           cp.residual ? in.at(3) : nullptr);
      return true;
    }
    case OpType::Gemm:
    case OpType::MatMul:
    case OpType::ReduceMean:
      gemm(be, std::get<model::GemmParams>(p), constant_input(g, n, 1), constant_input(g, n, 2),
           *x, y, tile);
      return true;
    case OpType::Add:
    case OpType::Sub:
    case OpType::Mul:
    case OpType::Div:
      binary(be, n.op, std::get<model::BinaryParams>(p), y.shape, operand<B>(g, n, in, 0),
             operand<B>(g, n, in, 1), y, tile);
      return true;
    case OpType::BatchNormalization:
      batchnorm(be, std::get<model::BatchNormParams>(p), constant_input(g, n, 1),
                constant_input(g, n, 2), *x, y, tile);
      return true;
    case OpType::AveragePool:
    case OpType::GlobalAveragePool:
      average_pool(be, std::get<model::PoolParams>(p), x->shape, y.shape, *x, y, tile);
      return true;
    case OpType::Flatten:
    case OpType::Reshape:
    case OpType::Identity:
    case OpType::Dropout:
    case OpType::Squeeze:
    case OpType::Unsqueeze:
    case OpType::Cast: copy_elements(be, y.elements(), *x, y); return true;
    case OpType::Transpose:
      transpose(be, std::get<model::TransposeParams>(p), x->shape, y.shape, *x, y);
      return true;
    case OpType::Concat: {
      std::vector<model::Shape> shapes;
      std::vector<Operand<B>> ops;
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        ops.push_back(operand<B>(g, n, in, i));
        model::Shape s = g.tensors[static_cast<std::size_t>(n.inputs[i])].shape;
        if (!in[i]) s.erase(s.begin());  // constant: drop its size-1 dim 0
        shapes.push_back(std::move(s));
      }
      concat(be, std::get<model::ConcatParams>(p), shapes, ops, y.shape, y);
      return true;
    }
    default: return false;
  }
}

}  // namespace heinfer::runtime::kernels
