// The encrypted executor: runs a prepared graph on batch-packed CKKS ciphertexts
// (runtime/encrypted_tensor.h) with linear layers on the server (EncryptedBackend) and
// non-polynomial layers in masked client rounds (runtime/client.h).
//
// Walks the graph like run_plain: nodes in order, every tensor freed after its last use,
// OpenMP over output ciphertexts inside the kernels. Decisions per node
// (EncryptedNodeKind): data movement copies ciphertext pointers (and pending factors);
// linear nodes do one multiply-accumulate + one rescale per output (or plain additions);
// squares use multiply_relinearize (real packing) or multiply_packed (complex packing);
// Relu / MaxPool / Clip / LeakyRelu are client rounds (a Relu whose only reader is a
// MaxPool is fused into the MaxPool round); a final Softmax/LogSoftmax runs on the
// client after decryption. Inputs of one node are read at their common (lowest) level:
// higher-level ciphertexts are used through their first limbs (modulus switching in the
// NTT domain is dropping limbs), so no lowered copies are stored.
//
// Memory (issue 6): every ciphertext a node produces is adopted by a
// memory::CiphertextStore (DRAM budget, optional secondary tier; one store group per
// tensor, with the schedule position of its next reader). Linear and square nodes run in
// output tiles (row bands over all channels, or element ranges) of at most
// store.tile_bytes() of working set; client rounds run in chunks of that size, over the
// elements in one CSPRNG order for the whole layer (the client never learns positions).
// Client-refreshed ciphertexts (inputs, round results) stay compact (seeded: half
// size) until a node expands them for one tile. With EncryptedRunOptions::streaming,
// chains of spatial nodes run band by band of rows (runtime/stream_schedule.h): their
// intermediate tensors, and graph inputs only they read (encrypted band by band), exist
// as windows of rows. Every tensor is stored at the lowest level a reader needs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ckks/context.h"
#include "ckks/evaluator.h"
#include "memory/ciphertext_store.h"
#include "memory/memory_monitor.h"
#include "model/graph.h"
#include "runtime/client.h"
#include "runtime/encrypted_tensor.h"
#include "runtime/local_client.h"
#include "runtime/parameter_selection.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

enum class EncryptedNodeKind {
  DataMovement,  ///< Flatten/Reshape/Identity/Dropout/Transpose/Concat/Pad
  Linear,        ///< Conv, Gemm, MatMul, BN, Add/Sub/Mul/Div, pools with averaging
  Square,        ///< Pow(x, 2), Mul(x, x)
  FusedRelu,     ///< Relu whose only reader is a MaxPool: evaluated in the MaxPool round
  Relu,
  MaxPool,
  Clip,
  LeakyRelu,
  FinalSoftmax,  ///< Softmax/LogSoftmax producing a graph output: applied by the client
};

/// The kind of a prepared node. Throws model::ModelError for a Softmax/LogSoftmax that
/// is not final (its output must be a graph output read by no other node).
EncryptedNodeKind encrypted_node_kind(const model::Graph& g, const model::Node& n);

struct LayerStats {
  std::string name, op;
  double seconds = 0;             ///< wall time (server + client for rounds)
  std::int64_t ciphertexts = 0;   ///< output ciphertexts
  int level = -1;                 ///< output level (-1: plaintext on the client)
  double start = 0;  ///< start of the last batch's layer: seconds since the monitor (else the batch) started
  std::int64_t rounds = 0;        ///< client round trips of this layer
  std::int64_t bytes_to_client = 0, bytes_to_server = 0;  ///< round traffic of this layer
  /// Store bytes after the layer and peaks during it (memory::CiphertextStore), and
  /// the sampled peak of RssAnon during it (0 without a monitor).
  std::int64_t dram_bytes = 0, pmem_bytes = 0, dram_peak_bytes = 0, pmem_peak_bytes = 0;
  std::int64_t rss_anon_peak_bytes = 0;
};

struct EncryptedRunStats {
  std::int64_t rounds = 0;        ///< client rounds (input encryption and output not counted)
  std::int64_t bytes_to_client = 0, bytes_to_server = 0;  ///< serialized sizes, all traffic
  double client_seconds = 0;      ///< time inside client calls (encrypt, rounds, decrypt)
  double seconds = 0;             ///< total wall time
  std::vector<LayerStats> layers; ///< per node (summed over the batches run with these stats)
};

/// Bytes of ct as ckks::save writes it (header + body; compact seeded: one polynomial).
std::int64_t wire_bytes(const ckks::Ciphertext& ct, const ckks::CKKSContext& context);

struct EncryptedRunOptions {
  int threads = 0;        ///< OpenMP threads; 0 keeps the default
  bool progress = false;  ///< one line per layer on stderr
  /// Where ciphertexts live (must outlive the runs); null: a private DRAM-only store
  /// without a budget per run.
  memory::CiphertextStore* store = nullptr;
  /// Samples memory for per-layer RssAnon peaks (optional).
  memory::MemoryMonitor* monitor = nullptr;
  /// Test hook for crash safety: the process is killed (SIGKILL) right after this node
  /// index completes; -1: never.
  int kill_after_node = -1;
  /// Streaming across layers (issue 6): consecutive streamable nodes run band by band
  /// (runtime/stream_schedule.h), so that their intermediate tensors exist only as
  /// windows of rows. Bands hold about store->tile_bytes() / 8 bytes of ciphertexts at
  /// the top level (at least one row). Costs one client round per band of a
  /// client-aided node instead of one per chunk.
  bool streaming = false;
};

/// Per node of g: whether the encrypted executor can run it on bands of output rows
/// (stream_schedule's `streamable`): Conv / pools / BatchNormalization / elementwise
/// nodes on [C, H, W] activations with row maps (runtime/stream_schedule.h), and the
/// Relu / Clip / LeakyRelu / MaxPool rounds, provided no input can carry a scale other
/// than Δ (a square's output) and a MaxPool's input carries no pending factors (both
/// need a whole-tensor materialization first).
std::vector<bool> streamable_nodes(const model::Graph& g);

/// The server side: model, plan, public evaluation keys. Never sees the secret key.
class EncryptedExecutor {
 public:
  /// `g` must outlive the executor. Throws model::ModelError for unsupported nodes.
  EncryptedExecutor(const model::Graph& g, EncryptionPlan plan, ckks::ContextPtr context,
                    const EvaluationKeys& keys, EncryptedRunOptions options = {});

  /// One batch (inputs[i].batch <= capacity): the client encrypts, the server evaluates,
  /// the client decrypts. Returns the graph outputs. Throws InputError (bad input values),
  /// OverflowError (naming the layer), model::ModelError (shape mismatch).
  std::vector<PlainTensor> run(Client& client, const std::vector<PlainTensor>& inputs,
                               EncryptedRunStats& stats) const;

  const EncryptionPlan& plan() const { return plan_; }
  const model::Graph& graph() const { return g_; }

 private:
  const model::Graph& g_;
  EncryptionPlan plan_;
  ckks::ContextPtr context_;
  const EvaluationKeys& keys_;
  ckks::Evaluator eval_;
  EncryptedRunOptions options_;
  std::vector<EncryptedNodeKind> kinds_;
  std::vector<bool> streamable_;
  std::vector<std::size_t> level_cap_;  ///< per tensor: lowest needed level (SIZE_MAX: its own)
};

/// Everything for an in-process encrypted run: context, client (secret key), keys,
/// executor. Convenience for the CLI, tests and benchmarks.
struct EncryptedSession {
  EncryptedSession(const model::Graph& g, const EncryptionPlan& plan, EncryptedRunOptions options = {});
  ckks::ContextPtr context;
  std::unique_ptr<LocalClient> client;
  std::unique_ptr<EncryptedExecutor> executor;

  /// Runs `count` samples stored batch-major (single-input, single-output graph) in
  /// chunks of min(chunk, capacity) samples; returns the outputs batch-major. Takes the
  /// batch by value (move it in): it is converted to the executor's layout and released,
  /// so the batch is held once during the run.
  std::vector<double> run_batched(std::vector<double> inputs, std::int64_t count,
                                  std::int64_t chunk, EncryptedRunStats& stats,
                                  std::vector<double>* batch_seconds = nullptr);
};

}  // namespace heinfer::runtime
