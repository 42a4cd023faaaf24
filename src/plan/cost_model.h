// Predicting the time of an encrypted run before anything runs (`heinfer inspect --batch B
// --resolution HxW`).
//
// Model: a quick calibration at the plan's parameters (runtime/cost_calibration.h) runs
// the real encrypted executor (LocalClient, store, tiled kernels, chunked rounds) twice on
// a small calibration network whose layers isolate the unit costs: a dense 1×1 and a
// dense 3×3 convolution (multiply-accumulate per term and per rescaled output, solved
// from the two), a depthwise convolution (per-output term lists), an Add (ciphertext
// additions), a Relu and a 2×2 MaxPool round (per ciphertext sent / returned, solved from
// the two), a square when L >= 2; the faster of the two runs' per-layer times
// (EncryptedRunStats::layers) is used. Expanding compact ciphertexts and first-touch page
// faults are timed directly. A node's time is then Σ (operation count × unit cost) with
// the counts of plan::predict_footprint (NodeFootprint: multiply-accumulate terms,
// outputs, additions, squares, round ciphertexts, compact inputs expanded), RNS costs
// proportional to the limbs at the node's input level (l + 1). The batch does not change
// the per-ciphertext costs (batch-axis packing); B samples take ceil(B / capacity)
// batches. The first batch also pays the page faults of its heap growth (a fresh
// anonymous mapping written once), which later batches reuse.
#pragma once

#include <cstdint>
#include <vector>

#include "model/graph.h"
#include "plan/footprint.h"

namespace heinfer::plan {

/// Unit costs in seconds, measured at one plan's parameters and thread count.
struct CostCalibration {
  std::size_t n = 0;
  int max_level = 0;
  int threads = 0;               ///< omp_get_max_threads() during calibration
  double mac_shared = 0;         ///< per term × limb, outputs sharing their inputs (dense, conv)
  double mac_single = 0;         ///< per term × limb, every output its own inputs (depthwise, BN)
  double output_limb = 0;        ///< per rescaled output × limb (allocation, bias, rescale)
  double add_limb = 0;           ///< per ciphertext addition × limb
  double copy_limb = 0;          ///< per ciphertext copy / mod switch × limb
  double expand_limb = 0;        ///< per compact fresh input expanded (c1 from its seed) × limb
  double square_limb = 0;        ///< per square (product, relinearization, rescale) × limb
  double round_send = 0;         ///< per ciphertext sent to the client (mask, decrypt, decode)
  double round_reply = 0;        ///< per fresh ciphertext returned (encode, encrypt, expand)
  double encrypt = 0;            ///< per input ciphertext (client encrypt + expand)
  double decrypt = 0;            ///< per output ciphertext (client decrypt + decode)
  double first_touch = 0;        ///< per byte of heap touched for the first time (page faults)
  double seconds = 0;            ///< wall time the calibration took
};

struct TimeEstimate {
  std::vector<double> node_seconds;  ///< per node, one steady-state batch (as EncryptedRunStats::layers)
  /// Per node, first batch only: the page faults of the node's new heap high-water mark
  /// (FootprintEstimate live bytes) × first_touch.
  std::vector<double> first_touch_node_seconds;
  double first_touch_seconds = 0;    ///< their sum (= peak bytes × first_touch)
  double encrypt_seconds = 0;        ///< client encryption of the inputs, one batch
  double decrypt_seconds = 0;        ///< client decryption of the outputs, one batch
  double batch_seconds = 0;          ///< nodes + encrypt + decrypt, one steady-state batch
  std::int64_t batches = 0;          ///< ceil(samples / capacity)
  /// batches × batch_seconds + first_touch_seconds (later batches reuse the heap).
  double total_seconds = 0;
};

/// Seconds of one node from its work counts (see the file comment).
double predict_node_seconds(const model::Graph& g, const model::Node& n, const NodePlan& np,
                            const NodeFootprint& f, const CostCalibration& c);

/// Predicts the time of `samples` samples (> 0) with capacity samples per ciphertext.
/// Throws std::invalid_argument if samples or capacity is not positive.
TimeEstimate predict_time(const model::Graph& g, const EncryptedPlan& plan, const FootprintEstimate& f,
                          const CostCalibration& c, std::int64_t samples, std::int64_t capacity);

}  // namespace heinfer::plan
