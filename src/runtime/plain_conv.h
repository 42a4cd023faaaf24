// Conv of the plaintext executor as matrix products (im2col + BLAS dgemm).
#pragma once

#include <span>

#include "model/op_params.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// Whether plain_conv is the faster way for this Conv: 2-D, at least 4 output channels
/// per group and a batch of at least 8 (below that the generic kernel's per-element
/// loops are as fast and the im2col copies dominate).
bool plain_conv_applies(const model::ConvParams& p, std::int64_t out_channels, std::int64_t batch);

/// The ONNX Conv of kernels/conv.h on element-major, batch-innermost tensors
/// (runtime/plain_tensor.h), as one matrix product per group and chunk of output
/// positions: Y_g[m, (o, b)] = sum_(c, kp) W_g[m, (c, kp)] * Xcol[(c, kp), (o, b)], where
/// Xcol holds the (zero-padded) input under each kernel position for the chunk (im2col,
/// Chellapilla et al., "High performance convolutional neural networks for document
/// processing", 2006). A 1x1 convolution with unit stride and no padding reads X itself.
/// The product is OpenBLAS's cblas_dgemm (float64, its OpenMP threads). `z` (residual)
/// is null or has y's shape. y must be allocated (make_plain_tensor) with x's batch.
/// `chunk_bytes` bounds the im2col buffer (whole output positions, at least one).
/// Throws std::invalid_argument when the shapes do not fit the parameters.
void plain_conv(const model::ConvParams& p, std::span<const double> w, std::span<const double> bias,
                const PlainTensor& x, const PlainTensor* z, PlainTensor& y,
                std::int64_t chunk_bytes = std::int64_t{32} << 20);

}  // namespace heinfer::runtime
