// Calibration of value ranges for parameter selection: a plaintext run of the reference
// executor on sample inputs records the largest |value| of every tensor (the client's
// data, or a calibration set of the model owner's). plan::plan_parameters turns the
// ranges into bounds and a modulus chain.
#pragma once

#include <cstdint>
#include <vector>

#include "model/graph.h"
#include "plan/parameters.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// Bytes of one activation tensor of a calibration run: larger batches run in parts.
inline constexpr std::int64_t kCalibrationTensorBytes = std::int64_t{128} << 20;

/// Samples per part of a calibration run of g: the largest activation of a part holds
/// at most kCalibrationTensorBytes (at least one sample).
std::int64_t calibration_samples(const model::Graph& g);

/// Per-tensor largest |value| of a plaintext run (index = TensorId; 0 for constants).
/// `inputs` holds the graph inputs (one per graph input, all of one batch). The batch
/// runs in parts of `samples_per_part` samples (0: calibration_samples(g)) and the
/// maxima are folded, so the result is exactly that of one run while memory stays at a
/// few activations of kCalibrationTensorBytes (ResNet-50 at 224x224 with batch 2048
/// would otherwise hold about 13 GB per activation). Throws model::ModelError, also
/// when the inputs differ in batch size.
std::vector<double> calibrate_ranges(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                     std::int64_t samples_per_part = 0);

/// The parameters of an encrypted run of g, calibrated on `inputs`: calibrate_ranges,
/// then plan::plan_parameters. The one preparation `heinfer run` (on the client's batch)
/// and `heinfer serve` (on the model owner's calibration set) share. Throws as those do.
plan::Parameters calibrated_parameters(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                       const plan::ParameterOptions& options = {});

}  // namespace heinfer::runtime
