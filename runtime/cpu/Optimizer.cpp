//===- Optimizer.cpp - AdamW step and learning-rate schedules -------------===//
//
// AdamW follows torch.optim.AdamW: weight decay is applied to the parameter
// before the Adam update (decoupled, not added to the gradient), and the bias
// corrections 1 - beta^step are computed once per call in double. The moments
// are stored in F; the per-element arithmetic is in F too.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "runtime/numerics/Float8.h"

#include <algorithm>
#include <cmath>

namespace halo::cpu {

template <typename F>
void adamw(F *param, const F *grad, F *m, F *v, int64_t n, double lr,
           double beta1, double beta2, double eps, double weightDecay,
           int64_t step, bool bf16Moments, bool bf16Param) {
  F decay = F(1 - lr * weightDecay);
  // 1 - beta in double: float(1) - float(0.999) is off by 1.3e-5 relative.
  F b1 = F(beta1), b2 = F(beta2), a1 = F(1 - beta1), a2 = F(1 - beta2);
  F c1 = F(1 / (1 - std::pow(beta1, double(step))));
  F c2 = F(1 / (1 - std::pow(beta2, double(step))));
  F lrF = F(lr), epsF = F(eps);
  for (int64_t i = 0; i < n; ++i) {
    F g = grad[i];
    F mi = b1 * m[i] + a1 * g;
    F vi = b2 * v[i] + a2 * g * g;
    F mhat = mi * c1, vhat = vi * c2;
    F p = param[i] * decay - lrF * mhat / (std::sqrt(vhat) + epsF);
    param[i] = bf16Param ? F(numerics::stochasticRoundToBF16(
                               float(p), numerics::paramRoundingBits(step, i)))
                         : p;
    if (bf16Moments) {
      uint32_t bits = numerics::momentRoundingBits(step, i);
      mi = F(numerics::stochasticRoundToBF16(float(mi), bits));
      vi = F(numerics::stochasticRoundToBF16(float(vi), bits >> 16));
    }
    m[i] = mi;
    v[i] = vi;
  }
}

double learningRate(int64_t step, double peak, int64_t warmup, int64_t total,
                    Schedule schedule) {
  constexpr double kPi = 3.14159265358979323846;
  if (warmup > 0 && step <= warmup)
    return peak * double(step) / double(warmup);
  if (schedule == Schedule::Constant)
    return peak;
  double progress = std::clamp(double(step - warmup) /
                                   double(std::max<int64_t>(1, total - warmup)),
                               0.0, 1.0);
  if (schedule == Schedule::Linear)
    return peak * (1 - progress);
  return peak * 0.5 * (1 + std::cos(kPi * progress));
}

template void adamw<float>(float *, const float *, float *, float *, int64_t,
                           double, double, double, double, double, int64_t, bool, bool);
template void adamw<double>(double *, const double *, double *, double *,
                            int64_t, double, double, double, double, double,
                            int64_t, bool, bool);

} // namespace halo::cpu
