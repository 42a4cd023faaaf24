#include "ring/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace heinfer::ring {

bool cpu_has_avx512_ifma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw");
  }();
  return has;
}

namespace {
std::atomic<bool>& simd_flag() {
  static std::atomic<bool> flag = [] {
    const char* env = std::getenv("HEINFER_DISABLE_AVX512");
    const bool disabled = env != nullptr && std::strcmp(env, "0") != 0 && env[0] != '\0';
    return cpu_has_avx512_ifma() && !disabled;
  }();
  return flag;
}
}  // namespace

bool simd_enabled() { return simd_flag().load(std::memory_order_relaxed); }

void set_simd_enabled(bool enabled) {
  simd_flag().store(enabled && cpu_has_avx512_ifma(), std::memory_order_relaxed);
}

}  // namespace heinfer::ring
