#include "plan/node_kind.h"

#include "model/error.h"
#include "model/graph.h"

namespace heinfer::plan {
namespace {

using model::OpType;

bool is_data_movement(OpType op) {
  switch (op) {
    case OpType::Flatten:
    case OpType::Reshape:
    case OpType::Identity:
    case OpType::Dropout:
    case OpType::Transpose:
    case OpType::Concat:
    case OpType::Pad:
    case OpType::Squeeze:
    case OpType::Unsqueeze:
    case OpType::Cast: return true;
    default: return false;
  }
}

}  // namespace

bool is_relayout(OpType op) {
  switch (op) {
    case OpType::Flatten:
    case OpType::Reshape:
    case OpType::Identity:
    case OpType::Dropout:
    case OpType::Squeeze:
    case OpType::Unsqueeze:
    case OpType::Transpose: return true;
    default: return false;
  }
}

bool is_round(NodeKind k) {
  return k == NodeKind::Relu || k == NodeKind::MaxPool || k == NodeKind::Clip || k == NodeKind::LeakyRelu ||
         k == NodeKind::FunctionRound;
}

NodeKind node_kind(const model::Graph& g, const model::Node& n) {
  if (std::holds_alternative<model::SquareParams>(n.params) || std::holds_alternative<model::ProductParams>(n.params)) {
    return NodeKind::Square;
  }
  if (std::holds_alternative<model::ElementMapParams>(n.params)) return NodeKind::DataMovement;
  if (std::holds_alternative<model::ActivationParams>(n.params)) {
    if (n.op == OpType::Floor || n.op == OpType::Ceil) {
      throw model::ModelError(model::node_label(n) +
                              ": Floor/Ceil of encrypted values is not supported: CKKS's approximation error moves "
                              "values that sit on an integer across it, so the result would be off by one at random");
    }
    return NodeKind::FunctionRound;
  }
  switch (n.op) {
    case OpType::Relu: {
      const auto users = model::consumers(g)[static_cast<std::size_t>(n.outputs[0])];
      if (users.size() == 1 && g.nodes[static_cast<std::size_t>(users[0])].op == OpType::MaxPool &&
          !model::is_graph_output(g, n.outputs[0])) {
        return NodeKind::FusedRelu;
      }
      return NodeKind::Relu;
    }
    case OpType::MaxPool: return NodeKind::MaxPool;
    case OpType::Clip: return NodeKind::Clip;
    case OpType::LeakyRelu: return NodeKind::LeakyRelu;
    case OpType::Softmax:
    case OpType::LogSoftmax: {
      const auto users = model::consumers(g)[static_cast<std::size_t>(n.outputs[0])];
      if (!users.empty() || !model::is_graph_output(g, n.outputs[0])) {
        throw model::ModelError(model::node_label(n) +
                                ": under encryption Softmax/LogSoftmax is only supported as a final layer "
                                "(the client applies it after decryption)");
      }
      return NodeKind::FinalSoftmax;
    }
    case OpType::Pow:
    case OpType::Constant:
      throw model::ModelError(model::node_label(n) + ": not prepared for execution (run prepare_graph)");
    default: return is_data_movement(n.op) ? NodeKind::DataMovement : NodeKind::Linear;
  }
}

std::vector<NodeKind> node_kinds(const model::Graph& g) {
  std::vector<NodeKind> kinds;
  kinds.reserve(g.nodes.size());
  for (const auto& n : g.nodes) kinds.push_back(node_kind(g, n));
  return kinds;
}

}  // namespace heinfer::plan
