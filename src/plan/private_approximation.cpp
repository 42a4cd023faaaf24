#include "plan/private_approximation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace heinfer::plan {

double ReluCombination::input_bound(double range) const {
  double b = 0;
  for (const ReluTerm& t : terms) b = std::max(b, std::fabs(t.scale) * range + std::fabs(t.shift));
  return b;
}

ReluCombination relu_combination(const model::Node& n) {
  ReluCombination c;
  switch (n.op) {
    case model::OpType::Relu: c.terms = {{1, 0, 1}}; break;
    case model::OpType::LeakyRelu: {
      const double a = std::get<model::LeakyReluParams>(n.params).alpha;
      if (!(a >= 0)) {  // Relu(x) - Relu(-αx) is LeakyRelu for α >= 0 only
        throw std::invalid_argument(model::node_label(n) + ": LeakyRelu with a negative alpha is not evaluated "
                                    "homomorphically (use --privacy activations)");
      }
      c.terms = {{1, 0, 1}, {-a, 0, -1}};
      break;
    }
    case model::OpType::Clip: {
      const auto& p = std::get<model::ClipParams>(n.params);
      const bool lo = std::isfinite(p.min), hi = std::isfinite(p.max);
      if (lo) c.constant = p.min;
      if (lo) c.terms.push_back({1, -p.min, 1});
      if (hi && lo) c.terms.push_back({1, -p.max, -1});
      if (hi && !lo) {
        c.constant = p.max;
        c.terms.push_back({-1, p.max, -1});
      }
      if (!lo && !hi) throw std::invalid_argument(model::node_label(n) + ": Clip without bounds is the identity");
      break;
    }
    default: throw std::invalid_argument(model::node_label(n) + ": not a combination of Relus");
  }
  return c;
}

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
    } else if (n.op == model::OpType::LeakyRelu ||
               (n.op == model::OpType::Clip && (std::isfinite(std::get<model::ClipParams>(n.params).min) ||
                                                std::isfinite(std::get<model::ClipParams>(n.params).max)))) {
      const double range = ranges.at(static_cast<std::size_t>(n.inputs[0]));
      const double b = relu_combination(n).input_bound(std::isfinite(range) && range > 0 ? range : 0);
      out[k].relu = approximation(n, n.inputs[0], range > 0 ? b / range : 1.0);
    } else if (n.op == model::OpType::MaxPool) {
      // After a deferred Relu the pool sees the Relu's input, of both signs.
      const auto it = raw.find(n.inputs[0]);
      out[k].max = approximation(n, it == raw.end() ? n.inputs[0] : it->second, 2.0);
    }
  }
  return out;
}

}  // namespace heinfer::plan
