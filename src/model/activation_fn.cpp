#include "model/activation_fn.h"

#include <algorithm>
#include <cmath>

#include "model/error.h"

namespace heinfer::model {

bool is_elementwise_function(OpType op) {
  switch (op) {
    case OpType::Sigmoid:
    case OpType::Tanh:
    case OpType::HardSigmoid:
    case OpType::HardSwish:
    case OpType::Softplus:
    case OpType::Erf:
    case OpType::Exp:
    case OpType::Log:
    case OpType::Sqrt:
    case OpType::Floor:
    case OpType::Ceil: return true;
    default: return false;
  }
}

ActivationParams activation_params(const Node& n) {
  const std::string ctx = node_label(n);
  if (n.op == OpType::HardSigmoid) {
    check_known_attributes(n.attributes, {"alpha", "beta"}, ctx);
    return {get_float(n.attributes, "alpha", 0.2, ctx), get_float(n.attributes, "beta", 0.5, ctx)};
  }
  check_known_attributes(n.attributes, {}, ctx);
  if (n.op == OpType::HardSwish) return {1.0 / 6.0, 0.5};
  return {};
}

double activation_value(OpType op, const ActivationParams& p, double x) {
  switch (op) {
    case OpType::Sigmoid: return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
    case OpType::Tanh: return std::tanh(x);
    case OpType::HardSigmoid: return std::clamp(p.alpha * x + p.beta, 0.0, 1.0);
    case OpType::HardSwish: return x * std::clamp(p.alpha * x + p.beta, 0.0, 1.0);
    case OpType::Softplus: return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    case OpType::Erf: return std::erf(x);
    case OpType::Exp: return std::exp(x);
    case OpType::Log: return std::log(x);
    case OpType::Sqrt: return std::sqrt(x);
    case OpType::Floor: return std::floor(x);
    case OpType::Ceil: return std::ceil(x);
    default: throw ModelError(std::string("activation_value: ") + std::string(op_name(op)) + " is not an element-wise activation");
  }
}

}  // namespace heinfer::model
