#include "protocol/served_model.h"

#include <algorithm>
#include <cstdio>
#include <span>
#include <stdexcept>

#include "ckks/serialization.h"
#include "memory/bytes.h"
#include "model/load.h"
#include "plan/footprint.h"
#include "plan/partition.h"
#include "plan/refresh_rounds.h"
#include "runtime/round_function.h"
#include "runtime/calibration.h"
#include "runtime/client.h"
#include "runtime/npy.h"

namespace heinfer::protocol {
namespace {

// Session memory reservation = kFootprintFactor x plan::predict_footprint(...).total_bytes()
// + the serialized keys (held while they are loaded) + four messages of gRPC buffers
// + kSessionOverhead. Calibrated against the measured peak RSS of CNN and CryptoNets
// sessions (docs/remote_inference.md, "Memory admission"). Rank 0 of `serve --distributed`
// holds no activations: its sessions reserve the keys, the messages, the overhead and one
// compute rank's call (its round ciphertexts, loaded and re-serialized: at most the
// plan's tile bytes).
constexpr double kFootprintFactor = 1.5;
constexpr std::int64_t kSessionOverhead = std::int64_t{256} << 20;

}  // namespace

std::unique_ptr<Model> prepare_served_model(const ServedModel& sm, int max_message_mib, plan::RoundMasks masks,
                                            bool unmasked_functions, plan::Privacy privacy, int compute_ranks) {
  auto m = std::make_unique<Model>();
  m->name = sm.name;
  m->g = model::load_model(sm.path);
  const bool model_private = privacy == plan::Privacy::Model;
  // Before calibration: the new tensors need ranges. (The model-private mode refreshes
  // on its own, blindly.)
  if (!model_private) plan::insert_refresh_rounds(m->g, masks);
  if (m->g.inputs.size() != 1 || m->g.outputs.size() != 1) {
    throw std::runtime_error("model '" + sm.name + "' has " + std::to_string(m->g.inputs.size()) + " inputs and " +
                             std::to_string(m->g.outputs.size()) +
                             " outputs: serve supports one input and one output (the protocol carries one "
                             "input and one output tensor per batch)");
  }
  ModelInfo& info = m->info;
  int rounds = 0;
  for (std::size_t k = 0; k < m->g.nodes.size(); ++k) {
    const model::Node& n = m->g.nodes[k];
    const plan::NodeKind kind = plan::node_kind(m->g, n);
    if (plan::is_round(kind)) ++rounds;
    switch (kind) {
      case plan::NodeKind::FinalSoftmax: {
        // Applied by the client after decryption, like the embedded executor's client.
        const auto& sp = std::get<model::SoftmaxParams>(n.params);
        info.set_output_function(n.op == model::OpType::Softmax ? SOFTMAX : LOG_SOFTMAX);
        info.add_softmax_dims(sp.outer);
        info.add_softmax_dims(sp.n);
        info.add_softmax_dims(sp.inner);
        break;
      }
      default: break;
    }
  }
  info.set_rounds(rounds);
  info.set_nodes(static_cast<int>(m->g.nodes.size()));
  if (sm.calibration.empty()) {
    throw std::runtime_error("model '" + sm.name + "': needs --calibration " + sm.name + "=X.npy");
  }
  const model::Shape in_shape = m->g.tensors[static_cast<std::size_t>(m->g.inputs[0])].shape;
  const model::Shape out_shape = m->g.tensors[static_cast<std::size_t>(m->g.outputs[0])].shape;
  const runtime::InputBatch cal = runtime::read_input_batch(sm.calibration, in_shape);  // NaN refused
  const auto all = runtime::from_batch_major(std::span<const double>(cal.values), cal.count, in_shape);
  plan::ParameterOptions po;
  po.masks = model_private ? plan::RoundMasks::PerWindow : masks;  // (no client rounds to mask)
  po.unmasked_functions = unmasked_functions;
  po.packing = masks == plan::RoundMasks::PerSample || model_private ? ckks::Packing::Real : ckks::Packing::Complex;
  po.privacy = privacy;
  m->plan = runtime::calibrated_parameters(m->g, {all}, po);
  m->context = ckks::CKKSContext::create(m->plan.params);
  // A key-switching key has at most key_limb_count() components of 2 polynomials over
  // key_limb_count() limbs of N 8-byte words (+ headers).
  const auto limbs = static_cast<std::int64_t>(m->context->key_limb_count());
  m->max_key_bytes = limbs * limbs * 2 * static_cast<std::int64_t>(m->context->n()) * 8 + (1 << 20);
  m->encrypted = plan::make_plan(m->g, m->plan);
  const plan::FootprintEstimate fe = plan::predict_footprint(m->g, m->encrypted);
  const std::int64_t held = compute_ranks > 1
                                ? m->encrypted.options.tile_bytes
                                : static_cast<std::int64_t>(kFootprintFactor * static_cast<double>(fe.total_bytes()));
  m->reservation = held + fe.key_bytes + 4 * (std::int64_t{max_message_mib} << 20) + kSessionOverhead;
  // The round schedule (per node: one process's rounds, or every compute rank's).
  const std::vector<std::int64_t> requests =
      plan::round_requests(m->g, m->encrypted, plan::partition_columns(m->g, m->encrypted, std::max(1, compute_ranks)));
  for (std::size_t k = 0; k < m->g.nodes.size(); ++k) {
    const plan::NodePlan& np = m->encrypted.nodes[k];
    if (!plan::is_round(np.kind) || np.identity) continue;
    RoundSpec* r = info.add_schedule();
    r->set_node(static_cast<int>(k));
    r->set_function(static_cast<int>(model_private ? runtime::RoundFunction::BlindRefresh
                                                   : runtime::round_function(np, m->g.nodes[k].op, m->plan.masks)));
    r->set_windows(np.round_replies);
    const std::int64_t per_item = np.round_replies / std::max<std::int64_t>(1, np.output_ciphertexts);
    r->set_max_windows(np.round_items * std::max<std::int64_t>(1, per_item));
    r->set_window_size(static_cast<int>(np.round_window_size));
    r->set_rounds(static_cast<int>(requests[k]));
    r->set_level(np.round_level);
    r->set_bound(np.round_bound);
  }
  info.set_privacy(model_private ? MODEL : ACTIVATIONS);
  info.set_output_ciphertexts(m->encrypted.nodes.empty() ? 0 : model::numel(out_shape));
  const auto pb = ckks::to_bytes(m->context->parameters());
  info.set_parameters(std::string(pb.begin(), pb.end()));
  const auto& fp = m->context->fingerprint();
  info.set_fingerprint(std::string(fp.begin(), fp.end()));
  info.set_complex_packing(m->plan.packing == ckks::Packing::Complex);
  info.set_scale_bits(m->plan.scale_bits);
  for (auto d : in_shape) info.add_input_shape(d);
  for (auto d : out_shape) info.add_output_shape(d);
  info.set_input_bound(m->plan.bounds[static_cast<std::size_t>(m->g.inputs[0])]);
  info.set_capacity(m->plan.capacity());
  if (m->plan.packing == ckks::Packing::Complex && m->context->special_count() > 0) {
    info.add_galois_elements(static_cast<uint32_t>(2 * m->context->n() - 1));  // conjugation
  }
  info.set_input_name(m->g.tensors[static_cast<std::size_t>(m->g.inputs[0])].name);
  info.set_description(m->plan.describe());
  info.set_session_reservation(m->reservation);
  info.set_max_key_bytes(m->max_key_bytes);
  std::printf("model %s: %s; predicted footprint %s, session reservation %s\n", sm.name.c_str(),
              m->plan.describe().c_str(), memory::format_bytes(fe.total_bytes()).c_str(),
              memory::format_bytes(m->reservation).c_str());
  return m;
}

SessionRequirements session_requirements(const Model& m) {
  const bool key_switching = m.context->special_count() > 0;
  return {m.name,
          m.context.get(),
          key_switching && m.plan.packing == ckks::Packing::Complex,
          key_switching,
          m.max_key_bytes,
          {m.info.galois_elements().begin(), m.info.galois_elements().end()},
          m.plan.privacy == plan::Privacy::Model};
}

}  // namespace heinfer::protocol
