#include "model/op_type.h"

#include <array>
#include <utility>

namespace heinfer::model {
namespace {

constexpr std::array<std::pair<OpType, std::string_view>, 56> kOps{{
    {OpType::Conv, "Conv"},
    {OpType::Gemm, "Gemm"},
    {OpType::MatMul, "MatMul"},
    {OpType::Add, "Add"},
    {OpType::Sub, "Sub"},
    {OpType::Mul, "Mul"},
    {OpType::Div, "Div"},
    {OpType::BatchNormalization, "BatchNormalization"},
    {OpType::Relu, "Relu"},
    {OpType::Clip, "Clip"},
    {OpType::LeakyRelu, "LeakyRelu"},
    {OpType::MaxPool, "MaxPool"},
    {OpType::AveragePool, "AveragePool"},
    {OpType::GlobalAveragePool, "GlobalAveragePool"},
    {OpType::Flatten, "Flatten"},
    {OpType::Reshape, "Reshape"},
    {OpType::Transpose, "Transpose"},
    {OpType::Concat, "Concat"},
    {OpType::Pad, "Pad"},
    {OpType::Resize, "Resize"},
    {OpType::Upsample, "Upsample"},
    {OpType::Pow, "Pow"},
    {OpType::Identity, "Identity"},
    {OpType::Dropout, "Dropout"},
    {OpType::Softmax, "Softmax"},
    {OpType::LogSoftmax, "LogSoftmax"},
    {OpType::Constant, "Constant"},
    {OpType::Shape, "Shape"},
    {OpType::Size, "Size"},
    {OpType::Gather, "Gather"},
    {OpType::Unsqueeze, "Unsqueeze"},
    {OpType::Squeeze, "Squeeze"},
    {OpType::Slice, "Slice"},
    {OpType::Split, "Split"},
    {OpType::Expand, "Expand"},
    {OpType::Cast, "Cast"},
    {OpType::ConstantOfShape, "ConstantOfShape"},
    {OpType::Range, "Range"},
    {OpType::Equal, "Equal"},
    {OpType::Less, "Less"},
    {OpType::Greater, "Greater"},
    {OpType::Not, "Not"},
    {OpType::Where, "Where"},
    {OpType::Neg, "Neg"},
    {OpType::Sqrt, "Sqrt"},
    {OpType::Floor, "Floor"},
    {OpType::Ceil, "Ceil"},
    {OpType::ReduceMean, "ReduceMean"},
    {OpType::Sigmoid, "Sigmoid"},
    {OpType::Tanh, "Tanh"},
    {OpType::HardSigmoid, "HardSigmoid"},
    {OpType::HardSwish, "HardSwish"},
    {OpType::Softplus, "Softplus"},
    {OpType::Erf, "Erf"},
    {OpType::Exp, "Exp"},
    {OpType::Log, "Log"},
}};

}  // namespace

std::string_view op_name(OpType op) {
  for (const auto& [o, name] : kOps) {
    if (o == op) return name;
  }
  return "?";
}

std::optional<OpType> parse_op_type(std::string_view op_type) {
  for (const auto& [o, name] : kOps) {
    if (name == op_type) return o;
  }
  return std::nullopt;
}

std::string supported_ops_list() {
  std::string s;
  for (const auto& [o, name] : kOps) {
    if (!s.empty()) s += ", ";
    s += name;
  }
  return s;
}

}  // namespace heinfer::model
