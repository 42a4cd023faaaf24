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

/// A Relu, Clip or LeakyRelu node as constant + Σ_j sign_j·Relu(scale_j·x + shift_j),
/// sign_j = ±1, so that the model-private mode evaluates it with one approximated Relu
/// per term and no level for the combination (Relu is positively homogeneous:
/// α·Relu(-x) = Relu(-α·x)):
///  - Relu: Relu(x);
///  - Clip(lo, hi): lo + Relu(x - lo) - Relu(x - hi); without hi: lo + Relu(x - lo);
///    without lo: hi - Relu(hi - x);
///  - LeakyRelu(α), α >= 0: Relu(x) - Relu(-α·x).
struct ReluTerm {
  double scale = 1, shift = 0;
  int sign = 1;
};
struct ReluCombination {
  double constant = 0;
  std::vector<ReluTerm> terms;
  /// The largest |scale·x + shift| of a term for |x| <= range.
  double input_bound(double range) const;
};

/// The combination of node `n` (Relu, LeakyRelu, or Clip with a finite bound). Throws
/// std::invalid_argument for another node and for a LeakyRelu with α < 0.
ReluCombination relu_combination(const model::Node& n);

/// The approximation of each Relu, Clip (with a finite bound), LeakyRelu and MaxPool
/// (a Clip or LeakyRelu: one Relu approximation on the bound of all its terms' inputs),
/// keyed by node index. `ranges`: per tensor
/// (index = TensorId), the calibrated max |value| (or a bound, with margin 1). Throws
/// std::invalid_argument for a range that is not finite and positive where it is needed.
std::map<std::size_t, NodeApproximation> model_private_approximations(const model::Graph& g,
                                                                     const std::vector<double>& ranges,
                                                                     const ApproximationOptions& options);

}  // namespace heinfer::plan
