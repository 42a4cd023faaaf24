#include "runtime/plain_tensor.h"

#include <stdexcept>
#include <string>

namespace heinfer::runtime {
namespace {

template <class T>
PlainTensor convert(std::span<const T> x, std::int64_t batch, const model::Shape& shape) {
  PlainTensor t = make_plain_tensor(shape, batch);
  const std::int64_t e_count = model::numel(shape);
  if (static_cast<std::int64_t>(x.size()) != batch * e_count) {
    throw std::invalid_argument("from_batch_major: " + std::to_string(x.size()) +
                                " values for batch " + std::to_string(batch) + " of shape " +
                                model::to_string(shape));
  }
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t e = 0; e < e_count; ++e) {
      t.data[static_cast<std::size_t>(e * batch + b)] = static_cast<double>(x[static_cast<std::size_t>(b * e_count + e)]);
    }
  }
  return t;
}

}  // namespace

PlainTensor make_plain_tensor(const model::Shape& shape, std::int64_t batch) {
  if (batch < 0) throw std::invalid_argument("make_plain_tensor: negative batch");
  PlainTensor t;
  t.shape = shape;
  t.batch = batch;
  t.data.assign(static_cast<std::size_t>(model::numel(shape) * batch), 0.0);
  return t;
}

PlainTensor from_batch_major(std::span<const double> x, std::int64_t batch, const model::Shape& shape) {
  return convert(x, batch, shape);
}

PlainTensor from_batch_major(std::span<const float> x, std::int64_t batch, const model::Shape& shape) {
  return convert(x, batch, shape);
}

std::vector<double> to_batch_major(const PlainTensor& t) {
  const std::int64_t e_count = t.elements();
  std::vector<double> y(t.data.size());
  for (std::int64_t e = 0; e < e_count; ++e) {
    for (std::int64_t b = 0; b < t.batch; ++b) {
      y[static_cast<std::size_t>(b * e_count + e)] = t.data[static_cast<std::size_t>(e * t.batch + b)];
    }
  }
  return y;
}

}  // namespace heinfer::runtime
