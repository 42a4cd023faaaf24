#include "runtime/round_function.h"

#include <stdexcept>

namespace heinfer::runtime {

RoundFunction round_function(const plan::NodePlan& np, plan::RoundMasks masks) {
  if (!plan::is_round(np.kind) || np.identity) throw std::logic_error("round_function: the node has no client round");
  if (np.kind == plan::NodeKind::MaxPool) return np.round_fused_relu ? RoundFunction::ReluMax : RoundFunction::Max;
  if (masks == plan::RoundMasks::PerWindow) return RoundFunction::Relu;
  return np.round_signed_value ? RoundFunction::AbsWithValue : RoundFunction::Abs;
}

}  // namespace heinfer::runtime
