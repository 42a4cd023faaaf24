// The ONNX operators heinfer understands (default domain "ai.onnx", opsets 6-17).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace heinfer::model {

/// One enumerator per supported ONNX operator; names are ONNX's op_type strings.
enum class OpType {
  Conv,
  Gemm,
  MatMul,
  Add,
  Sub,
  Mul,
  Div,
  BatchNormalization,
  Relu,
  Clip,
  LeakyRelu,
  MaxPool,
  AveragePool,
  GlobalAveragePool,
  Flatten,
  Reshape,
  Transpose,
  Concat,
  Pad,
  Pow,
  Identity,
  Dropout,
  Softmax,
  LogSoftmax,
  Constant,
  // Shape arithmetic and data movement (evaluated at load time when the inputs are known).
  Shape,
  Size,
  Gather,
  Unsqueeze,
  Squeeze,
  Slice,
  Split,
  Expand,
  Cast,
  ConstantOfShape,
  Range,
  Equal,
  Less,
  Greater,
  Not,
  Where,
  Neg,
  Sqrt,
  Floor,
  Ceil,
  ReduceMean,
  Resize,
  Upsample,
  // Element-wise non-linear activations.
  Sigmoid,
  Tanh,
  HardSigmoid,
  HardSwish,
  Softplus,
  Erf,
  Exp,
  Log,
};

/// The ONNX op_type string ("Conv", ...).
std::string_view op_name(OpType op);

/// Inverse of op_name; nullopt for an operator heinfer does not support.
std::optional<OpType> parse_op_type(std::string_view op_type);

/// Comma-separated list of all supported op_type strings (for error messages).
std::string supported_ops_list();

}  // namespace heinfer::model
