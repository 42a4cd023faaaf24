// The encrypted `heinfer run` path: calibrate ranges on the client's batch (plaintext
// executor), select CKKS parameters, then encrypt -> evaluate -> decrypt batch by batch.
#include "run_encrypted.h"

#include <CLI/CLI.hpp>
#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "ckks/encryption_params.h"
#include "ckks/keygen.h"
#include "runtime/checkpoint.h"
#include "memory/bytes.h"
#include "memory/ciphertext_store.h"
#include "memory/memory_monitor.h"
#include "memory/process_memory.h"
#include "model/load.h"
#include "ring/cpu_features.h"
#include "runtime/batch_runner.h"
#include "runtime/encrypted_executor.h"
#include "runtime/metrics.h"
#include "runtime/atomic_file.h"
#include "runtime/npy.h"
#include "plan/footprint.h"
#include "plan/parameters.h"
#include "plan/refresh_rounds.h"
#include "runtime/calibration.h"
#include "runtime/profile.h"
#include "size_option.h"

namespace heinfer::apps {
namespace {

using memory::format_bytes;

std::int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // Linux: KiB
}

}  // namespace

void add_encrypted_options(CLI::App* sub, EncryptedOptions& o) {
  o.batch_option = sub->get_option_no_throw("--batch");
  sub->add_option("--params", o.params,
                  "encrypted: 'auto' (depth-aware selection) or a JSON file {\"n\":..., \"coeff_bits\":[...], "
                  "\"special_bits\":[...], \"scale_bits\":...}")
      ->capture_default_str();
  sub->add_option("--packing", o.packing, "encrypted: batch packing in the slots (complex: N per ciphertext, real: N/2)")
      ->check(CLI::IsMember({"auto", "complex", "real"}))
      ->capture_default_str();
  sub->add_option("--round-masks", o.round_masks,
                  "encrypted: masks of the client rounds: per-window (one factor for all samples; fast; a client "
                  "that chooses its batch reads weight ratios) or per-sample (a signed factor per sample, signs "
                  "hidden; real packing, one level per round); docs/security.md")
      ->check(CLI::IsMember({"per-window", "per-sample"}))
      ->capture_default_str();
  sub->add_flag("--allow-unmasked-rounds", o.allow_unmasked_rounds,
                "encrypted: run Sigmoid, Tanh, Softplus, Erf, Exp, Log, Sqrt as client rounds "
                "without masks: the client sees those layers' inputs in the clear (docs/security.md)");
  sub->add_option("--scale-bits", o.scale_bits, "encrypted: log2 of the CKKS scale Δ")->capture_default_str();
  sub->add_flag("--check", o.check, "encrypted: also run the plaintext executor and compare");
  add_size_option(sub, "--dram-budget", o.dram_budget,
                  "encrypted: bytes of ciphertexts kept in DRAM (e.g. 16G, 512MiB; K = 1024); beyond it they "
                  "go to --pmem-dir, or the run stops with a clear error");
  sub->add_option("--pmem-dir", o.pmem_dir,
                  "encrypted: directory of the secondary tier (memkind PMEM heap: persistent memory on DAX, "
                  "else an unlinked SSD-backed file; with --checkpoint a named file there, which checkpoints "
                  "reference); needs --dram-budget");
  sub->add_option("--streaming", o.streaming,
                  "encrypted: run chains of spatial layers band by band, so that their intermediate tensors "
                  "exist only as windows of rows (auto: under --dram-budget)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  sub->add_option("--limb-words", o.limb_words,
                  "encrypted: stored ciphertexts keep limbs of primes below 2^32 in 32-bit words (half their "
                  "bytes in DRAM and on the tier, one pass to unpack per use) or in 64-bit words; auto: 32 "
                  "under --dram-budget")
      ->check(CLI::IsMember({"auto", "32", "64"}))
      ->capture_default_str();
  sub->add_option("--checkpoint", o.checkpoint,
                  "encrypted: keep what a restart needs in DIR (the position in the plan, the live ciphertexts, "
                  "the parameters and the secret key, mode 0600) at most every --checkpoint-interval seconds; "
                  "continue with --resume DIR; removed when the run completes (one batch)");
  sub->add_option("--checkpoint-interval", o.checkpoint_interval,
                  "encrypted: seconds between checkpoints (0: after every step)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--resume", o.resume,
                  "encrypted: continue the run checkpointed in DIR (same model, input and options; keeps "
                  "checkpointing there)")
      ->check(CLI::ExistingDirectory);
  add_size_option(sub, "--pmem-max", o.pmem_max,
                  "encrypted: size limit of the secondary tier (default: the filesystem's)");
#ifdef HEINFER_TEST_HOOKS
  sub->add_option("--insecure-ring-degree", o.insecure_n,
                  "TEST BUILDS ONLY: replace N by this power of two keeping the chain, without the "
                  "128-bit security check (prints a warning)")
      ->group("");  // hidden
#endif
  sub->add_option("--profile", o.profile,
                  "encrypted: write a per-layer profile (time, ciphertexts, bytes per tier, round traffic) as JSON");
  sub->add_flag("--quiet{false}", o.progress, "encrypted: no per-layer progress lines");
}

void run_encrypted(const std::string& model_path, const std::string& input, const std::string& output,
                   const std::string& labels_path, std::int64_t batch, int threads, const EncryptedOptions& o) {
  // Not under a DRAM budget: there resident memory must follow the budget.
  if (o.dram_budget == 0) memory::configure_allocator_for_ciphertexts();
  model::Graph g = model::load_model(model_path);
  if (const auto refreshes = plan::insert_refresh_rounds(g, plan::parse_round_masks(o.round_masks)); refreshes.total()) {
    std::fprintf(stderr, "note: %s\n", refreshes.describe().c_str());
  }
  if (g.inputs.size() != 1 || g.outputs.size() != 1) {
    throw std::runtime_error("`run` supports models with one input and one output");
  }
  const model::Shape in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const model::Shape out_shape = g.tensors[static_cast<std::size_t>(g.outputs[0])].shape;
  runtime::check_output_path(output);  // before the run, not after it
  runtime::InputBatch x = runtime::read_input_batch(input, in_shape);
  const std::int64_t count = x.count;
  std::vector<std::int64_t> labels;
  if (!labels_path.empty()) {
    const runtime::NpyArray l = runtime::read_npy(labels_path);
    if (l.shape != std::vector<std::int64_t>{count}) {
      throw std::runtime_error("labels '" + labels_path + "' have shape " + model::to_string(l.shape) +
                               "; expected [" + std::to_string(count) + "]");
    }
    labels = l.to_int64();
  }
  std::vector<double> values = std::move(x.values);  // held once, as float64 (large batches: hundreds of MB)

  // Client side: calibrate the ranges on this batch (plaintext run), then plan.
  const auto t_plan = std::chrono::steady_clock::now();
  plan::ParameterOptions po;
  po.masks = plan::parse_round_masks(o.round_masks);
  po.packing = o.packing == "real" || (o.packing == "auto" && po.masks == plan::RoundMasks::PerSample)
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
  std::optional<runtime::CheckpointCalibration> kept;
  if (!o.resume.empty()) kept = runtime::read_checkpoint_calibration(o.resume, g.tensors.size(), reference_values);
  if (kept) {
    std::fprintf(stderr, "note: the calibration comes from the checkpoint (no plaintext pass)\n");
  } else {
    kept.emplace();
    std::vector<runtime::PlainTensor> calibration;
    calibration.push_back(runtime::from_batch_major(std::span<const double>(values), count, in_shape));
    kept->ranges = runtime::calibrate_ranges(g, calibration, 0, o.check ? &plain_outputs : nullptr);
    if (o.check) kept->reference = std::move(plain_outputs.at(0));
    plain_outputs.clear();
  }
  int refreshes = 0;
  plan::Parameters plan = plan::plan_with_refreshes(g, kept->ranges, po, limb_words, &refreshes);
  if (refreshes > 0) {
    plan::RefreshPoints points;
    points.nonnegative = refreshes;
    std::fprintf(stderr, "note: %s\n", points.describe().c_str());
  }
  if (o.params != "auto") plan::apply_parameter_override(plan, o.params);
  // Resumable runs: the parameters, the secret key and the state come from the checkpoint.
  const std::string checkpoint_dir = !o.resume.empty() ? o.resume : o.checkpoint;
  std::optional<runtime::ResumePoint> resume;
  std::optional<ckks::SecretKey> secret;
  std::unique_ptr<runtime::CheckpointWriter> checkpoint;
  runtime::CheckpointIdentity identity;
  if (!checkpoint_dir.empty()) {
    const bool explicit_batch = o.batch_option && o.batch_option->count() > 0;
    if (count > plan.capacity() || (explicit_batch && batch < count)) {
      throw std::runtime_error("--checkpoint / --resume take one batch: " + std::to_string(count) +
                               " samples exceed the batch of " +
                               std::to_string(explicit_batch ? std::min(batch, plan.capacity()) : plan.capacity()));
    }
    identity.model_sha256 = runtime::file_sha256(model_path);
    identity.input_sha256 = runtime::file_sha256(input);
    identity.batch = count;
    if (o.resume.empty() && std::filesystem::exists(std::filesystem::path(o.checkpoint) / "checkpoint.json")) {
      throw std::runtime_error("--checkpoint: '" + o.checkpoint +
                               "' holds a checkpoint; continue it with --resume, or remove it");
    }
    if (!o.resume.empty()) {
      resume = runtime::read_checkpoint(o.resume);
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
  std::printf("parameters: %s\n", plan.describe().c_str());
  std::fflush(stdout);

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
  ro.threads = threads;
  ro.progress = o.progress;
  ro.store = &store;
  ro.monitor = &monitor;
  ro.streaming = o.streaming == "on" || (o.streaming == "auto" && so.dram_budget > 0);
#ifdef HEINFER_TEST_HOOKS
  // Test hook (crash safety): HEINFER_KILL_AFTER_NODE=k kills the process after node k.
  if (const char* kill = std::getenv("HEINFER_KILL_AFTER_NODE")) ro.kill_after_node = std::atoi(kill);
  // HEINFER_KILL_AFTER_STEP=s: after streamed step s (mid-segment, before its checkpoint).
  if (const char* kill = std::getenv("HEINFER_KILL_AFTER_STEP")) ro.kill_after_step = std::atoi(kill);
  // HEINFER_KILL_IN_ROUND=r: in client round r, its reply received and not yet used.
  if (const char* kill = std::getenv("HEINFER_KILL_IN_ROUND")) ro.kill_in_round = std::atoi(kill);
#endif
  if (so.dram_budget > 0) {
    std::printf("memory: %s, DRAM budget %s%s%s, tiles of <= %s%s\n",
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
      std::printf("resuming after step %zu (node %lld) from %s\n", resume->steps_done,
                  static_cast<long long>(resume->last_node), checkpoint_dir.c_str());
    } else {
      ckks::KeyGenerator keygen(ctx);
      secret.emplace(keygen.secret_key());
    }
    checkpoint = std::make_unique<runtime::CheckpointWriter>(checkpoint_dir, o.checkpoint_interval, identity, ctx,
                                                             *secret, &store, &monitor);
    runtime::write_checkpoint_calibration(checkpoint_dir, *kept);
    if (resume) checkpoint->continue_from(*resume);
    ro.checkpoint = checkpoint.get();
    ro.resume = resume ? &*resume : nullptr;
  }
  runtime::EncryptedSession session(g, plan, ro, secret ? &*secret : nullptr);
  std::printf("context: %s\n", session.context->describe().c_str());
  if (limb_words == 32) store.pack_words(session.context);
  const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_plan).count();
  const std::int64_t capacity = plan.capacity();
  const bool explicit_batch = o.batch_option && o.batch_option->count() > 0;
  const std::int64_t chunk = explicit_batch ? std::min(batch, capacity) : capacity;
  if (explicit_batch && batch > capacity) {
    std::fprintf(stderr, "note: --batch %lld exceeds the %lld samples per ciphertext; using %lld\n",
                 static_cast<long long>(batch), static_cast<long long>(capacity), static_cast<long long>(capacity));
  }

  std::vector<float> ref;
  if (o.check) ref.assign(kept->reference.begin(), kept->reference.end());
  kept.reset();
  runtime::EncryptedRunStats stats;
  std::vector<double> batch_seconds;
  const std::vector<double> y = session.run_batched(std::move(values), count, chunk, stats, &batch_seconds);

  std::vector<std::int64_t> y_shape{count};
  y_shape.insert(y_shape.end(), out_shape.begin(), out_shape.end());
  runtime::write_npy(output, runtime::make_npy(runtime::NpyDType::Float32, y_shape, y));
  if (checkpoint) {
    std::printf("checkpoints      %zu written to %s this run (%s in %.1f s); removed (the run is complete)\n",
                checkpoint->written(), checkpoint_dir.c_str(), format_bytes(checkpoint->bytes_written()).c_str(),
                checkpoint->seconds());
    checkpoint->remove();
  }
  const std::vector<float> yf(y.begin(), y.end());
  const std::int64_t classes = model::numel(out_shape);

  double lat = 0;
  for (double s : batch_seconds) lat += s;
  lat /= static_cast<double>(std::max<std::size_t>(1, batch_seconds.size()));
  std::printf("\n== encrypted inference summary ==\n");
  std::printf("model            %s -> %s\n", model_path.c_str(), output.c_str());
  std::printf("parameters       %s\n", plan.describe().c_str());
  std::printf("samples          %lld in %zu batch(es) of <= %lld (threads %d, %s kernels)\n",
              static_cast<long long>(count), batch_seconds.size(), static_cast<long long>(chunk), threads,
              std::string(ring::simd_path_name(ring::simd_path())).c_str());
  std::printf("setup            %.2f s (calibration, parameters, keys)\n", setup_s);
  std::printf("total            %.2f s, %.1f images/s, latency per batch %.2f s\n", stats.seconds,
              static_cast<double>(count) / stats.seconds, lat);
  if (resume && checkpoint) {
    std::printf("resumed          %.2f s of steps done by earlier attempts: %.2f s for the batch in all\n",
                checkpoint->earlier().seconds, checkpoint->earlier().seconds + stats.seconds);
  }
  std::printf("client           %.2f s (%.1f%%) in %lld rounds (+ encrypt/decrypt)\n", stats.client_seconds,
              100.0 * stats.client_seconds / stats.seconds, static_cast<long long>(stats.rounds));
  std::printf("traffic          client->server %s, server->client %s\n", format_bytes(stats.bytes_to_server).c_str(),
              format_bytes(stats.bytes_to_client).c_str());
  const auto timeline = monitor.finish();
  const auto dram = store.dram(), pmem = store.pmem();
  std::printf("peak memory      %s (maxrss), anonymous %s (RssAnon, sampled)\n", format_bytes(peak_rss_bytes()).c_str(),
              format_bytes(monitor.peak_rss_anon()).c_str());
  std::printf("ciphertexts      %d-bit limb words; DRAM peak %s (written %s); tier peak %s (written %s, read %s)\n",
              limb_words,
              format_bytes(dram.peak_bytes).c_str(), format_bytes(dram.bytes_written).c_str(),
              format_bytes(pmem.peak_bytes).c_str(), format_bytes(pmem.bytes_written).c_str(),
              format_bytes(pmem.bytes_read).c_str());
  if (!o.profile.empty()) {
    runtime::ProfileInfo info;
    info.model = model_path;
    info.batch = count;
    info.threads = threads;
    plan::FootprintOptions fo;
    fo.limb_words = limb_words;
    const plan::FootprintEstimate footprint = plan::predict_footprint(g, session.executor->plan(), fo);
    info.plan = &session.executor->plan();
    info.footprint = &footprint;
    info.memory = &so;
    info.limb_words = limb_words;
    info.dram = dram;
    info.pmem = pmem;
    info.peak_rss_anon_bytes = monitor.peak_rss_anon();
    info.timeline = timeline;
    info.earlier = resume && checkpoint ? &checkpoint->earlier() : nullptr;
    runtime::write_profile(o.profile, info, stats);
    std::printf("profile          %s\n", o.profile.c_str());
  }
  std::printf("per layer:\n");
  for (const auto& l : stats.layers) {
    std::printf("  %-24s %-18s %7.3f s  %6lld ct  level %d  dram peak %s  tier peak %s\n", l.name.c_str(),
                l.op.c_str(), l.seconds, static_cast<long long>(l.ciphertexts), l.level,
                format_bytes(l.dram_peak_bytes).c_str(), format_bytes(l.pmem_peak_bytes).c_str());
  }
  const auto pred = runtime::argmax_rows(yf, count, classes);
  if (!labels.empty()) {
    const std::int64_t correct = runtime::count_correct(pred, labels);
    std::printf("top-1 accuracy   %.2f%% (%lld/%lld)\n", 100.0 * static_cast<double>(correct) / static_cast<double>(count),
                static_cast<long long>(correct), static_cast<long long>(count));
  }
  if (o.check) {
    const auto pref = runtime::argmax_rows(ref, count, classes);
    std::int64_t agree = 0;
    double max_err = 0;
    for (std::int64_t i = 0; i < count; ++i) agree += pred[static_cast<std::size_t>(i)] == pref[static_cast<std::size_t>(i)];
    for (std::size_t i = 0; i < ref.size(); ++i) max_err = std::max(max_err, std::fabs(y[i] - static_cast<double>(ref[i])));
    std::printf("check            top-1 agreement with plaintext %.3f%% (%lld/%lld), max |logit error| %.3g\n",
                100.0 * static_cast<double>(agree) / static_cast<double>(count), static_cast<long long>(agree),
                static_cast<long long>(count), max_err);
  }
}

}  // namespace heinfer::apps
