// The model-private mode's non-linear layers simulated in double: the plaintext executor
// with every Relu replaced by its polynomial approximation (plan/sign_approximation.h)
// and every MaxPool by a tree of max(a, b) = b + Relu(a - b) on those approximations (a
// Relu feeding only a MaxPool moved after it), as the encrypted executor will evaluate
// them. It measures what the approximations cost
// in fidelity before anything is encrypted, and picks the precision target.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <vector>

#include "model/graph.h"
#include "plan/sign_approximation.h"
#include "runtime/plain_executor.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

struct ApproximationOptions {
  /// η: every approximated Relu errs by at most η·B on |x| <= B (for a max, η·2B).
  double relative_error = 0x1p-8;
  /// B = margin × the calibrated range of the node's input: a composite polynomial
  /// diverges outside [-1, 1], so the bound must hold on unseen inputs.
  double margin = 1.5;
};

/// How one node is evaluated in the mode.
struct NodeApproximation {
  /// MaxPool: max(a, b) = b + Relu(a - b) with this Relu (bound 2B of the differences).
  std::optional<plan::ReluApproximation> max;
  /// Relu (bound B); on a MaxPool that took over its input's Relu, applied after the max.
  std::optional<plan::ReluApproximation> relu;
  /// A Relu whose only consumer is a MaxPool: computed there, after the max (Relu and max
  /// commute: Relu is monotone), so it costs one Relu per pooled output, not per input.
  bool deferred = false;
};

/// The approximation of each Relu and MaxPool, keyed by node index. `ranges`:
/// calibrate_ranges of g. Throws std::invalid_argument for a range that is not finite and
/// positive where it is needed.
std::map<std::size_t, NodeApproximation> model_private_approximations(const model::Graph& g,
                                                                     const std::vector<double>& ranges,
                                                                     const ApproximationOptions& options);

/// run_plain with those approximations in place of Relu and MaxPool. Throws as run_plain,
/// and std::runtime_error naming the node when a value leaves its bound (the
/// approximation would diverge: a larger margin is needed).
std::vector<PlainTensor> run_plain_approximated(const model::Graph& g, std::vector<PlainTensor> inputs,
                                                const std::map<std::size_t, NodeApproximation>& approximations,
                                                const PlainRunOptions& options = {});

}  // namespace heinfer::runtime
