// Where the ciphertexts of an encrypted run live: DRAM within a budget, and an optional
// secondary tier (memory/secondary_tier.h) for the rest.
//
// Ciphertexts are stored in groups (one per activation tensor), each with the schedule
// position of its next reader. Policies:
//  - DramOnly: everything in DRAM; exceeding a set budget throws BudgetExceeded (a clear
//    error before the machine runs out of memory, never an OOM kill).
//  - Tiered: a new ciphertext goes to DRAM while the budget allows; otherwise DRAM is
//    freed by demoting the coldest data (the group read furthest in the future) to the
//    tier, and when only hotter data is resident the new ciphertext itself goes to the
//    tier. prefetch() brings the inputs of the next node back into free DRAM before it
//    runs; what does not fit is read in place from the tier (memory-mapped).
//    A seeded ciphertext is compacted (c1 dropped: half the bytes, regenerated from its
//    seed on use) when it is demoted.
//  - The tier is a memkind heap in a directory, or a named file for resumable runs
//    (memory/file_tier.h).
//  - Either policy can keep the limbs of primes below 2^32 in 32-bit words (pack_words).
// This is Belady's furthest-next-use rule (Belady, IBM Systems Journal 5(2), 1966)
// applied to whole tensors, with the schedule known ahead (the graph order), as in the
// tiering study of Lloret-Talavera et al. (IEEE Trans. Computers 2021) but placed by the
// runtime instead of by the OS.
//
// Threading: adopt(), prefetch(), set_next_use() and the counters are called from one
// thread at a time (the executor, between tiles); store-managed ciphertexts may be
// released from any thread. Moving data never changes a Ciphertext's address, only where
// its coefficients live, so pointers held by tensors stay valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"

namespace heinfer::memory {

class FileTier;

enum class Placement { DramOnly, Tiered };

struct StoreOptions {
  Placement policy = Placement::DramOnly;
  std::int64_t dram_budget = 0;      ///< bytes of stored ciphertexts in DRAM; 0: unlimited
  std::filesystem::path pmem_dir;    ///< Tiered: directory of the secondary tier
  std::int64_t pmem_max = 0;         ///< tier size limit in bytes; 0: the filesystem's
  /// Tiered, resumable runs: the tier is this named file (memory/file_tier.h) instead of
  /// an unlinked memkind heap in pmem_dir, so checkpoints can reference its extents.
  std::filesystem::path tier_file;
  /// Set: open the existing tier_file of this identifier (a resumed run) instead of
  /// creating it.
  std::string tier_file_id;
  /// Test hook (FileTier::set_fault_in_write): kill the process in the k-th write to
  /// the named tier file; 0: never.
  std::int64_t fault_in_tier_write = 0;
};

/// Counters of one tier, in bytes. Written: bytes placed or moved into the tier; read:
/// bytes moved out of it or read in place by a node (record_reads).
struct TierUsage {
  std::int64_t bytes = 0, peak_bytes = 0, bytes_written = 0, bytes_read = 0;
  std::int64_t window_peak_bytes = 0;  ///< peak since the last reset_window_peaks()
};

/// Thrown by the DramOnly policy when the DRAM budget would be exceeded.
class BudgetExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The largest working set per tile, and the tile without a DRAM budget: 1 GiB.
inline constexpr std::int64_t kMaxTileBytes = std::int64_t{1} << 30;

/// CiphertextStore::tile_bytes() of a store with DRAM budget `dram_budget` (0: none).
std::int64_t tile_bytes_for_budget(std::int64_t dram_budget);

class CiphertextStore {
 public:
  using GroupId = std::int64_t;
  using Ptr = std::shared_ptr<const ckks::Ciphertext>;

  /// Throws std::invalid_argument for Tiered without pmem_dir or a negative budget,
  /// std::runtime_error when the tier cannot be created.
  explicit CiphertextStore(const StoreOptions& options);
  ~CiphertextStore();
  CiphertextStore(const CiphertextStore&) = delete;
  CiphertextStore& operator=(const CiphertextStore&) = delete;

  const StoreOptions& options() const { return options_; }
  bool tiered() const { return options_.policy == Placement::Tiered; }

  /// A new group whose next reader runs at schedule position `next_use` (the executor's
  /// step: plan::next_reading_step). Ciphertexts
  /// adopted into it above `level_cap` are modulus-switched down to it first (limbs
  /// dropped in the NTT domain; the seed of a seeded one stays valid): a tensor is
  /// stored at the lowest level any reader consumes it at.
  GroupId open_group(std::int64_t next_use, std::size_t level_cap = SIZE_MAX);
  void set_next_use(GroupId g, std::int64_t next_use);

  /// Takes ownership of the ciphertexts cts[i] for i in `positions` (non-null, unique
  /// owners, fresh from the heap), places them per policy and replaces them by
  /// store-managed pointers (released when the last reference goes). Throws
  /// BudgetExceeded (DramOnly over budget), std::bad_alloc (tier full).
  void adopt(std::vector<Ptr>& cts, std::span<const std::int64_t> positions, GroupId g);
  /// adopt() of every non-null entry of cts that is not store-managed yet.
  void adopt_all(std::vector<Ptr>& cts, GroupId g);

  /// Before a node that reads `groups` runs: moves their tier-resident ciphertexts into
  /// the free part of the DRAM budget, and counts the rest as read in place (the tier is
  /// memory-mapped: its pages are served from the page cache when they are resident).
  /// Nothing is demoted for it: displacing data would cost tier writes, the scarce
  /// resource on an SSD, while the node's outputs need the DRAM.
  void prefetch(std::span<const GroupId> groups);
  /// prefetch() for a node that reads only `cts` (a streamed band's input rows): only
  /// these are moved in or counted as read. Entries that are null or not managed by this
  /// store are ignored; a ciphertext listed twice counts once.
  void prefetch_members(std::span<const Ptr* const> cts);

  /// Before a node that reads `groups` in several tiles: expands their compact (seeded)
  /// members in place, once, instead of once per tile into temporaries. A member in
  /// DRAM grows there while the budget allows, else it moves to the tier and grows
  /// there (file-backed pages, not the heap); a tier member grows in the tier. Under
  /// DramOnly with a budget, members that do not fit stay compact (the tiles expand
  /// them). Expanded members are compacted again when demoted.
  void expand(std::span<const GroupId> groups, const ckks::CKKSContext& context);

  /// From now on, stored ciphertexts keep the limbs of `context`'s primes below 2^32 in
  /// 32-bit words (ckks::Ciphertext::pack_words): packed when adopted and when demoted,
  /// unpacked by expand() or by their reader. Half the bytes of those limbs in DRAM and
  /// on the tier, for one pass over the data each way. Call before adopting anything.
  void pack_words(std::shared_ptr<const ckks::CKKSContext> context);
  bool packs_words() const;

  /// The named tier file (StoreOptions::tier_file), or nullptr.
  const FileTier* tier_file() const;
  /// Offset of c's words in the named tier file, or -1 when they are elsewhere.
  std::int64_t tier_offset(const ckks::Ciphertext& c) const;
  /// Checkpoints over the named tier file: sync_tier() makes its contents durable before
  /// a checkpoint names them; commit_tier() after the checkpoint has committed (see
  /// FileTier::commit). No-ops without one.
  void sync_tier();
  void commit_tier();
  /// A resumed run: the ciphertext of `form` whose `words` words lie at `offset` of the
  /// named tier file, rebuilt in place (not adopted yet: adopt() keeps it in the tier).
  /// Throws std::runtime_error without a named tier file or for an extent FileTier::claim
  /// refuses, std::invalid_argument for a form that does not fit `context` or `words`.
  Ptr restore_from_tier(const ckks::Ciphertext::Form& form, std::int64_t offset, std::int64_t words,
                        const ckks::CKKSContext& context);

  TierUsage dram() const;
  TierUsage pmem() const;
  /// Restarts the window peaks at the current values (per-layer peaks).
  void reset_window_peaks();
  /// Bytes group g holds now, in DRAM and in the tier (0 for a group no longer alive).
  std::int64_t group_bytes(GroupId g) const;
  /// Stored ciphertexts and groups alive (for leak checks in tests).
  std::int64_t live_ciphertexts() const;

  /// Suggested bytes of transient working set per tile (outputs produced before they
  /// are adopted, expanded inputs): 1/4 of the DRAM budget, within [1 MiB,
  /// kMaxTileBytes] (the working set beside the budget stays well under 1 GiB);
  /// kMaxTileBytes without a budget.
  std::int64_t tile_bytes() const;

  struct State;

 private:
  StoreOptions options_;
  std::shared_ptr<State> state_;  ///< shared with the deleters of stored ciphertexts
};

}  // namespace heinfer::memory
