#include "ring/cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>

namespace heinfer::ring {

std::string_view simd_path_name(SimdPath path) {
  switch (path) {
    case SimdPath::Ifma: return "ifma";
    case SimdPath::Avx2: return "avx2";
    case SimdPath::Portable: break;
  }
  return "portable";
}

bool cpu_has_avx512_ifma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw");
  }();
  return has;
}

bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

SimdPath cpu_best_simd_path() {
  if (cpu_has_avx512_ifma() && cpu_has_avx2_fma()) return SimdPath::Ifma;
  if (cpu_has_avx2_fma()) return SimdPath::Avx2;
  return SimdPath::Portable;
}

namespace {

SimdPath capped(SimdPath path) { return std::min(path, cpu_best_simd_path()); }

std::atomic<SimdPath>& path_flag() {
  static std::atomic<SimdPath> flag = [] {
    SimdPath cap = SimdPath::Ifma;
    if (const char* env = std::getenv("HEINFER_SIMD")) {
      const std::string_view v(env);
      if (v == "portable") cap = SimdPath::Portable;
      if (v == "avx2") cap = SimdPath::Avx2;
    }
    return capped(cap);
  }();
  return flag;
}

}  // namespace

SimdPath simd_path() { return path_flag().load(std::memory_order_relaxed); }

SimdPath set_simd_path(SimdPath path) {
  const SimdPath p = capped(path);
  path_flag().store(p, std::memory_order_relaxed);
  return p;
}

}  // namespace heinfer::ring
