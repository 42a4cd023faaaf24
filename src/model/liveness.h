// Tensor liveness: when an executor may free an activation.
#pragma once

#include <vector>

#include "model/graph.h"

namespace heinfer::model {

/// Per tensor: the index of the last node reading it; graph outputs get nodes.size()
/// (live to the end); tensors nobody reads get -1. Constants are included.
std::vector<int> last_use(const Graph& g);

/// Per node: the activation tensors whose last reader is that node (free them after it
/// runs). Graph inputs are included; graph outputs never are.
std::vector<std::vector<TensorId>> activations_to_free(const Graph& g);

/// Maximum over the schedule of the summed per-sample element counts of the activations
/// alive at once (inputs and outputs of the running node included): the peak number of
/// ciphertexts under batch-axis packing.
std::int64_t peak_live_elements(const Graph& g);

}  // namespace heinfer::model
