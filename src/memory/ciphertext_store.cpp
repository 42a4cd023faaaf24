#include "memory/ciphertext_store.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "ckks/context.h"
#include "memory/bytes.h"
#include "memory/file_tier.h"
#include "memory/secondary_tier.h"
#include "ring/aligned_memory.h"

namespace heinfer::memory {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMiB = std::int64_t{1} << 20;

void grow(TierUsage& u, std::int64_t b) {
  u.bytes += b;
  u.peak_bytes = std::max(u.peak_bytes, u.bytes);
  u.window_peak_bytes = std::max(u.window_peak_bytes, u.bytes);
}

std::int64_t bytes_of(const ckks::Ciphertext& c) {
  return static_cast<std::int64_t>(c.data().size() * sizeof(std::uint64_t));
}

}  // namespace

struct CiphertextStore::State {
  struct Group {
    std::int64_t next_use = kNever;
    std::size_t level_cap = SIZE_MAX;
    std::vector<ckks::Ciphertext*> members;  ///< nullptr once released
    std::int64_t live = 0, dram_bytes = 0, pmem_bytes = 0;
    /// Members at index >= scan are not in DRAM (demoted or released): demotion walks
    /// down from here; adopting into or prefetching the group resets it to the end.
    std::size_t scan = 0;
  };

  std::mutex mu;
  StoreOptions options;
  std::unique_ptr<std::pmr::memory_resource> tier;  ///< a SecondaryTier or a FileTier
  FileTier* file = nullptr;                         ///< the tier, when it is a named file
  std::pmr::memory_resource* heap = ring::aligned_resource();
  std::shared_ptr<const ckks::CKKSContext> words;  ///< set: narrow limbs in 32-bit words
  std::unordered_map<GroupId, Group> groups;
  GroupId next_id = 0;
  TierUsage dram, pmem;
  std::int64_t live = 0;

  bool in_tier(const ckks::Ciphertext* c) const { return tier && c->resource() == tier.get(); }

  void release(GroupId g, std::size_t idx, const ckks::Ciphertext* c) {
    std::lock_guard lock(mu);
    const std::int64_t b = bytes_of(*c);
    (in_tier(c) ? pmem : dram).bytes -= b;
    --live;
    auto it = groups.find(g);
    if (it == groups.end()) return;
    auto& G = it->second;
    (in_tier(c) ? G.pmem_bytes : G.dram_bytes) -= b;
    if (idx < G.members.size()) G.members[idx] = nullptr;
    if (--G.live == 0) groups.erase(it);
  }

  /// Demotes DRAM-resident ciphertexts of groups read after `hotter_than` (coldest
  /// first, never `keep`) until `need` more bytes fit the budget. Appends the moves.
  /// Returns whether they fit. Members are demoted from the back (Group::scan).
  bool make_room(std::int64_t need, std::int64_t hotter_than, std::span<const GroupId> keep,
                 std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>>& moves) {
    const std::int64_t budget = options.dram_budget;
    while (dram.bytes + need > budget) {
      Group* coldest = nullptr;
      for (auto& [id, G] : groups) {
        if (G.dram_bytes <= 0 || G.scan == 0 || G.next_use <= hotter_than) continue;
        if (std::find(keep.begin(), keep.end(), id) != keep.end()) continue;
        if (!coldest || G.next_use > coldest->next_use) coldest = &G;
      }
      if (!coldest) return false;
      while (coldest->scan > 0 && dram.bytes + need > budget) {
        ckks::Ciphertext* c = coldest->members[--coldest->scan];
        if (!c || in_tier(c)) continue;
        const std::int64_t b = bytes_of(*c);
        if (c->is_seeded() && !c->c1_dropped()) c->compact();  // c1 is regenerated on use
        if (words) c->pack_words(*words);
        const std::int64_t stored = bytes_of(*c);
        dram.bytes -= b;
        coldest->dram_bytes -= b;
        grow(pmem, stored);
        pmem.bytes_written += stored;
        coldest->pmem_bytes += stored;
        moves.emplace_back(c, tier.get());
      }
    }
    return true;
  }

  /// Prefetch of tier-resident c of group G: moved into DRAM while `room` (the budget
  /// allows it, in order), else counted as read in place.
  void bring_in(Group& G, ckks::Ciphertext* c, bool& room,
                std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>>& moves) {
    const std::int64_t b = bytes_of(*c);
    if (room) room = dram.bytes + b <= options.dram_budget;
    pmem.bytes_read += b;
    if (!room) return;  // read in place
    pmem.bytes -= b;
    G.pmem_bytes -= b;
    grow(dram, b);
    dram.bytes_written += b;
    G.dram_bytes += b;
    moves.emplace_back(c, heap);
  }

  static void apply(const std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>>& moves) {
    const auto n = static_cast<std::int64_t>(moves.size());
#pragma omp parallel for schedule(dynamic, 16) if (n > 16)
    for (std::int64_t i = 0; i < n; ++i) {
      moves[static_cast<std::size_t>(i)].first->rehome(moves[static_cast<std::size_t>(i)].second);
    }
  }
};

namespace {

/// The deleter of store-managed ciphertexts.
struct Release {
  std::shared_ptr<CiphertextStore::State> state;
  CiphertextStore::GroupId group;
  std::size_t index;
  void operator()(const ckks::Ciphertext* c) const {
    state->release(group, index, c);
    delete c;
  }
};

}  // namespace

CiphertextStore::CiphertextStore(const StoreOptions& options) : options_(options), state_(std::make_shared<State>()) {
  if (options.dram_budget < 0) throw std::invalid_argument("DRAM budget must not be negative");
  if (options.policy == Placement::Tiered) {
    if (options.pmem_dir.empty() && options.tier_file.empty()) {
      throw std::invalid_argument("the tiered policy needs a tier directory (--pmem-dir)");
    }
    if (options.dram_budget == 0) throw std::invalid_argument("the tiered policy needs a DRAM budget (--dram-budget)");
    if (!options.tier_file.empty()) {
      auto file = options.tier_file_id.empty() ? FileTier::create(options.tier_file, options.pmem_max)
                                               : FileTier::open(options.tier_file, options.tier_file_id, options.pmem_max);
      file->set_fault_in_write(options.fault_in_tier_write);
      state_->file = file.get();
      state_->tier = std::move(file);
    } else {
      state_->tier = std::make_unique<SecondaryTier>(options.pmem_dir, options.pmem_max);
    }
  }
  state_->options = options;
}

CiphertextStore::~CiphertextStore() = default;

CiphertextStore::GroupId CiphertextStore::open_group(std::int64_t next_use, std::size_t level_cap) {
  std::lock_guard lock(state_->mu);
  const GroupId id = state_->next_id++;
  state_->groups[id].next_use = next_use;
  state_->groups[id].level_cap = level_cap;
  return id;
}

void CiphertextStore::set_next_use(GroupId g, std::int64_t next_use) {
  std::lock_guard lock(state_->mu);
  if (auto it = state_->groups.find(g); it != state_->groups.end()) it->second.next_use = next_use;
}

void CiphertextStore::adopt(std::vector<Ptr>& cts, std::span<const std::int64_t> positions, GroupId g) {
  State& s = *state_;
  std::size_t level_cap = SIZE_MAX;
  std::shared_ptr<const ckks::CKKSContext> words;
  {
    std::lock_guard lock(s.mu);
    level_cap = s.groups[g].level_cap;
    words = s.words;
  }
  // Into stored form, in parallel, before the placement decisions.
  const auto count = static_cast<std::int64_t>(positions.size());
  std::vector<std::unique_ptr<ckks::Ciphertext>> made(positions.size());
#pragma omp parallel for schedule(dynamic, 8) if (count > 8)
  for (std::int64_t k = 0; k < count; ++k) {
    auto& slot = cts[static_cast<std::size_t>(positions[static_cast<std::size_t>(k)])];
    if (!slot) continue;
    auto owned = std::make_unique<ckks::Ciphertext>(std::move(*const_cast<ckks::Ciphertext*>(slot.get())));
    if (owned->level() > level_cap) owned->drop_limbs(owned->level() - level_cap);
    if (words) owned->pack_words(*words);
    // Stored bytes are what the ciphertext holds: give back capacity beyond its limbs
    // (dropped limbs; results rescaled in place). A no-op when they match.
    owned->rehome(owned->resource());
    made[static_cast<std::size_t>(k)] = std::move(owned);
  }
  std::lock_guard lock(s.mu);
  auto& G = s.groups[g];
  const std::int64_t budget = s.options.dram_budget;
  std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>> moves;
  const GroupId keep[] = {g};
  for (std::int64_t k = 0; k < count; ++k) {
    if (!made[static_cast<std::size_t>(k)]) continue;
    auto& slot = cts[static_cast<std::size_t>(positions[static_cast<std::size_t>(k)])];
    ckks::Ciphertext* owned = made[static_cast<std::size_t>(k)].get();
    const std::int64_t b = bytes_of(*owned);
    const bool restored = s.in_tier(owned);  // rebuilt in place in a checkpoint's tier file
    bool to_dram = !restored && (budget == 0 || s.dram.bytes + b <= budget);
    if (!restored && !to_dram && s.options.policy == Placement::DramOnly) {
      throw BudgetExceeded("the DRAM budget of " + format_bytes(budget) + " is exceeded (" +
                           format_bytes(s.dram.bytes) +
                           " of ciphertexts stored); give a secondary tier with --pmem-dir DIR, or raise "
                           "--dram-budget");
    }
    if (!restored && !to_dram) to_dram = s.make_room(b, G.next_use, keep, moves);
    if (to_dram) {
      grow(s.dram, b);
      s.dram.bytes_written += b;
      G.dram_bytes += b;
    } else {
      grow(s.pmem, b);
      G.pmem_bytes += b;
      if (!restored) {
        s.pmem.bytes_written += b;
        moves.emplace_back(owned, s.tier.get());
      }
    }
    const std::size_t index = G.members.size();
    G.members.push_back(owned);
    ++G.live;
    ++s.live;
    G.scan = G.members.size();
    slot = Ptr(made[static_cast<std::size_t>(k)].release(), Release{state_, g, index});
  }
  State::apply(moves);
}

void CiphertextStore::adopt_all(std::vector<Ptr>& cts, GroupId g) {
  std::vector<std::int64_t> positions;
  for (std::size_t i = 0; i < cts.size(); ++i) {
    if (cts[i] && !std::get_deleter<Release>(cts[i])) positions.push_back(static_cast<std::int64_t>(i));
  }
  adopt(cts, positions, g);
}

void CiphertextStore::prefetch(std::span<const GroupId> groups) {
  State& s = *state_;
  if (!s.tier) return;
  std::lock_guard lock(s.mu);
  std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>> moves;
  for (GroupId g : groups) {
    auto it = s.groups.find(g);
    if (it == s.groups.end()) continue;
    auto& G = it->second;
    G.scan = G.members.size();
    if (G.pmem_bytes == 0) continue;  // all in DRAM: no walk over the members
    bool room = true;
    for (ckks::Ciphertext* c : G.members) {
      if (c && s.in_tier(c)) s.bring_in(G, c, room, moves);
    }
  }
  State::apply(moves);
}

void CiphertextStore::prefetch_members(std::span<const Ptr* const> cts) {
  State& s = *state_;
  if (!s.tier) return;
  std::vector<std::pair<ckks::Ciphertext*, const Release*>> owned;
  owned.reserve(cts.size());
  for (const Ptr* p : cts) {
    if (!p || !*p) continue;
    const Release* r = std::get_deleter<Release>(*p);
    if (r && r->state == state_) owned.emplace_back(const_cast<ckks::Ciphertext*>(p->get()), r);
  }
  std::sort(owned.begin(), owned.end());  // once each, however often a band reads it
  owned.erase(std::unique(owned.begin(), owned.end(),
                          [](const auto& a, const auto& b) { return a.first == b.first; }),
              owned.end());
  std::lock_guard lock(s.mu);
  std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>> moves;
  bool room = true;
  for (const auto& [c, r] : owned) {
    auto it = s.groups.find(r->group);
    if (it == s.groups.end()) continue;
    it->second.scan = it->second.members.size();
    if (s.in_tier(c)) s.bring_in(it->second, c, room, moves);
  }
  State::apply(moves);
}

void CiphertextStore::expand(std::span<const GroupId> groups, const ckks::CKKSContext& context) {
  State& s = *state_;
  std::lock_guard lock(s.mu);
  const std::int64_t budget = s.options.dram_budget;
  std::vector<std::pair<ckks::Ciphertext*, std::pmr::memory_resource*>> moves;
  std::vector<ckks::Ciphertext*> grow_list;
  std::vector<GroupId> done;
  for (GroupId g : groups) {
    if (std::find(done.begin(), done.end(), g) != done.end()) continue;
    done.push_back(g);
    auto it = s.groups.find(g);
    if (it == s.groups.end()) continue;
    auto& G = it->second;
    for (ckks::Ciphertext* c : G.members) {
      if (!c || !c->is_compact()) continue;
      const std::int64_t b = static_cast<std::int64_t>(c->expanded_words() * sizeof(std::uint64_t)) - bytes_of(*c);
      if (s.in_tier(c)) {
        grow(s.pmem, b);
        s.pmem.bytes_written += b;
        G.pmem_bytes += b;
      } else if (budget == 0 || s.dram.bytes + b <= budget) {
        grow(s.dram, b);
        s.dram.bytes_written += b;
        G.dram_bytes += b;
      } else if (s.tier) {
        const std::int64_t held = bytes_of(*c);
        s.dram.bytes -= held;
        G.dram_bytes -= held;
        grow(s.pmem, held + b);
        s.pmem.bytes_written += held + b;
        G.pmem_bytes += held + b;
        moves.emplace_back(c, s.tier.get());
      } else {
        continue;  // DramOnly over budget: stays compact
      }
      grow_list.push_back(c);
    }
  }
  State::apply(moves);
  const auto n = static_cast<std::int64_t>(grow_list.size());
#pragma omp parallel for schedule(dynamic, 8) if (n > 8)
  for (std::int64_t i = 0; i < n; ++i) grow_list[static_cast<std::size_t>(i)]->expand(context);
}

void CiphertextStore::pack_words(std::shared_ptr<const ckks::CKKSContext> context) {
  std::lock_guard lock(state_->mu);
  state_->words = std::move(context);
}

bool CiphertextStore::packs_words() const {
  std::lock_guard lock(state_->mu);
  return state_->words != nullptr;
}

const FileTier* CiphertextStore::tier_file() const { return state_->file; }

std::int64_t CiphertextStore::tier_offset(const ckks::Ciphertext& c) const {
  const FileTier* f = state_->file;
  return f && c.resource() == f && !c.data().empty() ? f->offset_of(c.data().data()) : -1;
}

void CiphertextStore::sync_tier() {
  if (state_->file) state_->file->sync();
}

void CiphertextStore::commit_tier() {
  if (state_->file) state_->file->commit();
}

CiphertextStore::Ptr CiphertextStore::restore_from_tier(const ckks::Ciphertext::Form& form, std::int64_t offset,
                                                        std::int64_t words, const ckks::CKKSContext& context) {
  FileTier* f = state_->file;
  if (!f) throw std::runtime_error("the checkpoint references a tier file, and this run has none (--pmem-dir)");
  if (words <= 0 || static_cast<std::size_t>(words) != ckks::Ciphertext::words_of(form, context)) {
    throw std::invalid_argument("a ciphertext in the tier file has " + std::to_string(words) +
                                " words, its form holds another count");
  }
  const auto* at = static_cast<const std::uint64_t*>(f->claim(offset, words * static_cast<std::int64_t>(sizeof(std::uint64_t))));
  return std::make_shared<const ckks::Ciphertext>(
      ckks::Ciphertext::from_form(form, {at, static_cast<std::size_t>(words)}, context, f));
}

TierUsage CiphertextStore::dram() const {
  std::lock_guard lock(state_->mu);
  return state_->dram;
}

TierUsage CiphertextStore::pmem() const {
  std::lock_guard lock(state_->mu);
  return state_->pmem;
}

void CiphertextStore::reset_window_peaks() {
  std::lock_guard lock(state_->mu);
  state_->dram.window_peak_bytes = state_->dram.bytes;
  state_->pmem.window_peak_bytes = state_->pmem.bytes;
}

std::int64_t CiphertextStore::group_bytes(GroupId g) const {
  std::lock_guard lock(state_->mu);
  const auto it = state_->groups.find(g);
  return it == state_->groups.end() ? 0 : it->second.dram_bytes + it->second.pmem_bytes;
}

std::int64_t CiphertextStore::live_ciphertexts() const {
  std::lock_guard lock(state_->mu);
  return state_->live;
}

std::int64_t tile_bytes_for_budget(std::int64_t dram_budget) {
  if (dram_budget == 0) return kMaxTileBytes;
  return std::clamp(dram_budget / 4, kMiB, kMaxTileBytes);
}

std::int64_t CiphertextStore::tile_bytes() const { return tile_bytes_for_budget(options_.dram_budget); }

}  // namespace heinfer::memory
