#include "runtime/calibration.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "model/error.h"
#include "model/liveness.h"
#include "plan/refresh_rounds.h"
#include "runtime/plain_executor.h"

namespace heinfer::runtime {
namespace {

/// Samples [b0, b1) of t.
PlainTensor sub_batch(const PlainTensor& t, std::int64_t b0, std::int64_t b1) {
  PlainTensor s;
  s.shape = t.shape;
  s.batch = b1 - b0;
  s.data.reserve(static_cast<std::size_t>(t.elements() * s.batch));
  for (std::int64_t e = 0; e < t.elements(); ++e) {
    const auto v = t.element(e);
    s.data.insert(s.data.end(), v.begin() + b0, v.begin() + b1);
  }
  return s;
}

/// Per-tensor largest |value| of a plaintext run of `inputs` (all of one batch), folded
/// into `range` by max.
void calibrate_into(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                    const std::vector<std::vector<model::TensorId>>& free_after, std::vector<double>& range,
                    std::vector<std::vector<double>>* outputs) {
  std::vector<std::optional<PlainTensor>> values(g.tensors.size());
  auto record = [&](model::TensorId t, const PlainTensor& v) {
    double m = 0;
    for (double x : v.data) m = std::max(m, std::fabs(x));
    auto& r = range[static_cast<std::size_t>(t)];
    r = std::max(r, m);
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    record(g.inputs[i], inputs[i]);
    values[static_cast<std::size_t>(g.inputs[i])] = inputs[i];
  }
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    std::vector<const PlainTensor*> in;
    for (model::TensorId t : n.inputs) {
      if (!model::is_activation(g, t)) in.push_back(nullptr);
      else in.push_back(&*values[static_cast<std::size_t>(t)]);
    }
    const model::TensorId out = n.outputs[0];
    PlainTensor y = make_plain_tensor(g.tensors[static_cast<std::size_t>(out)].shape, batch);
    run_node_plain(g, n, in, y);
    record(out, y);
    values[static_cast<std::size_t>(out)] = std::move(y);
    for (model::TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
  }
  if (!outputs) return;
  outputs->resize(g.outputs.size());
  for (std::size_t i = 0; i < g.outputs.size(); ++i) {
    const auto& v = values[static_cast<std::size_t>(g.outputs[i])];
    if (!v) throw model::ModelError("calibration: graph output '" + g.tensors[static_cast<std::size_t>(g.outputs[i])].name + "' was not computed");
    const std::vector<double> part = to_batch_major(*v);
    (*outputs)[i].insert((*outputs)[i].end(), part.begin(), part.end());
  }
}

/// Per-tensor ranges (and outputs) of `count` samples in parts of `part`: calibrate_into
/// on part_inputs(b0, b1) for each part [b0, b1), the maxima folded.
template <class PartInputs>
std::vector<double> calibrate_parts(const model::Graph& g, std::int64_t count, std::int64_t part,
                                    PartInputs part_inputs, std::vector<std::vector<double>>* outputs) {
  std::vector<double> range(g.tensors.size(), 0.0);
  const auto free_after = model::activations_to_free(g);
  if (outputs) outputs->clear();
  for (std::int64_t b0 = 0; b0 < count; b0 += part) {
    calibrate_into(g, part_inputs(b0, std::min(count, b0 + part)), free_after, range, outputs);
  }
  return range;
}

}  // namespace

std::int64_t calibration_samples(const model::Graph& g) {
  std::int64_t largest = 1;
  for (const auto& t : g.tensors) {
    if (!t.is_constant) largest = std::max(largest, model::numel(t.shape));
  }
  return std::max<std::int64_t>(1, kCalibrationTensorBytes / (largest * static_cast<std::int64_t>(sizeof(double))));
}

std::vector<double> calibrate_ranges(const model::Graph& g, const std::vector<PlainTensor>& inputs,
                                     std::int64_t samples_per_part, std::vector<std::vector<double>>* outputs) {
  if (inputs.size() != g.inputs.size()) throw model::ModelError("calibration: wrong number of inputs");
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  for (const PlainTensor& x : inputs) {
    if (x.batch != batch) throw model::ModelError("calibration: the inputs differ in batch size");
  }
  const std::int64_t part = samples_per_part > 0 ? samples_per_part : calibration_samples(g);
  if (batch <= part) {  // one part: the inputs themselves, not a copy
    return calibrate_parts(g, 1, 1, [&](std::int64_t, std::int64_t) -> const std::vector<PlainTensor>& { return inputs; },
                           outputs);
  }
  return calibrate_parts(g, batch, part, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<PlainTensor> sub;
    for (const PlainTensor& x : inputs) sub.push_back(sub_batch(x, b0, b1));
    return sub;
  }, outputs);
}

std::vector<double> calibrate_ranges_batch_major(const model::Graph& g, std::span<const double> x, std::int64_t count,
                                                 std::vector<std::vector<double>>* outputs) {
  if (g.inputs.size() != 1) throw model::ModelError("calibration: batch-major input needs a graph of one input");
  const model::Shape& shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const std::int64_t e = model::numel(shape);
  if (count < 1 || static_cast<std::int64_t>(x.size()) != count * e) {
    throw model::ModelError("calibration: " + std::to_string(x.size()) + " input values are not " +
                            std::to_string(count) + " samples of " + std::to_string(e));
  }
  return calibrate_parts(g, count, calibration_samples(g), [&](std::int64_t b0, std::int64_t b1) {
    std::vector<PlainTensor> sub;
    sub.push_back(from_batch_major(x.subspan(static_cast<std::size_t>(b0 * e), static_cast<std::size_t>((b1 - b0) * e)),
                                   b1 - b0, shape));
    return sub;
  }, outputs);
}

plan::Parameters calibrated_parameters(model::Graph& g, const std::vector<PlainTensor>& inputs,
                                       const plan::ParameterOptions& options,
                                       std::vector<std::vector<double>>* outputs, int limb_words, int* refreshes) {
  const std::vector<double> ranges = calibrate_ranges(g, inputs, 0, outputs);
  return plan::plan_with_refreshes(g, ranges, options, limb_words, refreshes);
}

}  // namespace heinfer::runtime
