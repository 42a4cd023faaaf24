#include "plan/cost_model.h"

#include <algorithm>
#include <stdexcept>
#include <variant>

namespace heinfer::plan {

double predict_node_seconds(const model::Graph& g, const model::Node& n, const NodePlan& np,
                            const NodeFootprint& f, const CostCalibration& c) {
  const double limbs = static_cast<double>(std::max(np.input_level, 0) + 1);
  const double outputs = static_cast<double>(np.output_ciphertexts);
  // Outputs reading their own inputs: depthwise/grouped convolutions with one input
  // channel per group, element-wise products, BatchNormalization, pooling windows.
  bool single = true;
  if (n.op == model::OpType::Gemm || n.op == model::OpType::MatMul) single = false;
  if (n.op == model::OpType::Conv) {
    const auto& w = g.tensors[static_cast<std::size_t>(n.inputs[1])].shape;
    single = w.size() > 1 && w[1] == 1 && std::get<model::ConvParams>(n.params).group > 1;
  }
  const double mac = single ? c.mac_single : c.mac_shared;
  double s = 0;
  switch (np.kind) {
    case NodeKind::DataMovement:
    case NodeKind::FusedRelu:
    case NodeKind::FinalSoftmax: break;
    case NodeKind::Linear:
      if (np.rescale_twice) {
        // Three polynomials per term, then per output a relinearization (about half a
        // square's cost) and two rescales.
        s += 1.5 * static_cast<double>(f.mac_terms) * limbs * mac + outputs * limbs * (2 * c.output_limb + 0.5 * c.square_limb);
      } else if (np.rescale) {
        s += static_cast<double>(f.mac_terms) * limbs * mac + outputs * limbs * c.output_limb;
      } else {
        s += static_cast<double>(f.additions) * limbs * c.add_limb + outputs * limbs * c.copy_limb;
      }
      break;
    case NodeKind::Square:  // deferred: no relinearization or rescale (about half)
      s += static_cast<double>(f.squares) * limbs * c.square_limb * (np.deferred_product ? 0.5 : 1.0);
      break;
    case NodeKind::Relu:
    case NodeKind::MaxPool:
    case NodeKind::Clip:
    case NodeKind::LeakyRelu:
    case NodeKind::FunctionRound:
      s += static_cast<double>(np.round_ciphertexts) * c.round_send + static_cast<double>(np.round_replies * (np.round_signed_value ? 2 : 1)) * c.round_reply;
      if (np.kind == NodeKind::Clip || np.kind == NodeKind::LeakyRelu) {
        // shifted copies + lowered replies + the recombination (one MAC + rescale per output)
        s += static_cast<double>(np.round_ciphertexts + f.aligned) * limbs * c.copy_limb;
        s += static_cast<double>(f.mac_terms) * limbs * c.mac_single + outputs * limbs * c.output_limb;
      }
      break;
  }
  // Compact fresh inputs expanded, pending factors applied first (one MAC + rescale per
  // element) and level alignment.
  s += static_cast<double>(f.fresh_inputs) * limbs * c.expand_limb;
  s += static_cast<double>(f.materialized) * (limbs + 1) * (c.mac_single + c.output_limb);
  if (np.kind != NodeKind::Clip && np.kind != NodeKind::LeakyRelu) {
    s += static_cast<double>(f.aligned) * limbs * c.copy_limb;
  }
  return s;
}

TimeEstimate predict_time(const model::Graph& g, const EncryptedPlan& plan, const FootprintEstimate& f,
                          const CostCalibration& c, std::int64_t samples, std::int64_t capacity) {
  if (samples <= 0 || capacity <= 0) throw std::invalid_argument("predict_time: samples and capacity must be positive");
  TimeEstimate t;
  t.node_seconds.resize(g.nodes.size());
  t.first_touch_node_seconds.resize(g.nodes.size());
  std::int64_t high = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const double steady = predict_node_seconds(g, g.nodes[k], plan.nodes.at(k), f.nodes.at(k), c);
    const std::int64_t live = f.nodes.at(k).live_bytes;
    const double touch = live > high ? static_cast<double>(live - high) * c.first_touch : 0.0;
    high = std::max(high, live);
    t.node_seconds[k] = steady;
    t.first_touch_node_seconds[k] = touch;
    t.first_touch_seconds += touch;
    t.batch_seconds += steady;
  }
  t.encrypt_seconds = static_cast<double>(f.input_ciphertexts) * c.encrypt;
  t.decrypt_seconds = static_cast<double>(f.output_ciphertexts) * c.decrypt;
  t.batch_seconds += t.encrypt_seconds + t.decrypt_seconds;
  t.batches = (samples + capacity - 1) / capacity;
  t.total_seconds = static_cast<double>(t.batches) * t.batch_seconds + t.first_touch_seconds;
  return t;
}

}  // namespace heinfer::plan
