#include "model/element_map.h"

#include <algorithm>

#include "model/error.h"

namespace heinfer::model {
namespace {

/// A separable map: per output dim d and coordinate i, the input offset
/// coord(d, i) * stride_in[d], or -1 when that coordinate reads the fill value.
ElementMap separable(const Shape& out, const std::vector<std::vector<std::int64_t>>& offsets) {
  computed_elements(out, "element map");
  ElementMap m{out, std::vector<std::int64_t>(static_cast<std::size_t>(numel(out)))};
  if (out.empty()) {  // a scalar: its one element
    m.source.assign(1, 0);
    return m;
  }
  if (m.source.empty()) return m;
  // The innermost dim in a tight loop; the outer coordinates advance once per row.
  const std::size_t outer_rank = out.size() - 1;
  const std::vector<std::int64_t>& row = offsets[outer_rank];
  const auto width = static_cast<std::size_t>(out[outer_rank]);
  std::vector<std::int64_t> idx(outer_rank, 0);
  for (std::size_t o = 0; o < m.source.size(); o += width) {
    std::int64_t base = 0;
    for (std::size_t d = 0; d < outer_rank && base >= 0; ++d) {
      const std::int64_t off = offsets[d][static_cast<std::size_t>(idx[d])];
      base = off < 0 ? -1 : base + off;
    }
    for (std::size_t i = 0; i < width; ++i) m.source[o + i] = (base < 0 || row[i] < 0) ? -1 : base + row[i];
    for (std::size_t d = outer_rank; d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return m;
}

std::int64_t clamp(std::int64_t v, std::int64_t lo, std::int64_t hi) {
  return std::min(std::max(v, lo), hi);
}

}  // namespace

std::int64_t computed_elements(const Shape& shape, const std::string& context) {
  const std::int64_t n = numel(shape);
  if (n > kMaxComputedElements) {
    throw ModelError(context + ": a computed tensor of " + std::to_string(n) + " elements " + to_string(shape) +
                     " exceeds the " + std::to_string(kMaxComputedElements) + " heinfer supports");
  }
  return n;
}

ElementMap transpose_map(const Shape& in, const std::vector<std::int64_t>& perm) {
  const Shape strides = row_major_strides(in);
  Shape out(in.size());
  std::vector<std::vector<std::int64_t>> offsets(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    const auto p = static_cast<std::size_t>(perm[d]);
    out[d] = in[p];
    for (std::int64_t i = 0; i < out[d]; ++i) offsets[d].push_back(i * strides[p]);
  }
  return separable(out, offsets);
}

ElementMap slice_map(const Shape& in, const std::vector<std::int64_t>& starts,
                     const std::vector<std::int64_t>& ends, const std::vector<std::int64_t>& axes,
                     const std::vector<std::int64_t>& steps, const std::string& context) {
  if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    throw ModelError(context + ": starts, ends, axes and steps must have the same length");
  }
  const Shape strides = row_major_strides(in);
  Shape out = in;
  std::vector<std::vector<std::int64_t>> offsets(in.size());
  std::vector<bool> sliced(in.size(), false);
  for (std::size_t k = 0; k < axes.size(); ++k) {
    const auto a = static_cast<std::size_t>(axes[k]);
    const std::int64_t dim = in[a], step = steps[k];
    if (step == 0) throw ModelError(context + ": a step of 0 is invalid");
    std::int64_t s = starts[k] < 0 ? starts[k] + dim : starts[k];
    std::int64_t e = ends[k] < 0 ? ends[k] + dim : ends[k];
    if (step > 0) {
      s = clamp(s, 0, dim);
      e = clamp(e, 0, dim);
    } else {
      s = clamp(s, 0, dim - 1);
      e = clamp(e, -1, dim - 1);
    }
    sliced[a] = true;
    for (std::int64_t i = s; step > 0 ? i < e : i > e; i += step) offsets[a].push_back(i * strides[a]);
    out[a] = static_cast<std::int64_t>(offsets[a].size());
  }
  for (std::size_t d = 0; d < in.size(); ++d) {
    if (sliced[d]) continue;
    for (std::int64_t i = 0; i < in[d]; ++i) offsets[d].push_back(i * strides[d]);
  }
  return separable(out, offsets);
}

ElementMap gather_map(const Shape& in, std::int64_t axis, const Shape& indices_shape,
                      const std::vector<std::int64_t>& indices, const std::string& context) {
  const auto a = static_cast<std::size_t>(axis);
  const std::int64_t dim = in[a];
  const std::int64_t outer = numel(Shape(in.begin(), in.begin() + axis));
  const std::int64_t inner = numel(Shape(in.begin() + axis + 1, in.end()));
  Shape out(in.begin(), in.begin() + axis);
  out.insert(out.end(), indices_shape.begin(), indices_shape.end());
  out.insert(out.end(), in.begin() + axis + 1, in.end());
  computed_elements(out, context);
  ElementMap m{out, {}};
  m.source.reserve(static_cast<std::size_t>(numel(out)));
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t j : indices) {
      if (j < -dim || j >= dim) {
        throw ModelError(context + ": index " + std::to_string(j) + " is out of range for a dim of " +
                         std::to_string(dim));
      }
      const std::int64_t base = (o * dim + (j < 0 ? j + dim : j)) * inner;
      for (std::int64_t i = 0; i < inner; ++i) m.source.push_back(base + i);
    }
  }
  return m;
}

ElementMap expand_map(const Shape& in, const Shape& shape, const std::string& context) {
  const Shape out = broadcast_shapes(in, shape, context);
  computed_elements(out, context);
  const Shape strides = broadcast_strides(in, out);
  std::vector<std::vector<std::int64_t>> offsets(out.size());
  for (std::size_t d = 0; d < out.size(); ++d) {
    for (std::int64_t i = 0; i < out[d]; ++i) offsets[d].push_back(i * strides[d]);
  }
  return separable(out, offsets);
}

ElementMap pad_map(const Shape& in, const Shape& begin, const Shape& end, PadMode mode,
                   const std::string& context) {
  const Shape strides = row_major_strides(in);
  Shape out(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    out[d] = in[d] + begin[d] + end[d];
    if (out[d] <= 0) throw ModelError(context + ": pads crop axis " + std::to_string(d) + " to nothing");
  }
  computed_elements(out, context);
  std::vector<std::vector<std::int64_t>> offsets(in.size());
  for (std::size_t d = 0; d < in.size(); ++d) {
    if (mode == PadMode::Reflect && (begin[d] >= in[d] || end[d] >= in[d]) && (begin[d] > 0 || end[d] > 0)) {
      throw ModelError(context + ": reflect padding of " + std::to_string(std::max(begin[d], end[d])) +
                       " needs an axis longer than that, axis " + std::to_string(d) + " has " +
                       std::to_string(in[d]));
    }
    for (std::int64_t i = 0; i < out[d]; ++i) {
      std::int64_t c = i - begin[d];
      if (c < 0 || c >= in[d]) {
        if (mode == PadMode::Constant) {
          offsets[d].push_back(-1);
          continue;
        }
        if (mode == PadMode::Edge) c = clamp(c, 0, in[d] - 1);
        else c = c < 0 ? -c : 2 * (in[d] - 1) - c;
      }
      offsets[d].push_back(c * strides[d]);
    }
  }
  return separable(out, offsets);
}

std::vector<double> apply_element_map(const ElementMap& map, const std::vector<double>& x, double fill) {
  std::vector<double> y(map.source.size());
  for (std::size_t o = 0; o < y.size(); ++o) {
    const std::int64_t s = map.source[o];
    y[o] = s < 0 ? fill : x[static_cast<std::size_t>(s)];
  }
  return y;
}

}  // namespace heinfer::model
