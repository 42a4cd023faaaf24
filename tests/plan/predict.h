// Test helper of tests/plan/: the footprint of chosen parameters under schedule options.
#pragma once

#include <cstdint>
#include <vector>

#include "plan/encrypted_plan.h"
#include "plan/footprint.h"

namespace heinfer::test {

/// Footprint options plus the schedule options the plan is made with.
struct Options : plan::FootprintOptions {
  std::int64_t tile_bytes = std::int64_t{1} << 30;
  bool streaming = false;
  std::vector<std::int64_t> segment_starts;  ///< ScheduleOptions::segment_starts
};

/// A footprint with the plan it was predicted from (kinds, levels, round counts).
struct Predicted : plan::FootprintEstimate {
  plan::EncryptedPlan plan;
};

/// The footprint of `parameters` planned with o's schedule options (tile bytes, streaming).
inline Predicted predict(const model::Graph& g, const plan::Parameters& parameters, const Options& o = {}) {
  plan::ScheduleOptions so;
  so.tile_bytes = o.tile_bytes;
  so.streaming = o.streaming;
  so.segment_starts = o.segment_starts;
  Predicted out;
  out.plan = plan::make_plan(g, parameters, so);
  static_cast<plan::FootprintEstimate&>(out) = plan::predict_footprint(g, out.plan, o);
  return out;
}

}  // namespace heinfer::test
