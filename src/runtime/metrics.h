// Classification metrics on model outputs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace heinfer::runtime {

/// Index of the largest value of each row of a batch-major [rows, cols] array; the first
/// index wins ties. Throws std::invalid_argument if values.size() != rows * cols.
std::vector<std::int64_t> argmax_rows(std::span<const float> values, std::int64_t rows,
                                      std::int64_t cols);

/// Number of rows whose prediction equals the label (predictions.size() == labels.size(),
/// else std::invalid_argument).
std::int64_t count_correct(std::span<const std::int64_t> predictions,
                           std::span<const std::int64_t> labels);

}  // namespace heinfer::runtime
