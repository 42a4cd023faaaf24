#include "runtime/batch_runner.h"

#include <algorithm>

#include "model/error.h"

namespace heinfer::runtime {

std::vector<float> run_plain_batched(const model::Graph& g, std::span<const double> inputs,
                                     std::int64_t count, std::int64_t chunk,
                                     const PlainRunOptions& options) {
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw model::ModelError("batched execution needs a model with one input and one output (it has " +
                            std::to_string(g.inputs.size()) + " and " +
                            std::to_string(g.outputs.size()) + ")");
  }
  const model::Shape& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape& out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  const std::int64_t in_elems = model::numel(in_shape), out_elems = model::numel(out_shape);
  if (static_cast<std::int64_t>(inputs.size()) != count * in_elems) {
    throw model::ModelError("batched execution: " + std::to_string(inputs.size()) +
                            " input values for " + std::to_string(count) + " samples of shape " +
                            model::to_string(in_shape));
  }
  if (chunk <= 0) throw model::ModelError("batched execution: the chunk size must be positive");
  std::vector<float> out(static_cast<std::size_t>(count * out_elems));
  for (std::int64_t start = 0; start < count; start += chunk) {
    const std::int64_t n = std::min(chunk, count - start);
    std::vector<PlainTensor> in;
    in.push_back(from_batch_major(inputs.subspan(static_cast<std::size_t>(start * in_elems),
                                                 static_cast<std::size_t>(n * in_elems)),
                                  n, in_shape));
    const std::vector<double> y = to_batch_major(run_plain(g, std::move(in), options)[0]);
    std::copy(y.begin(), y.end(), out.begin() + start * out_elems);
  }
  return out;
}

}  // namespace heinfer::runtime
