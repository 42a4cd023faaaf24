// The encrypted executor: runs the plan of a prepared graph (plan/encrypted_plan.h) on
// batch-packed CKKS ciphertexts (runtime/encrypted_tensor.h), with linear layers on the
// server (EncryptedBackend) and non-polynomial layers in masked client rounds
// (runtime/client.h).
//
// The plan decides everything: the kind of every node, the levels it reads and produces
// at and where it rescales, the level every tensor is stored at, the order of the steps
// (whole nodes, or bands of rows of streamed segments), and when each tensor is freed.
// The executor loops over the plan's steps and hands each to the step of its kind
// (runtime/steps/run_state.h: data movement, linear and polynomial, client round); a
// final Softmax/LogSoftmax runs on the client after decryption. Every step checks that
// its ciphertexts are at the plan's levels (std::logic_error otherwise).
//
// Memory: every ciphertext a node produces is adopted by a memory::CiphertextStore (DRAM
// budget, optional secondary tier; one store group per tensor, with the schedule position
// of its next reader, stored at the plan's stored level). Linear nodes and squares run in
// output tiles of at most the plan's tile bytes of working set; client rounds run in the
// plan's round sizes, over the elements in one CSPRNG order for the whole layer (the
// client never learns positions). Client-refreshed ciphertexts (inputs, round results) stay
// compact (seeded: half size) until a node expands them. Graph inputs that only streamed
// bands read are encrypted band by band as they are read (by a client that encrypts in
// parts).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckks/context.h"
#include "ckks/evaluator.h"
#include "memory/ciphertext_store.h"
#include "memory/memory_monitor.h"
#include "model/graph.h"
#include "runtime/client.h"
#include "runtime/checkpoint.h"
#include "runtime/encrypted_tensor.h"
#include "plan/encrypted_plan.h"
#include "runtime/local_client.h"
#include "runtime/plain_tensor.h"
#include "runtime/run_observer.h"
#include "plan/segment_cuts.h"
#include "runtime/peers.h"
#include "runtime/run_stats.h"

namespace heinfer::runtime {

struct EncryptedRunOptions {
  int threads = 0;        ///< OpenMP threads; 0 keeps the default
  bool progress = false;  ///< one line per layer on stderr (ProgressPrinter)
  /// Where ciphertexts live (must outlive the runs); null: a private DRAM-only store
  /// without a budget per run.
  memory::CiphertextStore* store = nullptr;
  /// Samples memory for per-layer RssAnon peaks (optional).
  memory::MemoryMonitor* monitor = nullptr;
  /// Test hook for crash safety (FaultInjector): the process is killed (SIGKILL) right
  /// after this node index completes; -1: never.
  int kill_after_node = -1;
  /// The same right after streamed step `kill_after_step` (1-based) ran; -1: never.
  int kill_after_step = -1;
  /// The same in the middle of client round `kill_in_round` (1-based); -1: never.
  int kill_in_round = -1;
  /// EncryptedSession only: plan with streaming across layers (plan::ScheduleOptions).
  /// Costs one client round per band of a client-aided node instead of one per chunk.
  bool streaming = false;
  /// EncryptedSession only: words of stored limbs (64, or 32 when the store packs them),
  /// for the byte counts that choose where a streamed schedule is cut under a tiered
  /// store's DRAM budget (plan/segment_cuts.h; single-process runs only).
  int limb_words = 64;
  /// EncryptedSession only: cut streamed segments for a tiered store's DRAM budget
  /// (plan/segment_cuts.h). Off by default: it pays where the windows exceed the budget
  /// many times over (ResNet-50 at 224×224) and not yet where they exceed it a little
  /// (docs/performance.md).
  bool cut_segments = false;
  /// Called after every band and node, after the built-in ones (must outlive the runs).
  std::vector<RunObserver*> observers;
  /// Writes checkpoints at step boundaries (runtime/checkpoint.h; must outlive the runs).
  CheckpointWriter* checkpoint = nullptr;
  /// Continues a checkpointed run: its state replaces the client's encryption of the
  /// inputs and the steps it completed are skipped (the client must hold the same
  /// secret key and inputs).
  const ResumePoint* resume = nullptr;
  /// Checked before every step: once true, the run stops by throwing RunCancelled (the
  /// store and its tier file are released as the stack unwinds; nothing is written).
  /// Set from another thread or an observer (a Python KeyboardInterrupt), or by the
  /// client of a rank (protocol/rank_client.h). In a distributed run the ranks agree
  /// before every step (one all-gather): all stop at the same step once any rank's flag
  /// is set, so that none is left waiting in an exchange.
  const std::atomic<bool>* cancel = nullptr;
  /// A distributed run (plan/partition.h): this process's ranks, which must outlive the
  /// runs; every rank runs the same plan and only rank 0 returns outputs. Null or one
  /// rank: a single-process run. Each rank checkpoints its own share (runtime/checkpoint.h).
  Peers* peers = nullptr;
};

/// Thrown by a run whose EncryptedRunOptions::cancel was set.
class RunCancelled : public std::runtime_error {
 public:
  RunCancelled() : std::runtime_error("the run was cancelled") {}
};

/// The server side: model, plan, public evaluation keys. Never sees the secret key.
class EncryptedExecutor {
 public:
  /// `g` must outlive the executor; `plan` must be make_plan's for g. Throws
  /// std::invalid_argument when the plan does not match the graph or the context.
  EncryptedExecutor(const model::Graph& g, plan::EncryptedPlan plan, ckks::ContextPtr context,
                    const EvaluationKeys& keys, EncryptedRunOptions options = {});

  /// One batch of the client's (Client::batch() samples, at most the capacity): the
  /// client encrypts its inputs when asked (input i, elements E), the server evaluates,
  /// the client decrypts. Returns the graph outputs. Throws InputError (bad input
  /// values), OverflowError (naming the layer), model::ModelError (batch out of range).
  std::vector<PlainTensor> run(Client& client, EncryptedRunStats& stats) const;
  /// Embedded: checks `inputs` (one per graph input, per-sample shapes of the graph, one
  /// batch) and runs them with the in-process client, which frees each input once it is
  /// encrypted. Throws model::ModelError on a mismatch, and as run(Client&, ...).
  std::vector<PlainTensor> run(LocalClient& client, std::vector<PlainTensor> inputs,
                               EncryptedRunStats& stats) const;

  const plan::EncryptedPlan& plan() const { return plan_; }
  const model::Graph& graph() const { return g_; }

 private:
  const model::Graph& g_;
  plan::EncryptedPlan plan_;
  ckks::ContextPtr context_;
  const EvaluationKeys& keys_;
  ckks::Evaluator eval_;
  EncryptedRunOptions options_;
};

/// Everything for an in-process encrypted run: context, client (secret key), keys,
/// executor with the plan of `parameters` (streaming and tile bytes from `options`).
/// Convenience for the CLI, tests and benchmarks.
struct EncryptedSession {
  /// `secret`: the client's secret key of a resumed run (else a fresh one).
  EncryptedSession(const model::Graph& g, const plan::Parameters& parameters, EncryptedRunOptions options = {},
                   const ckks::SecretKey* secret = nullptr);
  ckks::ContextPtr context;
  std::unique_ptr<LocalClient> client;
  std::unique_ptr<EncryptedExecutor> executor;
  /// Where the streamed schedule was cut for the store's DRAM budget (empty
  /// segment_starts: not cut; see EncryptedRunOptions::limb_words).
  plan::SegmentCuts cuts;

  /// Runs `count` samples stored batch-major (single-input, single-output graph) in
  /// chunks of min(chunk, capacity) samples; returns the outputs batch-major. Takes the
  /// batch by value (move it in): it is converted to the executor's layout and released,
  /// so the batch is held once during the run.
  std::vector<double> run_batched(std::vector<double> inputs, std::int64_t count,
                                  std::int64_t chunk, EncryptedRunStats& stats,
                                  std::vector<double>* batch_seconds = nullptr);
};

}  // namespace heinfer::runtime
