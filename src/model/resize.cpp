#include "model/resize.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "model/element_map.h"
#include "model/error.h"

namespace heinfer::model {
namespace {

/// The input coordinate of output coordinate x; NaN for outside the roi (extrapolation).
double source_coordinate(double x, std::int64_t in, std::int64_t out, double scale, double roi_start,
                         double roi_end, CoordinateTransform t) {
  const double out_width = scale * static_cast<double>(in);  // as the reference: scale * in
  const double last = static_cast<double>(in - 1);
  switch (t) {
    case CoordinateTransform::HalfPixel: return (x + 0.5) / scale - 0.5;
    case CoordinateTransform::PytorchHalfPixel: return out_width == 1.0 ? -0.5 : (x + 0.5) / scale - 0.5;
    case CoordinateTransform::AlignCorners: return out_width == 1.0 ? 0.0 : x * last / (out_width - 1.0);
    case CoordinateTransform::Asymmetric: return x / scale;
    case CoordinateTransform::TfHalfPixelForNearest: return (x + 0.5) / scale;
    case CoordinateTransform::TfCropAndResize: {
      const double v = out == 1 ? (roi_end - roi_start) * last / 2.0
                                : x * (roi_end - roi_start) * last / (out_width - 1.0);
      const double x_ori = v + roi_start * last;
      return (x_ori < 0.0 || x_ori > last) ? std::nan("") : x_ori;
    }
  }
  return std::nan("");
}

/// The mode's coefficients at ratio r in (0, 1] for the n = size() positions
/// floor'(x) - n/2 + 1 ... floor'(x) + n/2 (floor'(x) = x - 1 for an integer x).
std::vector<double> coefficients(double r, const ResizeAttributes& a) {
  switch (a.mode) {
    case ResizeMode::Nearest: {
      if (r == 1.0) return {0.0, 1.0};
      bool up = false;
      switch (a.nearest) {
        case NearestMode::RoundPreferFloor: up = r > 0.5; break;
        case NearestMode::RoundPreferCeil: up = r >= 0.5; break;
        case NearestMode::Floor: up = false; break;
        case NearestMode::Ceil: up = true; break;
      }
      return {up ? 0.0 : 1.0, up ? 1.0 : 0.0};
    }
    case ResizeMode::Linear: return {1.0 - r, r};
    case ResizeMode::Cubic: {
      // Keys' cubic convolution kernel with parameter A at distances 1 + r, r, 1 - r, 2 - r.
      const double A = a.cubic_coeff_a;
      const auto far = [A](double d) { return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A; };
      const auto near = [A](double d) { return ((A + 2) * d - (A + 3)) * d * d + 1; };
      return {far(r + 1), near(r), near(1 - r), far(2 - r)};
    }
  }
  return {};
}

}  // namespace

std::vector<std::vector<AxisTerm>> resize_axis_terms(std::int64_t in, std::int64_t out, double scale,
                                                     double roi_start, double roi_end,
                                                     const ResizeAttributes& a) {
  std::vector<std::vector<AxisTerm>> terms(static_cast<std::size_t>(out));
  for (std::int64_t x = 0; x < out; ++x) {
    const double x_ori = source_coordinate(static_cast<double>(x), in, out, scale, roi_start, roi_end, a.transform);
    if (std::isnan(x_ori)) continue;  // extrapolation
    const bool integral = std::floor(x_ori) == x_ori;
    const auto base = static_cast<std::int64_t>(integral ? x_ori - 1 : std::floor(x_ori));
    const double r = integral ? 1.0 : x_ori - std::floor(x_ori);
    std::vector<double> c = coefficients(r, a);
    const auto n = static_cast<std::int64_t>(c.size());
    const std::int64_t first = base - (n / 2 - 1);
    if (a.exclude_outside) {
      double sum = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t pos = first + j;
        if (pos < 0 || pos >= in) c[static_cast<std::size_t>(j)] = 0.0;
        sum += c[static_cast<std::size_t>(j)];
      }
      if (sum != 0.0) {
        for (double& w : c) w /= sum;
      }
    }
    auto& t = terms[static_cast<std::size_t>(x)];
    for (std::int64_t j = 0; j < n; ++j) {
      const double w = c[static_cast<std::size_t>(j)];
      if (w == 0.0) continue;
      const std::int64_t pos = std::clamp(first + j, std::int64_t{0}, in - 1);  // edge padding
      auto same = std::find_if(t.begin(), t.end(), [pos](const AxisTerm& e) { return e.index == pos; });
      if (same != t.end()) same->weight += w;
      else t.push_back({pos, w});
    }
    t.erase(std::remove_if(t.begin(), t.end(), [](const AxisTerm& e) { return e.weight == 0.0; }), t.end());
    if (t.empty()) t.push_back({std::clamp(base, std::int64_t{0}, in - 1), 0.0});  // a zero sum: keep a zero term
  }
  return terms;
}

LinearMap resize_map(const Shape& in, const Shape& out, const std::vector<double>& scales,
                     const std::vector<double>& roi, const ResizeAttributes& a, const std::string& context) {
  const std::size_t rank = in.size();
  if (out.size() != rank || scales.size() != rank || (!roi.empty() && roi.size() != 2 * rank)) {
    throw ModelError(context + ": resize operands of mismatched ranks");
  }
  computed_elements(out, context);
  std::vector<std::vector<std::vector<AxisTerm>>> axes(rank);
  std::int64_t terms_per_output = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    axes[d] = resize_axis_terms(in[d], out[d], scales[d], roi.empty() ? 0.0 : roi[d], roi.empty() ? 1.0 : roi[rank + d], a);
    std::size_t widest = 1;
    for (const auto& t : axes[d]) widest = std::max(widest, t.size());
    terms_per_output *= static_cast<std::int64_t>(widest);
  }
  const std::int64_t total = numel(out);
  if (terms_per_output > kMaxComputedElements / std::max<std::int64_t>(total, 1)) {
    computed_elements({total, terms_per_output}, context);
  }
  const Shape strides = row_major_strides(in);
  LinearMap m;
  m.out = out;
  m.fill = a.extrapolation_value;
  m.row_begin.reserve(static_cast<std::size_t>(total) + 1);
  m.row_begin.push_back(0);
  m.source.reserve(static_cast<std::size_t>(total * terms_per_output));
  m.weight.reserve(static_cast<std::size_t>(total * terms_per_output));
  std::vector<std::int64_t> idx(rank, 0);
  std::vector<std::pair<std::int64_t, double>> acc, next;  // reused: no allocation per output
  acc.reserve(static_cast<std::size_t>(terms_per_output));
  next.reserve(static_cast<std::size_t>(terms_per_output));
  for (std::int64_t o = 0; o < total; ++o) {
    // Expand the product of the per-axis terms of this output coordinate.
    acc.assign(1, {0, 1.0});
    for (std::size_t d = 0; d < rank && !acc.empty(); ++d) {
      const auto& t = axes[d][static_cast<std::size_t>(idx[d])];
      if (t.empty()) {
        acc.clear();  // outside the roi along this axis
        break;
      }
      next.clear();
      for (const auto& [off, w] : acc) {
        for (const AxisTerm& e : t) next.emplace_back(off + e.index * strides[d], w * e.weight);
      }
      acc.swap(next);
    }
    for (const auto& [off, w] : acc) {
      m.source.push_back(off);
      m.weight.push_back(w);
    }
    m.row_begin.push_back(static_cast<std::int64_t>(m.source.size()));
    for (std::size_t d = rank; d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return m;
}

}  // namespace heinfer::model
