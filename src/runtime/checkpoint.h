// Resumable encrypted runs: `heinfer run --checkpoint DIR` writes, at step boundaries and
// at most every `interval` seconds, what a restart needs; `--resume DIR` continues after a
// crash, a SIGKILL or a reboot.
//
// DIR holds (named files, mode 0600, nothing else):
//  - checkpoint.json: the manifest (format, version, the SHA-256 of the model and input
//    files, the CKKS parameters and their fingerprint, the batch, the steps completed,
//    the state file's name), replaced atomically (runtime/atomic_file.h);
//  - secret.key: the client's secret key (ckks/secret_key_io.h), written once;
//  - ranges.npy (and reference.npy with --check): the client's calibration (float64: the
//    largest |value| of every tensor of the loaded graph; the plaintext executor's
//    outputs, batch-major), written once, so that a resumed run plans the same
//    parameters without another plaintext pass over the batch;
//  - state-<steps>.bin: the run state at that boundary (steps::Activations::save_state),
//    written to a temporary, fsync'ed and renamed before the manifest names it; the
//    previous one is removed after.
// With a DRAM budget and a tier, the tier is a named file (memory/file_tier.h, in the
// tier directory; the manifest names it and its identifier): the state file references
// the ciphertexts already there by offset and holds only the DRAM-resident ones, and the
// tier file is flushed before the manifest is replaced. So a checkpoint writes the DRAM
// part of the state, not the whole.
// A crash at any point leaves the last complete checkpoint readable. After a run that
// completes, the directory's files and the tier file are removed (the secret key with
// them).
// Distributed runs (runtime/peers.h): each rank writes its own directory; the ranks
// decide together when to write (any rank's interval or tier being due: one all-gather
// per step), so every rank checkpoints the same step, and each keeps its previous state
// (named in the manifest as "previous") until every rank has committed the new one. A
// crash leaves every rank either at the last checkpoint or at the one before with both
// kept, so the ranks resume from the last step all of them completed (the consistent
// point; session/distributed_run.h). With a tier, each rank's named tier file keeps the
// extents its previous state references as long as the state: the tier's quarantine is
// released only after every rank committed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckks/context.h"
#include "ckks/keys.h"
#include "plan/stream_schedule.h"
#include "runtime/peers.h"

namespace heinfer::runtime {

namespace steps {
class Activations;
}

}  // namespace heinfer::runtime

namespace heinfer::memory {
class CiphertextStore;
class MemoryMonitor;
}

namespace heinfer::runtime {

/// Lower-case hex of n bytes.
std::string hex_digits(const unsigned char* p, std::size_t n);
/// SHA-256 of a file's bytes, as 64 hex digits. Throws std::runtime_error when it cannot
/// be read.
std::string file_sha256(const std::filesystem::path& path);

/// SHA-256 (64 hex digits) of a plan's schedule: per step its node, output rows,
/// segment and whether it streams. A budget, streaming option or build that schedules
/// otherwise gives another digest.
std::string schedule_sha256(const std::vector<plan::StreamStep>& steps);

/// What a resumed run must match: the model and input files, the parameters, the batch,
/// the schedule of steps.
struct CheckpointIdentity {
  std::string model_sha256, input_sha256;
  std::size_t n = 0;
  std::vector<int> coeff_bits, special_bits;
  int scale_bits = 0;
  std::int64_t batch = 0;
  /// schedule_sha256 of the run's plan; empty in checkpoints of versions that did not
  /// record it (then only the step count and the last step's node are checked).
  std::string schedule_sha256;
  nlohmann::json to_json() const;
};

/// What a run had done by a checkpoint, over all its attempts (a resumed run continues
/// the sums): wall seconds of the steps completed (time an attempt spent after its last
/// checkpoint is not counted: it is recomputed), peaks and tier bytes moved.
struct RunProgress {
  double seconds = 0;
  std::int64_t rss_anon_peak = 0, dram_peak = 0, pmem_peak = 0, tier_file_peak = 0;
  std::int64_t pmem_written = 0, pmem_read = 0;
  nlohmann::json to_json() const;
  /// Throws nlohmann::json::exception for missing or mistyped fields, std::runtime_error
  /// for negative or non-finite values.
  static RunProgress from_json(const nlohmann::json& j);
};

/// A checkpoint before the last one, kept by a rank of a distributed run until every
/// rank committed the last one.
struct PreviousCheckpoint {
  std::size_t steps_done = 0;
  std::int64_t last_node = -1;
  std::filesystem::path state;
  RunProgress progress;
};

/// The last complete checkpoint of DIR.
struct ResumePoint {
  CheckpointIdentity identity;
  std::string fingerprint_hex;       ///< of the context the state was written under
  std::size_t steps_done = 0;        ///< plan steps completed (the next one runs first)
  std::int64_t last_node = -1;       ///< node of the last completed step
  std::filesystem::path state;       ///< its state file
  std::filesystem::path tier_file;   ///< the named tier file it references (empty: none)
  std::string tier_id;               ///< that file's identifier (32 hex digits)
  RunProgress progress;              ///< of the attempts up to this checkpoint
  /// Distributed runs: the checkpoint before, if this rank still keeps it.
  std::optional<PreviousCheckpoint> previous;

  /// The same run at `previous` (steps, node, state, progress; no previous). Throws
  /// std::runtime_error when there is none or its state file is missing.
  ResumePoint at_previous() const;
};

/// Reads DIR's manifest, checking format, version, field types and that the state file
/// exists. Throws std::runtime_error naming the problem.
ResumePoint read_checkpoint(const std::filesystem::path& dir);
/// The secret key of DIR (mode must be 0600 and owned by this user). Throws
/// std::runtime_error / ckks::SerializationError.
ckks::SecretKey read_checkpoint_secret_key(const std::filesystem::path& dir, const ckks::CKKSContext& context);

/// The client's calibration of a resumable run (see the file comment).
struct CheckpointCalibration {
  std::vector<double> ranges;     ///< per TensorId of the loaded graph (runtime::calibrate_ranges)
  std::vector<double> reference;  ///< the plaintext outputs, batch-major; empty without --check
};
/// Writes c into DIR (mode 0600, atomically). Throws std::runtime_error naming the file.
void write_checkpoint_calibration(const std::filesystem::path& dir, const CheckpointCalibration& c);
/// DIR's calibration, or nullopt when DIR has none (a checkpoint written before it was
/// kept) or lacks the reference that `reference_values` > 0 asks for. Checks each file's
/// size before reading it, then that `ranges` holds `tensors` finite values >= 0 and the
/// reference `reference_values` finite values; throws std::runtime_error naming the file
/// otherwise.
std::optional<CheckpointCalibration> read_checkpoint_calibration(const std::filesystem::path& dir,
                                                                 std::size_t tensors, std::size_t reference_values);

/// Writes checkpoints of one run into DIR (created with mode 0700 when missing).
class CheckpointWriter {
 public:
  /// Writes the secret key at once. `interval_seconds` >= 0 (0: after every step).
  /// `store` (may be null): the run's store; its named tier file, if any, is flushed and
  /// committed with each checkpoint, and its counters go into the progress, with the
  /// RssAnon peak of `monitor` (may be null). Throws std::runtime_error when DIR cannot be
  /// created or written.
  CheckpointWriter(std::filesystem::path dir, double interval_seconds, CheckpointIdentity identity,
                   ckks::ContextPtr context, const ckks::SecretKey& secret, memory::CiphertextStore* store = nullptr,
                   const memory::MemoryMonitor* monitor = nullptr);
  /// After `steps_done` of `steps_total` plan steps (the last of node `last_node`): writes
  /// a checkpoint when the interval has passed since the last one, or when the named tier
  /// file holds more bytes quarantined for the last checkpoint than the DRAM budget
  /// (memory::FileTier::commit; this bounds the tier's extra space by the budget), never
  /// after the last step (the outputs follow at once).
  void after_step(std::size_t steps_done, std::size_t steps_total, std::int64_t last_node,
                  const steps::Activations& acts);
  /// A resumed run writing into the directory it resumed from: its next checkpoint
  /// replaces (and removes) the state `r` names, and continues r's progress.
  void continue_from(const ResumePoint& r);
  /// The progress of the attempts before this one (zero for a fresh run).
  const RunProgress& earlier() const { return earlier_; }
  /// A distributed run's ranks (file comment; must outlive the writer): after_step is
  /// then collective. Null: one process.
  void set_peers(Peers* peers) { peers_ = peers; }
  /// The schedule_sha256 of the run's plan, named in every checkpoint from now on.
  void set_schedule(std::string sha256) { identity_.schedule_sha256 = std::move(sha256); }
  /// Test hook (crash safety): the process kills itself (SIGKILL) in its `k`-th
  /// checkpoint (1-based), after the state file is written and before the manifest
  /// names it; 0: never.
  void kill_in_checkpoint(std::size_t k) { kill_in_ = k; }
  /// Removes the directory's checkpoint files (after the outputs are written).
  void remove();
  std::size_t written() const { return written_; }
  std::int64_t bytes_written() const { return bytes_; }   ///< state file bytes, all checkpoints
  double seconds() const { return seconds_; }             ///< time spent writing them

 private:
  std::filesystem::path dir_;
  double interval_;
  CheckpointIdentity identity_;
  ckks::ContextPtr context_;
  memory::CiphertextStore* store_;
  const memory::MemoryMonitor* monitor_;
  RunProgress earlier_;
  double start_ = 0;           ///< steady-clock seconds when this attempt began
  double last_ = 0;            ///< steady-clock seconds of the last checkpoint (or start)
  std::filesystem::path state_;  ///< the state file the manifest names
  PreviousCheckpoint last_written_;  ///< what the manifest names (a distributed run's next "previous")
  Peers* peers_ = nullptr;
  std::size_t kill_in_ = 0;
  std::size_t written_ = 0;
  std::int64_t bytes_ = 0;
  double seconds_ = 0;
};

}  // namespace heinfer::runtime
