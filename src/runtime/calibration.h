// Calibration of value ranges for parameter selection: a plaintext run of the reference
// executor on sample inputs records the largest |value| of every tensor (the client's
// data, or a calibration set of the model owner's). plan::plan_parameters turns the
// ranges into bounds and a modulus chain.
#pragma once

#include <cstdint>
#include <span>
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
/// maxima are folded, so the result is that of one run (up to float64 rounding:
/// runtime/plain_conv.h sums in another order for parts of >= 8 samples) while memory stays at a
/// few activations of kCalibrationTensorBytes (ResNet-50 at 224x224 with batch 2048
/// would otherwise hold about 13 GB per activation). Throws model::ModelError, also
/// when the inputs differ in batch size. When `outputs` is given it receives the run's
/// graph outputs, one batch-major vector per graph output (the plaintext executor's
/// results: a reference for the encrypted run at no extra cost).
std::vector<double> calibrate_ranges(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                     std::int64_t samples_per_part = 0,
                                     std::vector<std::vector<double>>* outputs = nullptr);

/// calibrate_ranges of a graph of one input given batch-major (x[b * E + e]: `count`
/// samples of the input's per-sample shape, E elements each; x.size() = count · E, else
/// model::ModelError), in parts of calibration_samples(g) samples converted one at a
/// time: the same result, without holding the batch twice (ResNet-50 inputs at 224x224
/// are 4.9 GB per 4,096 samples).
std::vector<double> calibrate_ranges_batch_major(const model::Graph& g, std::span<const double> x, std::int64_t count,
                                                 std::vector<std::vector<double>>* outputs = nullptr);

/// The parameters of an encrypted run of g, calibrated on `inputs`: calibrate_ranges,
/// then plan::plan_parameters. The one preparation `heinfer run` (on the client's batch)
/// and `heinfer serve` (on the model owner's calibration set) share. Throws as those do.
/// `outputs` as in calibrate_ranges. The parameters are plan::plan_with_refreshes's:
/// g gains the non-negative refreshes where they pay for a run storing `limb_words`-bit
/// words (their count in `*refreshes`).
plan::Parameters calibrated_parameters(model::Graph& g, const std::vector<PlainTensor>& inputs,
                                       const plan::ParameterOptions& options = {},
                                       std::vector<std::vector<double>>* outputs = nullptr, int limb_words = 64,
                                       int* refreshes = nullptr);

}  // namespace heinfer::runtime
