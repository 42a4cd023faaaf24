// The encrypted `heinfer run` path: its options, the .npy input and output, and the
// summary of session::run_embedded (session/embedded_run.h).
#include "run_encrypted.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "distributed/mpi_peers.h"
#include "memory/process_memory.h"
#include "memory/bytes.h"
#include "model/load.h"
#include "runtime/atomic_file.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"
#include "session/embedded_run.h"
#include "size_option.h"

namespace heinfer::apps {
namespace {

using memory::format_bytes;

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
  sub->add_option("--privacy", o.privacy,
                  "encrypted: what the client may learn: activations (client-aided rounds on masked "
                  "activations; fast) or model (Relu and MaxPool evaluated on the server as polynomials, the "
                  "client only refreshes uniformly masked ciphertexts; real packing); docs/security.md")
      ->check(CLI::IsMember({"activations", "model"}))
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
  sub->add_option("--segment-cuts", o.segment_cuts,
                  "encrypted, tiered: cut streamed segments where their windows exceed --dram-budget, so that "
                  "a block's output goes to the tier once instead of the windows cycling through it "
                  "(docs/memory.md)")
      ->check(CLI::IsMember({"on", "off"}))
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
                  "continue with --resume DIR; removed when the run completes (one batch); with --distributed "
                  "each rank writes DIR/rank-R-of-P");
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
  sub->add_flag("--distributed", o.distributed,
                "encrypted: one run across the processes of `mpirun -np P heinfer run ...`: each rank computes "
                "a slab of columns of every activation; rank 0 writes the output");
  sub->add_option("--rank-groups", o.rank_groups,
                  "encrypted, with --distributed: split the P ranks into G groups of P/G consecutive ranks, each "
                  "running every G-th encrypted batch (several batches in flight) with its activations in column "
                  "slabs over its ranks; P must be a multiple of G. auto: the most groups (at most the batches) "
                  "whose ciphertexts fit per rank in --dram-budget, else in 80% of the node's available memory")
      ->check(CLI::IsMember({"auto"}) | CLI::PositiveNumber)
      ->capture_default_str()
      ->capture_default_str();
}

void run_encrypted(const std::string& model_path, const std::string& input, const std::string& output,
                   const std::string& labels_path, std::int64_t batch, int threads, const EncryptedOptions& o) {
  session::EmbeddedRunOptions ro;
  ro.params = o.params;
  ro.packing = o.packing;
  ro.round_masks = o.round_masks;
  ro.allow_unmasked_rounds = o.allow_unmasked_rounds;
  ro.privacy = o.privacy;
  ro.check = o.check;
  ro.progress = o.progress;
  ro.scale_bits = o.scale_bits;
  ro.threads = threads;
  ro.batch = o.batch_option && o.batch_option->count() > 0 ? batch : 0;
  ro.dram_budget = o.dram_budget;
  ro.streaming = o.streaming;
  ro.segment_cuts = o.segment_cuts == "on";
  ro.pmem_dir = o.pmem_dir;
  ro.pmem_max = o.pmem_max;
  ro.limb_words = o.limb_words;
  ro.checkpoint = o.checkpoint;
  ro.checkpoint_interval = o.checkpoint_interval;
  ro.resume = o.resume;
  ro.profile = o.profile;
  ro.insecure_n = o.insecure_n;
  ro.input_file = input;
  model::Shape in_shape;
  {  // the input's shape; the graph (weights: hundreds of MB) is not held during the run
    const model::Graph declared = model::load_model(model_path);
    if (declared.inputs.size() != 1 || declared.outputs.size() != 1) {
      throw std::runtime_error("`run` supports models with one input and one output");
    }
    in_shape = declared.tensors[static_cast<std::size_t>(declared.inputs[0])].shape;
  }
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
  // The job (every rank), and this rank's group when the ranks form several (declared
  // after the job: destroyed first).
  std::optional<distributed::MpiPeers> peers, group;
  const int rank_groups = o.rank_groups == "auto" ? 0 : std::stoi(o.rank_groups);
  if (rank_groups > 1 && !o.distributed) throw std::runtime_error("--rank-groups needs --distributed");
  if (o.distributed) {
    if (!distributed::MpiPeers::launched()) throw std::runtime_error("--distributed: start heinfer with mpirun -np P");
    peers.emplace();
    ro.peers = &*peers;
    ro.job = &*peers;
    if (rank_groups > 1) {
      if (peers->size() % rank_groups != 0) {
        throw std::runtime_error("--rank-groups " + std::to_string(rank_groups) + " does not divide the " +
                                 std::to_string(peers->size()) + " ranks of the job");
      }
      ro.groups = rank_groups;
      ro.group = peers->rank() / (peers->size() / rank_groups);
      group.emplace(*peers, ro.group);
      ro.peers = &*group;
    } else if (rank_groups == 0) {  // the plan chooses, after calibration
      ro.groups = 0;
      ro.memory_per_rank = static_cast<std::int64_t>(0.8 * static_cast<double>(memory::mem_available_bytes()) /
                                                     peers->ranks_on_this_node());
      ro.split_job = [&](int color) -> runtime::Peers* { return &group.emplace(*peers, color); };
    }
    if (peers->rank() != 0) {  // rank 0 reports for the run
      ro.log = nullptr;
      ro.progress = false;
    }
  }
  // The batch is held once, as float64 (large batches: GB), and moved into the run.
  session::EmbeddedRunResult r;
  try {
    r = session::run_embedded(model_path, std::move(x.values), count, ro);
  } catch (const std::exception& e) {
    // The other ranks wait in a collective: end them all, with the message.
    if (peers && peers->size() > 1) peers->abort(e.what(), 1);
    throw;
  }
  if (peers && peers->rank() != 0) return;
  runtime::write_npy(output, runtime::make_npy(runtime::NpyDType::Float32, r.output_shape, r.outputs));
  if (!o.checkpoint.empty() || !o.resume.empty()) {
    std::printf("checkpoints      %zu written to %s this run (%s in %.1f s); removed (the run is complete)\n",
                r.checkpoints_written, (o.resume.empty() ? o.checkpoint : o.resume).c_str(),
                format_bytes(r.checkpoint_bytes).c_str(), r.checkpoint_seconds);
  }
  const runtime::EncryptedRunStats& stats = r.stats;
  double lat = 0;
  for (double s : r.batch_seconds) lat += s;
  lat /= static_cast<double>(std::max<std::size_t>(1, r.batch_seconds.size()));
  std::printf("\n== encrypted inference summary ==\n");
  std::printf("model            %s -> %s\n", model_path.c_str(), output.c_str());
  std::printf("parameters       %s\n", r.parameters.describe().c_str());
  std::printf("samples          %lld in %zu batch(es) of <= %lld (threads %d, %s kernels)\n",
              static_cast<long long>(count), r.batch_seconds.size(), static_cast<long long>(r.chunk), threads,
              r.kernels.c_str());
  std::printf("setup            %.2f s (calibration, parameters, keys)\n", r.setup_seconds);
  std::printf("total            %.2f s, %.1f images/s, latency per batch %.2f s\n", stats.seconds,
              static_cast<double>(count) / stats.seconds, lat);
  if (r.resumed) {
    std::printf("resumed          %.2f s of steps done by earlier attempts: %.2f s for the batch in all\n",
                r.earlier_seconds, r.earlier_seconds + stats.seconds);
  }
  std::printf("client           %.2f s (%.1f%%) in %lld rounds (+ encrypt/decrypt)\n", stats.client_seconds,
              100.0 * stats.client_seconds / stats.seconds, static_cast<long long>(stats.rounds));
  std::printf("traffic          client->server %s, server->client %s\n", format_bytes(stats.bytes_to_server).c_str(),
              format_bytes(stats.bytes_to_client).c_str());
  std::printf("peak memory      %s (maxrss), anonymous %s (RssAnon, sampled)\n", format_bytes(r.peak_rss_bytes).c_str(),
              format_bytes(r.peak_rss_anon_bytes).c_str());
  std::printf("ciphertexts      %d-bit limb words; DRAM peak %s (written %s); tier peak %s (written %s, read %s)\n",
              r.limb_words, format_bytes(r.dram.peak_bytes).c_str(), format_bytes(r.dram.bytes_written).c_str(),
              format_bytes(r.pmem.peak_bytes).c_str(), format_bytes(r.pmem.bytes_written).c_str(),
              format_bytes(r.pmem.bytes_read).c_str());
  if (peers) {
    std::printf("ranks            %d in %d group(s) of %d (column slabs); exchanged %s in %.2f s on rank 0\n",
                peers->size(), r.groups, peers->size() / r.groups,
                format_bytes(stats.halo_bytes_sent + stats.halo_bytes_received).c_str(), stats.exchange_seconds);
    for (std::size_t q = 0; q < r.rank_rss_anon_peak.size(); ++q) {
      std::printf("  rank %-3zu       RssAnon peak %s, DRAM peak %s, sent %s\n", q,
                  format_bytes(r.rank_rss_anon_peak[q]).c_str(), format_bytes(r.rank_dram_peak[q]).c_str(),
                  format_bytes(r.rank_bytes_sent[q]).c_str());
    }
  }
  if (!o.profile.empty()) std::printf("profile          %s\n", o.profile.c_str());
  std::printf("per layer:\n");
  for (const auto& l : stats.layers) {
    std::printf("  %-24s %-18s %7.3f s  %6lld ct  level %d  dram peak %s  tier peak %s\n", l.name.c_str(),
                l.op.c_str(), l.seconds, static_cast<long long>(l.ciphertexts), l.level,
                format_bytes(l.dram_peak_bytes).c_str(), format_bytes(l.pmem_peak_bytes).c_str());
  }
  const std::int64_t classes = static_cast<std::int64_t>(r.outputs.size()) / std::max<std::int64_t>(1, count);
  if (!labels.empty()) {
    const std::vector<float> yf(r.outputs.begin(), r.outputs.end());
    const std::int64_t correct = runtime::count_correct(runtime::argmax_rows(yf, count, classes), labels);
    std::printf("top-1 accuracy   %.2f%% (%lld/%lld)\n", 100.0 * static_cast<double>(correct) / static_cast<double>(count),
                static_cast<long long>(correct), static_cast<long long>(count));
  }
  if (o.check) {
    const auto [agreement, max_err] = session::check_against_reference(r);
    const auto agree = static_cast<long long>(std::llround(agreement * static_cast<double>(count)));
    std::printf("check            top-1 agreement with plaintext %.3f%% (%lld/%lld), max |logit error| %.3g\n",
                100.0 * agreement, agree, static_cast<long long>(count), max_err);
  }
}

}  // namespace heinfer::apps
