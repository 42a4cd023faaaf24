#include "model/shape.h"

#include <algorithm>
#include <cmath>

#include "model/error.h"

namespace heinfer::model {

std::vector<std::int64_t> to_int64s(std::span<const double> values, const std::string& context) {
  constexpr double kLimit = 4611686018427387904.0;  // 2^62
  std::vector<std::int64_t> out;
  out.reserve(values.size());
  for (double v : values) {
    if (std::isnan(v)) throw ModelError(context + ": NaN where an integer is expected");
    out.push_back(static_cast<std::int64_t>(std::clamp(std::trunc(v), -kLimit, kLimit)));
  }
  return out;
}

std::int64_t numel(std::span<const std::int64_t> dims) {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 0) throw ModelError("negative dimension in shape " + to_string(dims));
    if (d != 0 && n > kMaxElements / d) {
      throw ModelError("shape " + to_string(dims) + " has more than 2^31 elements");
    }
    n *= d;
  }
  return n;
}

std::string to_string(std::span<const std::int64_t> dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

Shape row_major_strides(std::span<const std::int64_t> dims) {
  Shape strides(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& context) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ModelError(context + ": shapes " + to_string(a) + " and " + to_string(b) +
                       " cannot be broadcast (ONNX multidirectional broadcasting)");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
  const Shape in_strides = row_major_strides(in);
  Shape s(out.size(), 0);
  const std::size_t offset = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i) {
    s[offset + i] = in[i] == 1 ? 0 : in_strides[i];
  }
  return s;
}

}  // namespace heinfer::model
