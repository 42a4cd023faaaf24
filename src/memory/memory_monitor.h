// Samples the process's anonymous resident memory (RssAnon in /proc/self/status: the
// heap and other private pages, not the file-backed pages of a mapped tier) and the
// store's bytes per tier on a background thread, for profiles and peak checks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "memory/ciphertext_store.h"

namespace heinfer::memory {

/// RssAnon of this process in bytes (proc_status_bytes("RssAnon"): 0 where /proc is unavailable).
std::int64_t rss_anon_bytes();

struct MemorySample {
  double t = 0;  ///< seconds since the monitor started
  std::int64_t dram_bytes = 0, pmem_bytes = 0, rss_anon_bytes = 0;
};

class MemoryMonitor {
 public:
  /// Starts sampling every `period` (store may be null: RssAnon only).
  explicit MemoryMonitor(const CiphertextStore* store,
                         std::chrono::milliseconds period = std::chrono::milliseconds(20));
  ~MemoryMonitor();
  MemoryMonitor(const MemoryMonitor&) = delete;
  MemoryMonitor& operator=(const MemoryMonitor&) = delete;

  /// Takes a sample now (e.g. at a layer boundary) and returns it.
  MemorySample sample();
  /// Largest RssAnon seen since the last mark() (or the start), then restarts it.
  std::int64_t mark();
  std::int64_t peak_rss_anon() const { return peak_.load(); }
  /// Stops sampling; returns the timeline.
  std::vector<MemorySample> finish();
  double seconds() const;

 private:
  void loop(std::chrono::milliseconds period);

  const CiphertextStore* store_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<MemorySample> timeline_;
  std::atomic<std::int64_t> peak_{0}, since_mark_{0};
  std::thread thread_;
};

}  // namespace heinfer::memory
