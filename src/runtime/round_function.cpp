#include "runtime/round_function.h"

#include <array>
#include <stdexcept>
#include <utility>

namespace heinfer::runtime {

namespace {

constexpr std::array<std::pair<RoundFunction, model::OpType>, 7> kUnmasked{{
    {RoundFunction::Sigmoid, model::OpType::Sigmoid},
    {RoundFunction::Tanh, model::OpType::Tanh},
    {RoundFunction::Softplus, model::OpType::Softplus},
    {RoundFunction::Erf, model::OpType::Erf},
    {RoundFunction::Exp, model::OpType::Exp},
    {RoundFunction::Log, model::OpType::Log},
    {RoundFunction::Sqrt, model::OpType::Sqrt},
}};

}  // namespace

std::optional<model::OpType> unmasked_function_op(RoundFunction f) {
  for (const auto& [rf, op] : kUnmasked) {
    if (rf == f) return op;
  }
  return std::nullopt;
}

RoundFunction round_function(const plan::NodePlan& np, model::OpType op, plan::RoundMasks masks) {
  if (!plan::is_round(np.kind) || np.identity) throw std::logic_error("round_function: the node has no client round");
  if (np.kind == plan::NodeKind::FunctionRound) {
    for (const auto& [rf, o] : kUnmasked) {
      if (o == op) return rf;
    }
    throw std::logic_error("round_function: no unmasked round evaluates this op");
  }
  if (np.kind == plan::NodeKind::MaxPool) return np.round_fused_relu ? RoundFunction::ReluMax : RoundFunction::Max;
  if (masks == plan::RoundMasks::PerWindow) return RoundFunction::Relu;
  return np.round_signed_value ? RoundFunction::AbsWithValue : RoundFunction::Abs;
}

}  // namespace heinfer::runtime
