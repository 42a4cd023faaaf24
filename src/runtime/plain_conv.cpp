#include "runtime/plain_conv.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace heinfer::runtime {
bool plain_conv_applies(const model::ConvParams& p, std::int64_t out_channels, std::int64_t batch) {
  return p.kernel.size() == 2 && p.group > 0 && out_channels / p.group >= 4 && batch >= 8;
}

void plain_conv(const model::ConvParams& p, std::span<const double> w, std::span<const double> bias,
                const PlainTensor& x, const PlainTensor* z, PlainTensor& y, std::int64_t chunk_bytes) {
  if (p.kernel.size() != 2 || x.shape.size() != 3 || y.shape.size() != 3 || x.batch != y.batch) {
    throw std::invalid_argument("plain_conv: a 2-D convolution of [C, H, W] tensors with one batch is expected");
  }
  const std::int64_t B = x.batch;
  const std::int64_t C = x.shape[0], H = x.shape[1], W = x.shape[2];
  const std::int64_t M = y.shape[0], OH = y.shape[1], OW = y.shape[2];
  const std::int64_t KH = p.kernel[0], KW = p.kernel[1];
  const std::int64_t sh = p.strides[0], sw = p.strides[1], dh = p.dilations[0], dw = p.dilations[1];
  const std::int64_t ph = p.pads_begin[0], pw = p.pads_begin[1];
  const std::int64_t cg = C / p.group, mg = M / p.group, ks = KH * KW, K = cg * ks, O = OH * OW;
  if (static_cast<std::int64_t>(w.size()) != M * K || (!bias.empty() && static_cast<std::int64_t>(bias.size()) != M) ||
      (z && (z->shape != y.shape || z->batch != B))) {
    throw std::invalid_argument("plain_conv: weights, bias or residual do not match the shapes");
  }
  // Y starts as bias (+ residual); the products accumulate onto it (beta = 1).
  for (std::int64_t m = 0; m < M; ++m) {
    const double b0 = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(m)];
    double* ym = y.data.data() + m * O * B;
    if (z) {
      const double* zm = z->data.data() + m * O * B;
      for (std::int64_t i = 0; i < O * B; ++i) ym[i] = zm[i] + b0;
    } else {
      std::fill(ym, ym + O * B, b0);
    }
  }
  const bool direct = ks == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && OH == H && OW == W;
  const std::int64_t per_position = K * B * static_cast<std::int64_t>(sizeof(double));
  const std::int64_t chunk = direct ? O : std::clamp<std::int64_t>(chunk_bytes / per_position, 1, O);
  std::vector<double> col(direct ? 0 : static_cast<std::size_t>(K * chunk * B));
  for (std::int64_t gi = 0; gi < p.group; ++gi) {
    const double* wg = w.data() + gi * mg * K;
    for (std::int64_t o0 = 0; o0 < O; o0 += chunk) {
      const std::int64_t n = std::min(chunk, O - o0);
      const double* bmat = nullptr;
      std::int64_t ldb = 0;
      if (direct) {
        bmat = x.data.data() + (gi * cg * H * W + o0) * B;
        ldb = H * W * B;
      } else {
#pragma omp parallel for schedule(static)
        for (std::int64_t r = 0; r < K; ++r) {
          const std::int64_t c = gi * cg + r / ks, kp = r % ks, kh = kp / KW, kw = kp % KW;
          double* dst = col.data() + r * n * B;
          for (std::int64_t j = 0; j < n; ++j) {
            const std::int64_t o = o0 + j, oh = o / OW, ow = o % OW;
            const std::int64_t ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
            double* d = dst + j * B;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              std::fill(d, d + B, 0.0);
            } else {
              std::memcpy(d, x.data.data() + ((c * H + ih) * W + iw) * B, static_cast<std::size_t>(B) * sizeof(double));
            }
          }
        }
        bmat = col.data();
        ldb = n * B;
      }
      double* cmat = y.data.data() + (gi * mg * O + o0) * B;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(mg), static_cast<int>(n * B),
                  static_cast<int>(K), 1.0, wg, static_cast<int>(K), bmat, static_cast<int>(ldb), 1.0, cmat,
                  static_cast<int>(O * B));
    }
  }
}

}  // namespace heinfer::runtime
