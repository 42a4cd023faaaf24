// Predicting the memory of an encrypted run before anything runs (issue 6: `heinfer
// inspect --batch --resolution`, and the admission control of `heinfer serve
// --memory-limit`).
//
// Model: batch-axis packing, one ciphertext per per-sample tensor element. A ciphertext at
// level l takes 2·(l+1)·N·8 bytes expanded, (l+1)·N·8 bytes compact (seeded, c1 dropped:
// client-refreshed ciphertexts are kept compact until used). The schedule is walked in
// graph order with the executor's level rules (runtime/parameter_selection.h) and its
// liveness (model/liveness.h: every tensor freed after its last reader); the peak is the
// largest sum over the live tensors plus the running node's output and its transient
// working set. Data-movement nodes share ciphertexts (no bytes).
//
// Level rules (runtime/encrypted_executor.cpp): inputs of one node are aligned to their
// lowest level (transient copies of the higher ones); a linear node rescales (one level)
// when some weight is outside {-1, 0, 1} or its input carries pending unmasking factors;
// a square drops one level; Relu/MaxPool rounds return fresh top-level ciphertexts with
// pending factors; MaxPool first materializes pending factors (one level), Clip/LeakyRelu
// fold them into their windows and only bring a non-Δ scale (a square's output) to Δ;
// Clip with a finite lower bound recombines fresh results at the top level (output at
// L - 1), LeakyRelu (or Clip without a lower bound) at the input level (output one
// below). All-zero outputs (null ciphertexts) are counted as ciphertexts (upper bound).
//
// Transient working sets (same source): a rescaling linear node or a square allocates
// its outputs at the input level before the rescale plus, per multiply-accumulate term,
// one encoded weight residue per limb and an (input pointer, weight) pair, and expands
// its compact inputs; a client round holds the masked copies of its windows (expanded,
// at the input level) and the replies; Clip/LeakyRelu also hold the replies expanded and
// lowered to the combination level. The executor processes a node in tiles / chunks, so
// the working set beyond the final outputs is capped at FootprintOptions::tile_bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/graph.h"
#include "runtime/encrypted_executor.h"
#include "runtime/parameter_selection.h"

namespace heinfer::memory {

/// What the executor does with ciphertexts that shape their size (see the file comment).
struct FootprintOptions {
  /// Client-refreshed ciphertexts (encrypted inputs, round outputs) stay compact until
  /// a node reads them; the reader then holds an expanded transient copy.
  bool compact_fresh = true;
  /// Every stored tensor is mod-switched down to the lowest level any reader consumes
  /// it at (issue 6, "stored at its lowest needed level").
  bool lowest_level_storage = true;
  /// The executor evaluates a node in output tiles / client rounds in chunks whose
  /// working set (expanded inputs, outputs before the rescale, masked copies, encoded
  /// weights) is about this many bytes: memory::CiphertextStore::tile_bytes(), 1 GiB
  /// without a budget. 0: whole nodes at once.
  std::int64_t tile_bytes = std::int64_t{1} << 30;
  /// Streaming across layers (runtime::EncryptedRunOptions::streaming): the peak is
  /// taken over the executor's streamed schedule (runtime::stream_schedule of
  /// runtime::streamable_nodes, bands of max(1, tile_bytes / expanded top-level
  /// ciphertext bytes / 8) elements), where tensors inside a segment hold only the rows
  /// produced and not yet released and a band holds its share of the node's output and
  /// working set; graph inputs only streamed bands read are encrypted band by band
  /// (runtime::inputs_on_demand: an in-process client).
  bool streaming = false;
};

struct NodeFootprint {
  /// Bytes of all live ciphertexts while the node runs (streaming: the most over its
  /// bands).
  std::int64_t live_bytes = 0;
  std::int64_t output_bytes = 0;     ///< bytes of the node's output ciphertexts
  std::int64_t output_ciphertexts = 0;
  int output_level = -1;             ///< -1: plaintext on the client (final Softmax)

  // ---- the work of the node (inputs of the time model, memory/cost_model.h) ----
  runtime::EncryptedNodeKind kind = runtime::EncryptedNodeKind::Linear;
  int input_level = -1;              ///< common level the node reads its inputs at
  bool rescale = false;              ///< linear: one rescale per output
  /// Multiply-accumulate terms (ciphertext × nonzero scalar) of the node, all outputs,
  /// counted from the weights (model/analysis.h macs scaled by the nonzero fraction).
  std::int64_t mac_terms = 0;
  std::int64_t additions = 0;        ///< ciphertext additions (non-rescaling linear nodes)
  std::int64_t squares = 0;          ///< ciphertext squares (multiply_packed / relinearize)
  std::int64_t round_ciphertexts = 0;  ///< ciphertexts masked and sent to the client
  std::int64_t round_replies = 0;      ///< fresh ciphertexts the client returns
  std::int64_t materialized = 0;       ///< elements whose pending factors are applied first
  std::int64_t aligned = 0;            ///< ciphertexts mod-switched to align levels
  /// Compact fresh input ciphertexts the node expands (once each) before computing.
  std::int64_t fresh_inputs = 0;
};

struct FootprintEstimate {
  std::int64_t peak_bytes = 0;       ///< max over nodes of live_bytes (unbounded, DRAM only)
  std::int64_t peak_node = -1;       ///< the node index where the peak occurs
  /// The peak without streaming (whole nodes in graph order); equals peak_bytes unless
  /// FootprintOptions::streaming.
  std::int64_t unstreamed_peak_bytes = 0;
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

/// Bytes of one ciphertext at `level` for ring degree n: 2·(level+1)·n·8 expanded,
/// (level+1)·n·8 compact.
std::int64_t ciphertext_bytes(std::size_t n, int level, bool compact = false);

/// Bytes of the relinearization key (and the conjugation Galois key under complex
/// packing) of `plan`, as ckks::KeyGenerator stores them: ceil((L+1)/K) digits × 2
/// polynomials × (L+1+K) limbs × N × 8.
std::int64_t evaluation_key_bytes(const runtime::EncryptionPlan& plan);

/// Predicts the footprint of one encrypted batch of `g` under `plan`. Throws
/// model::ModelError for nodes the encrypted executor does not support.
FootprintEstimate predict_footprint(const model::Graph& g, const runtime::EncryptionPlan& plan);
FootprintEstimate predict_footprint(const model::Graph& g, const runtime::EncryptionPlan& plan,
                                    const FootprintOptions& options);

}  // namespace heinfer::memory
