// Two-sample Kolmogorov–Smirnov test for the curious-client tests: whether what a
// client records from two models is distinguishable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace heinfer::test {

/// Two-sample Kolmogorov–Smirnov test: the p-value of the statistic D under the null
/// hypothesis, from the asymptotic Kolmogorov distribution with Stephens' correction
/// (Stephens, JRSS B 1970): Q(λ) = 2 Σ_{j≥1} (-1)^{j-1} exp(-2 j² λ²),
/// λ = (√m + 0.12 + 0.11/√m)·D, m = n1·n2/(n1+n2).
inline double ks_p_value(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  double d = 0;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
  }
  const double m = std::sqrt(static_cast<double>(a.size()) * b.size() / (a.size() + b.size()));
  const double lambda = (m + 0.12 + 0.11 / m) * d;
  if (lambda < 0.2) return 1.0;
  double q = 0;
  for (int k = 1; k <= 100; ++k) q += (k % 2 ? 2.0 : -2.0) * std::exp(-2.0 * k * k * lambda * lambda);
  return std::clamp(q, 0.0, 1.0);
}

}  // namespace heinfer::test
