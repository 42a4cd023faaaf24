#include "runtime/run_observer.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <malloc.h>
#include <string>

#include "memory/bytes.h"
#include "memory/memory_monitor.h"

namespace heinfer::runtime {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void ProgressPrinter::band_done(std::size_t node, const plan::StreamStep& step, std::size_t index, std::size_t steps) {
  // Streamed nodes complete together at the end of their segment: report the bands.
  const double t = now_seconds();
  if (last_band_report_ == 0) last_band_report_ = t;
  if (t - last_band_report_ <= 10.0) return;
  last_band_report_ = t;
  const model::Node& n = g_.nodes[node];
  const model::Shape& y = g_.tensors[static_cast<std::size_t>(n.outputs[0])].shape;
  std::string mem;
  if (store_) {
    mem = "  dram " + memory::format_bytes(store_->dram().bytes) + "  tier " + memory::format_bytes(store_->pmem().bytes) +
          "  rss_anon " + memory::format_bytes(memory::rss_anon_bytes());
#ifdef __GLIBC__
    // Free bytes in the heap: blocks freed between live ones (resident until trimmed).
    const struct mallinfo2 mi = mallinfo2();
    mem += "  heap_free " + memory::format_bytes(static_cast<std::int64_t>(mi.fordblks));
#endif
  }
  std::fprintf(stderr, "  streaming: band %zu of %zu steps: %s rows [%lld, %lld) of %lld%s\n", index, steps,
               n.name.c_str(), static_cast<long long>(step.row_begin), static_cast<long long>(step.row_end),
               static_cast<long long>(y.size() == 3 ? y[1] : 0), mem.c_str());
}

void ProgressPrinter::node_done(std::size_t node, std::size_t nodes, const LayerStats& ls) {
  std::fprintf(stderr, "  [%zu/%zu] %-24s %-18s %7lld ct  level %2d  %8.3f s  dram %10s  tier %10s\n", node + 1,
               nodes, ls.name.c_str(), ls.op.c_str(), static_cast<long long>(ls.ciphertexts), ls.level, ls.seconds,
               memory::format_bytes(ls.dram_bytes).c_str(), memory::format_bytes(ls.pmem_bytes).c_str());
}

void FaultInjector::band_done(std::size_t node, const plan::StreamStep& step, std::size_t index, std::size_t steps) {
  (void)step, (void)steps;
  if (static_cast<std::int64_t>(index) != step_) return;
  std::fprintf(stderr, "heinfer: fault injection: killing the process after step %zu (a band of node %zu)\n", index, node);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

void FaultInjector::round_replied(std::size_t node, std::int64_t round) {
  if (round != round_) return;
  std::fprintf(stderr, "heinfer: fault injection: killing the process in round %lld (node %zu, reply not yet used)\n",
               static_cast<long long>(round), node);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

void FaultInjector::node_done(std::size_t node, std::size_t nodes, const LayerStats& ls) {
  (void)nodes;
  if (static_cast<std::int64_t>(node) != node_) return;
  std::fprintf(stderr, "heinfer: fault injection: killing the process after node %zu (%s)\n", node, ls.name.c_str());
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace heinfer::runtime
