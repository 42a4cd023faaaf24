// Pass: residual Add fused into the Conv that produces one of its operands.
#pragma once

#include "model/graph.h"

namespace heinfer::model {

/// Rewrites Y = Add(Conv(X, W, B), Z) (either operand order) into one Conv with the
/// residual input Z: inputs {X, W, B or kNoTensor, Z}, ConvParams::residual set, output Y,
/// placed where the Add was. Fused when the Conv's output has no other reader and is no
/// graph output, both operands and Y have the same per-sample shape (no broadcasting),
/// and Z is produced by a client-aided node (model::classify: Relu, MaxPool, Clip, ...),
/// as every identity shortcut of ResNet v1 is.
///
/// Why that condition: under encryption such a Z carries the pending unmasking factors
/// of its round (plan/level_rules.h). The unfused Add must apply them with a second
/// multiply-accumulate and rescale after the Conv's (two levels); the fused Conv folds
/// them into the same accumulator as its weights (one level: the idea of ONNX Runtime's
/// FusedConv "Z" input, applied to lazy rescaling, nGraph-HE2 §3). A Z from a linear node
/// may sit deeper than X, where fusing would cost a level instead, so it is left alone.
/// The Conv nodes fused are left unread and removed (remove_dead_nodes, which also drops
/// any other dead node). Returns the number of Adds fused.
int fuse_residual_adds(Graph& g);

}  // namespace heinfer::model
