// Observing an encrypted run as it executes its plan: progress lines, per-layer events
// for a remote data owner, test fault hooks. The executor calls every observer of
// EncryptedRunOptions::observers in order; an observer must not throw.
#pragma once

#include <cstddef>
#include <cstdint>

#include "memory/ciphertext_store.h"
#include "model/graph.h"
#include "plan/stream_schedule.h"
#include "runtime/run_stats.h"

namespace heinfer::runtime {

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  /// A band of a streamed node has run (step `index` of `steps`; rows in `step`).
  virtual void band_done(std::size_t node, const plan::StreamStep& step, std::size_t index, std::size_t steps) {
    (void)node, (void)step, (void)index, (void)steps;
  }
  /// Node `node` of `nodes` is complete; `stats` holds its layer's figures (summed over
  /// the batches run so far) and the store's bytes after it.
  virtual void node_done(std::size_t node, std::size_t nodes, const LayerStats& stats) {
    (void)node, (void)nodes, (void)stats;
  }
  /// The client's reply to round `round` (1-based, counted over the run) of node `node`
  /// has arrived and was checked; the server has not used it yet.
  virtual void round_replied(std::size_t node, std::int64_t round) { (void)node, (void)round; }
};

/// One line per layer on stderr (name, op, ciphertexts, level, seconds, the store's
/// DRAM and tier bytes), and a line per streamed band at most every 10 s (with the
/// store's DRAM and tier bytes, the process's RssAnon and, with glibc, the heap's free
/// bytes, when `store` is given).
class ProgressPrinter : public RunObserver {
 public:
  explicit ProgressPrinter(const model::Graph& g, const memory::CiphertextStore* store = nullptr)
      : g_(g), store_(store) {}
  void band_done(std::size_t node, const plan::StreamStep& step, std::size_t index, std::size_t steps) override;
  void node_done(std::size_t node, std::size_t nodes, const LayerStats& stats) override;

 private:
  const model::Graph& g_;
  const memory::CiphertextStore* store_;
  double last_band_report_ = 0;  ///< steady-clock seconds of the last band line
};

/// Test hook for crash safety: kills the process (SIGKILL) right after node `node`
/// completes, or right after streamed band `step` (1-based step index of the plan) has
/// run, before anything else sees it (a checkpoint of that step included), or in the
/// middle of client round `round` (1-based: its reply received, not yet used); -1: never.
class FaultInjector : public RunObserver {
 public:
  FaultInjector(std::int64_t node, std::int64_t step, std::int64_t round = -1)
      : node_(node), step_(step), round_(round) {}
  void band_done(std::size_t node, const plan::StreamStep& step, std::size_t index, std::size_t steps) override;
  void node_done(std::size_t node, std::size_t nodes, const LayerStats& stats) override;
  void round_replied(std::size_t node, std::int64_t round) override;

 private:
  std::int64_t node_, step_, round_;
};

}  // namespace heinfer::runtime
