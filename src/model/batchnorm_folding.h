// Pass: BatchNormalization folding.
#pragma once

#include "model/graph.h"

namespace heinfer::model {

/// Folds each (shape-inferred) BatchNormalization into the Conv, Gemm or MatMul that
/// produces its input, when that output has no other reader and is not a graph output,
/// and the BN channel is the producer's output channel (Conv: always; Gemm/MatMul: outer
/// == 1). With BN as y = scale[m] * x + shift[m]:
///   W'[m, ...] = scale[m] * W[m, ...],   B'[m] = scale[m] * B[m] + shift[m].
/// New constant tensors are created (weights may be shared). Returns the number folded.
int fold_batchnorm(Graph& g);

}  // namespace heinfer::model
