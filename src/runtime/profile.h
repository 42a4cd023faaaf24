// Per-layer profiles of an encrypted run (`heinfer run ... --profile OUT.json`), and the
// JSON they are written as (read by `heinfer profile plot`).
//
// JSON layout (all bytes in bytes, all times in seconds since the run started):
// {
//   "format": "heinfer-profile", "version": 1,
//   "model": "path.onnx", "batch": 2048, "threads": 2,
//   "kernels": "ifma" | "avx2" | "portable" (ring/cpu_features.h),
//   "params": {"n": 4096, "levels": 2, "log2_qp": 109, "packing": "complex"},
//   "memory": {"policy": "tiered" | "dram-only", "dram_budget": B (0: none), "limb_words": 32 | 64,
//              "pmem_dir": "/path" | null},
//   "seconds": total wall time, "rounds": client rounds,
//   "bytes_to_client": ..., "bytes_to_server": ...,
//   "peak_rss_anon_bytes": sampled peak of RssAnon (the heap: not file-backed tier pages),
//   "tiers": {"dram": TierTotals, "pmem": TierTotals}, TierTotals =
//       {"peak_bytes": ..., "bytes_written": ..., "bytes_read": ...},
//   "layers": [{"index": k, "name": "...", "op": "Conv", "start": t0, "seconds": dt,
//               "ciphertexts": produced, "level": l (-1: client plaintext),
//               "dram_bytes": after the layer, "pmem_bytes": after the layer,
//               "dram_peak_bytes": during, "pmem_peak_bytes": during,
//               "rss_anon_peak_bytes": during (sampled),
//               "bytes_to_client": round traffic, "bytes_to_server": ..., "rounds": n,
//               "stored_bytes": the store's bytes of the output after the layer,
//               "plan": {"level": ..., "ciphertexts": ..., "rounds": at most, "stored_bytes": ...,
//                        "streamed": whether the plan runs it band by band}}],
//   "timeline": [{"t": s, "dram_bytes": ..., "pmem_bytes": ..., "rss_anon_bytes": ...}]
//                sampled every ~20 ms and at every layer boundary,
//   "earlier_attempts": a resumed run's runtime::RunProgress up to its checkpoint
//                (runtime/checkpoint.h), absent otherwise; the rest covers this attempt,
//   "ranks": a distributed run's processes (absent otherwise): [{"rank": r,
//            "rss_anon_peak_bytes": ..., "dram_peak_bytes": ..., "bytes_sent": halo and
//            reduction bytes}], with "exchange_seconds" and "bytes_exchanged" of rank 0
//            at the top level; the layers and tiers above are rank 0's
// }
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "memory/ciphertext_store.h"
#include "memory/memory_monitor.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"
#include "runtime/checkpoint.h"
#include "runtime/run_stats.h"

namespace heinfer::runtime {

struct ProfileInfo {
  std::string model;
  std::int64_t batch = 0;
  int threads = 0;
  const plan::EncryptedPlan* plan = nullptr;          ///< the plan that ran (params, per-node plan)
  const plan::FootprintEstimate* footprint = nullptr;  ///< its footprint (planned stored bytes)
  const memory::StoreOptions* memory = nullptr;
  int limb_words = 64;                ///< stored limbs: 32 (CiphertextStore::pack_words) or 64
  memory::TierUsage dram, pmem;       ///< the store's totals at the end
  std::int64_t peak_rss_anon_bytes = 0;
  std::vector<memory::MemorySample> timeline;
  const RunProgress* earlier = nullptr;  ///< a resumed run's earlier attempts
  /// A distributed run's per-rank peaks and bytes sent (index: rank); empty otherwise.
  std::vector<std::int64_t> rank_rss_anon_peak, rank_dram_peak, rank_bytes_sent;
};

/// Writes the profile (layout above) atomically. Throws std::runtime_error on I/O errors.
void write_profile(const std::filesystem::path& path, const ProfileInfo& info, const EncryptedRunStats& stats);

}  // namespace heinfer::runtime
