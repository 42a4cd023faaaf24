#include "runtime/plain_executor.h"

#include <omp.h>

#include <optional>

#include "model/error.h"
#include "model/liveness.h"
#include "runtime/kernels/client_aided.h"
#include "runtime/kernels/dispatch.h"
#include "runtime/plain_conv.h"

namespace heinfer::runtime {
namespace {

using model::ModelError;
using model::OpType;

}  // namespace

void run_node_plain(const model::Graph& g, const model::Node& n,
                    const std::vector<const PlainTensor*>& in, PlainTensor& y) {
  const PlainBackend be{y.batch};
  if (std::holds_alternative<std::monostate>(n.params) || in.empty() ||
      in.size() != n.inputs.size()) {
    throw ModelError(model::node_label(n) + ": not prepared for execution (run prepare_graph)");
  }
  if (!in[0] && n.op != OpType::Add && n.op != OpType::Sub && n.op != OpType::Mul &&
      n.op != OpType::Concat) {  // only these may have a constant first input
    throw ModelError(model::node_label(n) + ": first input is not data-dependent");
  }
  if (const auto* cp = std::get_if<model::ConvParams>(&n.params);
      cp && n.op == OpType::Conv && in[0] && plain_conv_applies(*cp, y.shape.empty() ? 0 : y.shape[0], y.batch)) {
    plain_conv(*cp, kernels::constant_input(g, n, 1), kernels::constant_input(g, n, 2), *in[0],
               cp->residual ? in.at(3) : nullptr, y);
    return;
  }
  if (kernels::run_backend_node(be, g, n, in, y)) return;
  const PlainTensor* x = in[0];
  const auto& p = n.params;
  if (const auto* a = std::get_if<model::ActivationParams>(&p)) {
    kernels::elementwise_function(n.op, *a, *x, y);
    return;
  }

  switch (n.op) {  // the client-aided ops (the encrypted executor runs them as client rounds)
    case OpType::MaxPool: kernels::max_pool(std::get<model::PoolParams>(p), *x, y); return;
    case OpType::Relu: kernels::relu(*x, y); return;
    case OpType::Clip: kernels::clip(std::get<model::ClipParams>(p), *x, y); return;
    case OpType::LeakyRelu: kernels::leaky_relu(std::get<model::LeakyReluParams>(p), *x, y); return;
    case OpType::Softmax: kernels::softmax(std::get<model::SoftmaxParams>(p), *x, y); return;
    case OpType::LogSoftmax: kernels::log_softmax(std::get<model::SoftmaxParams>(p), *x, y); return;
    default: break;
  }
  throw ModelError(model::node_label(n) + ": not prepared for execution (run prepare_graph)");
}

std::vector<PlainTensor> run_plain(const model::Graph& g, std::vector<PlainTensor> inputs,
                                   const PlainRunOptions& options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  if (inputs.size() != g.inputs.size()) {
    throw ModelError("the model has " + std::to_string(g.inputs.size()) + " inputs, got " +
                     std::to_string(inputs.size()));
  }
  std::vector<std::optional<PlainTensor>> values(g.tensors.size());
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  if (batch <= 0) throw ModelError("the batch must be non-empty");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const model::Tensor& t = g.tensors[static_cast<std::size_t>(g.inputs[i])];
    if (inputs[i].shape != t.shape || inputs[i].batch != batch ||
        static_cast<std::int64_t>(inputs[i].data.size()) != batch * model::numel(t.shape)) {
      throw ModelError("input '" + t.name + "': expected per-sample shape " + model::to_string(t.shape) +
                       " with batch " + std::to_string(batch) + ", got " +
                       model::to_string(inputs[i].shape) + " with batch " + std::to_string(inputs[i].batch));
    }
    values[static_cast<std::size_t>(g.inputs[i])] = std::move(inputs[i]);
  }
  const auto free_after = model::activations_to_free(g);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    std::vector<const PlainTensor*> in;
    for (model::TensorId t : n.inputs) {
      if (!model::is_activation(g, t)) {
        in.push_back(nullptr);
        continue;
      }
      const auto& v = values[static_cast<std::size_t>(t)];
      if (!v) throw ModelError(model::node_label(n) + ": input '" + g.tensors[static_cast<std::size_t>(t)].name + "' has not been computed");
      in.push_back(&*v);
    }
    const model::TensorId out = n.outputs[0];
    PlainTensor y = make_plain_tensor(g.tensors[static_cast<std::size_t>(out)].shape, batch);
    if (!options.replace || !options.replace(k, in, y)) run_node_plain(g, n, in, y);
    values[static_cast<std::size_t>(out)] = std::move(y);
    for (model::TensorId t : free_after[k]) values[static_cast<std::size_t>(t)].reset();
  }
  std::vector<PlainTensor> outputs;
  for (model::TensorId t : g.outputs) {
    const auto& v = values[static_cast<std::size_t>(t)];
    if (!v) throw ModelError("graph output '" + g.tensors[static_cast<std::size_t>(t)].name + "' was not computed");
    outputs.push_back(*v);
  }
  return outputs;
}

}  // namespace heinfer::runtime
