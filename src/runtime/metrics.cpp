#include "runtime/metrics.h"

#include <stdexcept>

namespace heinfer::runtime {

std::vector<std::int64_t> argmax_rows(std::span<const float> values, std::int64_t rows,
                                      std::int64_t cols) {
  if (rows < 0 || cols <= 0 || static_cast<std::int64_t>(values.size()) != rows * cols) {
    throw std::invalid_argument("argmax_rows: values do not form a [rows, cols] array");
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = values.data() + r * cols;
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < cols; ++c) {
      if (row[c] > row[best]) best = c;
    }
    out[static_cast<std::size_t>(r)] = best;
  }
  return out;
}

std::int64_t count_correct(std::span<const std::int64_t> predictions,
                           std::span<const std::int64_t> labels) {
  if (predictions.size() != labels.size()) {
    throw std::invalid_argument("count_correct: " + std::to_string(predictions.size()) +
                                " predictions for " + std::to_string(labels.size()) + " labels");
  }
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) correct += predictions[i] == labels[i];
  return correct;
}

}  // namespace heinfer::runtime
