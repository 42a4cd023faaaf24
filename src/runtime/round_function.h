// Which function the client evaluates in a node's round: one rule for the executor and
// for the schedule a server announces.
#pragma once

#include "plan/encrypted_plan.h"
#include "runtime/client.h"

namespace heinfer::runtime {

/// Per-window masks: Relu (Relu, Clip, LeakyRelu windows), Max or ReluMax (MaxPool).
/// Per-sample masks: Max or ReluMax (MaxPool, positive masks), AbsWithValue when the
/// node needs the signed value (NodePlan::round_signed_value), else Abs. Throws
/// std::logic_error for a node without a round.
RoundFunction round_function(const plan::NodePlan& np, plan::RoundMasks masks);

}  // namespace heinfer::runtime
