// Internal: whether to fork an OpenMP team over RNS limbs (used by the scheme layer, src/ckks).
#pragma once

#include <omp.h>

#include <cstddef>

namespace heinfer::ring::detail {

/// Fork only when not already inside a parallel region (callers such as the runtime
/// parallelise over ciphertexts), with more than one task and enough work to amortise
/// the fork/join: at least 2^15 element operations in total (`ops_per_task` ≈ n for
/// element-wise passes, n·log2(n) for NTTs).
inline bool use_parallel(size_t tasks, size_t ops_per_task) {
  return tasks > 1 && tasks * ops_per_task >= (size_t{1} << 15) && !omp_in_parallel();
}

}  // namespace heinfer::ring::detail
