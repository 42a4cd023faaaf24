// The kernel-backend concept and its plaintext implementation.
//
// Linear kernels (runtime/kernels/*.h) are templates over a backend that supplies the
// storage of an activation tensor (B::Tensor, one "element" per per-sample tensor
// element) and a few per-element operations. The plaintext backend below works on
// batch vectors (std::span<double> of PlainTensor::element); an encrypted backend
// (batch-axis packing: one ciphertext per element) implements the same operations on
// ciphertexts, so the loop structure, index arithmetic and zero-weight skipping are shared.
// All operations are const and must be safe to call concurrently for distinct outputs
// (kernels parallelize over output elements with OpenMP).
#pragma once

#include <concepts>
#include <cstdint>

#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

/// Requirements on a kernel backend B (e = element index):
///  - `Acc start(Tensor& y, e)`: a zero accumulator for output element e;
///  - `mac(Acc&, const Tensor& x, e, double w)`: acc += w * x[e]; kernels never pass w == 0;
///    a weight outside {-1, 1} makes the element consume one level (CKKS rescale);
///  - `add(Acc&, x, e)` / `sub(Acc&, x, e)`: acc += x[e] / acc -= x[e] (no level);
///  - `add_const(Acc&, double c)`: acc += c for every sample;
///  - `finish(Tensor& y, e, Acc&)`: stores the accumulator as y[e] (rescale if needed);
///  - `copy(y, e_out, x, e_in)`: y[e_out] = x[e_in];  `fill(y, e, c)`: y[e] = c;
///  - `multiply(y, e_out, a, e_a, b, e_b)`: y[e_out] = a[e_a] * b[e_b] (ciphertext product,
///    relinearized, one level; a square when a and b are the same element);
///  - `bool parallel(std::int64_t element_ops)`: whether a kernel loop doing that many
///    per-element operations is worth an OpenMP parallel region.
template <class B>
concept KernelBackend = requires(const B& be, typename B::Tensor& y, const typename B::Tensor& x,
                                 typename B::Acc& acc, std::int64_t e, double w) {
  { be.start(y, e) } -> std::same_as<typename B::Acc>;
  be.mac(acc, x, e, w);
  be.add(acc, x, e);
  be.sub(acc, x, e);
  be.add_const(acc, w);
  be.finish(y, e, acc);
  be.copy(y, e, x, e);
  be.fill(y, e, w);
  be.multiply(y, e, x, e, x, e);
  { be.parallel(e) } -> std::convertible_to<bool>;
};

/// Plaintext backend: each element is the float64 batch vector PlainTensor::element(e).
/// The accumulator is the output batch vector itself; batches of one or two samples
/// accumulate in registers (s0, s1) instead, stored by finish().
struct PlainBackend {
  using Tensor = PlainTensor;
  struct Acc {
    double* p;       ///< the output batch vector
    std::int64_t n;  ///< batch
    double s0, s1;   ///< running sums when n <= 2
  };

  std::int64_t batch = 1;  ///< samples per element (set by the executor)

  /// Parallelize when the loop touches at least 2^18 doubles (OpenMP start-up and
  /// wake-up costs dominate below that).
  bool parallel(std::int64_t element_ops) const { return element_ops * batch >= (1 << 18); }

  Acc start(Tensor& y, std::int64_t e) const {
    Acc a{y.data.data() + e * y.batch, y.batch, 0.0, 0.0};
    if (a.n > 2) {
      for (std::int64_t b = 0; b < a.n; ++b) a.p[b] = 0.0;
    }
    return a;
  }
  void mac(Acc& a, const Tensor& x, std::int64_t e, double w) const {
    const double* s = x.data.data() + e * a.n;
    if (a.n == 1) {
      a.s0 += w * s[0];
    } else if (a.n == 2) {
      a.s0 += w * s[0];
      a.s1 += w * s[1];
    } else {
      for (std::int64_t b = 0; b < a.n; ++b) a.p[b] += w * s[b];
    }
  }
  void add(Acc& a, const Tensor& x, std::int64_t e) const { axpy(a, x, e, 1.0); }
  void sub(Acc& a, const Tensor& x, std::int64_t e) const { axpy(a, x, e, -1.0); }
  void add_const(Acc& a, double c) const {
    if (a.n <= 2) {
      a.s0 += c;
      a.s1 += c;
    } else {
      for (std::int64_t b = 0; b < a.n; ++b) a.p[b] += c;
    }
  }
  void finish(Tensor& /*y*/, std::int64_t /*e*/, Acc& a) const {
    if (a.n <= 2) a.p[0] = a.s0;
    if (a.n == 2) a.p[1] = a.s1;
  }
  void copy(Tensor& y, std::int64_t eo, const Tensor& x, std::int64_t ei) const {
    const double* s = x.data.data() + ei * y.batch;
    double* d = y.data.data() + eo * y.batch;
    for (std::int64_t b = 0; b < y.batch; ++b) d[b] = s[b];
  }
  void fill(Tensor& y, std::int64_t e, double c) const {
    double* d = y.data.data() + e * y.batch;
    for (std::int64_t b = 0; b < y.batch; ++b) d[b] = c;
  }
  void multiply(Tensor& y, std::int64_t eo, const Tensor& a, std::int64_t ea, const Tensor& b,
                std::int64_t eb) const {
    const double* s = a.data.data() + ea * y.batch;
    const double* t = b.data.data() + eb * y.batch;
    double* d = y.data.data() + eo * y.batch;
    for (std::int64_t k = 0; k < y.batch; ++k) d[k] = s[k] * t[k];
  }

 private:
  /// acc += sign * x[e] (exact for sign = +-1).
  void axpy(Acc& a, const Tensor& x, std::int64_t e, double sign) const {
    const double* s = x.data.data() + e * a.n;
    if (a.n <= 2) {
      a.s0 += sign * s[0];
      if (a.n == 2) a.s1 += sign * s[1];
    } else {
      for (std::int64_t b = 0; b < a.n; ++b) a.p[b] += sign * s[b];
    }
  }
};

static_assert(KernelBackend<PlainBackend>);

}  // namespace heinfer::runtime
