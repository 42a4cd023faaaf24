// ONNX Resize (opsets 10, 11, 13) and Upsample (7, 9) as a sparse linear map: every output
// element is a weighted sum of input elements (nearest: one term of weight 1; linear: 2 per
// resized axis; cubic: 4 per resized axis), or the extrapolation value. One definition of
// the operator's coordinate and coefficient rules, used by shape inference for activations.
// Source: the ONNX operator specification (Resize-13) and its reference implementation
// (onnx.reference, op_resize.py: _interpolate_1d_with_x, _get_neighbor): an output coordinate
// x maps to x_ori in the input; the n nearest input positions (ties to the smaller, edge-
// clamped) get the mode's coefficients at ratio r = x_ori - floor(x_ori) in (0, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/shape.h"

namespace heinfer::model {

enum class ResizeMode { Nearest, Linear, Cubic };

enum class CoordinateTransform {
  HalfPixel,               ///< (x + 0.5) / scale - 0.5
  PytorchHalfPixel,        ///< as half_pixel; -0.5 when the output length is 1
  AlignCorners,            ///< x * (in - 1) / (out - 1); 0 when out is 1
  Asymmetric,              ///< x / scale
  TfHalfPixelForNearest,   ///< (x + 0.5) / scale (Resize-11 calls it tf_half_pixel_for_nn)
  TfCropAndResize,         ///< within roi [start, end] (fractions of in - 1); outside: extrapolation
};

enum class NearestMode { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };

struct ResizeAttributes {
  ResizeMode mode = ResizeMode::Nearest;
  CoordinateTransform transform = CoordinateTransform::HalfPixel;
  NearestMode nearest = NearestMode::RoundPreferFloor;
  double cubic_coeff_a = -0.75;
  bool exclude_outside = false;       ///< zero the weights of positions outside, renormalize
  double extrapolation_value = 0.0;   ///< tf_crop_and_resize outside the roi
};

/// One term of an output coordinate along one axis: input position and its weight.
struct AxisTerm {
  std::int64_t index = 0;
  double weight = 0.0;
};

/// The terms of every output coordinate 0..out-1 along one axis of length `in` (>= 1),
/// with `scale` the axis's scale (the given one, or out / in when sizes were given) and
/// roi [roi_start, roi_end] (tf_crop_and_resize only). Zero weights are dropped and equal
/// positions merged; an empty list means the extrapolation value.
std::vector<std::vector<AxisTerm>> resize_axis_terms(std::int64_t in, std::int64_t out, double scale,
                                                     double roi_start, double roi_end,
                                                     const ResizeAttributes& a);

/// A sparse linear map on row-major tensors: y[o] = sum of weight[k] * x[source[k]] for k
/// in [row_begin[o], row_begin[o + 1]), or `fill` when that range is empty.
struct LinearMap {
  Shape out;
  std::vector<std::int64_t> row_begin;  ///< numel(out) + 1 entries
  std::vector<std::int64_t> source;
  std::vector<double> weight;
  double fill = 0.0;
};

/// Resize of a tensor of shape `in` to `out` (same rank), per axis d with scales[d] and
/// roi [roi[d], roi[rank + d]] (roi may be empty: [0, 1] everywhere). The terms of an output
/// element are the products of its per-axis terms (the operator is separable); an output
/// outside the roi along some axis is the extrapolation value. Throws ModelError (prefixed by
/// `context`) when the map exceeds kMaxComputedElements terms.
LinearMap resize_map(const Shape& in, const Shape& out, const std::vector<double>& scales,
                     const std::vector<double>& roi, const ResizeAttributes& a, const std::string& context);

}  // namespace heinfer::model
