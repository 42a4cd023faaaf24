// The distributed part of `heinfer inspect --batch B --ranks P`: for P' = 1, 2, 4, ..., P
// ranks under the column partition (plan/partition.h), the largest rank's ciphertext
// peak (whole nodes and streamed), the bytes exchanged, the exchanges and the predicted
// time of one batch under a stated link model (plan/partition_cost.h); and for P ranks
// the figures of every rank.
#pragma once

#include <cstdio>

#include <nlohmann/json.hpp>

#include "model/graph.h"
#include "plan/cost_model.h"
#include "plan/footprint.h"
#include "plan/parameters.h"
#include "plan/partition_cost.h"

namespace heinfer::session {

/// Prints the strong-scaling table and the per-rank figures to `out` (null: nowhere) and
/// returns them as the "ranks" object of `heinfer inspect --json`: {"link": {...},
/// "scaling": [{"ranks", "peak_bytes", "peak_streamed_bytes", "bytes_exchanged",
/// "exchanges", "compute_seconds", "exchange_seconds", "batch_seconds"}], "per_rank":
/// [{"rank", "peak_bytes", "peak_streamed_bytes", "bytes_sent", "bytes_received"}]}.
/// `one_process`: the one-process time prediction of the whole-node plan (null: no
/// time). Throws std::invalid_argument when ranks < 1.
nlohmann::json predict_ranks(const model::Graph& g, const plan::Parameters& parameters, const plan::FootprintOptions& fo,
                             const plan::TimeEstimate* one_process, int ranks, const plan::LinkModel& link,
                             std::FILE* out);

}  // namespace heinfer::session
