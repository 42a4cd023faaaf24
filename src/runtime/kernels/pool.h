// Average-pooling kernel (AveragePool, GlobalAveragePool), generic over the backend.
#pragma once

#include "model/op_params.h"
#include "runtime/backend.h"
#include "runtime/kernels/output_tile.h"
#include "model/window_indexer.h"

namespace heinfer::runtime::kernels {

/// ONNX AveragePool-11 / GlobalAveragePool-1: Y[c, o] = (1/n) * sum of the in-bounds window
/// elements, n = their count, or with count_include_pad the count of window positions
/// inside the padded input (ceil_mode overhang excluded, as ONNX Runtime and PyTorch).
/// x_shape = [C, in...], y_shape = [C, out...]. Parallel over output elements; only
/// `tile` (all when null).
template <KernelBackend B>
void average_pool(const B& be, const model::PoolParams& p, const model::Shape& x_shape,
                  const model::Shape& y_shape, const typename B::Tensor& x, typename B::Tensor& y,
                  const OutputTile* tile = nullptr) {
  const model::WindowIndexer win(x_shape, y_shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                          p.pads_end);
  const OutputTile part = tile ? *tile : OutputTile::all(y_shape[0] * win.out_size);
  const std::int64_t total = part.size();
#pragma omp parallel for schedule(static) if (be.parallel(total * win.kernel_size))
  for (std::int64_t t = 0; t < total; ++t) {
    const std::int64_t idx = part.at(t);
    const std::int64_t c = idx / win.out_size, os = idx % win.out_size;
    std::array<std::int64_t, model::kMaxSpatialDims> base;
    win.origin(os, base);
    std::int64_t count = 0;
    for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
      count += p.count_include_pad ? win.in_padded(base, kp) : win.input_offset(base, kp) >= 0;
    }
    auto acc = be.start(y, idx);
    if (count > 0) {
      const double weight = 1.0 / static_cast<double>(count);
      for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
        const std::int64_t off = win.input_offset(base, kp);
        if (off >= 0) be.mac(acc, x, c * win.in_size + off, weight);
      }
    }
    be.finish(y, idx, acc);
  }
}

}  // namespace heinfer::runtime::kernels
