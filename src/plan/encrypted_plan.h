// The plan of an encrypted run, computed once before anything runs and read by everyone:
// the executor (which executes it step by step), the footprint and time prediction
// (`heinfer inspect`, the server's admission control) and the tests that replay it.
//
// From the graph, the chosen parameters (plan/parameters.h) and the schedule options:
//  - per node: its kind (the step that runs it), the level it reads its inputs at and
//    produces its output at, whether it rescales, which inputs it first brings to scale Δ
//    (plan/level_rules.h, with level = L - depth), whether it may run on bands of rows,
//    the ciphertexts its client round sends and receives, and the tensors whose last
//    reader it is (freed after it);
//  - per tensor: its production level and the level it is stored at (the highest level
//    any reader reads it at: the rest of its limbs is never used), its bound, whether it
//    may carry pending unmasking factors;
//  - the schedule: every node whole in graph order, or, with streaming, bands of rows of
//    consecutive streamable nodes (plan/stream_schedule.h), and the graph inputs that are
//    encrypted band by band as they are read.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "memory/ciphertext_store.h"
#include "model/graph.h"
#include "plan/node_kind.h"
#include "plan/parameters.h"
#include "plan/private_approximation.h"
#include "plan/stream_schedule.h"

namespace heinfer::plan {

struct NodePlan {
  NodeKind kind = NodeKind::Linear;
  int input_level = 0;    ///< the level the node computes on (its inputs are read at it)
  int output_level = 0;   ///< -1: a final Softmax (plaintext on the client)
  /// The level the output is held at after the node: its tensor's stored level for nodes
  /// that produce ciphertexts, output_level for nodes that share their input's.
  int output_stored_level = 0;
  bool rescale = false;   ///< one rescale per output
  /// Square: products kept as three polynomials at the input level (no relinearization,
  /// no rescale); Linear reading them: relinearize each output, then rescale it twice
  /// (plan/level_rules.h, lazy relinearization).
  bool deferred_product = false;
  bool rescale_twice = false;
  /// Per entry of Node::inputs: pending factors applied and scale brought to Δ first
  /// (one level, into a copy).
  std::vector<bool> materialized;
  bool combines_input = false;  ///< Clip/LeakyRelu: the recombination reads x
  int combine_level = 0;  ///< Clip/LeakyRelu: the level the round results are recombined at
  bool identity = false;  ///< Clip(-inf, inf): shares its input
  bool streamable = false;  ///< may run on bands of output rows
  std::int64_t output_ciphertexts = 0;  ///< 0 for a final Softmax
  /// Linear and Square nodes: working set per output element, the unit of their tiles
  /// (at most ScheduleOptions::tile_bytes each): the output before its rescale, the
  /// expanded inputs it reads on average and, per multiply-accumulate term, an encoded
  /// weight residue per limb and an (input, weight) pair.
  std::int64_t tile_element_bytes = 0;
  /// Client round: ciphertexts masked and sent (window entries; padding taps excluded),
  /// windows (one fresh reply each; two with round_signed_value).
  std::int64_t round_ciphertexts = 0, round_replies = 0;
  /// Client round: output elements (items) per round message; a node (or a streamed
  /// band) of k items runs ceil(k / round_items) rounds. Items are sized so that one
  /// round's working set (masked windows, fresh replies, the in-process client's copies)
  /// is about half of ScheduleOptions::tile_bytes.
  std::int64_t round_items = 0;
  std::int64_t rounds = 0;  ///< client round messages of the node over all its steps (at most)
  /// Round messages per chunk of round_items: 1, or in the model-private mode the blind
  /// refresh rounds of one chunk (plan/private_schedule.h).
  int rounds_per_chunk = 1;
  int round_level = -1;     ///< client round: the level of every window ciphertext
  /// Client round: ciphertexts per window (at most): the MaxPool kernel's taps, else 1.
  std::int64_t round_window_size = 0;
  bool round_fused_relu = false;  ///< MaxPool round reading a fused Relu: max(0, max(window))
  /// Per-sample masks: the client returns, per window, the masked value as well as its
  /// |·| (Relu, LeakyRelu, one-sided Clip: two replies per window); Clip with two
  /// bounds needs only the |·| of each window.
  bool round_signed_value = false;
  /// Client round: the largest |decoded masked value| the client accepts (an overflow
  /// check): the input's bound (plus the largest Clip shift) × its largest inverse
  /// pending factor × mask_max (plan/parameters.h). The same for every round of the node, whatever the
  /// masks drawn; announced to a remote client, which checks against it.
  double round_bound = 0;
  std::vector<model::TensorId> free_after;  ///< activations whose last reader is this node
};

struct TensorPlan {
  int level = -1;          ///< at production (-1: constant, or plaintext on the client)
  /// Stored at (the store drops the limbs above it): the highest level a reader reads it
  /// at, where every reader is a linear node or square without inputs to bring to Δ, a
  /// Relu round or a final Softmax; otherwise (or for graph outputs) `level`.
  int stored_level = -1;
  bool factors = false;    ///< may carry pending unmasking factors
  bool at_delta = true;    ///< scale is Δ (false after a square)
  double bound = 0;        ///< largest |value| allowed (Parameters::bounds)
  /// Largest 1/f over its pending unmasking factors f (true value = f × decrypted value):
  /// 1 without factors; a Relu round multiplies its input's by the largest mask.
  double max_inverse_factor = 1;
  /// The produced tensors whose ciphertexts (store groups) this tensor holds: itself for
  /// a node that computes new ciphertexts; for a data-movement node or a fused Relu, the
  /// groups of its inputs (it shares their ciphertexts) and its own (constants it adds).
  std::vector<model::TensorId> aliases;
  /// For a produced tensor (or graph input): the nodes that read its group, directly or
  /// through an alias, in ascending order.
  std::vector<std::int64_t> readers;
  /// The same as positions in EncryptedPlan::steps: the steps (whole nodes or bands) of
  /// those readers, in ascending order.
  std::vector<std::int64_t> reading_steps;
};

struct ScheduleOptions {
  /// Streaming across layers: consecutive streamable nodes run band by band.
  bool streaming = false;
  /// Working set per tile of a node (memory::CiphertextStore::tile_bytes()); bands hold
  /// about tile_bytes / 8 of top-level ciphertexts (at least one row).
  std::int64_t tile_bytes = memory::kMaxTileBytes;
  /// StreamOptions::segment_starts: where streamed segments are cut (plan/segment_cuts.h
  /// chooses them from a DRAM budget).
  std::vector<std::int64_t> segment_starts;
};

struct EncryptedPlan {
  Parameters parameters;
  ScheduleOptions options;
  int max_level = 0;                 ///< L: the top level of the chain
  std::vector<NodePlan> nodes;       ///< parallel to Graph::nodes
  std::vector<TensorPlan> tensors;   ///< parallel to Graph::tensors
  std::vector<StreamStep> steps;     ///< every node once (whole) or band by band
  std::vector<bool> inputs_on_demand;  ///< per tensor: a graph input encrypted band by band
  std::int64_t band_elements = 1;    ///< StreamOptions::band_elements of `steps`
  /// Model-private mode (Parameters::privacy): the approximation of every Relu and
  /// MaxPool node (plan/private_approximation.h, on the parameters' bounds); empty
  /// otherwise.
  std::map<std::size_t, NodeApproximation> private_approximations;
  /// Model-private mode: the level of every blind refresh (plan::refresh_floor_level of
  /// the chain and the mask bits); -1 otherwise.
  int refresh_floor = -1;
};

/// The first step after position `after` of p.steps (-1: before the first) that reads
/// the group of produced tensor t (INT64_MAX: none): the store's next use of the group,
/// in the order the executor runs (a streamed schedule interleaves the bands of many
/// nodes, so node indices would misorder them).
std::int64_t next_reading_step(const EncryptedPlan& p, model::TensorId t, std::int64_t after);

/// Position of `st` in p.steps. Throws std::logic_error when st is not an element of it.
std::int64_t step_position(const EncryptedPlan& p, const StreamStep& st);

/// Per node: whether it can run on bands of output rows: Conv / pools /
/// BatchNormalization / elementwise nodes on [C, H, W] activations with row maps
/// (plan/stream_schedule.h), and the Relu / Clip / LeakyRelu / MaxPool rounds, provided
/// no input has a scale other than Δ or (MaxPool) pending factors: both need a whole-
/// tensor materialization first.
std::vector<bool> streamable_nodes(const model::Graph& g);

/// The plan (file comment). Throws model::ModelError for nodes the encrypted runtime
/// does not support, std::invalid_argument when the parameters do not match the graph
/// (bounds) or have fewer levels than the rules need.
/// Throws model::ModelError for an unmasked round (Sigmoid, Tanh, ...) unless
/// parameters.unmasked_functions, and in the model-private mode for unmasked rounds (not
/// evaluated homomorphically yet).
EncryptedPlan make_plan(const model::Graph& g, const Parameters& parameters, const ScheduleOptions& options = {});

}  // namespace heinfer::plan
