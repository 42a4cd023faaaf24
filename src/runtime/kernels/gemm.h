// Fully-connected kernel (Gemm, MatMul with a constant operand), generic over the backend.
#pragma once

#include <span>

#include "model/op_params.h"
#include "runtime/backend.h"
#include "runtime/kernels/output_tile.h"

namespace heinfer::runtime::kernels {

/// Y[o, j, i] = B[j] + sum_k W[j, k] * X[o, k, i] (model::GemmParams): X viewed as
/// [outer, k, inner], Y as [outer, n, inner]; w = [n, k] row-major, bias empty or [n].
/// Zero weights are skipped. Parallel over output elements; only `tile` (all when null).
template <KernelBackend B>
void gemm(const B& be, const model::GemmParams& p, std::span<const double> w,
          std::span<const double> bias, const typename B::Tensor& x, typename B::Tensor& y,
          const OutputTile* tile = nullptr) {
  const OutputTile part = tile ? *tile : OutputTile::all(p.outer * p.n * p.inner);
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(total * p.k))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t idx = part.at(t);
    const std::int64_t i = idx % p.inner, j = (idx / p.inner) % p.n, o = idx / (p.inner * p.n);
    auto acc = be.start(y, idx);
    const double* wj = w.data() + j * p.k;
    const std::int64_t x0 = o * p.k * p.inner + i;
    for (std::int64_t k = 0; k < p.k; ++k) {
      if (wj[k] != 0.0) be.mac(acc, x, x0 + k * p.inner, wj[k]);
    }
    if (!bias.empty()) be.add_const(acc, bias[static_cast<std::size_t>(j)]);
    be.finish(y, idx, acc);
  }
}

}  // namespace heinfer::runtime::kernels
