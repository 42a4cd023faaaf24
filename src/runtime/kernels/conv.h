// Convolution kernel, generic over the backend (runtime/backend.h).
#pragma once

#include <span>
#include <vector>

#include "model/op_params.h"
#include "runtime/backend.h"
#include "runtime/kernels/output_tile.h"
#include "model/window_indexer.h"

namespace heinfer::runtime::kernels {

/// ONNX Conv-11 (grouped/depthwise, strided, dilated, padded; any spatial rank <= 8):
///   Y[m, o] = B[m] + sum_{c < C/group, kp} W[m, c, kp] * X[g*C/group + c, o*stride - pad + kp*dil]
/// with g = m / (M/group), out-of-range input positions skipped (zero padding) and zero
/// weights skipped. x_shape = [C, in...], y_shape = [M, out...] (per sample);
/// w = [M, C/group, kernel...] row-major, bias empty or [M]; `z` (ConvParams::residual),
/// when given, has y's shape and is added: Y[m, o] += Z[m, o] (one more term of the same
/// accumulator). Parallel over output elements; only the elements of `tile` are produced
/// (all when `tile` is null).
template <KernelBackend B>
void conv(const B& be, const model::ConvParams& p, const model::Shape& x_shape,
          const model::Shape& y_shape, std::span<const double> w, std::span<const double> bias,
          const typename B::Tensor& x, typename B::Tensor& y, const OutputTile* tile = nullptr,
          const typename B::Tensor* z = nullptr) {
  const model::WindowIndexer win(x_shape, y_shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                          p.pads_end);
  const std::int64_t m_count = y_shape[0];
  const std::int64_t cg = x_shape[0] / p.group, mg = m_count / p.group;
  const std::int64_t ks = win.kernel_size;
  const OutputTile part = tile ? *tile : OutputTile::all(m_count * win.out_size);
  const std::int64_t total = part.size();
#pragma omp parallel if (be.parallel(total * cg * ks))
  {
    // In-bounds kernel positions of the current output position and their input offsets.
    std::vector<std::int64_t> kps(static_cast<std::size_t>(ks)), offs(static_cast<std::size_t>(ks));
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < total; ++t) {
      const std::int64_t idx = part.at(t);
      const std::int64_t m = idx / win.out_size, os = idx % win.out_size;
      const std::int64_t c0 = (m / mg) * cg;
      std::array<std::int64_t, model::kMaxSpatialDims> base;
      win.origin(os, base);
      std::size_t valid = 0;
      for (std::int64_t kp = 0; kp < ks; ++kp) {
        const std::int64_t off = win.input_offset(base, kp);
        if (off < 0) continue;
        kps[valid] = kp;
        offs[valid++] = off;
      }
      auto acc = be.start(y, idx);
      const double* wm = w.data() + m * cg * ks;
      for (std::int64_t c = 0; c < cg; ++c) {
        const double* wc = wm + c * ks;
        const std::int64_t xc = (c0 + c) * win.in_size;
        for (std::size_t j = 0; j < valid; ++j) {
          const double wv = wc[kps[j]];
          if (wv != 0.0) be.mac(acc, x, xc + offs[j], wv);
        }
      }
      if (z) be.add(acc, *z, idx);
      if (!bias.empty()) be.add_const(acc, bias[static_cast<std::size_t>(m)]);
      be.finish(y, idx, acc);
    }
  }
}

}  // namespace heinfer::runtime::kernels
