// Refresh points for models whose chain of levels between client rounds is too long for
// any secure ring (products on the main path: SiLU, HardSwish and squeeze-and-excitation
// gates in EfficientNet and MobileNetV3). Where a node would compute deeper than a budget,
// the planner refreshes its deepest input with an exact identity built from the masked
// ReLU round, x = Relu(x) - Relu(-x): both rounds return fresh top-level ciphertexts, and
// the subtraction folds their pending unmasking factors (one level). The client sees what
// a ReLU round shows (docs/security.md, claims 1 and 7: the values up to the window's mask),
// twice per refreshed tensor; the model stays as the server's operator wrote it.
#pragma once

#include "model/graph.h"
#include "plan/parameters.h"

namespace heinfer::plan {

/// Depth budget when refresh points are needed: 10 levels of 30 bits with a 60-bit q_0
/// and special prime fit N = 16384 at 128-bit security (420 of 438 bits).
inline constexpr int kRefreshDepth = 10;

/// Levels above which a model gets refresh points: the chain would no longer fit N =
/// 32768 (881 bits) with 30-bit rescaling primes.
inline constexpr int kMaxDepthWithoutRefresh = 26;

/// When the level rules (plan/level_rules.h) give `g` more than kMaxDepthWithoutRefresh
/// levels, inserts refresh points (file comment) until no node computes deeper than
/// kRefreshDepth; otherwise leaves g unchanged. Run on a prepared graph before
/// calibration (the new tensors need ranges). Returns the number of refresh points.
/// Throws model::ModelError when a single node needs more than the budget on fresh inputs.
int insert_refresh_rounds(model::Graph& g, RoundMasks masks);

}  // namespace heinfer::plan
