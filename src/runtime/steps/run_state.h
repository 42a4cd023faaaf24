// Internal to the encrypted executor: the server-side state of one run and the step
// functions that execute one step of the plan (a whole node, or one band of rows of a
// streamed node). One file per step kind:
//  - data_movement_step.cpp: shares ciphertext pointers (Flatten, Reshape, Concat, Pad,
//    ..., and a Relu fused into the next MaxPool round);
//  - linear_step.cpp: multiply-accumulates by plaintext scalars with one rescale per
//    output (Conv, Gemm, BN, pools, elementwise), and the polynomial step: squares;
//  - round_step.cpp: client rounds (Relu, MaxPool, Clip, LeakyRelu);
//  - private_step.cpp: the model-private mode's Relu and MaxPool (blind refreshes only).
// Every step reads its levels from the plan (plan/encrypted_plan.h) and checks that the
// ciphertexts it is given are where the plan says.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ckks/context.h"
#include "ckks/encoder.h"
#include "ckks/special_fft.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "memory/ciphertext_store.h"
#include "model/graph.h"
#include "plan/encrypted_plan.h"
#include "plan/partition.h"
#include "runtime/client.h"
#include "runtime/encrypted_backend.h"
#include "runtime/encrypted_tensor.h"
#include "runtime/kernels/output_tile.h"
#include "runtime/local_client.h"
#include "runtime/run_observer.h"
#include "runtime/run_stats.h"

namespace heinfer::runtime::steps {

struct StepIO;
using GroupId = memory::CiphertextStore::GroupId;

/// Server-side state of one run, shared by the steps.
class RunState {
 public:
  RunState(const model::Graph& g, const plan::EncryptedPlan& plan, const ckks::CKKSContext& ctx,
           const ckks::Evaluator& eval, const EvaluationKeys& keys, Client& client, EncryptedRunStats& stats,
           memory::CiphertextStore& store);

  const model::Graph& g;
  const plan::EncryptedPlan& plan;
  const ckks::CKKSContext& ctx;
  const ckks::Evaluator& eval;
  Client& client;
  EncryptedRunStats& stats;
  memory::CiphertextStore& store;
  const std::int64_t tile_bytes;  ///< the plan's ScheduleOptions::tile_bytes
  EncryptedBackend be;  ///< the node-independent part of the backend
  const ckks::CKKSEncoder* encoder = nullptr;  ///< per-sample rounds: encodes unmasking vectors
  const ckks::SpecialFFT* fft = nullptr;       ///< per-sample rounds: draws masks
  std::int64_t node = -1;  ///< index of the node whose step runs (names its client rounds)
  /// Model-private mode: encryptions of zero under the client's public key, which
  /// re-randomize every ciphertext before a blind refresh; null otherwise.
  const ckks::Encryptor* public_key_encryptor = nullptr;
  /// A distributed run (plan/partition.h): the partition and this process's rank; null
  /// in a single-process run.
  const plan::Partition* partition = nullptr;
  int rank = 0;
  /// `elements` of tensor t without those another rank owns (all of them when not
  /// distributed).
  std::vector<std::int64_t> owned(model::TensorId t, std::vector<std::int64_t> elements) const;
  /// The run's observers (RunObserver::round_replied after every checked reply), or null.
  const std::vector<RunObserver*>* observers = nullptr;

  double scale() const { return plan.parameters.scale(); }
  /// Bytes of one ciphertext at `level` in memory (compact: c0 only).
  std::int64_t ct_bytes(std::size_t level, bool compact = false) const;

  /// An encrypted graph input of per-sample `shape` at the top level, without ciphertexts yet.
  EncryptedTensor input_tensor(const model::Shape& shape) const;
  /// Asks the client to encrypt `elements` of its graph input `input` (in parts when the
  /// client allows it) into t, kept compact in the store. Throws std::runtime_error when
  /// the client returns a wrong number of ciphertexts or ciphertexts of other parameters.
  void encrypt_elements(std::size_t input, EncryptedTensor& t, std::span<const std::int64_t> elements,
                        const std::string& name, double bound, GroupId group);

  /// Output tiles of a node with output `y_shape` whose elements each need
  /// `element_bytes` of working set, within output rows [row_begin, row_end) of a
  /// [C, H, W] output (a streamed band; row_end < 0: all): whole, or row bands over all
  /// channels, or one row in channel blocks, or element ranges.
  std::vector<kernels::OutputTile> tiles(const model::Shape& y_shape, std::int64_t element_bytes,
                                         std::int64_t row_begin = 0, std::int64_t row_end = -1) const;
  /// The tiles of step s's share of its output: tiles() of its band, restricted to its
  /// columns in a distributed run (one tile per channel and group of rows).
  std::vector<kernels::OutputTile> step_tiles(const StepIO& s, std::int64_t element_bytes) const;
  /// Stores the tile's new ciphertexts of y in `group`.
  void adopt_tile(EncryptedTensor& y, const kernels::OutputTile& tile, GroupId group);

  /// Applies pending factors (and brings the scale to Δ): one multiply-accumulate of
  /// weight f_e and one rescale per element, tile by tile into `group`.
  void materialize(EncryptedTensor& t, const std::string& layer, GroupId group);
  /// A trivial ciphertext of 0 at `level` and `scale` (windows over zero elements).
  CiphertextPtr zero_ct(std::size_t level, double scale) const;
};

/// One step of the plan as the step functions see it.
struct StepIO {
  const model::Node& n;
  const plan::NodePlan& np;
  const plan::StreamStep& st;
  std::vector<const EncryptedTensor*> in;  ///< per Node::inputs entry (null: constant)
  std::vector<GroupId> in_groups;          ///< store groups of the inputs
  EncryptedTensor& y;                      ///< the output (filled band by band when streamed)
  const model::Shape& y_shape;
  GroupId group;                           ///< the output's store group
  std::span<const std::int64_t> elements;  ///< output elements of this step (a band, or all)
  double x_bound = 0;                      ///< bound of the first encrypted input
  std::string round_layer;                 ///< "<producer> -> <node>": names a round's checks
  /// A distributed run: the output columns [col_begin, col_end) of a [C, H, W] output
  /// this rank computes (col_end < 0: all), and whether the step adds the node's
  /// constant terms (false for the partial sums of ranks other than 0).
  std::int64_t col_begin = 0, col_end = -1;
  bool constants = true;
};

/// A uniformly random permutation of 0..n-1 (Fisher-Yates, libsodium CSPRNG).
std::vector<std::size_t> random_permutation(std::size_t n);

/// One client round of the running node: window i of the request is masked[perm[i]].
/// Returns the replies (replies_per_window(f) per window, in request order) after
/// checking their count, ring degree, top level and scale Δ (std::runtime_error naming
/// `layer` otherwise); accounts the traffic, the client's time and the round in run.stats.
std::vector<ckks::Ciphertext> exchange_round(RunState& run, const std::string& layer, RoundFunction f,
                                             const std::vector<std::vector<ckks::Ciphertext>>& masked,
                                             const std::vector<std::size_t>& perm);

/// An empty output of `shape` whose elements a round fills with fresh top-level
/// ciphertexts at scale Δ (all factors 1 until then).
EncryptedTensor fresh_output(const RunState& run, const model::Shape& shape);

/// x itself, or, when `needed`, a copy in `scratch` with its pending factors applied and
/// its scale brought to Δ (RunState::materialize). Only a node that runs whole (`whole`)
/// may need the copy (else std::logic_error): the plan keeps the others out of streamed
/// segments.
const EncryptedTensor& materialized(RunState& run, const EncryptedTensor& x, bool needed, bool whole,
                                    const model::Node& n, EncryptedTensor& scratch, GroupId group);

/// The first encrypted input of the step.
const EncryptedTensor* first_input(const StepIO& s);

/// Element indices of rows [row_begin, row_end) of a per-sample [C, H, W] tensor.
std::vector<std::int64_t> band_elements(const model::Shape& shape, std::int64_t row_begin, std::int64_t row_end);

/// The ciphertexts a streamed band of node n reads: its input rows (plan::row_map) of
/// every encrypted input (`in`, per Node::inputs entry), all of an input without a row
/// map or read whole.
std::vector<const CiphertextPtr*> band_inputs(const model::Graph& g, const model::Node& n, const plan::StreamStep& st,
                                              const std::vector<const EncryptedTensor*>& in);

/// y shares x's ciphertexts and pending factors at `elements` (an identity node, band by
/// band); on the first call y takes x's shape, level and scale.
void share_elements(const EncryptedTensor& x, EncryptedTensor& y, bool first, std::span<const std::int64_t> elements);

/// Throws std::logic_error naming the node when a ciphertext input is below the level
/// the plan reads it at.
void check_input_levels(const StepIO& s, std::size_t level);

void run_data_movement_step(RunState& run, StepIO& s);  ///< data_movement_step.cpp
void run_linear_step(RunState& run, StepIO& s);         ///< linear_step.cpp (Linear, Square)
void run_round_step(RunState& run, StepIO& s);          ///< round_step.cpp
/// Model-private mode: Relu and MaxPool on the server, outputs blindly refreshed to the
/// top level (pending factors carry their scales).
void run_private_step(RunState& run, StepIO& s);        ///< private_step.cpp
/// Rounds under per-sample masks (plan::RoundMasks::PerSample); run_round_step calls it.
void run_sample_masked_round_step(RunState& run, StepIO& s);  ///< sample_masked_round.cpp
/// Unmasked function rounds (plan::NodeKind::FunctionRound); run_round_step calls it.
void run_function_round_step(RunState& run, StepIO& s);  ///< function_round.cpp

/// Inputs of a node with several encrypted inputs whose scale is not Δ are brought to Δ
/// first (the plan's `materialized` inputs): copies in `scratch`, pointers in s.in
/// replaced. Never for streamed steps (they are not streamable).
void materialize_inputs(RunState& run, StepIO& s, std::vector<EncryptedTensor>& scratch);

}  // namespace heinfer::runtime::steps
