//===- OptimizerTest.cpp - AdamW, LR schedules and RoPE round trips -------===//
//
// AdamW is checked against a two-step example worked by hand (the
// intermediate values are in the comments), the schedules at their boundary
// steps, and RoPE's inverse against the forward at long positions and in
// place.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "runtime/numerics/Float8.h"
#include "tests/unit/cpu/TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>

namespace halo::cpu {
namespace {

using test::randomVector;

template <typename F> void twoAdamwSteps(double tol) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, p0 = 1.
  // Step 1, g = 0.5: p = 1 * 0.999 = 0.999; m = 0.05; v = 0.00025;
  //   mhat = 0.05 / 0.1 = 0.5; vhat = 0.00025 / 0.001 = 0.25;
  //   p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899000002.
  // Step 2, g = -0.25: p = 0.899000002 * 0.999 = 0.898101001998;
  //   m = 0.045 - 0.025 = 0.02; v = 0.00024975 + 0.0000625 = 0.00031225;
  //   mhat = 0.02 / 0.19 = 0.105263157894737;
  //   vhat = 0.00031225 / 0.001999 = 0.156203101550778, sqrt = 0.395225381;
  //   p = 0.898101001998 - 0.1 * 0.105263157894737 / 0.395225391
  //     = 0.871467298705846.
  F p = 1, m = 0, v = 0;
  F g1 = 0.5, g2 = -0.25;
  adamw(&p, &g1, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1);
  EXPECT_NEAR(p, 0.899000002, tol);
  EXPECT_NEAR(m, 0.05, tol);
  EXPECT_NEAR(v, 0.00025, tol * 1e-3);
  adamw(&p, &g2, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 2);
  EXPECT_NEAR(p, 0.871467298705846, tol);
  EXPECT_NEAR(m, 0.02, tol);
  EXPECT_NEAR(v, 0.00031225, tol * 1e-3);
}

TEST(Adamw, TwoStepsByHand) {
  twoAdamwSteps<double>(1e-12);
  twoAdamwSteps<float>(1e-6);
}

TEST(Adamw, ZeroGradientOnlyDecays) {
  std::vector<float> p = {2, -4}, g = {0, 0}, m = {0, 0}, v = {0, 0};
  adamw(p.data(), g.data(), m.data(), v.data(), 2, 0.5, 0.9, 0.95, 1e-8, 0.1,
        1);
  EXPECT_FLOAT_EQ(p[0], 2 * 0.95f);
  EXPECT_FLOAT_EQ(p[1], -4 * 0.95f);
}

// With round-to-nearest, BF16 v = 0.999 v never decays (the change is below
// half an ulp); stochastic rounding tracks 0.999^k on average.
TEST(Adamw, Bf16MomentsDecayOnAverage) {
  const int64_t n = 4096;
  const int steps = 100;
  std::vector<float> p(n, 1), g(n, 0), m(n, 0), v(n, 1);
  for (int s = 1; s <= steps; ++s)
    adamw(p.data(), g.data(), m.data(), v.data(), n, 1e-3, 0.9, 0.999, 1e-8, 0, s, true);
  double mean = 0;
  for (float x : v) {
    ASSERT_EQ(x, numerics::roundToBF16(x)) << "v is not stored as BF16";
    mean += x;
  }
  mean /= n;
  EXPECT_NEAR(mean, std::pow(0.999, steps), 2e-3);
  std::vector<float> stuck(n, 1);
  for (int s = 1; s <= steps; ++s)
    for (float &x : stuck)
      x = numerics::roundToBF16(0.999f * x);
  EXPECT_EQ(stuck[0], 1.0f);
}

// BF16 weights (train.master_dtype): Adam steps of lr = 1e-4 are a fortieth
// of an ulp at 1, so round-to-nearest would never move the weight; stochastic
// rounding moves it by the steps' sum on average.
TEST(Adamw, Bf16WeightsFollowSmallUpdatesOnAverage) {
  const int64_t n = 4096;
  const int steps = 100;
  std::vector<float> p(n, 1), g(n, 1), m(n, 0), v(n, 0);
  for (int s = 1; s <= steps; ++s)
    adamw(p.data(), g.data(), m.data(), v.data(), n, 1e-4, 0.9, 0.999, 1e-8, 0, s, false,
          true);
  double mean = 0;
  for (float x : p) {
    ASSERT_EQ(x, numerics::roundToBF16(x)) << "p is not stored as BF16";
    mean += x;
  }
  mean /= n;
  // m / sqrt(v) after bias correction is 1 for a constant gradient.
  EXPECT_NEAR(mean, 1 - steps * 1e-4, 5e-4);
  EXPECT_NE(p[0], p[1]) << "every element rounded the same way";
}

TEST(Schedule, BoundarySteps) {
  const double peak = 1e-3;
  const int64_t warmup = 10, total = 110;
  for (Schedule s : {Schedule::Constant, Schedule::Linear, Schedule::Cosine}) {
    EXPECT_DOUBLE_EQ(learningRate(1, peak, warmup, total, s), 1e-4);
    EXPECT_DOUBLE_EQ(learningRate(5, peak, warmup, total, s), 5e-4);
    EXPECT_DOUBLE_EQ(learningRate(warmup, peak, warmup, total, s), peak);
  }
  auto lr = [&](int64_t step, Schedule s) {
    return learningRate(step, peak, warmup, total, s);
  };
  EXPECT_DOUBLE_EQ(lr(11, Schedule::Constant), peak);
  EXPECT_DOUBLE_EQ(lr(500, Schedule::Constant), peak);
  EXPECT_DOUBLE_EQ(lr(11, Schedule::Linear), 0.99e-3);
  EXPECT_DOUBLE_EQ(lr(60, Schedule::Linear), 0.5e-3);
  EXPECT_DOUBLE_EQ(lr(total, Schedule::Linear), 0);
  EXPECT_DOUBLE_EQ(lr(total + 5, Schedule::Linear), 0);
  // 0.5 (1 + cos(pi / 100)) * 1e-3
  EXPECT_NEAR(lr(11, Schedule::Cosine), 0.0009997532801828658, 1e-18);
  EXPECT_NEAR(lr(60, Schedule::Cosine), 0.5e-3, 1e-18);
  EXPECT_NEAR(lr(total, Schedule::Cosine), 0, 1e-18);
  EXPECT_NEAR(lr(total + 5, Schedule::Cosine), 0, 1e-18);
  // No warm-up: decay starts at step 1.
  EXPECT_DOUBLE_EQ(learningRate(1, peak, 0, 100, Schedule::Linear), 0.99e-3);
  EXPECT_DOUBLE_EQ(learningRate(0, peak, 0, 100, Schedule::Linear), peak);
}

TEST(Rope, InverseUndoesForward) {
  const int64_t B = 2, S = 2048, H = 2, hd = 64, T = B * S;
  std::vector<float> x = randomVector<float>(T * H * hd, 1, -4, 4);
  std::vector<float> y(x.size());
  rope(x.data(), T, S, H, hd, 500000.0, false, y.data());
  // In place, as the interpreter may do.
  rope(y.data(), T, S, H, hd, 500000.0, true, y.data());
  // cos^2 + sin^2 of the float table is 1 to ~1e-7; two float rotations add a
  // few ulp of |x| <= 4.
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_NEAR(y[i], x[i], 4e-6) << i;
}

} // namespace
} // namespace halo::cpu
