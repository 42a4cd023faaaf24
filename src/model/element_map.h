// Data movement as explicit element maps: y[o] = x[source[o]], or a fill value where
// source[o] < 0. One definition of each op's index semantics, shared by the constant
// evaluator (full ONNX shapes) and the executors (per-sample shapes, via ElementMapParams).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/shape.h"

namespace heinfer::model {

/// Largest output of a computed tensor: an element map (8 bytes per element) or a constant
/// computed at load time (ConstantOfShape, Range, Expand, broadcasting), 2^22 elements
/// (32 MiB): above VGG's largest per-sample activation at 224 x 224 (3.2 million), and a
/// small file cannot make the loader allocate more or spend long on it.
inline constexpr std::int64_t kMaxComputedElements = std::int64_t{1} << 22;

/// Budget of a whole load: elements read and written by every node evaluated at load time
/// together, 2^23 (twice the largest computed tensor). Each node stays under
/// kMaxComputedElements; this bounds their sum, so a chain of many large constant ops in a
/// small file cannot make a load slow.
inline constexpr std::int64_t kMaxLoadTimeElements = std::int64_t{1} << 23;

/// Budget of a whole load for the maps built on activations (entries of element maps and
/// sparse linear maps: Pad, Slice, Gather, Expand, Resize), 2^26 (512 MiB of int64
/// sources): each is at most kMaxComputedElements; this bounds their sum (a VGG-sized model
/// at 224 x 224 with explicit Pad nodes needs about 2^25).
inline constexpr std::int64_t kMaxLoadMapEntries = std::int64_t{1} << 26;

/// numel(shape), or ModelError (prefixed by `context`) beyond kMaxComputedElements.
std::int64_t computed_elements(const Shape& shape, const std::string& context);

/// Row-major output shape and, per output element, the row-major input element it copies
/// (-1: the fill value).
struct ElementMap {
  Shape out;
  std::vector<std::int64_t> source;
};

/// ONNX Transpose: out[i] = in[perm[i]]. perm must be a permutation of the axes.
ElementMap transpose_map(const Shape& in, const std::vector<std::int64_t>& perm);

/// ONNX Slice-13 on the given (normalized, distinct) axes: starts/ends clamped as the
/// operator specifies (negative values count from the end; steps may be negative, not 0).
/// Throws ModelError (prefixed by `context`) on a zero step or mismatched list lengths.
ElementMap slice_map(const Shape& in, const std::vector<std::int64_t>& starts,
                     const std::vector<std::int64_t>& ends, const std::vector<std::int64_t>& axes,
                     const std::vector<std::int64_t>& steps, const std::string& context);

/// ONNX Gather-13 along normalized `axis`: out = in[:axis] + indices_shape + in[axis+1:];
/// negative indices count from the end. Throws ModelError on an index out of range.
ElementMap gather_map(const Shape& in, std::int64_t axis, const Shape& indices_shape,
                      const std::vector<std::int64_t>& indices, const std::string& context);

/// ONNX Expand-13: numpy broadcast of `in` against `shape` (the result has the larger rank).
ElementMap expand_map(const Shape& in, const Shape& shape, const std::string& context);

/// How Pad fills the border (ONNX Pad-13 `mode`).
enum class PadMode { Constant, Reflect, Edge };

/// ONNX Pad-13: out[d] = in[d] + begin[d] + end[d]; negative pads crop. Constant mode maps
/// the border to -1 (the fill value); reflect mirrors without repeating the edge element
/// (needs in[d] > pad on a padded axis); edge repeats the edge element.
/// Throws ModelError when an axis is cropped to nothing or reflect padding is too wide.
ElementMap pad_map(const Shape& in, const Shape& begin, const Shape& end, PadMode mode,
                   const std::string& context);

/// y = x[map.source] with `fill` where the source is -1 (x, y row-major).
std::vector<double> apply_element_map(const ElementMap& map, const std::vector<double>& x,
                                      double fill = 0.0);

}  // namespace heinfer::model
