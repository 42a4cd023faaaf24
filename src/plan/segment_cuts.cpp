#include "plan/segment_cuts.h"

#include <algorithm>

namespace heinfer::plan {
namespace {

/// The first node of every step's segment, per node (-1: not streamed).
std::vector<std::int64_t> node_segments(const model::Graph& g, const EncryptedPlan& p) {
  std::vector<std::int64_t> seg(g.nodes.size(), -1);
  for (const StreamStep& s : p.steps) seg[static_cast<std::size_t>(s.node)] = s.segment;
  return seg;
}

/// Per tensor, the node that produces it (-1: a graph input or constant).
std::vector<std::int64_t> producers(const model::Graph& g) {
  std::vector<std::int64_t> p(g.tensors.size(), -1);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    for (model::TensorId t : g.nodes[k].outputs) p[static_cast<std::size_t>(t)] = static_cast<std::int64_t>(k);
  }
  return p;
}

/// The stored groups produced before node c (graph inputs included) read at or after it.
std::vector<model::TensorId> crossing_groups(const model::Graph& g, const EncryptedPlan& p,
                                             const std::vector<std::int64_t>& producer, std::size_t c) {
  std::vector<model::TensorId> out;
  for (std::size_t k = c; k < g.nodes.size(); ++k) {
    for (model::TensorId t : g.nodes[k].inputs) {
      if (!model::is_activation(g, t)) continue;
      for (model::TensorId r : p.tensors[static_cast<std::size_t>(t)].aliases) {
        if (producer[static_cast<std::size_t>(r)] >= static_cast<std::int64_t>(c)) continue;
        if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
      }
    }
  }
  return out;
}

/// The largest hot bytes in [lo, hi) of the nodes streamed without cuts (`uncut`: their
/// segments; a cut may leave one alone, whole): the others run whole whatever the cuts.
std::int64_t segment_hot(const FootprintEstimate& f, const std::vector<std::int64_t>& uncut, std::int64_t lo,
                         std::int64_t hi) {
  std::int64_t m = 0;
  for (std::int64_t k = lo; k < hi; ++k) {
    if (uncut[static_cast<std::size_t>(k)] >= 0) m = std::max(m, f.nodes[static_cast<std::size_t>(k)].hot_bytes);
  }
  return m;
}

}  // namespace

std::int64_t predicted_tier_writes(const FootprintEstimate& f, std::int64_t dram_budget, std::int64_t crossing_bytes) {
  std::int64_t w = crossing_bytes;
  for (const auto& s : f.steps) w += std::clamp<std::int64_t>(s.hot - dram_budget, 0, s.output);
  return w;
}

std::vector<std::int64_t> cut_candidates(const model::Graph& g, const EncryptedPlan& p) {
  const auto seg = node_segments(g, p);
  const auto producer = producers(g);
  std::vector<std::int64_t> out;
  for (std::size_t c = 2; c + 1 < g.nodes.size(); ++c) {
    // Two nodes of the segment on either side: a node left alone would run whole.
    if (seg[c] < 0 || seg[c - 2] != seg[c] || seg[c + 1] != seg[c]) continue;
    if (crossing_groups(g, p, producer, c).size() == 1) out.push_back(static_cast<std::int64_t>(c));
  }
  return out;
}

SegmentCuts choose_segment_cuts(const model::Graph& g, const Parameters& parameters, const ScheduleOptions& options,
                                std::int64_t dram_budget, const FootprintOptions& footprint) {
  SegmentCuts r;
  ScheduleOptions so = options;
  so.segment_starts.clear();
  const EncryptedPlan uncut = make_plan(g, parameters, so);
  const FootprintEstimate f0 = predict_footprint(g, uncut, footprint);
  r.uncut_hot_peak_bytes = r.hot_peak_bytes = f0.hot_peak_bytes;
  r.uncut_tier_writes = r.tier_writes = predicted_tier_writes(f0, dram_budget, 0);
  const auto nodes = static_cast<std::int64_t>(g.nodes.size());
  const std::vector<std::int64_t> uncut_segments = node_segments(g, uncut);
  if (!so.streaming || dram_budget <= 0 || segment_hot(f0, uncut_segments, 0, nodes) <= dram_budget) return r;
  const std::vector<std::int64_t> candidates = cut_candidates(g, uncut);
  // Whether [lo, hi) fits the budget with cuts `starts`.
  auto fits = [&](const std::vector<std::int64_t>& starts, std::int64_t lo, std::int64_t hi) {
    so.segment_starts = starts;
    return segment_hot(predict_footprint(g, make_plan(g, parameters, so), footprint), uncut_segments, lo, hi) <=
           dram_budget;
  };
  std::vector<std::int64_t> starts;
  std::size_t ci = 0;
  std::int64_t b = 0;
  while (!fits(starts, b, nodes)) {
    std::int64_t last_fit = -1;
    for (; ci < candidates.size(); ++ci) {
      const std::int64_t c = candidates[ci];
      if (c < b + 2) continue;  // [b, c) would be one node, run whole
      auto trial = starts;
      trial.push_back(c);
      if (!fits(trial, b, c)) break;
      last_fit = c;
    }
    if (last_fit < 0) {  // even the shortest segment from b does not fit: cut as early as possible
      if (ci == candidates.size()) break;
      last_fit = candidates[ci++];
    }
    starts.push_back(last_fit);
    b = last_fit;
  }
  so.segment_starts = starts;
  const EncryptedPlan cut = make_plan(g, parameters, so);
  const FootprintEstimate f = predict_footprint(g, cut, footprint);
  const auto producer = producers(g);
  std::int64_t crossing = 0;
  for (std::int64_t c : starts) {
    for (model::TensorId t : crossing_groups(g, cut, producer, static_cast<std::size_t>(c))) {
      const std::int64_t k = producer[static_cast<std::size_t>(t)];
      if (k >= 0) crossing += f.nodes[static_cast<std::size_t>(k)].output_bytes;
    }
  }
  // Keep the cuts only when every segment then fits (one that does not cycles its excess
  // through the tier anyway, the crossing tensors on top: measured, the Fashion-MNIST CNN
  // wrote twice as much) and they are predicted to write less than the cycling.
  const std::int64_t writes = predicted_tier_writes(f, dram_budget, crossing);
  if (segment_hot(f, uncut_segments, 0, nodes) > dram_budget || writes >= r.uncut_tier_writes) return r;
  r.segment_starts = starts;
  r.hot_peak_bytes = f.hot_peak_bytes;
  r.crossing_bytes = crossing;
  r.tier_writes = writes;
  return r;
}

}  // namespace heinfer::plan
