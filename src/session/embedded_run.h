// One encrypted inference with client and server in this process: the orchestration that
// `heinfer run` and the Python package share (calibrate the ranges on the client's batch
// with the plaintext executor, select the CKKS parameters, set up the ciphertext store,
// keys and optional checkpoints, then encrypt -> evaluate -> decrypt batch by batch).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

#include "memory/ciphertext_store.h"
#include "plan/parameters.h"
#include "runtime/peers.h"
#include "runtime/run_observer.h"
#include "runtime/run_stats.h"

namespace heinfer::session {

/// The options of an embedded encrypted run (the CLI's flags of the same names).
struct EmbeddedRunOptions {
  std::string params = "auto";             ///< "auto" or a JSON file (plan::apply_parameter_override)
  std::string packing = "auto";            ///< complex | real | auto (real with per-sample masks or privacy model)
  std::string round_masks = "per-window";  ///< per-window | per-sample (plan::RoundMasks)
  bool allow_unmasked_rounds = false;      ///< plan::Parameters::unmasked_functions
  std::string privacy = "activations";     ///< activations | model (plan::Privacy; model: real packing)
  bool check = false;                      ///< keep the plaintext executor's outputs to compare
  bool progress = true;                    ///< per-layer and per-band lines on stderr
  int scale_bits = 30;                     ///< log2 of the CKKS scale
  int threads = 0;                         ///< OpenMP threads; 0: the default
  std::int64_t batch = 0;                  ///< samples per encrypted batch; 0: one ciphertext's slots
  std::int64_t dram_budget = 0;            ///< bytes of ciphertexts kept in DRAM; 0: no budget
  std::string streaming = "auto";          ///< auto (under a budget) | on | off
  /// Tiered streamed runs: cut segments for the DRAM budget (plan/segment_cuts.h).
  bool segment_cuts = false;
  std::string pmem_dir;                    ///< directory of the secondary tier (needs dram_budget)
  std::int64_t pmem_max = 0;               ///< size limit of the tier in bytes; 0: the filesystem's
  std::string limb_words = "auto";         ///< 32 | 64 | auto (32 under a DRAM budget)
  std::string checkpoint;                  ///< checkpoint directory (runtime/checkpoint.h); empty: none
  double checkpoint_interval = 600;        ///< seconds between checkpoints
  std::string resume;                      ///< checkpoint directory to continue from
  std::string profile;                     ///< per-layer profile JSON to write (runtime/profile.h)
  std::size_t insecure_n = 0;              ///< test builds only: ring degree without the 128-bit check
  /// Checkpoints only: the file the inputs were read from (its SHA-256 identifies the
  /// run); empty: the SHA-256 of the inputs' float64 bytes.
  std::string input_file;
  /// Where the parameter, memory and context lines go; null: nowhere.
  std::FILE* log = stdout;
  /// Observers of the run (must outlive it), after the progress lines.
  std::vector<runtime::RunObserver*> observers;
  /// Checked before every step: once true the run throws runtime::RunCancelled.
  const std::atomic<bool>* cancel = nullptr;
  /// A distributed run (plan/partition.h; every rank calls run_embedded with the same
  /// model, inputs and options): rank 0 calibrates and generates the secret key, which
  /// it sends to the other ranks (in this embedded mode every rank is the data owner's
  /// process, and every rank's in-process client answers the rounds of its own share);
  /// only rank 0's result holds the outputs. Null or one rank: one process.
  runtime::Peers* peers = nullptr;
  /// Several batches in flight (session/distributed_run.h): `job` holds every rank of
  /// the MPI job, `peers` this rank's group (`group` of `groups`, rank 0 of the job
  /// leading group 0), which runs the encrypted batches whose index is `group` modulo
  /// `groups` with its activations partitioned among its ranks; rank 0 of the job
  /// calibrates, makes the key and gathers the outputs. Null / 1: one group, `peers`.
  runtime::Peers* job = nullptr;
  int groups = 1, group = 0;
  /// groups = 0 (`--rank-groups auto`, with `job` and `peers` both the whole job): after
  /// planning, rank 0 chooses the groups (plan::choose_rank_groups: the most batches in
  /// flight whose per-rank ciphertext peak fits in the DRAM budget, else in
  /// `memory_per_rank` bytes) and every rank makes its group with split_job(group)
  /// (collective over the job; the returned ranks must outlive the run).
  std::function<runtime::Peers*(int group)> split_job;
  std::int64_t memory_per_rank = 0;
};

/// What an embedded run produced and measured.
struct EmbeddedRunResult {
  std::int64_t count = 0;                 ///< samples
  int groups = 1;                         ///< rank groups of a distributed run (chosen when auto)
  std::vector<std::int64_t> output_shape; ///< [count, per-sample output shape...]
  std::vector<double> outputs;            ///< batch-major, count × numel(per-sample output)
  std::vector<double> reference;          ///< with check: the plaintext executor's, same layout
  plan::Parameters parameters;
  std::string kernels;                    ///< ifma | avx2 | portable
  int limb_words = 64;
  int threads = 0;
  std::int64_t chunk = 0;                 ///< samples per encrypted batch
  double setup_seconds = 0;               ///< calibration, parameters, keys
  std::vector<double> batch_seconds;      ///< per encrypted batch
  runtime::EncryptedRunStats stats;       ///< time, rounds, traffic, per-layer figures
  std::int64_t peak_rss_bytes = 0;        ///< maxrss
  std::int64_t peak_rss_anon_bytes = 0;   ///< sampled RssAnon
  memory::TierUsage dram, pmem;           ///< the store's DRAM and tier figures
  bool resumed = false;
  double earlier_seconds = 0;             ///< resumed: seconds of steps done by earlier attempts
  std::size_t checkpoints_written = 0;
  std::int64_t checkpoint_bytes = 0;
  double checkpoint_seconds = 0;
  /// A distributed run, per rank in rank order: peak RssAnon, the store's DRAM peak and
  /// the bytes sent to other ranks (halos, gathers, partial sums). One entry otherwise.
  std::vector<std::int64_t> rank_rss_anon_peak, rank_dram_peak, rank_bytes_sent;
};

/// Runs the model in `model_path` encrypted on `count` samples (`inputs`: batch-major
/// float64, count × numel(per-sample input shape)). The model must have one input and one
/// output. Throws std::invalid_argument / std::runtime_error / model::ModelError with a
/// clear message on bad inputs, options or parameters, runtime::RunCancelled when
/// `options.cancel` was set. With a checkpoint directory the directory is removed once
/// the run completes.
EmbeddedRunResult run_embedded(const std::string& model_path, std::vector<double> inputs, std::int64_t count,
                               const EmbeddedRunOptions& options);

/// Top-1 agreement with the reference (fraction in [0, 1]) and the largest |logit
/// difference| of a result whose options had `check` (0, 0 without a reference).
std::pair<double, double> check_against_reference(const EmbeddedRunResult& r);

}  // namespace heinfer::session
