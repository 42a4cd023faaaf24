#include "runtime/encrypted_executor.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <optional>

#include "ckks/sizes.h"
#include "model/error.h"
#include "plan/partition.h"
#include "runtime/steps/activations.h"
#include "runtime/steps/distribution.h"

namespace heinfer::runtime {
namespace {

using model::ModelError;
using plan::NodeKind;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Per-layer accounting of one step: time, rounds, traffic and memory peaks, added to the
/// node's LayerStats.
class StepMeter {
 public:
  StepMeter(const EncryptedRunStats& stats, memory::CiphertextStore& store, memory::MemoryMonitor* monitor)
      : stats_(stats), store_(store), monitor_(monitor), t0_(Clock::now()), rounds_(stats.rounds),
        to_client_(stats.bytes_to_client), to_server_(stats.bytes_to_server) {
    store_.reset_window_peaks();
    if (monitor_) monitor_->mark();
  }

  void add_to(LayerStats& ls) const {
    ls.seconds += since(t0_);
    ls.rounds += stats_.rounds - rounds_;
    ls.bytes_to_client += stats_.bytes_to_client - to_client_;
    ls.bytes_to_server += stats_.bytes_to_server - to_server_;
    ls.dram_peak_bytes = std::max(ls.dram_peak_bytes, store_.dram().window_peak_bytes);
    ls.pmem_peak_bytes = std::max(ls.pmem_peak_bytes, store_.pmem().window_peak_bytes);
    if (monitor_) ls.rss_anon_peak_bytes = std::max(ls.rss_anon_peak_bytes, monitor_->mark());
  }

 private:
  const EncryptedRunStats& stats_;
  memory::CiphertextStore& store_;
  memory::MemoryMonitor* monitor_;
  Clock::time_point t0_;
  std::int64_t rounds_, to_client_, to_server_;
};

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

std::vector<PlainTensor> EncryptedExecutor::run(LocalClient& client, std::vector<PlainTensor> inputs,
                                                EncryptedRunStats& stats) const {
  if (inputs.size() != g_.inputs.size()) {
    throw ModelError("the model has " + std::to_string(g_.inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  }
  const std::int64_t batch = inputs.empty() ? 0 : inputs[0].batch;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const model::Tensor& t = g_.tensors[static_cast<std::size_t>(g_.inputs[i])];
    if (inputs[i].shape != t.shape || inputs[i].batch != batch ||
        static_cast<std::int64_t>(inputs[i].data.size()) != batch * model::numel(t.shape)) {
      throw ModelError("input '" + t.name + "': expected per-sample shape " + model::to_string(t.shape) + " with batch " +
                       std::to_string(batch) + ", got " + model::to_string(inputs[i].shape));
    }
  }
  struct Inputs {  // handed to the client for this run only
    LocalClient& c;
    Inputs(LocalClient& client, std::vector<PlainTensor>& x) : c(client) { c.set_inputs(&x); }
    ~Inputs() { c.set_inputs(nullptr); }
  } held(client, inputs);
  return run(static_cast<Client&>(client), stats);
}

std::vector<PlainTensor> EncryptedExecutor::run(Client& client, EncryptedRunStats& stats) const {
  if (options_.threads > 0) omp_set_num_threads(options_.threads);
  const auto t_start = Clock::now();
  const model::Graph& g = g_;
  std::unique_ptr<memory::CiphertextStore> own_store;
  memory::CiphertextStore* store = options_.store;
  if (!store) store = (own_store = std::make_unique<memory::CiphertextStore>(memory::StoreOptions{})).get();
  steps::RunState run(g, plan_, *context_, eval_, keys_, client, stats, *store);
  std::optional<ckks::CKKSEncoder> encoder;
  std::optional<ckks::SpecialFFT> fft;
  if (plan_.parameters.masks == plan::RoundMasks::PerSample) {
    run.encoder = &encoder.emplace(context_);
    run.fft = &fft.emplace(context_->n());
  }
  std::optional<ckks::Encryptor> public_key_encryptor;
  if (plan_.parameters.privacy == plan::Privacy::Model) {
    run.public_key_encryptor = &public_key_encryptor.emplace(context_, keys_.public_key);
  }
  std::vector<RunObserver*> observers;
  std::optional<ProgressPrinter> printer;
  std::optional<FaultInjector> fault;
  if (options_.progress) observers.push_back(&printer.emplace(g, store));
  if (options_.kill_after_node >= 0 || options_.kill_after_step >= 0 || options_.kill_in_round >= 0) {
    observers.push_back(&fault.emplace(options_.kill_after_node, options_.kill_after_step, options_.kill_in_round));
  }
  observers.insert(observers.end(), options_.observers.begin(), options_.observers.end());
  run.observers = &observers;
  std::optional<plan::Partition> partition;  // a distributed run: this rank's share
  if (options_.peers && options_.peers->size() > 1) {
    partition = plan::partition_columns(g, plan_, options_.peers->size());
    run.partition = &*partition;
    run.rank = options_.peers->rank();
  }
  steps::Activations acts(run);  // after the store and the run state: destroyed first
  std::optional<steps::Distribution> dist;
  if (partition) dist.emplace(run, acts, *options_.peers);
  std::size_t resumed_steps = 0;
  std::int64_t batch = 0;
  const std::string schedule = options_.checkpoint || options_.resume ? schedule_sha256(plan_.steps) : std::string();
  if (options_.checkpoint) options_.checkpoint->set_schedule(schedule);
  if (options_.resume) {
    const std::string& was = options_.resume->identity.schedule_sha256;
    if (!was.empty() && was != schedule) {
      throw std::runtime_error("--resume: the checkpoint follows another schedule of steps (another --dram-budget, "
                               "--streaming or version); resume with the options it was started with");
    }
    resumed_steps = options_.resume->steps_done;
    if (resumed_steps == 0 || resumed_steps >= plan_.steps.size() ||
        options_.resume->last_node != plan_.steps[resumed_steps - 1].node) {
      throw std::runtime_error("--resume: the checkpoint (step " + std::to_string(resumed_steps) + ", node " +
                               std::to_string(options_.resume->last_node) + ") does not match this plan of " +
                               std::to_string(plan_.steps.size()) + " steps");
    }
    std::ifstream in(options_.resume->state, std::ios::binary);
    if (!in) throw std::runtime_error("--resume: cannot read '" + options_.resume->state.string() + "'");
    batch = acts.restore_state(in, static_cast<std::int64_t>(resumed_steps));
  } else {
    batch = acts.encrypt_inputs();
  }
  if (stats.layers.size() != g.nodes.size()) stats.layers.assign(g.nodes.size(), {});
  std::vector<double> node_start(g.nodes.size(), 0.0);
  std::size_t step_index = 0;
  for (const plan::StreamStep& st : plan_.steps) {
    ++step_index;
    if (step_index <= resumed_steps) continue;  // done before the checkpoint
    if (options_.cancel) {
      bool stop = options_.cancel->load();
      if (dist) stop = any_rank(*options_.peers, stop);  // every rank stops at the same step
      if (stop) throw RunCancelled();
    }
    const auto k = static_cast<std::size_t>(st.node);
    if (st.first) node_start[k] = options_.monitor ? options_.monitor->seconds() : since(t_start);
    const StepMeter meter(stats, *store, options_.monitor);
    acts.encrypt_rows_for(st);
    std::vector<std::int64_t> elements;  // of this step: a band of rows, or all
    EncryptedTensor scratch;             // the output of a step whose output is plaintext
    steps::StepIO io = acts.step_io(st, elements, scratch);
    run.node = st.node;
    if (!dist || dist->before_step(io, elements)) steps::run_step(run, io, acts, batch);
    if (dist) dist->after_step(io);
    acts.after_step(st, io);
    LayerStats& ls = stats.layers[k];
    meter.add_to(ls);
    if (st.streamed) {
      for (RunObserver* o : observers) o->band_done(k, st, step_index, plan_.steps.size());
    }
    if (st.last) {
      ls.name = io.n.name;
      ls.op = std::string(model::op_name(io.n.op));
      if (io.np.kind != NodeKind::FinalSoftmax) {
        ls.ciphertexts = io.y.elements();
        ls.level = static_cast<int>(io.y.level);
        ls.stored_bytes = store->group_bytes(io.group);
      }
      ls.start = node_start[k];
      ls.dram_bytes = store->dram().bytes;  // before the node's dead inputs are freed
      ls.pmem_bytes = store->pmem().bytes;
      acts.finish_node(io);
    }
#ifdef __GLIBC__
    // Under a DRAM budget, hand the heap pages freed by this step (released rows, dead
    // inputs, the working set) back to the kernel, so that resident memory follows the
    // budget.
    if (store->options().dram_budget > 0 && (st.last || step_index % 16 == 0)) malloc_trim(0);
#endif
    if (options_.checkpoint) options_.checkpoint->after_step(step_index, plan_.steps.size(), st.node, acts);
    if (!st.last) continue;
    client.layer_done(k, ls);
    for (RunObserver* o : observers) o->node_done(k, g.nodes.size(), ls);
  }
  if (dist) dist->gather_outputs();
  // In a distributed run only rank 0 holds (and decrypts) the outputs.
  auto outputs = dist && dist->rank() != 0 ? std::vector<PlainTensor>{} : acts.outputs(batch);
  stats.seconds += since(t_start);
  return outputs;
}

EncryptedSession::EncryptedSession(const model::Graph& g, const plan::Parameters& parameters,
                                   EncryptedRunOptions options, const ckks::SecretKey* secret) {
  context = ckks::CKKSContext::create(parameters.params);
  client = secret ? std::make_unique<LocalClient>(context, parameters.packing, parameters.scale(), *secret)
                  : std::make_unique<LocalClient>(context, parameters.packing, parameters.scale());
  plan::ScheduleOptions so;
  so.streaming = options.streaming;
  if (options.store) so.tile_bytes = options.store->tile_bytes();  // else the private store's
  const bool one_process = !options.peers || options.peers->size() <= 1;
  if (so.streaming && options.cut_segments && options.store && options.store->tiered() && one_process) {
    plan::FootprintOptions fo;
    fo.limb_words = options.limb_words;
    cuts = plan::choose_segment_cuts(g, parameters, so, options.store->options().dram_budget, fo);
    so.segment_starts = cuts.segment_starts;
  }
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
    const std::int64_t b = x.batch;
    auto y = executor->run(*client, std::move(in), stats);
    if (!y.empty()) {  // (empty off rank 0 of a distributed run)
      const auto bm = to_batch_major(y[0]);
      std::copy(bm.begin(), bm.end(), out.begin() + s * out_e);
    }
    s += b;
    if (batch_seconds) batch_seconds->push_back(since(t0));
  }
  return out;
}

}  // namespace heinfer::runtime
