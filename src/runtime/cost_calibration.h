// Measuring the unit costs of the time model (plan/cost_model.h) on this machine: the
// real encrypted executor runs a small calibration network at the plan's parameters.
#pragma once

#include "plan/cost_model.h"
#include "plan/parameters.h"

namespace heinfer::runtime {

/// Times the unit operations at `parameters` (plan/cost_model.h, file comment; keys
/// included, 2-3 s at N = 2^13, L = 2 on two loaded cores). Uses the current OpenMP
/// thread count. Noisy fits are clamped (a negative unit cost is re-attributed). Throws
/// std::invalid_argument for parameters ckks::CKKSContext rejects.
plan::CostCalibration calibrate_costs(const plan::Parameters& parameters);

}  // namespace heinfer::runtime
