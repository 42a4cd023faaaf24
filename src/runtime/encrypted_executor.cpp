#include "runtime/encrypted_executor.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <optional>

#include "ckks/sizes.h"
#include "model/error.h"
#include "runtime/kernels/client_aided.h"
#include "runtime/steps/run_state.h"

namespace heinfer::runtime {
namespace {

using model::ModelError;
using plan::NodeKind;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool is_data(const model::Graph& g, model::TensorId t) {
  return t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant;
}

/// Store groups and next uses: a tensor produced by a data-movement node (or a fused
/// Relu) shares the ciphertexts (and groups) of its inputs, so the readers of a group are
/// the readers of every tensor aliasing it.
struct GroupSchedule {
  std::vector<std::vector<model::TensorId>> roots;  ///< per tensor: the produced tensors it aliases
  std::vector<std::vector<std::int64_t>> uses;      ///< per produced tensor: reader node indices

  GroupSchedule(const model::Graph& g, const plan::EncryptedPlan& p) : roots(g.tensors.size()), uses(g.tensors.size()) {
    for (model::TensorId t : g.inputs) roots[static_cast<std::size_t>(t)] = {t};
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      const model::Node& n = g.nodes[k];
      const auto out = static_cast<std::size_t>(n.outputs[0]);
      const bool shares = p.nodes[k].kind == NodeKind::DataMovement || p.nodes[k].kind == NodeKind::FusedRelu;
      for (model::TensorId t : n.inputs) {
        if (!is_data(g, t)) continue;
        for (model::TensorId r : roots[static_cast<std::size_t>(t)]) {
          uses[static_cast<std::size_t>(r)].push_back(static_cast<std::int64_t>(k));
          if (shares && std::find(roots[out].begin(), roots[out].end(), r) == roots[out].end()) roots[out].push_back(r);
        }
      }
      if (!shares) roots[out] = {n.outputs[0]};
      else roots[out].push_back(n.outputs[0]);  // its own group (constants it creates)
    }
  }

  /// The first reader of produced tensor r after position `after` (INT64_MAX: none).
  std::int64_t next_use(model::TensorId r, std::int64_t after) const {
    for (std::int64_t k : uses[static_cast<std::size_t>(r)]) {
      if (k > after) return k;
    }
    return std::numeric_limits<std::int64_t>::max();
  }
};

/// Decrypts x on the client into a plaintext tensor of `batch` samples.
PlainTensor decrypt(const steps::RunState& run, const EncryptedTensor& x, std::int64_t batch, const std::string& layer,
                    double bound) {
  std::vector<const ckks::Ciphertext*> cts;
  for (const auto& c : x.cts) {
    cts.push_back(c.get());
    if (c) run.stats.bytes_to_client += ckks::serialized_size(*c, run.ctx);
  }
  const auto t0 = Clock::now();
  PlainTensor y = run.client.decrypt(cts, x.factor, x.shape, batch, layer, bound);
  run.stats.client_seconds += since(t0);
  return y;
}

}  // namespace

EncryptedExecutor::EncryptedExecutor(const model::Graph& g, plan::EncryptedPlan plan, ckks::ContextPtr context,
                                     const EvaluationKeys& keys, EncryptedRunOptions options)
    : g_(g), plan_(std::move(plan)), context_(std::move(context)), keys_(keys), eval_(context_),
      options_(std::move(options)) {
  if (plan_.nodes.size() != g.nodes.size() || plan_.tensors.size() != g.tensors.size()) {
    throw std::invalid_argument("the encryption plan does not match the graph");
  }
  if (plan_.max_level != static_cast<int>(context_->max_level()) ||
      plan_.parameters.params.poly_modulus_degree() != context_->n()) {
    throw std::invalid_argument("the encryption plan does not match the CKKS context");
  }
}

std::vector<PlainTensor> EncryptedExecutor::run(Client& client, const std::vector<PlainTensor>& inputs,
                                                EncryptedRunStats& stats) const {
  if (options_.threads > 0) omp_set_num_threads(options_.threads);
  const auto t_start = Clock::now();
  const model::Graph& g = g_;
  if (inputs.size() != g.inputs.size()) {
    throw ModelError("the model has " + std::to_string(g.inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  }
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  if (batch <= 0 || batch > plan_.parameters.capacity()) {
    throw ModelError("batch " + std::to_string(batch) + " must be in [1, " +
                     std::to_string(plan_.parameters.capacity()) + "] (samples per ciphertext)");
  }
  std::unique_ptr<memory::CiphertextStore> own_store;
  memory::CiphertextStore* store = options_.store;
  if (!store) store = (own_store = std::make_unique<memory::CiphertextStore>(memory::StoreOptions{})).get();
  const GroupSchedule schedule(g, plan_);
  std::vector<steps::GroupId> group_of(g.tensors.size(), -1);
  auto open_group = [&](model::TensorId t, std::int64_t now) {
    const int stored = plan_.tensors[static_cast<std::size_t>(t)].stored_level;
    return group_of[static_cast<std::size_t>(t)] =
               store->open_group(schedule.next_use(t, now), stored >= 0 ? static_cast<std::size_t>(stored) : SIZE_MAX);
  };
  steps::RunState run(g, plan_, *context_, eval_, keys_, client, stats, *store);
  std::vector<RunObserver*> observers;
  std::optional<ProgressPrinter> printer;
  std::optional<FaultInjector> fault;
  if (options_.progress) observers.push_back(&printer.emplace(g));
  if (options_.kill_after_node >= 0) observers.push_back(&fault.emplace(options_.kill_after_node));
  observers.insert(observers.end(), options_.observers.begin(), options_.observers.end());
  // Declared after the store's users above, destroyed before the store.
  std::vector<std::optional<EncryptedTensor>> values(g.tensors.size());
  std::map<model::TensorId, PlainTensor> plain_outputs;
  // Graph inputs: encrypted whole, or band by band as streamed steps read their rows.
  std::vector<const PlainTensor*> pending_input(g.tensors.size(), nullptr);
  std::vector<std::int64_t> encrypted_rows(g.tensors.size(), 0);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const model::TensorId id = g.inputs[i];
    const auto ti = static_cast<std::size_t>(id);
    const model::Tensor& t = g.tensors[ti];
    if (inputs[i].shape != t.shape || inputs[i].batch != batch ||
        static_cast<std::int64_t>(inputs[i].data.size()) != batch * model::numel(t.shape)) {
      throw ModelError("input '" + t.name + "': expected per-sample shape " + model::to_string(t.shape) +
                       " with batch " + std::to_string(batch) + ", got " + model::to_string(inputs[i].shape));
    }
    auto& v = values[ti].emplace(run.input_tensor(inputs[i]));
    const auto group = open_group(id, -1);
    if (plan_.inputs_on_demand[ti] && client.encrypts_parts()) {
      pending_input[ti] = &inputs[i];
    } else {
      std::vector<std::int64_t> all(static_cast<std::size_t>(v.elements()));
      for (std::size_t e = 0; e < all.size(); ++e) all[e] = static_cast<std::int64_t>(e);
      run.encrypt_elements(inputs[i], v, all, t.name, plan_.tensors[ti].bound, group);
    }
    v.level = static_cast<std::size_t>(plan_.tensors[ti].stored_level);
  }
  if (stats.layers.size() != g.nodes.size()) stats.layers.assign(g.nodes.size(), {});
  std::vector<std::string> producer(g.tensors.size());
  for (const auto& n : g.nodes) producer[static_cast<std::size_t>(n.outputs[0])] = n.name;
  for (std::size_t i = 0; i < g.tensors.size(); ++i) {
    if (producer[i].empty()) producer[i] = "input " + g.tensors[i].name;
  }
  std::vector<bool> fused_output(g.tensors.size(), false);  // a Relu evaluated in the next MaxPool round
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (plan_.nodes[k].kind == NodeKind::FusedRelu) fused_output[static_cast<std::size_t>(g.nodes[k].outputs[0])] = true;
  }
  std::vector<std::int64_t> released(g.tensors.size(), 0);  // rows [0, released) dropped
  std::vector<double> node_start(g.nodes.size(), 0.0);
  std::size_t step_index = 0;
  for (const plan::StreamStep& st : plan_.steps) {
    ++step_index;
    const auto t0 = Clock::now();
    const auto k = static_cast<std::size_t>(st.node);
    const model::Node& n = g.nodes[k];
    const plan::NodePlan& np = plan_.nodes[k];
    const model::TensorId out = n.outputs[0];
    const model::Shape& y_shape = g.tensors[static_cast<std::size_t>(out)].shape;
    const std::int64_t rounds0 = stats.rounds, to_client0 = stats.bytes_to_client, to_server0 = stats.bytes_to_server;
    if (st.first) node_start[k] = options_.monitor ? options_.monitor->seconds() : since(t_start);
    store->reset_window_peaks();
    if (options_.monitor) options_.monitor->mark();
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {  // input rows this step reads, encrypted now
      const model::TensorId t = n.inputs[i];
      if (t == model::kNoTensor || !pending_input[static_cast<std::size_t>(t)]) continue;
      const auto ti = static_cast<std::size_t>(t);
      const model::Shape& s = g.tensors[ti].shape;
      const auto m = plan::row_map(g, n, i);
      const std::int64_t need = st.streamed && m ? m->end(st.row_end) : s[1];
      if (need > encrypted_rows[ti]) {
        run.encrypt_elements(*pending_input[ti], *values[ti], steps::band_elements(s, encrypted_rows[ti], need),
                             g.tensors[ti].name, plan_.tensors[ti].bound, group_of[ti]);
        encrypted_rows[ti] = need;
        if (need == s[1]) pending_input[ti] = nullptr;
      }
    }
    const model::TensorId x_id = *std::find_if(n.inputs.begin(), n.inputs.end(), [&](model::TensorId t) { return is_data(g, t); });
    const auto group = st.first ? open_group(out, st.node) : group_of[static_cast<std::size_t>(out)];
    if (st.first && np.kind != NodeKind::FinalSoftmax) values[static_cast<std::size_t>(out)].emplace();
    EncryptedTensor scratch;
    std::vector<std::int64_t> elements;  // of this step: a band of rows, or all
    if (st.streamed) elements = steps::band_elements(y_shape, st.row_begin, st.row_end);
    else elements.resize(static_cast<std::size_t>(model::numel(y_shape)));
    if (!st.streamed) {
      for (std::size_t e = 0; e < elements.size(); ++e) elements[e] = static_cast<std::int64_t>(e);
    }
    steps::StepIO io{n, np, st, {}, {},
                     np.kind == NodeKind::FinalSoftmax ? scratch : *values[static_cast<std::size_t>(out)],
                     y_shape, group, elements, plan_.tensors[static_cast<std::size_t>(x_id)].bound,
                     producer[static_cast<std::size_t>(x_id)] + " -> " + n.name,
                     fused_output[static_cast<std::size_t>(x_id)]};
    for (model::TensorId t : n.inputs) {
      if (!is_data(g, t)) {
        io.in.push_back(nullptr);
        continue;
      }
      auto& v = values[static_cast<std::size_t>(t)];
      if (!v) throw ModelError(model::node_label(n) + ": input has not been computed");
      io.in.push_back(&*v);
      for (model::TensorId r : schedule.roots[static_cast<std::size_t>(t)]) {
        if (group_of[static_cast<std::size_t>(r)] >= 0) io.in_groups.push_back(group_of[static_cast<std::size_t>(r)]);
      }
    }
    run.node = st.node;
    switch (np.kind) {
      case NodeKind::DataMovement:
      case NodeKind::FusedRelu: steps::run_data_movement_step(run, io); break;
      case NodeKind::Linear:
      case NodeKind::Square:
        if (st.streamed) store->prefetch_members(steps::band_inputs(g, n, st, io.in));
        else store->prefetch(io.in_groups);
        steps::run_linear_step(run, io);
        break;
      case NodeKind::Relu:
      case NodeKind::MaxPool:
      case NodeKind::Clip:
      case NodeKind::LeakyRelu:
        if (st.streamed) store->prefetch_members(steps::band_inputs(g, n, st, io.in));
        else store->prefetch(io.in_groups);
        steps::run_round_step(run, io);
        break;
      case NodeKind::FinalSoftmax: {
        store->prefetch(io.in_groups);
        const PlainTensor px = decrypt(run, *values[static_cast<std::size_t>(x_id)], batch,
                                       producer[static_cast<std::size_t>(x_id)], io.x_bound);
        const auto tc = Clock::now();
        PlainTensor py = make_plain_tensor(y_shape, batch);
        const auto& sp = std::get<model::SoftmaxParams>(n.params);
        if (n.op == model::OpType::Softmax) kernels::softmax(sp, px, py);
        else kernels::log_softmax(sp, px, py);
        stats.client_seconds += since(tc);
        plain_outputs[out] = std::move(py);
        break;
      }
    }
    if (np.kind != NodeKind::FinalSoftmax) {
      EncryptedTensor& y = io.y;
      if (st.last && y.level != static_cast<std::size_t>(np.output_level)) {
        throw std::logic_error(model::node_label(n) + ": produced level " + std::to_string(y.level) + ", the plan says " +
                               std::to_string(np.output_level));
      }
      // The store keeps the output at its stored level (open_group's cap).
      y.level = std::min(y.level, static_cast<std::size_t>(np.output_stored_level));
    }
    for (const auto& [t, r] : st.release) {  // rows no reader needs any more (streamed segments)
      auto& v = values[static_cast<std::size_t>(t)];
      auto& done_rows = released[static_cast<std::size_t>(t)];
      if (v && r > done_rows) {
        for (std::int64_t e : steps::band_elements(v->shape, done_rows, r)) v->cts[static_cast<std::size_t>(e)].reset();
      }
      done_rows = std::max(done_rows, r);
    }
    auto& ls = stats.layers[k];
    ls.seconds += since(t0);
    ls.rounds += stats.rounds - rounds0;
    ls.bytes_to_client += stats.bytes_to_client - to_client0;
    ls.bytes_to_server += stats.bytes_to_server - to_server0;
    const auto dram = store->dram(), pmem = store->pmem();
    ls.dram_peak_bytes = std::max(ls.dram_peak_bytes, dram.window_peak_bytes);
    ls.pmem_peak_bytes = std::max(ls.pmem_peak_bytes, pmem.window_peak_bytes);
    if (options_.monitor) ls.rss_anon_peak_bytes = std::max(ls.rss_anon_peak_bytes, options_.monitor->mark());
    if (st.streamed) {
      for (RunObserver* o : observers) o->band_done(k, st, step_index, plan_.steps.size());
    }
    if (st.last) {
      ls.name = n.name;
      ls.op = std::string(model::op_name(n.op));
      if (np.kind != NodeKind::FinalSoftmax) {
        ls.ciphertexts = io.y.elements();
        ls.level = static_cast<int>(io.y.level);
        ls.stored_bytes = store->group_bytes(group);
      }
      for (model::TensorId t : np.free_after) values[static_cast<std::size_t>(t)].reset();
    }
#ifdef __GLIBC__
    // Under a DRAM budget, hand the heap pages freed by this step (released rows, dead
    // inputs, the working set) back to the kernel, so that resident memory follows the
    // budget.
    if (store->options().dram_budget > 0 && (st.last || step_index % 16 == 0)) malloc_trim(0);
#endif
    if (!st.last) continue;
    // The inputs' groups are next read later (or never: freed with their tensors).
    for (model::TensorId t : n.inputs) {
      if (!is_data(g, t)) continue;
      for (model::TensorId r : schedule.roots[static_cast<std::size_t>(t)]) {
        if (group_of[static_cast<std::size_t>(r)] >= 0) {
          store->set_next_use(group_of[static_cast<std::size_t>(r)], schedule.next_use(r, st.node));
        }
      }
    }
    ls.start = node_start[k];
    ls.dram_bytes = dram.bytes;
    ls.pmem_bytes = pmem.bytes;
    client.layer_done(k, ls);
    for (RunObserver* o : observers) o->node_done(k, g.nodes.size(), ls);
  }
  std::vector<PlainTensor> outputs;
  for (model::TensorId t : g.outputs) {
    if (auto it = plain_outputs.find(t); it != plain_outputs.end()) {
      outputs.push_back(it->second);
      continue;
    }
    const auto& v = values[static_cast<std::size_t>(t)];
    if (!v) throw ModelError("graph output '" + g.tensors[static_cast<std::size_t>(t)].name + "' was not computed");
    outputs.push_back(decrypt(run, *v, batch,
                              producer[static_cast<std::size_t>(t)] + " (output " + g.tensors[static_cast<std::size_t>(t)].name + ")",
                              plan_.tensors[static_cast<std::size_t>(t)].bound));
  }
  stats.seconds += since(t_start);
  return outputs;
}

EncryptedSession::EncryptedSession(const model::Graph& g, const plan::Parameters& parameters,
                                   EncryptedRunOptions options) {
  context = ckks::CKKSContext::create(parameters.params);
  client = std::make_unique<LocalClient>(context, parameters.packing, parameters.scale());
  plan::ScheduleOptions so;
  so.streaming = options.streaming;
  if (options.store) so.tile_bytes = options.store->tile_bytes();  // else the private store's (1 GiB)
  executor = std::make_unique<EncryptedExecutor>(g, plan::make_plan(g, parameters, so), context,
                                                 client->evaluation_keys(), std::move(options));
}

std::vector<double> EncryptedSession::run_batched(std::vector<double> inputs, std::int64_t count,
                                                  std::int64_t chunk, EncryptedRunStats& stats,
                                                  std::vector<double>* batch_seconds) {
  const model::Graph& g = executor->graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw ModelError("encrypted batched runs support one input and one output");
  }
  const model::Shape& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape& out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  const std::int64_t in_e = model::numel(in_shape), out_e = model::numel(out_shape);
  if (static_cast<std::int64_t>(inputs.size()) != count * in_e) throw ModelError("input size mismatch");
  chunk = std::min(chunk, executor->plan().parameters.capacity());
  // The batch is held once: in the executor's layout, a tensor per chunk, each freed
  // when its chunk has run.
  std::vector<PlainTensor> xs;
  for (std::int64_t s = 0; s < count; s += chunk) {
    const std::int64_t b = std::min(chunk, count - s);
    xs.push_back(from_batch_major(std::span<const double>(inputs).subspan(static_cast<std::size_t>(s * in_e),
                                                                         static_cast<std::size_t>(b * in_e)),
                                  b, in_shape));
  }
  std::vector<double>().swap(inputs);
  std::vector<double> out(static_cast<std::size_t>(count * out_e));
  std::int64_t s = 0;
  for (PlainTensor& x : xs) {
    const auto t0 = Clock::now();
    std::vector<PlainTensor> in;
    in.push_back(std::move(x));
    auto y = executor->run(*client, in, stats);
    const auto bm = to_batch_major(y[0]);
    std::copy(bm.begin(), bm.end(), out.begin() + s * out_e);
    s += in[0].batch;
    if (batch_seconds) batch_seconds->push_back(since(t0));
  }
  return out;
}

}  // namespace heinfer::runtime
