// Normalized operator parameters, filled in by shape inference (model/shape_inference.h).
//
// After shape inference every node carries one of these structs (Node::params): defaults
// applied, auto_pad/ceil_mode resolved into explicit pads and output sizes, axes made
// non-negative and relative to the *per-sample* shape (batch excluded), constant operands
// rewritten into the layout the kernels use. All spatial vectors have one entry per
// spatial dimension (1-D, 2-D, 3-D, ... convolutions and pools are supported alike).
#pragma once

#include <cstdint>
#include <limits>
#include <variant>
#include <vector>

#include "model/shape.h"

namespace heinfer::model {

/// No parameters: Relu, Identity, Dropout (inference), Flatten and Reshape (pure
/// relabeling of the row-major element order, data unchanged).
struct NoParams {};

/// Most spatial dimensions a Conv or pooling window may have.
inline constexpr std::size_t kMaxSpatialDims = 8;

/// Conv (ONNX Conv-1/11). inputs: [0] X activation [C, in...], [1] W constant
/// [M, C/group, kernel...], [2] B constant [M] or kNoTensor; with `residual` also [3] Z
/// activation [M, out...], added to every output (set only by model/residual_fusion.h:
/// an ONNX Conv has at most three inputs). Output [M, out...] with
/// out[d] = (in[d] + pads_begin[d] + pads_end[d] - dilations[d]*(kernel[d]-1) - 1) / strides[d] + 1.
struct ConvParams {
  std::int64_t group = 1;
  Shape kernel, strides, dilations, pads_begin, pads_end;
  bool residual = false;  ///< input [3] Z is added to the output
};

/// AveragePool / MaxPool / GlobalAveragePool (ONNX AveragePool-11, MaxPool-12,
/// GlobalAveragePool-1). inputs: [0] X [C, in...]; output [C, out...]. Windows start at
/// out*stride - pads_begin; MaxPool ignores padded positions (as if -inf); AveragePool
/// divides by the number of in-bounds elements, or with count_include_pad by the window
/// size clipped to the padded input (ceil_mode overhang excluded, as ONNX Runtime/PyTorch).
struct PoolParams {
  Shape kernel, strides, dilations, pads_begin, pads_end;
  bool count_include_pad = false;
};

/// Gemm, and MatMul with one constant operand, in one normalized form:
/// X viewed as [outer, k, inner] -> Y [outer, n, inner],
///   Y[o, j, i] = sum_k W[j, k] * X[o, k, i] + B[j].
/// inputs: [0] X activation, [1] W constant [n, k] (alpha and transB applied), [2] B constant
/// [n] (beta applied) or kNoTensor. Gemm and MatMul(x, W) have inner = 1; MatMul(W, x) has
/// outer = product of x's leading dims and inner = x's last dim.
struct GemmParams {
  std::int64_t outer = 1, k = 0, n = 0, inner = 1;
};

/// Add / Sub / Mul / Div with numpy broadcasting (opset-6 legacy broadcast converted).
/// inputs: [0] A, [1] B in ONNX order; each is an activation or a constant (at least one is
/// an activation; Mul/Div have exactly one activation, and for Div it is A). a_strides /
/// b_strides map the row-major index of the per-sample output to the operand's element
/// index (entry per output dim, 0 where broadcast).
struct BinaryParams {
  Shape a_strides, b_strides;
};

/// Square: Pow(x, 2) and Mul(x, x). inputs: [0] X (same shape as the output).
struct SquareParams {};

/// BatchNormalization (inference, ONNX BatchNormalization-15) as a per-channel affine map
/// Y = scale[c] * X + shift[c] with scale = s / sqrt(var + epsilon), shift = b - mean * scale.
/// inputs: [0] X [C, spatial...], [1] scale constant [C], [2] shift constant [C].
struct BatchNormParams {
  std::int64_t channels = 0, spatial = 1;
};

/// Clip (ONNX Clip-6/11/13): Y = min(max(X, min), max); bounds default to +-infinity.
struct ClipParams {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
};

/// LeakyRelu: Y = X < 0 ? alpha * X : X.
struct LeakyReluParams {
  double alpha = 0.01;
};

/// Softmax / LogSoftmax over the middle axis of the per-sample tensor viewed as
/// [outer, n, inner] (opset < 13: the coerced-2D form, inner = 1).
struct SoftmaxParams {
  std::int64_t outer = 1, n = 0, inner = 1;
};

/// Transpose of an activation; perm permutes per-sample axes (the batch stays first).
struct TransposeParams {
  std::vector<std::int64_t> perm;
};

/// Concat along a per-sample axis. Constant inputs (dim 0 of size 1) are replicated over
/// the batch.
struct ConcatParams {
  std::int64_t axis = 0;
};

/// Data movement given by an explicit per-sample element map (Slice, Gather, Expand, Pad
/// in every mode, negative pads cropping; model/element_map.h): y[o] = source[o] >= 0 ? x[source[o]] : fill.
/// inputs: [0] X.
struct ElementMapParams {
  std::vector<std::int64_t> source;
  double fill = 0.0;
};

/// A sparse linear map with constant weights (Resize/Upsample in linear or cubic mode;
/// model/resize.h): y[o] = sum of weight[k] * x[source[k]] for k in [row_begin[o],
/// row_begin[o + 1]), or fill when that range is empty (outside a tf_crop_and_resize roi).
/// inputs: [0] X.
struct LinearMapParams {
  std::vector<std::int64_t> row_begin, source;
  std::vector<double> weight;
  double fill = 0.0;
};

/// Mul of two activations, element-wise with numpy broadcasting (gating, squeeze-and-
/// excitation): Y[o] = A[a_strides . o] * B[b_strides . o]. inputs: [0] A, [1] B.
struct ProductParams {
  Shape a_strides, b_strides;
};

/// Element-wise non-linear activation y = f(x): Sigmoid 1/(1+e^-x), Tanh, HardSigmoid
/// max(0, min(1, alpha*x + beta)), HardSwish x*HardSigmoid(x) with alpha = 1/6, beta = 1/2,
/// Softplus log(1+e^x), Erf, Exp, Log, Sqrt, Floor, Ceil (ONNX opset-13/14 definitions;
/// model/activation_fn.h). inputs: [0] X.
struct ActivationParams {
  double alpha = 0.0, beta = 0.0;
};

using OpParams =
    std::variant<std::monostate, NoParams, ConvParams, PoolParams, GemmParams, BinaryParams,
                 SquareParams, BatchNormParams, ClipParams, LeakyReluParams, SoftmaxParams,
                 TransposeParams, ConcatParams, ElementMapParams, LinearMapParams,
                 ProductParams, ActivationParams>;

}  // namespace heinfer::model
