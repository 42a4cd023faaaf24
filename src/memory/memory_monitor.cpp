#include "memory/memory_monitor.h"

#include "memory/process_memory.h"

namespace heinfer::memory {

std::int64_t rss_anon_bytes() { return proc_status_bytes("RssAnon"); }

MemoryMonitor::MemoryMonitor(const CiphertextStore* store, std::chrono::milliseconds period)
    : store_(store), start_(std::chrono::steady_clock::now()) {
  sample();
  thread_ = std::thread([this, period] { loop(period); });
}

MemoryMonitor::~MemoryMonitor() { finish(); }

double MemoryMonitor::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

MemorySample MemoryMonitor::sample() {
  MemorySample s;
  s.t = seconds();
  s.rss_anon_bytes = rss_anon_bytes();
  if (store_) {
    s.dram_bytes = store_->dram().bytes;
    s.pmem_bytes = store_->pmem().bytes;
  }
  auto raise = [](std::atomic<std::int64_t>& a, std::int64_t v) {
    std::int64_t cur = a.load();
    while (v > cur && !a.compare_exchange_weak(cur, v)) {
    }
  };
  raise(peak_, s.rss_anon_bytes);
  raise(since_mark_, s.rss_anon_bytes);
  std::lock_guard lock(mu_);
  timeline_.push_back(s);
  return s;
}

std::int64_t MemoryMonitor::mark() {
  const std::int64_t now = sample().rss_anon_bytes;
  return since_mark_.exchange(now);
}

void MemoryMonitor::loop(std::chrono::milliseconds period) {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    sample();
    lock.lock();
  }
}

std::vector<MemorySample> MemoryMonitor::finish() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    sample();
  }
  std::lock_guard lock(mu_);
  return timeline_;
}

}  // namespace heinfer::memory
