#include "plan/sign_approximation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace heinfer::plan {

double OddSeptic::operator()(double x) const {
  const double x2 = x * x;
  return x * (c[0] + x2 * (c[1] + x2 * (c[2] + x2 * c[3])));
}

double OddSeptic::derivative(double x) const {
  const double x2 = x * x;
  return c[0] + x2 * (3 * c[1] + x2 * (5 * c[2] + x2 * 7 * c[3]));
}

double SignComposite::operator()(double x) const {
  for (int i = 0; i < g_count; ++i) x = kSignG3(x);
  for (int i = 0; i < f_count; ++i) x = kSignF3(x);
  return x;
}

namespace {

/// max over the grid of |1 - p(xᵢ)| + |p'(xᵢ)|·h for the composite (g, f).
double certified_error(int g, int f, double epsilon) {
  constexpr int kPoints = (1 << 18) + 1;
  const double h = (1.0 - epsilon) / (kPoints - 1);
  double worst = 0;
  for (int i = 0; i < kPoints; ++i) {
    double x = epsilon + h * i, slope = 1.0;
    for (int k = 0; k < g; ++k) {
      slope *= kSignG3.derivative(x);
      x = kSignG3(x);
    }
    for (int k = 0; k < f; ++k) {
      slope *= kSignF3.derivative(x);
      x = kSignF3(x);
    }
    worst = std::max(worst, std::fabs(1.0 - x) + std::fabs(slope) * h);
  }
  return worst;
}

}  // namespace

SignComposite choose_sign_composite(double epsilon, int alpha_bits) {
  if (!(epsilon >= 0x1p-20 && epsilon <= 0.5) || alpha_bits < 1 || alpha_bits > 30) {
    throw std::invalid_argument("choose_sign_composite: needs 2^-20 <= epsilon <= 1/2 and 1 <= alpha <= 30");
  }
  const double target = std::ldexp(1.0, -alpha_bits);
  for (int total = 1; total <= 16; ++total) {
    for (int g = 0; g <= total; ++g) {
      const double err = certified_error(g, total - g, epsilon);
      if (err <= target) return {g, total - g, err};
    }
  }
  throw std::invalid_argument("choose_sign_composite: no composite of at most 16 compositions reaches 2^-" +
                              std::to_string(alpha_bits) + " beyond epsilon " + std::to_string(epsilon));
}

double ReluApproximation::operator()(double x) const { return 0.5 * (x + x * sign(x / bound)); }

ReluApproximation choose_relu_approximation(double bound, double relative_error) {
  if (!std::isfinite(bound) || bound <= 0 || !(relative_error >= 0x1p-19 && relative_error <= 0.25)) {
    throw std::invalid_argument("choose_relu_approximation: needs a finite positive bound and 2^-19 <= eta <= 1/4");
  }
  ReluApproximation r;
  r.bound = bound;
  const int alpha = static_cast<int>(std::ceil(std::log2(1.0 / relative_error))) - 1;
  r.sign = choose_sign_composite(relative_error, std::max(1, alpha));
  r.max_abs_error = bound * std::max(relative_error, r.sign.max_error / 2);
  return r;
}

}  // namespace heinfer::plan
