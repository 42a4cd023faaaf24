// Shape inference of Resize (opsets 10, 11, 13) and Upsample (7, 9) on activations: the
// resize becomes an element map (nearest) or a sparse linear map (linear, cubic), per
// sample; the batch axis must stay as it is.
#include <cmath>
#include <optional>

#include "model/element_map.h"
#include "model/infer_common.h"
#include "model/resize.h"

namespace heinfer::model::detail {
namespace {

/// Constant input i's values; nullopt when omitted or empty (exporters write an empty
/// tensor for an unused roi or scales).
std::optional<std::vector<double>> optional_values(const Graph& g, const Node& n, std::size_t i, const char* what) {
  if (!has_input(n, i)) return std::nullopt;
  const Tensor& t = constant_input(g, n, i, what);
  if (t.data.empty()) return std::nullopt;
  if (t.shape.size() != 1) throw ModelError(node_label(n) + ": " + what + " must be a 1-D tensor");
  return t.data;
}

ResizeAttributes attributes(const Node& n, bool legacy) {
  const std::string ctx = node_label(n);
  ResizeAttributes a;
  const std::string mode = get_string(n.attributes, "mode", "nearest", ctx);
  if (mode == "nearest") a.mode = ResizeMode::Nearest;
  else if (mode == "linear" || (legacy && mode == "bilinear")) a.mode = ResizeMode::Linear;
  else if (mode == "cubic" && !legacy) a.mode = ResizeMode::Cubic;
  else throw ModelError(ctx + ": unsupported attribute value mode=" + mode);
  if (legacy) {
    // Upsample and Resize-10: x / scale, and nearest takes the floor (an integer scale
    // repeats each element, as the operators specify).
    check_known_attributes(n.attributes, {"mode", "scales"}, ctx);
    a.transform = CoordinateTransform::Asymmetric;
    a.nearest = NearestMode::Floor;
    return a;
  }
  check_known_attributes(n.attributes,
                         {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                          "exclude_outside", "extrapolation_value"},
                         ctx);
  const std::string t = get_string(n.attributes, "coordinate_transformation_mode", "half_pixel", ctx);
  if (t == "half_pixel") a.transform = CoordinateTransform::HalfPixel;
  else if (t == "pytorch_half_pixel") a.transform = CoordinateTransform::PytorchHalfPixel;
  else if (t == "align_corners") a.transform = CoordinateTransform::AlignCorners;
  else if (t == "asymmetric") a.transform = CoordinateTransform::Asymmetric;
  else if (t == "tf_half_pixel_for_nearest" || t == "tf_half_pixel_for_nn") a.transform = CoordinateTransform::TfHalfPixelForNearest;
  else if (t == "tf_crop_and_resize") a.transform = CoordinateTransform::TfCropAndResize;
  else throw ModelError(ctx + ": unsupported attribute value coordinate_transformation_mode=" + t);
  const std::string nm = get_string(n.attributes, "nearest_mode", "round_prefer_floor", ctx);
  if (nm == "round_prefer_floor") a.nearest = NearestMode::RoundPreferFloor;
  else if (nm == "round_prefer_ceil") a.nearest = NearestMode::RoundPreferCeil;
  else if (nm == "floor") a.nearest = NearestMode::Floor;
  else if (nm == "ceil") a.nearest = NearestMode::Ceil;
  else throw ModelError(ctx + ": unsupported attribute value nearest_mode=" + nm);
  a.cubic_coeff_a = get_float(n.attributes, "cubic_coeff_a", -0.75, ctx);
  a.exclude_outside = get_int(n.attributes, "exclude_outside", 0, ctx) != 0;
  a.extrapolation_value = get_float(n.attributes, "extrapolation_value", 0.0, ctx);
  return a;
}

}  // namespace

void infer_resize(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Shape xs = activation_input(c.g, n, 0, "X").shape;
  const std::size_t rank = xs.size() + 1;
  const bool legacy = n.op == OpType::Upsample || c.g.opset < 11;
  const ResizeAttributes a = attributes(n, legacy);

  std::optional<std::vector<double>> scales, sizes, roi;
  if (legacy) {
    scales = n.op == OpType::Upsample && c.g.opset < 9 ? get_floats(n.attributes, "scales", ctx)
                                                        : optional_values(c.g, n, 1, "scales");
  } else {
    roi = optional_values(c.g, n, 1, "roi");
    scales = optional_values(c.g, n, 2, "scales");
    sizes = optional_values(c.g, n, 3, "sizes");
  }
  if (scales.has_value() == sizes.has_value()) {
    throw ModelError(ctx + ": exactly one of scales and sizes must be given");
  }
  const std::vector<double>& given = scales ? *scales : *sizes;
  if (given.size() != rank) {
    throw ModelError(ctx + ": " + (scales ? "scales" : "sizes") + " has " + std::to_string(given.size()) +
                     " entries for an input of rank " + std::to_string(rank));
  }
  if (roi && a.transform == CoordinateTransform::TfCropAndResize && roi->size() != 2 * rank) {
    throw ModelError(ctx + ": roi must have 2 * rank entries");
  }
  // The batch axis: unchanged (scale 1, size N, the whole roi).
  if (scales && (*scales)[0] != 1.0) throw_batch_axis(n, "Resize of dim 0 changes the batch");
  if (sizes) {
    const Tensor& t = input(c.g, n, 3);
    const bool symbolic_n = !t.batch_coeff.empty() && t.batch_coeff[0] == 1.0 && t.data[0] == 0.0;
    const bool declared_n = t.batch_coeff.empty() && c.g.declared_batch > 0 && t.data[0] == static_cast<double>(c.g.declared_batch);
    if (!symbolic_n && !declared_n) throw_batch_axis(n, "Resize of dim 0 changes the batch");
    for (std::size_t d = 1; d < t.batch_coeff.size(); ++d) {
      if (t.batch_coeff[d] != 0.0) throw ModelError(ctx + ": sizes of per-sample axes depend on the batch size");
    }
  }
  if (a.transform == CoordinateTransform::TfCropAndResize && roi && ((*roi)[0] != 0.0 || (*roi)[rank] != 1.0)) {
    throw_batch_axis(n, "Resize with a roi that crops dim 0");
  }

  Shape out(xs.size());
  std::vector<double> axis_scales(xs.size()), axis_roi;
  for (std::size_t d = 0; d < xs.size(); ++d) {
    const double v = given[d + 1];
    if (!std::isfinite(v) || v <= 0.0) {
      throw ModelError(ctx + ": " + (scales ? "scales" : "sizes") + " must be positive and finite");
    }
    const double size = scales ? std::floor(static_cast<double>(xs[d]) * v) : v;
    if (size < 1.0 || size > static_cast<double>(kMaxComputedElements) || std::floor(size) != size) {
      throw ModelError(ctx + ": an output dim of " + std::to_string(size) + " along axis " + std::to_string(d + 1));
    }
    out[d] = static_cast<std::int64_t>(size);
    axis_scales[d] = scales ? v : size / static_cast<double>(xs[d]);
  }
  if (a.transform == CoordinateTransform::TfCropAndResize && roi) {
    for (std::size_t half = 0; half < 2; ++half) {
      axis_roi.insert(axis_roi.end(), roi->begin() + static_cast<std::ptrdiff_t>(half * rank + 1),
                      roi->begin() + static_cast<std::ptrdiff_t>((half + 1) * rank));
    }
  }
  LinearMap m = resize_map(xs, out, axis_scales, axis_roi, a, ctx);
  bool moves_only = true;
  for (std::size_t o = 0; o + 1 < m.row_begin.size() && moves_only; ++o) {
    const std::int64_t terms = m.row_begin[o + 1] - m.row_begin[o];
    moves_only = terms == 0 || (terms == 1 && m.weight[static_cast<std::size_t>(m.row_begin[o])] == 1.0);
  }
  if (moves_only) {
    std::vector<std::int64_t> source(m.row_begin.size() - 1, -1);
    for (std::size_t o = 0; o < source.size(); ++o) {
      if (m.row_begin[o + 1] > m.row_begin[o]) source[o] = m.source[static_cast<std::size_t>(m.row_begin[o])];
    }
    set_output(c, n, 1, std::move(m.out), ElementMapParams{std::move(source), m.fill});
    return;
  }
  set_output(c, n, 1, std::move(m.out),
             LinearMapParams{std::move(m.row_begin), std::move(m.source), std::move(m.weight), m.fill});
}

}  // namespace heinfer::model::detail
