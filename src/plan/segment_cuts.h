// Cutting a long streamed segment so that a memory-tiered run fits its DRAM budget.
//
// Streaming is depth first (plan/stream_schedule.h): in one segment a window of rows of
// every tensor is alive at once. For a deep network at a high resolution (ResNet-50 at
// 224×224: ~35 windows of 14,336 ciphertexts a row) those windows alone exceed a DRAM
// budget, and a tiered run then cycles the excess through its tier on every iteration
// over rows (a terabyte of writes per batch). A cut ends a segment where a single
// activation crosses (a residual block's output): that tensor is computed whole, the
// store's furthest-next-use rule writes it to the tier once as it is produced, and the
// next segment reads it back row by row. The segments are then short enough for their
// windows to stay in DRAM, for the price of one tier write and read of each crossing
// tensor. This is the layer-group partitioning of fused-layer accelerators (Alwani et
// al., MICRO 2016, §4: which layers to fuse under an on-chip budget) with DRAM as the
// on-chip buffer and the tier as off-chip memory.
#pragma once

#include <cstdint>
#include <vector>

#include "model/graph.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"

namespace heinfer::plan {

/// Node indices c where plan p's streamed schedule may be cut: c − 2 … c + 1 run in the
/// same streamed segment (a cut leaves no node alone, which would run whole) and exactly
/// one stored group (TensorPlan::aliases) produced before c (or a graph input) is read at
/// or after c. Ascending.
std::vector<std::int64_t> cut_candidates(const model::Graph& g, const EncryptedPlan& p);

/// What a tiered run with `dram_budget` is expected to write to its tier, in bytes, from
/// the footprint of its plan: per step, the part of the band's outputs that does not fit
/// beside the step's hot bytes, min(output, hot − dram_budget) where positive (Belady's
/// rule demotes that much to make room), plus `crossing_bytes` (written once). A model:
/// it ignores what the page cache absorbs and what stays in DRAM by luck.
std::int64_t predicted_tier_writes(const FootprintEstimate& f, std::int64_t dram_budget, std::int64_t crossing_bytes);

struct SegmentCuts {
  std::vector<std::int64_t> segment_starts;  ///< ScheduleOptions::segment_starts
  /// FootprintEstimate::hot_peak_bytes of the plan without cuts and with these, bytes.
  std::int64_t uncut_hot_peak_bytes = 0, hot_peak_bytes = 0;
  /// Stored bytes of the groups crossing the cuts: what a tiered run writes to its
  /// tier once (and reads back once) for them.
  std::int64_t crossing_bytes = 0;
  /// predicted_tier_writes without cuts and with these.
  std::int64_t uncut_tier_writes = 0, tier_writes = 0;
};

/// Cuts for a run of g with `parameters` whose stored ciphertexts get `dram_budget`
/// bytes of DRAM (> 0). A stretch of nodes fits when the largest NodeFootprint::hot_bytes
/// of its nodes that stream without cuts is ≤ dram_budget (nodes that run whole run whole
/// whatever the cuts). None when options.streaming is off or the uncut plan fits;
/// otherwise, greedily from the first node, each segment is extended to the furthest
/// candidate where it still fits, or cut at the nearest candidate when none does; no cut
/// leaves a node alone. The cuts are kept only when every segment then fits and they
/// lower predicted_tier_writes (the crossing tensors cost more than a small excess
/// cycling through the tier, and a segment that still overflows cycles anyway).
/// Costs one make_plan and predict_footprint per candidate tried (about twice the
/// candidates). Throws what make_plan throws.
SegmentCuts choose_segment_cuts(const model::Graph& g, const Parameters& parameters, const ScheduleOptions& options,
                                std::int64_t dram_budget, const FootprintOptions& footprint = {});

}  // namespace heinfer::plan
