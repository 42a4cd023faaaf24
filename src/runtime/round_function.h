// Which function the client evaluates in a node's round: one rule for the executor and
// for the schedule a server announces.
#pragma once

#include <optional>

#include "model/op_type.h"
#include "plan/encrypted_plan.h"
#include "runtime/client.h"

namespace heinfer::runtime {

/// Unmasked function rounds: the function of the node's op (Sigmoid, ...).
/// Per-window masks: Relu (Relu, Clip, LeakyRelu windows), Max or ReluMax (MaxPool).
/// Per-sample masks: Max or ReluMax (MaxPool, positive masks), AbsWithValue when the
/// node needs the signed value (NodePlan::round_signed_value), else Abs. Throws
/// std::logic_error for a node without a round.
RoundFunction round_function(const plan::NodePlan& np, model::OpType op, plan::RoundMasks masks);

/// The op an unmasked round evaluates (RoundFunction::Sigmoid -> OpType::Sigmoid, ...);
/// nullopt for the masked functions.
std::optional<model::OpType> unmasked_function_op(RoundFunction f);

}  // namespace heinfer::runtime
