#include "runtime/steps/activations.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ckks/noise_flooding.h"
#include "ckks/sizes.h"
#include "model/error.h"
#include "plan/private_parameters.h"
#include "runtime/kernels/client_aided.h"

namespace heinfer::runtime::steps {
namespace {

using model::ModelError;
using plan::NodeKind;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<std::int64_t> all_elements(std::int64_t n) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t e = 0; e < n; ++e) out[static_cast<std::size_t>(e)] = e;
  return out;
}

}  // namespace

Activations::Activations(RunState& run)
    : run_(run), g_(run.g), plan_(run.plan), group_of_(g_.tensors.size(), -1), producer_(g_.tensors.size()),
      pending_input_(g_.tensors.size(), -1), encrypted_rows_(g_.tensors.size(), 0),
      released_(g_.tensors.size(), 0), values_(g_.tensors.size()) {
  for (const auto& n : g_.nodes) producer_[static_cast<std::size_t>(n.outputs[0])] = n.name;
  for (std::size_t i = 0; i < g_.tensors.size(); ++i) {
    if (producer_[i].empty()) producer_[i] = "input " + g_.tensors[i].name;
  }
}

GroupId Activations::open_group(model::TensorId t, std::int64_t now) {
  const int stored = plan_.tensors[static_cast<std::size_t>(t)].stored_level;
  return group_of_[static_cast<std::size_t>(t)] =
             run_.store.open_group(plan::next_reading_step(plan_, t, now), stored >= 0 ? static_cast<std::size_t>(stored) : SIZE_MAX);
}

std::int64_t Activations::encrypt_inputs() {
  const std::int64_t batch = run_.client.batch();
  if (batch <= 0 || batch > plan_.parameters.capacity()) {
    throw ModelError("batch " + std::to_string(batch) + " must be in [1, " + std::to_string(plan_.parameters.capacity()) +
                     "] (samples per ciphertext)");
  }
  for (std::size_t i = 0; i < g_.inputs.size(); ++i) {
    const model::TensorId id = g_.inputs[i];
    const auto ti = static_cast<std::size_t>(id);
    const model::Tensor& t = g_.tensors[ti];
    auto& v = values_[ti].emplace(run_.input_tensor(t.shape));
    const GroupId group = open_group(id, -1);
    if (plan_.inputs_on_demand[ti] && run_.client.encrypts_parts()) {
      pending_input_[ti] = static_cast<int>(i);
    } else {
      run_.encrypt_elements(i, v, run_.owned(id, all_elements(v.elements())), t.name, plan_.tensors[ti].bound, group);
      run_.client.input_encrypted(i);
    }
    v.level = static_cast<std::size_t>(plan_.tensors[ti].stored_level);
  }
  return batch;
}

void Activations::encrypt_rows_for(const plan::StreamStep& st) {
  const model::Node& n = g_.nodes[static_cast<std::size_t>(st.node)];
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const model::TensorId t = n.inputs[i];
    if (t == model::kNoTensor || pending_input_[static_cast<std::size_t>(t)] < 0) continue;
    const auto ti = static_cast<std::size_t>(t);
    const model::Shape& s = g_.tensors[ti].shape;
    const auto m = plan::row_map(g_, n, i);
    const std::int64_t need = st.streamed && m ? m->end(st.row_end) : s[1];
    if (need <= encrypted_rows_[ti]) continue;
    run_.encrypt_elements(static_cast<std::size_t>(pending_input_[ti]), *values_[ti],
                          run_.owned(t, band_elements(s, encrypted_rows_[ti], need)), g_.tensors[ti].name, plan_.tensors[ti].bound,
                          group_of_[ti]);
    encrypted_rows_[ti] = need;
    if (need == s[1]) {
      run_.client.input_encrypted(static_cast<std::size_t>(pending_input_[ti]));
      pending_input_[ti] = -1;
    }
  }
}

StepIO Activations::step_io(const plan::StreamStep& st, std::vector<std::int64_t>& elements, EncryptedTensor& scratch) {
  const auto k = static_cast<std::size_t>(st.node);
  const model::Node& n = g_.nodes[k];
  const plan::NodePlan& np = plan_.nodes[k];
  const model::TensorId out = n.outputs[0];
  const model::Shape& y_shape = g_.tensors[static_cast<std::size_t>(out)].shape;
  const model::TensorId x_id = model::first_activation_input(g_, n);
  const GroupId group = st.first ? open_group(out, plan::step_position(plan_, st)) : group_of_[static_cast<std::size_t>(out)];
  const bool plain_out = np.kind == NodeKind::FinalSoftmax;
  if (st.first && !plain_out) values_[static_cast<std::size_t>(out)].emplace();
  elements = st.streamed ? band_elements(y_shape, st.row_begin, st.row_end) : all_elements(model::numel(y_shape));
  StepIO io{n, np, st, {}, {}, plain_out ? scratch : *values_[static_cast<std::size_t>(out)], y_shape, group, elements,
            plan_.tensors[static_cast<std::size_t>(x_id)].bound, producer(x_id) + " -> " + n.name};
  for (model::TensorId t : n.inputs) {
    if (!model::is_activation(g_, t)) {
      io.in.push_back(nullptr);
      continue;
    }
    auto& v = values_[static_cast<std::size_t>(t)];
    if (!v) throw ModelError(model::node_label(n) + ": input has not been computed");
    io.in.push_back(&*v);
    for (model::TensorId r : plan_.tensors[static_cast<std::size_t>(t)].aliases) {
      if (group_of_[static_cast<std::size_t>(r)] >= 0) io.in_groups.push_back(group_of_[static_cast<std::size_t>(r)]);
    }
  }
  return io;
}

void Activations::after_step(const plan::StreamStep& st, StepIO& io) {
  const model::Node& n = io.n;
  if (io.np.kind != NodeKind::FinalSoftmax) {
    if (st.last && io.y.level != static_cast<std::size_t>(io.np.output_level)) {
      throw std::logic_error(model::node_label(n) + ": produced level " + std::to_string(io.y.level) + ", the plan says " +
                             std::to_string(io.np.output_level));
    }
    // The store keeps the output at its stored level (open_group's cap).
    io.y.level = std::min(io.y.level, static_cast<std::size_t>(io.np.output_stored_level));
  }
  // The inputs' groups are next read at a later step (or never: freed with their tensors).
  const std::int64_t now = plan::step_position(plan_, st);
  for (model::TensorId t : n.inputs) {
    if (!model::is_activation(g_, t)) continue;
    for (model::TensorId r : plan_.tensors[static_cast<std::size_t>(t)].aliases) {
      if (group_of_[static_cast<std::size_t>(r)] >= 0) {
        run_.store.set_next_use(group_of_[static_cast<std::size_t>(r)], plan::next_reading_step(plan_, r, now));
      }
    }
  }
  for (const auto& [t, r] : st.release) {  // rows no reader needs any more (streamed segments)
    auto& v = values_[static_cast<std::size_t>(t)];
    auto& done_rows = released_[static_cast<std::size_t>(t)];
    if (v && r > done_rows) {
      for (std::int64_t e : band_elements(v->shape, done_rows, r)) v->cts[static_cast<std::size_t>(e)].reset();
    }
    done_rows = std::max(done_rows, r);
  }
}

GroupId Activations::group_holding(model::TensorId t) const {
  if (group_of_[static_cast<std::size_t>(t)] >= 0) return group_of_[static_cast<std::size_t>(t)];
  for (model::TensorId r : plan_.tensors[static_cast<std::size_t>(t)].aliases) {
    if (group_of_[static_cast<std::size_t>(r)] >= 0) return group_of_[static_cast<std::size_t>(r)];
  }
  return -1;
}

void Activations::finish_node(const StepIO& io) {
  for (model::TensorId t : io.np.free_after) values_[static_cast<std::size_t>(t)].reset();
}

std::vector<PlainTensor> Activations::outputs(std::int64_t batch) {
  std::vector<PlainTensor> out;
  for (model::TensorId t : g_.outputs) {
    if (auto it = plain_outputs_.find(t); it != plain_outputs_.end()) {
      out.push_back(it->second);
      continue;
    }
    const auto& v = values_[static_cast<std::size_t>(t)];
    const std::string& name = g_.tensors[static_cast<std::size_t>(t)].name;
    if (!v) throw ModelError("graph output '" + name + "' was not computed");
    out.push_back(decrypt_on_client(run_, *v, batch, producer(t) + " (output " + name + ")",
                                    plan_.tensors[static_cast<std::size_t>(t)].bound));
  }
  return out;
}

namespace {

/// Copies of x's ciphertexts (null stays empty), each expanded, relinearized if of size
/// 3, re-randomized and flooded with plan::output_flood_bits of noise.
std::vector<ckks::Ciphertext> flooded_outputs(RunState& run, const EncryptedTensor& x, double bound) {
  double max_factor = 0;
  for (std::size_t i = 0; i < x.cts.size(); ++i) {
    if (x.cts[i]) max_factor = std::max(max_factor, std::fabs(x.factor_at(static_cast<std::int64_t>(i))));
  }
  std::vector<ckks::Ciphertext> out(x.cts.size());
  std::vector<std::string> errors(x.cts.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (std::size_t i = 0; i < x.cts.size(); ++i) {
    if (!x.cts[i]) continue;
    try {
      ckks::Ciphertext& c = out[i] = *x.cts[i];
      if (c.is_compact()) c.expand(run.ctx);
      if (c.size() == 3) run.eval.relinearize_inplace(c, *run.be.relin);
      const int bits = plan::output_flood_bits(c.scale(), bound, max_factor, run.ctx.n(),
                                               run.ctx.level_data(c.level()).log2_q);
      ckks::flood_noise(c, *run.public_key_encryptor, bits, run.ctx);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const std::string& e : errors) {
    if (!e.empty()) throw std::runtime_error("flooding an output: " + e);
  }
  return out;
}

}  // namespace

PlainTensor decrypt_on_client(RunState& run, const EncryptedTensor& x, std::int64_t batch, const std::string& layer,
                              double bound) {
  std::vector<const ckks::Ciphertext*> cts;
  // Model-private mode: each output re-randomized and flooded first, so that neither its
  // c_1 nor its noise shows the client the weights (ckks/noise_flooding.h).
  std::vector<ckks::Ciphertext> flooded;
  if (run.public_key_encryptor) flooded = flooded_outputs(run, x, bound);
  for (std::size_t i = 0; i < x.cts.size(); ++i) {
    const ckks::Ciphertext* c = flooded.empty() ? x.cts[i].get() : x.cts[i] ? &flooded[i] : nullptr;
    cts.push_back(c);
    if (c) run.stats.bytes_to_client += ckks::serialized_size(*c, run.ctx);
  }
  const auto t0 = Clock::now();
  PlainTensor y = run.client.decrypt(cts, x.factor, x.shape, batch, layer, bound);
  run.stats.client_seconds += since(t0);
  return y;
}

void run_step(RunState& run, StepIO& io, Activations& acts, std::int64_t batch) {
  auto prefetch = [&] {
    if (io.st.streamed) run.store.prefetch_members(band_inputs(run.g, io.n, io.st, io.in));
    else run.store.prefetch(io.in_groups);
  };
  switch (io.np.kind) {
    case NodeKind::DataMovement:
    case NodeKind::FusedRelu: run_data_movement_step(run, io); break;
    case NodeKind::Linear:
    case NodeKind::Square:
      prefetch();
      run_linear_step(run, io);
      break;
    case NodeKind::Relu:
    case NodeKind::MaxPool:
      prefetch();
      if (run.plan.parameters.privacy == plan::Privacy::Model) run_private_step(run, io);
      else run_round_step(run, io);
      break;
    case NodeKind::Clip:
    case NodeKind::LeakyRelu:
      prefetch();
      if (run.plan.parameters.privacy == plan::Privacy::Model && !io.np.identity) run_private_step(run, io);
      else run_round_step(run, io);
      break;
    case NodeKind::FunctionRound:
      prefetch();
      run_round_step(run, io);
      break;
    case NodeKind::FinalSoftmax: {  // on the client, in plaintext
      run.store.prefetch(io.in_groups);
      const model::TensorId x = model::first_activation_input(run.g, io.n);
      const PlainTensor px = decrypt_on_client(run, *first_input(io), batch, acts.producer(x), io.x_bound);
      const auto tc = Clock::now();
      PlainTensor py = make_plain_tensor(io.y_shape, batch);
      const auto& sp = std::get<model::SoftmaxParams>(io.n.params);
      if (io.n.op == model::OpType::Softmax) kernels::softmax(sp, px, py);
      else kernels::log_softmax(sp, px, py);
      run.stats.client_seconds += since(tc);
      acts.set_plain_output(io.n.outputs[0], std::move(py));
      break;
    }
  }
}

}  // namespace heinfer::runtime::steps
