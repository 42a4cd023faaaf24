// Predicting the memory of an encrypted run before anything runs (`heinfer inspect
// --batch --resolution`, and the admission control of `heinfer serve --memory-limit`).
//
// Model: batch-axis packing, one ciphertext per per-sample tensor element. A ciphertext at
// level l takes ckks::ciphertext_bytes (ckks/sizes.h): 2·(l+1)·N·8 bytes expanded,
// (l+1)·N·8 compact (seeded, c1 dropped: client-refreshed ciphertexts are kept compact
// until used); with 32-bit limb words, limbs of primes below 2^32 take 4 bytes per
// coefficient at rest. The plan's schedule (plan/encrypted_plan.h: levels, stored levels, steps,
// every tensor freed after its last reader) is replayed; the peak is the
// largest sum over the live tensors plus the running node's output and its transient
// working set. Data-movement nodes share ciphertexts (no bytes).
//
// The levels come from the plan (plan/level_rules.h); inputs of one node read above its
// input level are aligned in transient copies. All-zero outputs (null ciphertexts) are
// counted as ciphertexts (upper bound).
//
// Transient working sets (the step kinds of runtime/): a rescaling linear node or a
// square allocates its outputs at the input level before the rescale plus, per multiply-accumulate term,
// one encoded weight residue per limb and an (input pointer, weight) pair, and expands
// its compact inputs; a client round holds the masked copies of its windows (expanded,
// at the input level) and the replies; Clip/LeakyRelu also hold the replies expanded and
// lowered to the combination level. The executor processes a node in tiles / chunks, so
// the working set beyond the final outputs is capped at ScheduleOptions::tile_bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/graph.h"
#include "plan/encrypted_plan.h"

namespace heinfer::plan {

/// What the executor does with ciphertexts that shape their size (see the file comment).
struct FootprintOptions {
  /// Client-refreshed ciphertexts (encrypted inputs, round outputs) stay compact until
  /// a node reads them; the reader then holds an expanded transient copy.
  bool compact_fresh = true;
  /// Every stored tensor is mod-switched down to its stored level
  /// (TensorPlan::stored_level: the highest level a reader reads it at).
  bool lowest_level_storage = true;
  /// Words of stored limbs: 64, or 32 (memory::CiphertextStore::pack_words: limbs of
  /// primes below 2^32 at 4 bytes per coefficient; readers expand them transiently).
  int limb_words = 64;
  /// One rank's share of a distributed run (plan/partition_cost.h): per tensor the
  /// fraction of its elements the rank holds (its own and the halos it fetched), per
  /// node the fraction of the work it does. Both empty: one process (all of it);
  /// otherwise sized as Graph::tensors and Graph::nodes (else std::invalid_argument).
  std::vector<double> tensor_share, node_share;
};

/// Per node, beside its NodePlan (kind, levels, rescale, output and round ciphertexts).
struct NodeFootprint {
  /// Bytes of all live ciphertexts while the node runs (streaming: the most over its
  /// bands).
  std::int64_t live_bytes = 0;
  std::int64_t output_bytes = 0;     ///< bytes of the node's output ciphertexts
  /// FootprintEstimate::hot_peak_bytes while the node runs (the most over its bands).
  std::int64_t hot_bytes = 0;

  // ---- the work of the node (inputs of the time model, plan/cost_model.h) ----
  /// Multiply-accumulate terms (ciphertext × nonzero scalar) of the node, all outputs,
  /// counted from the weights (model/analysis.h macs scaled by the nonzero fraction).
  std::int64_t mac_terms = 0;
  std::int64_t additions = 0;        ///< ciphertext additions (non-rescaling linear nodes)
  std::int64_t squares = 0;          ///< ciphertext squares (multiply_packed / relinearize)
  std::int64_t materialized = 0;       ///< elements whose pending factors are applied first
  std::int64_t aligned = 0;            ///< ciphertexts mod-switched to align levels
  /// Compact fresh input ciphertexts the node expands (once each) before computing.
  std::int64_t fresh_inputs = 0;
};

struct FootprintEstimate {
  std::int64_t peak_bytes = 0;       ///< max over nodes of live_bytes (unbounded, DRAM only)
  std::int64_t peak_node = -1;       ///< the node index where the peak occurs
  /// What the peak holds, largest first: per stored tensor the rows alive [row_begin,
  /// row_end) of its H (0, 0: all of a tensor that is not [C, H, W] or not streamed) and
  /// their bytes; then the band's own: its output rows (the node's output tensor) and its
  /// working set (expanded inputs, aligned copies, transients: tensor -1). Streamed plans
  /// only.
  struct PeakPart {
    model::TensorId tensor = -1;
    std::int64_t row_begin = 0, row_end = 0, bytes = 0;
  };
  std::vector<PeakPart> peak_parts;
  /// The peak without streaming (whole nodes in graph order); equals peak_bytes unless
  /// the plan streams (ScheduleOptions::streaming).
  std::int64_t unstreamed_peak_bytes = 0;
  /// What a tiered run needs in DRAM at once (streamed plans; peak_bytes otherwise): the
  /// stored ciphertexts a step's segment reads again and created itself, plus the band's
  /// outputs; not the rest, which Belady's rule (memory/ciphertext_store.h) demotes: what
  /// is read only after the segment (a cut's crossing tensor: written to the tier once)
  /// and a tensor computed whole before the segment (read band by band from the tier).
  /// The working set beside it is not counted (tiles of ScheduleOptions::tile_bytes).
  std::int64_t hot_peak_bytes = 0;
  /// Per step of a streamed plan (EncryptedPlan::steps; empty otherwise): the hot bytes
  /// (as hot_peak_bytes) and the bytes of the band's outputs.
  struct StepBytes {
    std::int64_t hot = 0, output = 0;
  };
  std::vector<StepBytes> steps;
  std::int64_t key_bytes = 0;        ///< relinearization + Galois (conjugation) keys
  std::int64_t weight_bytes = 0;     ///< the model's constants as float64
  std::vector<NodeFootprint> nodes;  ///< per node, in graph order
  std::int64_t input_ciphertexts = 0;  ///< encrypted by the client (all graph inputs)
  std::int64_t output_ciphertexts = 0; ///< decrypted by the client (graph outputs)
  int max_level = 0;                 ///< L of the plan
  std::size_t n = 0;                 ///< ring degree N of the plan
  /// peak_bytes + key_bytes + weight_bytes: what an unbounded run needs resident.
  std::int64_t total_bytes() const { return peak_bytes + key_bytes + weight_bytes; }
};

/// Bytes of the relinearization key (and the conjugation Galois key under complex
/// packing) of `parameters` (ckks::key_switching_key_bytes each).
std::int64_t evaluation_key_bytes(const Parameters& parameters);

/// Predicts the footprint of one encrypted batch of `g` run by `plan`: whole nodes in
/// graph order, or the plan's streamed schedule, with working sets capped at the plan's
/// tile bytes (the executor runs tiles and round chunks of that size).
FootprintEstimate predict_footprint(const model::Graph& g, const EncryptedPlan& plan,
                                    const FootprintOptions& options = {});

}  // namespace heinfer::plan
