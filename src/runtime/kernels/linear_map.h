// Sparse linear-map kernel (Resize/Upsample in linear or cubic mode), generic over the backend.
#pragma once

#include "model/op_params.h"
#include "runtime/backend.h"
#include "runtime/kernels/output_tile.h"

namespace heinfer::runtime::kernels {

/// Y[o] = sum over k in [row_begin[o], row_begin[o+1]) of weight[k] * X[source[k]], or
/// p.fill for an empty row (model::LinearMapParams), added as a constant so that every
/// output of the node leaves at the same level and scale. Zero weights are skipped (the map may
/// hold a merged term that cancelled). One multiply-accumulate per term and one rescale per
/// output on the encrypted backend. Parallel over output elements; only `tile` (all when null).
template <KernelBackend B>
void linear_map(const B& be, const model::LinearMapParams& p, const typename B::Tensor& x,
                typename B::Tensor& y, const OutputTile* tile = nullptr) {
  const auto outputs = static_cast<std::int64_t>(p.row_begin.size()) - 1;
  const OutputTile part = tile ? *tile : OutputTile::all(outputs);
  const std::int64_t total = part.size();
  const auto terms = static_cast<std::int64_t>(p.source.size());
#pragma omp parallel for schedule(static) if (be.parallel(terms))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t o = part.at(t);
    const auto begin = static_cast<std::size_t>(p.row_begin[static_cast<std::size_t>(o)]);
    const auto end = static_cast<std::size_t>(p.row_begin[static_cast<std::size_t>(o) + 1]);
    auto acc = be.start(y, o);
    if (begin == end) be.add_const(acc, p.fill);
    for (std::size_t k = begin; k < end; ++k) {
      if (p.weight[k] != 0.0) be.mac(acc, x, p.source[k], p.weight[k]);
    }
    be.finish(y, o, acc);
  }
}

}  // namespace heinfer::runtime::kernels
