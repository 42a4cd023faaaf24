// `heinfer run` without --plain: the encrypted path (client and server in one process).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace heinfer::apps {

struct EncryptedOptions {
  std::string params = "auto";     ///< "auto" or a JSON file (plan/parameters.h)
  std::string packing = "auto";    ///< complex | real | auto (real with per-sample masks, else complex)
  std::string round_masks = "per-window";  ///< per-window | per-sample (plan::RoundMasks)
  bool allow_unmasked_rounds = false;      ///< plan::Parameters::unmasked_functions
  std::string privacy = "activations";     ///< activations | model (plan::Privacy)
  bool check = false;              ///< compare with the plaintext executor
  bool progress = true;            ///< per-layer progress on stderr
  int scale_bits = 30;
  std::int64_t dram_budget = 0;    ///< bytes of ciphertexts kept in DRAM; 0: no budget
  std::string streaming = "auto";  ///< streaming across layers: auto (under a budget), on, off
  std::string segment_cuts = "off";  ///< cut streamed segments for the budget: on | off
  std::string pmem_dir;            ///< secondary tier directory (memkind PMEM kind)
  std::int64_t pmem_max = 0;       ///< size limit of the tier in bytes; 0: the filesystem's
  std::string limb_words = "auto"; ///< stored limbs: 32 | 64 | auto (32 under a DRAM budget)
  std::string checkpoint;          ///< directory of checkpoints (runtime/checkpoint.h); empty: none
  double checkpoint_interval = 600;  ///< seconds between checkpoints (0: after every step)
  std::string resume;              ///< directory of the checkpoint to continue from
  std::string profile;             ///< per-layer profile JSON (runtime/profile.h)
  std::size_t insecure_n = 0;      ///< tests only: ring degree override without the 128-bit check
  bool distributed = false;        ///< one run across the ranks of mpirun (plan/partition.h)
  /// Groups of ranks with batches in flight (session/distributed_run.h): "auto" (the plan
  /// chooses: plan::choose_rank_groups) or a count.
  std::string rank_groups = "auto";
  CLI::Option* batch_option = nullptr;  ///< to tell an explicit --batch from the default
};

/// Adds --params, --packing, --check, --scale-bits, --quiet to `run` (call after --batch).
void add_encrypted_options(CLI::App* sub, EncryptedOptions& o);

/// Encrypted inference over an .npy batch; prints the plan, progress and a summary.
/// Throws std::exception with a clear message on bad inputs or parameters.
void run_encrypted(const std::string& model, const std::string& input, const std::string& output,
                   const std::string& labels, std::int64_t batch, int threads, const EncryptedOptions& o);

}  // namespace heinfer::apps
