// Output sizes and padding of sliding-window operators (Conv, AveragePool, MaxPool).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/shape.h"

namespace heinfer::model {

/// Largest kernel extent, stride, dilation, pad and spatial input size per dim (2^24):
/// far beyond real models, small enough that no size computed from them overflows.
inline constexpr std::int64_t kMaxWindowExtent = std::int64_t{1} << 24;
/// Largest number of taps of one window (2^20, a 1024x1024 kernel): the executors hold
/// per-tap tables.
inline constexpr std::int64_t kMaxKernelVolume = std::int64_t{1} << 20;

/// Resolved spatial geometry: output sizes and explicit begin/end pads.
struct WindowGeometry {
  Shape out, pads_begin, pads_end;
};

/// ONNX Conv-11 / AveragePool-11 / MaxPool-12 output-shape rules, per spatial dim d with
/// effective kernel e = dilations[d] * (kernel[d] - 1) + 1:
///  - auto_pad NOTSET: explicit `pads` ([begins..., ends...], default 0);
///    out = floor((in + pads - e) / stride) + 1, or with ceil_mode the ceiling, minus one
///    when the last window would start in the end padding (PyTorch/ONNX-19 rule);
///  - VALID: no padding, out = floor((in - e) / stride) + 1;
///  - SAME_UPPER / SAME_LOWER: out = ceil(in / stride), total pad
///    max(0, (out - 1) * stride + e - in) split evenly, the odd unit at the end (UPPER)
///    or at the beginning (LOWER).
/// Throws ModelError (prefixed by `context`) for bad lengths, non-positive values, values
/// above kMaxWindowExtent, a window of more than kMaxKernelVolume taps, or a window
/// larger than the padded input; before anything is allocated from them.
WindowGeometry resolve_window(const Shape& in, const Shape& kernel, const Shape& strides,
                              const Shape& dilations, const std::string& auto_pad,
                              const std::optional<Shape>& pads, bool ceil_mode,
                              const std::string& context);

}  // namespace heinfer::model
