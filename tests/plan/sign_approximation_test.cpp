// The sign and ReLU approximations of the model-private mode (plan/sign_approximation.h):
// the chosen composites meet their targets on a grid far denser than the certificate's,
// and the choice follows the target (fewer compositions for a looser one).
#include <gtest/gtest.h>

#include <cmath>

#include "plan/sign_approximation.h"

namespace heinfer::plan {
namespace {

TEST(SignApproximation, TheTwoPolynomialsKeepTheirProperties) {
  // f and g map [-1, 1] into [-1, 1]; g maps [0.2, 1] into [3/4, 1]; f(1) = 1.
  for (int i = -100000; i <= 100000; ++i) {
    const double x = i / 100000.0;
    EXPECT_LE(std::fabs(kSignF3(x)), 1.0 + 1e-12);
    EXPECT_LE(std::fabs(kSignG3(x)), 1.0 + 1e-12);
    if (x >= 0.2) {
      EXPECT_GE(kSignG3(x), 0.748);
    }
  }
  EXPECT_DOUBLE_EQ(kSignF3(1.0), 1.0);
  EXPECT_DOUBLE_EQ(kSignF3.derivative(0.0), 35.0 / 16);
}

TEST(SignApproximation, ChosenCompositesMeetTheirTargets) {
  int previous = 0;
  for (int a : {4, 6, 8, 10, 12}) {
    const double eps = std::ldexp(1.0, -a);
    const SignComposite p = choose_sign_composite(eps, a);
    EXPECT_LE(p.max_error, std::ldexp(1.0, -a));
    EXPECT_GE(p.compositions(), previous) << "a tighter target never needs fewer compositions";
    previous = p.compositions();
    // 16 times denser than the certificate's grid, and both signs.
    double worst = 0;
    for (int i = 0; i <= (1 << 22); ++i) {
      const double x = eps + (1 - eps) * i / double(1 << 22);
      worst = std::max({worst, std::fabs(1 - p(x)), std::fabs(1 + p(-x))});
    }
    EXPECT_LE(worst, std::ldexp(1.0, -a)) << "eps = alpha = 2^-" << a;
    // And no composite with one composition less meets it (the choice is the fewest).
    if (p.compositions() > 1) {
      for (int g = 0; g < p.compositions(); ++g) {
        SignComposite q{g, p.compositions() - 1 - g, 0};
        double e = 0;
        for (int i = 0; i <= (1 << 16); ++i) e = std::max(e, std::fabs(1 - q(eps + (1 - eps) * i / double(1 << 16))));
        EXPECT_GT(e, std::ldexp(1.0, -a) * 0.999) << "g=" << g;
      }
    }
  }
  EXPECT_EQ(choose_sign_composite(0x1p-8, 8).compositions(), 6);  // depth 18: the figure in docs
}

TEST(SignApproximation, ReluWithinItsTargetEverywhere) {
  for (double eta : {0x1p-6, 0x1p-8, 0x1p-10}) {
    const ReluApproximation r = choose_relu_approximation(12.5, eta);
    EXPECT_LE(r.max_abs_error, eta * 12.5 * (1 + 1e-12));
    double worst = 0;
    for (int i = -(1 << 20); i <= (1 << 20); ++i) {
      const double x = 12.5 * i / double(1 << 20);
      worst = std::max(worst, std::fabs(r(x) - std::max(0.0, x)));
    }
    EXPECT_LE(worst, r.max_abs_error) << "eta " << eta;
    EXPECT_EQ(r.depth(), r.sign.depth() + 1);
  }
  EXPECT_THROW(choose_relu_approximation(0, 0x1p-8), std::invalid_argument);
  EXPECT_THROW(choose_relu_approximation(1, 0.5), std::invalid_argument);
  EXPECT_THROW(choose_sign_composite(0x1p-8, 40), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer::plan
