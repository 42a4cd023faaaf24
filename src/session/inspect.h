// The prediction of an encrypted run without data (`heinfer inspect --batch`, the Python
// package's Model.inspect): CKKS parameters planned on ranges from a plaintext run on
// seeded random inputs (at a reduced resolution for large image models, or a fixed
// bound), per-layer ciphertexts and bytes, the peak memory without a budget and with
// streaming (plan/footprint.h) and the time from a few-second calibration of the unit
// costs (plan/cost_model.h, runtime/cost_calibration.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "model/graph.h"
#include "model/load.h"

namespace heinfer::session {

/// The options of a prediction (the CLI flags of the same names).
struct InspectOptions {
  std::string model;
  std::int64_t batch = 0;
  std::string resolution;
  std::string packing = "auto";
  std::string round_masks = "per-window";
  bool allow_unmasked_rounds = false;
  int scale_bits = 30;
  int threads = 0;
  double range = 0;  ///< > 0: fixed |value| bound for every tensor instead of calibrating
  bool no_time = false;  ///< memory only: skip the time calibration
  int limb_words = 64;   ///< stored limbs (plan::FootprintOptions::limb_words)
  int max_prime_bits = 49;  ///< plan::ParameterOptions::max_prime_bits
  /// > 0: the streamed prediction is that of a tiered run with this DRAM budget in bytes
  /// (its tiles, and the segment cuts it makes: plan/segment_cuts.h).
  std::int64_t dram_budget = 0;
  int ranks = 0;  ///< > 0: also predict a distributed run on 1, 2, 4, ..., `ranks` ranks (session/inspect_ranks.h)
  double link_bytes_per_second = 1.25e9;  ///< the link model of that prediction (plan::LinkModel)
  double link_latency_seconds = 50e-6;
  std::FILE* out = stdout;  ///< where the text goes; null: nowhere
};


/// Loads `o.model` as inspect does: `o.resolution` ("H" or "HxW") replaces the input's two
/// spatial dims; with a batch, the refresh rounds of `o.round_masks` are inserted. The
/// load options used go to `*used` (may be null). Throws model::ModelError,
/// std::invalid_argument for a bad resolution.
model::Graph load_for_inspect(const InspectOptions& o, model::LoadOptions* used = nullptr);

/// Plans g (which may gain refreshes: plan::plan_with_refreshes), calls `on_planned(g)`
/// (the CLI prints the graph as planned), prints the prediction to o.out and returns it
/// as the JSON of `heinfer inspect --json` (format "heinfer-inspect", version 1: params,
/// ranges, memory in bytes, per-layer figures, time in seconds or null with no_time).
/// `lo`: the options g was loaded with. Throws std::invalid_argument when no parameters
/// fit (plan::plan_parameters).
nlohmann::json predict_run(model::Graph& g, const model::LoadOptions& lo, const InspectOptions& o,
                           const std::function<void(const model::Graph&)>& on_planned = {});

/// load_for_inspect + predict_run. Throws std::invalid_argument when o.batch < 1.
nlohmann::json inspect_model(const InspectOptions& o);

/// The last `width` characters of s, "..." first when cut (ONNX exporters put the
/// distinctive part of names last).
std::string tail_text(const std::string& s, std::size_t width);
/// "12.345 s", "3.4 min" or "2.50 h".
std::string seconds_text(double seconds);
/// "H" or "HxW" -> {H, W}. Throws std::invalid_argument.
std::pair<std::int64_t, std::int64_t> parse_resolution(const std::string& s);

}  // namespace heinfer::session
