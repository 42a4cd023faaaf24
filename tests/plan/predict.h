// Test helper of tests/plan/: the footprint of chosen parameters under schedule options.
#pragma once

#include <cstdint>

#include "plan/encrypted_plan.h"
#include "plan/footprint.h"

namespace heinfer::test {

/// Footprint options plus the schedule options the plan is made with.
struct Options : plan::FootprintOptions {
  std::int64_t tile_bytes = std::int64_t{1} << 30;
  bool streaming = false;
};

/// The footprint of `parameters` planned with o's schedule options (tile bytes, streaming).
inline plan::FootprintEstimate predict(const model::Graph& g, const plan::Parameters& parameters,
                                       const Options& o = {}) {
  plan::ScheduleOptions so;
  so.tile_bytes = o.tile_bytes;
  so.streaming = o.streaming;
  return plan::predict_footprint(g, plan::make_plan(g, parameters, so), o);
}

}  // namespace heinfer::test
