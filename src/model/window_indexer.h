// Sliding-window index arithmetic shared by the convolution and pooling kernels and by
// the plan (MaxPool round sizes): pure geometry of per-sample [C, spatial...] tensors.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "model/op_params.h"
#include "model/shape.h"

namespace heinfer::model {

/// Precomputed geometry of a window over the spatial dims of a [C, spatial...] tensor.
struct WindowIndexer {
  std::size_t rank = 0;                       ///< spatial rank S
  std::array<std::int64_t, kMaxSpatialDims> in{}, out{}, stride{}, pad_begin{}, pad_end{};
  std::int64_t in_size = 1, out_size = 1;     ///< spatial element counts
  std::int64_t kernel_size = 1;               ///< number of kernel positions K
  /// offsets[kp * S + d] = kernel coordinate of position kp in dim d times the dilation.
  std::vector<std::int64_t> offsets;

  /// in_shape / out_shape are per-sample [C, spatial...]; vectors have S entries.
  WindowIndexer(const Shape& in_shape, const Shape& out_shape,
                const Shape& kernel, const Shape& strides,
                const Shape& dilations, const Shape& pads_begin,
                const Shape& pads_end) {
    rank = kernel.size();
    if (rank > kMaxSpatialDims || in_shape.size() != rank + 1 || out_shape.size() != rank + 1) {
      throw std::invalid_argument("window kernel: unsupported spatial rank");
    }
    for (std::size_t d = 0; d < rank; ++d) {
      in[d] = in_shape[d + 1];
      out[d] = out_shape[d + 1];
      stride[d] = strides[d];
      pad_begin[d] = pads_begin[d];
      pad_end[d] = pads_end[d];
      in_size *= in[d];
      out_size *= out[d];
      kernel_size *= kernel[d];
    }
    offsets.resize(static_cast<std::size_t>(kernel_size) * rank);
    for (std::int64_t kp = 0; kp < kernel_size; ++kp) {
      std::int64_t r = kp;
      for (std::size_t d = rank; d-- > 0;) {
        offsets[static_cast<std::size_t>(kp) * rank + d] = (r % kernel[d]) * dilations[d];
        r /= kernel[d];
      }
    }
  }

  /// Window origin (first input coordinate, possibly negative) of spatial output index os.
  void origin(std::int64_t os, std::array<std::int64_t, kMaxSpatialDims>& base) const {
    for (std::size_t d = rank; d-- > 0;) {
      base[d] = (os % out[d]) * stride[d] - pad_begin[d];
      os /= out[d];
    }
  }

  /// Spatial input offset of kernel position kp from `base`, or -1 when outside the input.
  std::int64_t input_offset(const std::array<std::int64_t, kMaxSpatialDims>& base, std::int64_t kp) const {
    std::int64_t off = 0;
    const std::int64_t* k = offsets.data() + kp * static_cast<std::int64_t>(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      const std::int64_t c = base[d] + k[d];
      if (c < 0 || c >= in[d]) return -1;
      off = off * in[d] + c;
    }
    return off;
  }

  /// Whether kernel position kp lies inside the padded input (for count_include_pad).
  bool in_padded(const std::array<std::int64_t, kMaxSpatialDims>& base, std::int64_t kp) const {
    const std::int64_t* k = offsets.data() + kp * static_cast<std::int64_t>(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      const std::int64_t c = base[d] + k[d];
      if (c < -pad_begin[d] || c >= in[d] + pad_end[d]) return false;
    }
    return true;
  }
};

}  // namespace heinfer::model
