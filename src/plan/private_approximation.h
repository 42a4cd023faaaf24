// Which polynomial approximation each non-linear node of the model-private mode gets:
// every Relu the ReLU approximation of plan/sign_approximation.h on its input's bound,
// every MaxPool a tree of max(a, b) = b + Relu(a - b) on the bound of its differences,
// and a Relu whose only reader is a MaxPool moved after the max (Relu is monotone, so
// the two commute: one Relu per pooled output instead of one per input).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <vector>

#include "model/graph.h"
#include "plan/sign_approximation.h"

namespace heinfer::plan {

struct ApproximationOptions {
  /// η: every approximated Relu errs by at most η·B on |x| <= B (for a max, η·2B).
  double relative_error = 0x1p-8;
  /// B = margin × the range of the node's input: a composite polynomial diverges
  /// outside [-1, 1], so the bound must hold on unseen inputs.
  double margin = 1.5;
};

/// How one node is evaluated in the mode.
struct NodeApproximation {
  /// MaxPool: max(a, b) = b + Relu(a - b) with this Relu (bound 2B of the differences).
  std::optional<ReluApproximation> max;
  /// Relu (bound B); on a MaxPool that took over its input's Relu, applied after the max.
  std::optional<ReluApproximation> relu;
  /// A Relu whose only consumer is a MaxPool: computed there, after the max, so it costs
  /// one Relu per pooled output, not per input.
  bool deferred = false;
};

/// The approximation of each Relu and MaxPool, keyed by node index. `ranges`: per tensor
/// (index = TensorId), the calibrated max |value| (or a bound, with margin 1). Throws
/// std::invalid_argument for a range that is not finite and positive where it is needed.
std::map<std::size_t, NodeApproximation> model_private_approximations(const model::Graph& g,
                                                                     const std::vector<double>& ranges,
                                                                     const ApproximationOptions& options);

}  // namespace heinfer::plan
