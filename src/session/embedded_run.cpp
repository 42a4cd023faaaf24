#include "session/embedded_run.h"

#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>

#include "ckks/encryption_params.h"
#include "ckks/keygen.h"
#include "memory/bytes.h"
#include "memory/memory_monitor.h"
#include "memory/process_memory.h"
#include "model/load.h"
#include "plan/footprint.h"
#include "plan/partition_cost.h"
#include "plan/refresh_rounds.h"
#include "ring/cpu_features.h"
#include "runtime/calibration.h"
#include "runtime/checkpoint.h"
#include "runtime/encrypted_executor.h"
#include "runtime/metrics.h"
#include "runtime/profile.h"
#include "session/distributed_run.h"
#include "session/say.h"

namespace heinfer::session {
namespace {

using memory::format_bytes;

std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // Linux: KiB
}

/// SHA-256 of the inputs' float64 bytes, as 64 hex digits (the identity of inputs that
/// came from no file).
std::string bytes_sha256(const std::vector<double>& v) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(v.data()), v.size() * sizeof(double));
  return runtime::hex_digits(h, sizeof h);
}

std::string checkpoint_dir_of(const EmbeddedRunOptions& o) { return !o.resume.empty() ? o.resume : o.checkpoint; }

/// A rank's own checkpoint directory inside DIR (runtime/checkpoint.h: one per rank).
std::string rank_checkpoint_dir(const std::string& dir, const runtime::Peers& job) {
  return (std::filesystem::path(dir) / ("rank-" + std::to_string(job.rank()) + "-of-" + std::to_string(job.size())))
      .string();
}

/// What every rank of a distributed run must agree on (session/distributed_run.h): the
/// model bytes, the inputs and the planning options.
std::string run_digest(const std::string& model_path, const std::vector<double>& values, std::int64_t count,
                       const EmbeddedRunOptions& o) {
  return runtime::file_sha256(model_path) + " " + bytes_sha256(values) + " " + std::to_string(count) + " " + o.params +
         " " + o.packing + " " + o.round_masks + " " + o.privacy + " " + std::to_string(o.allow_unmasked_rounds) +
         std::to_string(o.check) + " " + std::to_string(o.scale_bits) + " " + std::to_string(o.batch) + " " +
         std::to_string(o.dram_budget) + " " + o.streaming + " " + std::to_string(o.segment_cuts) + " " + o.limb_words + " " + std::to_string(o.insecure_n) +
         " " + std::to_string(o.groups);
}

}  // namespace

EmbeddedRunResult run_embedded(const std::string& model_path, std::vector<double> values, std::int64_t count,
                               const EmbeddedRunOptions& o) {
  // Not under a DRAM budget: there resident memory must follow the budget.
  if (o.dram_budget == 0) memory::configure_allocator_for_ciphertexts();
  model::Graph g = model::load_model(model_path);
  const plan::Privacy privacy = plan::parse_privacy(o.privacy);
  // The model-private mode refreshes where its levels run out; it inserts no rounds.
  if (const auto refreshes = privacy == plan::Privacy::Model ? plan::RefreshPoints{}
                                                             : plan::insert_refresh_rounds(g, plan::parse_round_masks(o.round_masks));
      refreshes.total()) {
    say(o.log ? stderr : nullptr, "note: %s\n", refreshes.describe().c_str());
  }
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw std::runtime_error("`run` supports models with one input and one output");
  }
  const model::Shape in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  // Client side: calibrate the ranges on this batch (plaintext run), then plan.
  const auto t_plan = std::chrono::steady_clock::now();
  plan::ParameterOptions po;
  po.masks = plan::parse_round_masks(o.round_masks);
  po.privacy = privacy;
  po.packing = o.packing == "real" || (o.packing == "auto" && (po.masks == plan::RoundMasks::PerSample ||
                                                               privacy == plan::Privacy::Model))
                   ? ckks::Packing::Real
                   : ckks::Packing::Complex;
  po.scale_bits = o.scale_bits;
  po.unmasked_functions = o.allow_unmasked_rounds;
  // --check: the plaintext executor's outputs are the calibration run's (the same batch).
  std::vector<std::vector<double>> plain_outputs;
  const int limb_words = o.limb_words == "32" || (o.limb_words == "auto" && o.dram_budget > 0) ? 32 : 64;
  // A resumed run takes the calibration its checkpoint kept (the same model and batch:
  // the manifest's file digests are checked below); otherwise one plaintext pass.
  const std::size_t reference_values = o.check ? static_cast<std::size_t>(count * model::numel(out_shape)) : 0;
  // The job (every rank) and, inside it, the group that partitions the activations.
  runtime::Peers* job = o.job ? o.job : o.peers;
  const bool distributed = job && job->size() > 1;
  // Auto groups are chosen after planning (below): until then one group, the job.
  const bool auto_groups = o.groups == 0 && distributed && o.split_job;
  runtime::Peers* peers = o.peers;
  int groups = std::max(1, o.groups), group = o.group;
  if (groups > 1 && (!distributed || !o.peers || o.group < 0 || o.group >= groups)) {
    throw std::invalid_argument("rank groups need the job's peers and a group index below the group count");
  }
  if (distributed && !checkpoint_dir_of(o).empty() && groups > 1) {
    throw std::runtime_error("--checkpoint / --resume with --distributed: not with --rank-groups yet");
  }
  // Resumable runs: the directory (a distributed run's rank: its own inside it).
  const std::string checkpoint_dir =
      distributed && !checkpoint_dir_of(o).empty() ? rank_checkpoint_dir(checkpoint_dir_of(o), *job) : checkpoint_dir_of(o);
  std::optional<runtime::CheckpointCalibration> kept;
  if (!o.resume.empty()) kept = runtime::read_checkpoint_calibration(checkpoint_dir, g.tensors.size(), reference_values);
  if (distributed) check_same_run(*job, run_digest(model_path, values, count, o));
  if (kept) {
    say(o.log ? stderr : nullptr, "note: the calibration comes from the checkpoint (no plaintext pass)\n");
  } else if (distributed && job->rank() != 0) {
    kept.emplace();  // rank 0's calibration, below: every rank plans from the same ranges
  } else {
    kept.emplace();
    kept->ranges = runtime::calibrate_ranges_batch_major(g, values, count, o.check ? &plain_outputs : nullptr);
    if (o.check) kept->reference = std::move(plain_outputs.at(0));
    plain_outputs.clear();
  }
  if (distributed) broadcast_ranges(*job, kept->ranges);
  int refreshes = 0;
  plan::Parameters plan = privacy == plan::Privacy::Model
                              ? plan::plan_parameters(g, kept->ranges, po)
                              : plan::plan_with_refreshes(g, kept->ranges, po, limb_words, &refreshes);
  if (refreshes > 0) {
    plan::RefreshPoints points;
    points.nonnegative = refreshes;
    say(o.log ? stderr : nullptr, "note: %s\n", points.describe().c_str());
  }
  if (o.params != "auto") plan::apply_parameter_override(plan, o.params);
  // Resumable runs: the parameters, the secret key and the state come from the checkpoint.
  std::optional<runtime::ResumePoint> resume;
  std::optional<ckks::SecretKey> secret;
  std::unique_ptr<runtime::CheckpointWriter> checkpoint;
  runtime::CheckpointIdentity identity;
  if (!checkpoint_dir.empty()) {
    const bool explicit_batch = o.batch > 0;
    if (count > plan.capacity() || (explicit_batch && o.batch < count)) {
      throw std::runtime_error("--checkpoint / --resume take one batch: " + std::to_string(count) +
                               " samples exceed the batch of " +
                               std::to_string(explicit_batch ? std::min(o.batch, plan.capacity()) : plan.capacity()));
    }
    identity.model_sha256 = runtime::file_sha256(model_path);
    identity.input_sha256 = o.input_file.empty() ? bytes_sha256(values) : runtime::file_sha256(o.input_file);
    identity.batch = count;
    if (o.resume.empty() && std::filesystem::exists(std::filesystem::path(checkpoint_dir) / "checkpoint.json")) {
      throw std::runtime_error("--checkpoint: '" + checkpoint_dir +
                               "' holds a checkpoint; continue it with --resume, or remove it");
    }
    if (!o.resume.empty()) {
      resume = runtime::read_checkpoint(checkpoint_dir);
      if (distributed) resume = common_resume_point(*job, *resume);  // the step every rank completed
      const auto& r = resume->identity;
      if (r.model_sha256 != identity.model_sha256) throw std::runtime_error("--resume: the checkpoint is of another model file");
      if (r.input_sha256 != identity.input_sha256) throw std::runtime_error("--resume: the checkpoint is of another input file");
      if (r.batch != count) throw std::runtime_error("--resume: the checkpoint is of another batch size");
      plan::apply_parameter_override(plan, r.n, r.coeff_bits, r.special_bits, r.scale_bits);
    }
    identity.n = plan.params.poly_modulus_degree();
    identity.coeff_bits = plan.params.coeff_bits();
    identity.special_bits = plan.params.special_bits();
    identity.scale_bits = plan.scale_bits;
  }
  plan.unmasked_functions = o.allow_unmasked_rounds;
  if (o.insecure_n) {
    std::fprintf(stderr, "WARNING: --insecure-ring-degree %zu: parameters are NOT secure (tests only)\n", o.insecure_n);
    plan.params = ckks::EncryptionParameters(o.insecure_n, plan.params.coeff_bits(), plan.params.special_bits(),
                                             ckks::SecurityLevel::None);
  }
  say(o.log, "parameters: %s\n", plan.describe().c_str());
  const bool streaming = o.streaming == "on" || (o.streaming == "auto" && o.dram_budget > 0);
  if (auto_groups && checkpoint_dir.empty()) {  // (a checkpointed run is one batch: one group)
    const std::int64_t cap = plan.capacity();
    const std::int64_t per_batch = o.batch > 0 ? std::min(o.batch, cap) : cap;
    plan::ScheduleOptions so;
    so.streaming = streaming;
    plan::FootprintOptions fo;
    fo.limb_words = limb_words;
    const int mine = plan::choose_rank_groups(g, plan::make_plan(g, plan, so), job->size(),
                                              (count + per_batch - 1) / per_batch,
                                              o.dram_budget > 0 ? o.dram_budget : o.memory_per_rank, fo);
    groups = static_cast<int>(job->all_gather(mine)[0]);  // rank 0's choice: every rank the same
    group = job->rank() / (job->size() / groups);
    if (groups > 1) peers = o.split_job(group);
    say(o.log, "ranks: %d group(s) of %d (--rank-groups auto: batches in flight whose ciphertexts fit per rank)\n",
        groups, job->size() / groups);
  }
  const bool spatial = peers && peers->size() > 1;

  memory::StoreOptions so;
  so.dram_budget = o.dram_budget;
  so.pmem_max = o.pmem_max;
  if (!o.pmem_dir.empty()) {
    if (so.dram_budget == 0) throw std::runtime_error("--pmem-dir needs --dram-budget (what stays in DRAM)");
    so.policy = memory::Placement::Tiered;
    so.pmem_dir = o.pmem_dir;
    if (resume && !resume->tier_file.empty()) {  // where the checkpoint's ciphertexts are
      so.tier_file = resume->tier_file;
      so.tier_file_id = resume->tier_id;
    } else if (!checkpoint_dir.empty()) {  // a named tier file that checkpoints reference
      unsigned char id[8];
      randombytes_buf(id, sizeof id);
      so.tier_file = std::filesystem::absolute(o.pmem_dir) / ("heinfer-tier-" + runtime::hex_digits(id, sizeof id) + ".bin");
    }
  } else if (resume && !resume->tier_file.empty()) {
    throw std::runtime_error("--resume: the checkpoint keeps ciphertexts in the tier file '" +
                             resume->tier_file.string() + "': give the run's --dram-budget and --pmem-dir again");
  }
#ifdef HEINFER_TEST_HOOKS
  // HEINFER_KILL_IN_TIER_WRITE=k: in the k-th write to the named tier file (half written).
  if (const char* kill = std::getenv("HEINFER_KILL_IN_TIER_WRITE")) so.fault_in_tier_write = std::atoll(kill);
#endif
  memory::CiphertextStore store(so);
  memory::MemoryMonitor monitor(&store, std::chrono::milliseconds(50));
  runtime::EncryptedRunOptions ro;
  ro.threads = o.threads;
  ro.progress = o.progress;
  ro.observers = o.observers;
  ro.cancel = o.cancel;
  ro.store = &store;
  ro.monitor = &monitor;
  ro.streaming = streaming;
  ro.limb_words = limb_words;
  ro.cut_segments = o.segment_cuts;
#ifdef HEINFER_TEST_HOOKS
  // Test hook (crash safety): HEINFER_KILL_AFTER_NODE=k kills the process after node k.
  if (const char* kill = std::getenv("HEINFER_KILL_AFTER_NODE")) ro.kill_after_node = std::atoi(kill);
  // HEINFER_KILL_AFTER_STEP=s: after streamed step s (mid-segment, before its checkpoint).
  if (const char* kill = std::getenv("HEINFER_KILL_AFTER_STEP")) ro.kill_after_step = std::atoi(kill);
  // HEINFER_KILL_IN_ROUND=r: in client round r, its reply received and not yet used.
  if (const char* kill = std::getenv("HEINFER_KILL_IN_ROUND")) ro.kill_in_round = std::atoi(kill);
#endif
  if (so.dram_budget > 0) {
    say(o.log, "memory: %s, DRAM budget %s%s%s, tiles of <= %s%s\n",
                so.policy == memory::Placement::Tiered ? "tiered" : "dram-only", format_bytes(so.dram_budget).c_str(),
                so.pmem_dir.empty() ? "" : ", tier in ", so.pmem_dir.c_str(), format_bytes(store.tile_bytes()).c_str(),
                ro.streaming ? ", streaming across layers" : "");
  }
  if (!checkpoint_dir.empty()) {
    ckks::ContextPtr ctx = ckks::CKKSContext::create(plan.params);
    if (resume) {
      const auto& fp = ctx->fingerprint();
      if (runtime::hex_digits(fp.data(), fp.size()) != resume->fingerprint_hex) {
        throw std::runtime_error("--resume: the checkpoint's parameters do not match these");
      }
      secret.emplace(runtime::read_checkpoint_secret_key(checkpoint_dir, *ctx));
      if (distributed) check_same_secret_key(*job, *secret, *ctx);
      say(o.log, "resuming after step %zu (node %lld) from %s\n", resume->steps_done,
                  static_cast<long long>(resume->last_node), checkpoint_dir.c_str());
    } else if (distributed) {
      secret.emplace(shared_secret_key(*job, plan.params));
    } else {
      ckks::KeyGenerator keygen(ctx);
      secret.emplace(keygen.secret_key());
    }
    checkpoint = std::make_unique<runtime::CheckpointWriter>(checkpoint_dir, o.checkpoint_interval, identity, ctx,
                                                             *secret, &store, &monitor);
    runtime::write_checkpoint_calibration(checkpoint_dir, *kept);
    if (resume) checkpoint->continue_from(*resume);
    if (distributed) checkpoint->set_peers(job);
#ifdef HEINFER_TEST_HOOKS
    // HEINFER_KILL_IN_CHECKPOINT=k: in this attempt's k-th checkpoint, before its manifest.
    if (const char* kill = std::getenv("HEINFER_KILL_IN_CHECKPOINT")) checkpoint->kill_in_checkpoint(std::atoll(kill));
#endif
    ro.checkpoint = checkpoint.get();
    ro.resume = resume ? &*resume : nullptr;
  }
  if (spatial) ro.peers = peers;
  if (distributed && !secret) secret.emplace(shared_secret_key(*job, plan.params));
  runtime::EncryptedSession session(g, plan, ro, secret ? &*secret : nullptr);
  secret.reset();
  say(o.log, "context: %s\n", session.context->describe().c_str());
  if (!session.cuts.segment_starts.empty()) {
    std::string at;
    for (std::int64_t c : session.cuts.segment_starts) at += " " + g.nodes[static_cast<std::size_t>(c)].name;
    say(o.log, "streaming: %zu cuts for the DRAM budget (hot peak %s -> %s; %s of crossing tensors written to the tier "
                "once; predicted tier writes %s -> %s), segments start at%s\n",
                session.cuts.segment_starts.size(), format_bytes(session.cuts.uncut_hot_peak_bytes).c_str(),
                format_bytes(session.cuts.hot_peak_bytes).c_str(), format_bytes(session.cuts.crossing_bytes).c_str(),
                format_bytes(session.cuts.uncut_tier_writes).c_str(), format_bytes(session.cuts.tier_writes).c_str(),
                at.c_str());
  }
  if (limb_words == 32) store.pack_words(session.context);
  const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_plan).count();
  const std::int64_t capacity = plan.capacity();
  const bool explicit_batch = o.batch > 0;
  const std::int64_t chunk = explicit_batch ? std::min(o.batch, capacity) : capacity;
  if (explicit_batch && o.batch > capacity) {
    say(o.log ? stderr : nullptr, "note: --batch %lld exceeds the %lld samples per ciphertext; using %lld\n",
                 static_cast<long long>(o.batch), static_cast<long long>(capacity), static_cast<long long>(capacity));
  }

  EmbeddedRunResult r;
  r.reference = std::move(kept->reference);
  kept.reset();
  if (groups == 1) {
    r.outputs = session.run_batched(std::move(values), count, chunk, r.stats, &r.batch_seconds);
  } else {  // this group's batches, then every group's outputs on rank 0
    std::int64_t share = 0;
    std::vector<double> mine = group_samples(values, count, model::numel(in_shape), chunk, groups, group, share);
    values = {};
    if (share > 0) mine = session.run_batched(std::move(mine), share, chunk, r.stats, &r.batch_seconds);
    r.outputs = gather_group_outputs(*job, peers->rank() == 0, groups, group, mine, count, model::numel(out_shape),
                                     chunk);
  }

  const model::Shape out_shape_now = out_shape;
  r.count = count;
  r.groups = groups;
  r.output_shape = {count};
  r.output_shape.insert(r.output_shape.end(), out_shape_now.begin(), out_shape_now.end());
  if (checkpoint) {
    r.checkpoints_written = checkpoint->written();
    r.checkpoint_bytes = checkpoint->bytes_written();
    r.checkpoint_seconds = checkpoint->seconds();
    r.resumed = resume.has_value();
    r.earlier_seconds = resume ? checkpoint->earlier().seconds : 0;
    checkpoint->remove();
    if (distributed) {  // every rank removed its own directory: then the job's, if empty
      job->all_gather(0);
      std::error_code ec;
      if (job->rank() == 0) std::filesystem::remove(checkpoint_dir_of(o), ec);
    }
  }
  r.parameters = plan;
  r.kernels = std::string(ring::simd_path_name(ring::simd_path()));
  r.limb_words = limb_words;
  r.threads = o.threads;
  r.chunk = chunk;
  r.setup_seconds = setup_s;
  const auto timeline = monitor.finish();
  r.dram = store.dram();
  r.pmem = store.pmem();
  r.peak_rss_bytes = peak_rss_bytes();
  r.peak_rss_anon_bytes = monitor.peak_rss_anon();
  if (distributed) {
    r.rank_rss_anon_peak = job->all_gather(r.peak_rss_anon_bytes);
    r.rank_dram_peak = job->all_gather(r.dram.peak_bytes);
    r.rank_bytes_sent = job->all_gather(r.stats.halo_bytes_sent);
  } else {
    r.rank_rss_anon_peak = {r.peak_rss_anon_bytes};
    r.rank_dram_peak = {r.dram.peak_bytes};
    r.rank_bytes_sent = {0};
  }
  if (!o.profile.empty() && (!distributed || job->rank() == 0)) {  // rank 0 reports
    runtime::ProfileInfo info;
    info.model = model_path;
    info.batch = count;
    info.threads = o.threads;
    plan::FootprintOptions fo;
    fo.limb_words = limb_words;
    const plan::FootprintEstimate footprint = plan::predict_footprint(g, session.executor->plan(), fo);
    info.plan = &session.executor->plan();
    info.footprint = &footprint;
    info.memory = &so;
    info.limb_words = limb_words;
    info.dram = r.dram;
    info.pmem = r.pmem;
    info.peak_rss_anon_bytes = r.peak_rss_anon_bytes;
    info.timeline = timeline;
    info.earlier = resume && checkpoint ? &checkpoint->earlier() : nullptr;
    if (distributed) {
      info.rank_rss_anon_peak = r.rank_rss_anon_peak;
      info.rank_dram_peak = r.rank_dram_peak;
      info.rank_bytes_sent = r.rank_bytes_sent;
    }
    runtime::write_profile(o.profile, info, r.stats);
  }
  return r;
}

std::pair<double, double> check_against_reference(const EmbeddedRunResult& r) {
  if (r.reference.empty() || r.count <= 0 || r.reference.size() != r.outputs.size()) return {0.0, 0.0};
  const std::int64_t classes = static_cast<std::int64_t>(r.outputs.size()) / r.count;
  const std::vector<float> y(r.outputs.begin(), r.outputs.end()), ref(r.reference.begin(), r.reference.end());
  const auto pred = runtime::argmax_rows(y, r.count, classes), pref = runtime::argmax_rows(ref, r.count, classes);
  std::int64_t agree = 0;
  for (std::int64_t i = 0; i < r.count; ++i) agree += pred[static_cast<std::size_t>(i)] == pref[static_cast<std::size_t>(i)];
  double max_err = 0;
  for (std::size_t i = 0; i < r.outputs.size(); ++i) max_err = std::max(max_err, std::fabs(r.outputs[i] - r.reference[i]));
  return {static_cast<double>(agree) / static_cast<double>(r.count), max_err};
}

}  // namespace heinfer::session
