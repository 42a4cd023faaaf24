#include "model/window_geometry.h"

#include <algorithm>

#include "model/error.h"
#include "model/op_params.h"

namespace heinfer::model {

WindowGeometry resolve_window(const Shape& in, const Shape& kernel, const Shape& strides,
                              const Shape& dilations, const std::string& auto_pad,
                              const std::optional<Shape>& pads, bool ceil_mode,
                              const std::string& context) {
  const std::size_t s = in.size();
  if (s > kMaxSpatialDims) {
    throw ModelError(context + ": " + std::to_string(s) + " spatial dims; at most " +
                     std::to_string(kMaxSpatialDims) + " are supported");
  }
  if (kernel.size() != s || strides.size() != s || dilations.size() != s) {
    throw ModelError(context + ": kernel_shape/strides/dilations need " + std::to_string(s) +
                     " entries (one per spatial dim of the input)");
  }
  std::int64_t volume = 1;
  for (std::size_t d = 0; d < s; ++d) {
    if (kernel[d] <= 0 || strides[d] <= 0 || dilations[d] <= 0) {
      throw ModelError(context + ": kernel_shape, strides and dilations must be positive");
    }
    if (kernel[d] > kMaxWindowExtent || strides[d] > kMaxWindowExtent || dilations[d] > kMaxWindowExtent ||
        in[d] > kMaxWindowExtent) {
      throw ModelError(context + ": kernel_shape, strides, dilations and spatial dims must be at most " +
                       std::to_string(kMaxWindowExtent));
    }
    volume *= kernel[d];  // <= 2^24 per factor, checked before the next: no overflow below 2^63
    if (volume > kMaxKernelVolume) {
      throw ModelError(context + ": a window of more than " + std::to_string(kMaxKernelVolume) +
                       " taps is not supported");
    }
  }
  WindowGeometry g{Shape(s), Shape(s, 0), Shape(s, 0)};
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (!same && auto_pad != "NOTSET" && auto_pad != "VALID" && !auto_pad.empty()) {
    throw ModelError(context + ": unsupported auto_pad value '" + auto_pad +
                     "'; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  }
  const bool explicit_pads = auto_pad == "NOTSET" || auto_pad.empty();
  if (explicit_pads && pads) {
    if (pads->size() != 2 * s) {
      throw ModelError(context + ": pads needs " + std::to_string(2 * s) + " entries, got " +
                       std::to_string(pads->size()));
    }
    for (std::size_t d = 0; d < s; ++d) {
      g.pads_begin[d] = (*pads)[d];
      g.pads_end[d] = (*pads)[s + d];
      if (g.pads_begin[d] < 0 || g.pads_end[d] < 0) {
        throw ModelError(context + ": negative pads are not supported");
      }
      if (g.pads_begin[d] > kMaxWindowExtent || g.pads_end[d] > kMaxWindowExtent) {
        throw ModelError(context + ": pads must be at most " + std::to_string(kMaxWindowExtent));
      }
    }
  }
  for (std::size_t d = 0; d < s; ++d) {
    const std::int64_t eff = dilations[d] * (kernel[d] - 1) + 1;
    if (same) {
      g.out[d] = (in[d] + strides[d] - 1) / strides[d];
      const std::int64_t total = std::max<std::int64_t>(0, (g.out[d] - 1) * strides[d] + eff - in[d]);
      const std::int64_t small = total / 2;
      g.pads_begin[d] = auto_pad == "SAME_UPPER" ? small : total - small;
      g.pads_end[d] = total - g.pads_begin[d];
      continue;
    }
    const std::int64_t span = in[d] + g.pads_begin[d] + g.pads_end[d] - eff;
    if (span < 0) {
      throw ModelError(context + ": window of size " + std::to_string(eff) +
                       " is larger than the padded input (" +
                       std::to_string(in[d] + g.pads_begin[d] + g.pads_end[d]) + ") in spatial dim " +
                       std::to_string(d));
    }
    g.out[d] = span / strides[d] + 1;
    if (ceil_mode && explicit_pads && span % strides[d] != 0) {
      ++g.out[d];
      if ((g.out[d] - 1) * strides[d] >= in[d] + g.pads_begin[d]) --g.out[d];
    }
  }
  return g;
}

}  // namespace heinfer::model
