// A tile of a node's output elements, so that a kernel can produce its output piece by
// piece (memory-bounded execution): the row-major element indices
//   { (first_row + r) * row_stride + s : r in [0, rows), s in [begin, end) }.
// For an output [C, H, W], channels c0..c1 of a band of rows h0..h1 is first_row = c0,
// rows = c1 - c0, row_stride = H*W, [h0*W, h1*W); a contiguous range (Gemm outputs) is
// rows = 1, row_stride = total. Tile position t (0 <= t < size()) maps to element at(t),
// in increasing order.
#pragma once

#include <cstdint>

namespace heinfer::runtime::kernels {

struct OutputTile {
  std::int64_t rows = 1, row_stride = 0, begin = 0, end = 0, first_row = 0;

  /// The whole output of `total` elements.
  static OutputTile all(std::int64_t total) { return {1, total, 0, total, 0}; }

  std::int64_t width() const { return end - begin; }
  std::int64_t size() const { return rows * width(); }
  std::int64_t at(std::int64_t t) const {
    const std::int64_t w = width();
    return (first_row + t / w) * row_stride + begin + t % w;
  }
  /// The tile position of element e (which must belong to the tile).
  std::int64_t position(std::int64_t e) const {
    return (e / row_stride - first_row) * width() + (e % row_stride - begin);
  }
};

}  // namespace heinfer::runtime::kernels
