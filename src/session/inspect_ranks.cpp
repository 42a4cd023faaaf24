#include "session/inspect_ranks.h"

#include <cstdio>
#include <stdexcept>

#include "memory/bytes.h"
#include "plan/encrypted_plan.h"
#include "plan/partition.h"
#include "session/inspect.h"
#include "session/say.h"

namespace heinfer::session {

using memory::format_bytes;

nlohmann::json predict_ranks(const model::Graph& g, const plan::Parameters& parameters, const plan::FootprintOptions& fo,
                             const plan::TimeEstimate* one_process, int ranks, const plan::LinkModel& link,
                             std::FILE* out) {
  if (ranks < 1) throw std::invalid_argument("--ranks must be at least 1");
  const plan::EncryptedPlan whole = plan::make_plan(g, parameters);
  plan::ScheduleOptions so;
  so.streaming = true;
  const plan::EncryptedPlan streamed = plan::make_plan(g, parameters, so);
  say(out, "\n== distributed: column slabs over P ranks (mpirun -np P heinfer run --distributed) ==\n");
  say(out, "link model: %.3g GB/s, %.3g us per message; per step two exchanges (an all-to-all of sizes, "
           "ceil(log2 P) messages, then the neighbours' bytes); no overlap with compute; whole nodes (streaming adds "
           "exchanges per band)\n",
      link.bytes_per_second / 1e9, link.latency_seconds * 1e6);
  say(out, "%6s %14s %14s %12s %10s %11s %11s %11s %8s\n", "ranks", "peak/rank", "streamed/rank", "exchanged",
      "exchanges", "compute", "exchange", "batch", "speedup");
  nlohmann::json scaling = nlohmann::json::array(), per_rank = nlohmann::json::array();
  double base = 0;
  std::vector<int> counts;
  for (int p = 1; p < ranks; p *= 2) counts.push_back(p);
  counts.push_back(ranks);
  for (int p : counts) {
    const plan::Partition part = plan::partition_columns(g, whole, p);
    const plan::DistributedEstimate d = plan::predict_distributed(g, whole, part, fo, one_process, link);
    const plan::DistributedEstimate ds =
        plan::predict_distributed(g, streamed, plan::partition_columns(g, streamed, p), fo, nullptr, link);
    if (p == 1) base = d.batch_seconds;
    char speedup[32] = "-";
    if (one_process && d.batch_seconds > 0) std::snprintf(speedup, sizeof speedup, "%.2fx", base / d.batch_seconds);
    say(out, "%6d %14s %14s %12s %10lld %11s %11s %11s %8s\n", p, format_bytes(d.peak_bytes).c_str(),
        format_bytes(ds.peak_bytes).c_str(), format_bytes(d.bytes_exchanged).c_str(),
        static_cast<long long>(d.exchanges), one_process ? seconds_text(d.compute_seconds).c_str() : "-",
        seconds_text(d.exchange_seconds).c_str(), one_process ? seconds_text(d.batch_seconds).c_str() : "-",
        speedup);
    scaling.push_back({{"ranks", p},
                       {"peak_bytes", d.peak_bytes},
                       {"peak_streamed_bytes", ds.peak_bytes},
                       {"bytes_exchanged", d.bytes_exchanged},
                       {"exchanges", d.exchanges},
                       {"compute_seconds", one_process ? nlohmann::json(d.compute_seconds) : nlohmann::json(nullptr)},
                       {"exchange_seconds", d.exchange_seconds},
                       {"batch_seconds", one_process ? nlohmann::json(d.batch_seconds) : nlohmann::json(nullptr)}});
    if (p != ranks) continue;
    say(out, "per rank at P = %d:\n%6s %14s %14s %12s %12s\n", p, "rank", "peak", "streamed", "sent", "received");
    for (int r = 0; r < p; ++r) {
      const auto ri = static_cast<std::size_t>(r);
      const plan::RankShare& s = d.shares[ri];
      say(out, "%6d %14s %14s %12s %12s\n", r, format_bytes(d.rank_peak_bytes[ri]).c_str(),
          format_bytes(ds.rank_peak_bytes[ri]).c_str(), format_bytes(s.bytes_sent).c_str(),
          format_bytes(s.bytes_received).c_str());
      per_rank.push_back({{"rank", r},
                          {"peak_bytes", d.rank_peak_bytes[ri]},
                          {"peak_streamed_bytes", ds.rank_peak_bytes[ri]},
                          {"bytes_sent", s.bytes_sent},
                          {"bytes_received", s.bytes_received}});
    }
  }
  return {{"link", {{"bytes_per_second", link.bytes_per_second}, {"latency_seconds", link.latency_seconds}}},
          {"scaling", scaling},
          {"per_rank", per_rank}};
}

}  // namespace heinfer::session
