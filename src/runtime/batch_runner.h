// Running a model over a batch-major array in chunks (the `heinfer run --plain` loop).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/graph.h"
#include "runtime/plain_executor.h"

namespace heinfer::runtime {

/// Runs a single-input, single-output graph over `count` samples stored batch-major in
/// `inputs` (count * numel(input shape) values, e.g. NCHW), `chunk` samples per executor
/// call. Returns the outputs batch-major as float32 (count * numel(output shape) values).
/// Throws model::ModelError if the graph has several inputs/outputs or sizes mismatch.
std::vector<float> run_plain_batched(const model::Graph& g, std::span<const double> inputs,
                                     std::int64_t count, std::int64_t chunk,
                                     const PlainRunOptions& options = {});

}  // namespace heinfer::runtime
