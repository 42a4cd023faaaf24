// The model-private mode's non-linear layers simulated in double: the plaintext executor
// with every Relu replaced by its polynomial approximation (plan/sign_approximation.h)
// and every MaxPool by a tree of max(a, b) = b + Relu(a - b) on those approximations (a
// Relu feeding only a MaxPool moved after it), as the encrypted executor will evaluate
// them (plan/private_approximation.h chooses them). It measures what the approximations cost
// in fidelity before anything is encrypted, and picks the precision target.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <vector>

#include "model/graph.h"
#include "plan/private_approximation.h"
#include "runtime/plain_executor.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// run_plain with those approximations in place of Relu and MaxPool. Throws as run_plain,
/// and std::runtime_error naming the node when a value leaves its bound (the
/// approximation would diverge: a larger margin is needed).
std::vector<PlainTensor> run_plain_approximated(const model::Graph& g, std::vector<PlainTensor> inputs,
                                                const std::map<std::size_t, plan::NodeApproximation>& approximations,
                                                const PlainRunOptions& options = {});

}  // namespace heinfer::runtime
