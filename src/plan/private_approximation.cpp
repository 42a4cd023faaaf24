#include "plan/private_approximation.h"

#include <cmath>
#include <stdexcept>

namespace heinfer::plan {

std::map<std::size_t, NodeApproximation> model_private_approximations(const model::Graph& g,
                                                                     const std::vector<double>& ranges,
                                                                     const ApproximationOptions& o) {
  // The bound of a node's approximation: margin × the range of tensor t, × factor.
  auto approximation = [&](const model::Node& n, model::TensorId t, double factor) {
    const double range = ranges.at(static_cast<std::size_t>(t));
    if (!std::isfinite(range) || range <= 0) {
      throw std::invalid_argument(model::node_label(n) + ": no calibrated range to approximate it on");
    }
    return choose_relu_approximation(o.margin * range * factor, o.relative_error);
  };
  const auto users = model::consumers(g);
  std::map<std::size_t, NodeApproximation> out;
  std::map<model::TensorId, model::TensorId> raw;  // deferred Relu output -> its input
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    if (n.op == model::OpType::Relu) {
      const auto& u = users[static_cast<std::size_t>(n.outputs[0])];
      if (u.size() == 1 && g.nodes[static_cast<std::size_t>(u[0])].op == model::OpType::MaxPool &&
          !model::is_graph_output(g, n.outputs[0])) {
        out[k].deferred = true;
        out[static_cast<std::size_t>(u[0])].relu = approximation(n, n.inputs[0], 1.0);  // max(x) has x's range
        raw[n.outputs[0]] = n.inputs[0];
      } else {
        out[k].relu = approximation(n, n.inputs[0], 1.0);
      }
    } else if (n.op == model::OpType::MaxPool) {
      // After a deferred Relu the pool sees the Relu's input, of both signs.
      const auto it = raw.find(n.inputs[0]);
      out[k].max = approximation(n, it == raw.end() ? n.inputs[0] : it->second, 2.0);
    }
  }
  return out;
}

}  // namespace heinfer::plan
