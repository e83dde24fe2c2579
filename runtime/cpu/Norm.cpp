//===- Norm.cpp - RMSNorm forward and VJP ---------------------------------===//
//
// Matches HF LlamaRMSNorm: the mean of squares is taken per token and reduced
// in F, then y = x * rsqrt(ms + eps) * w. With r = rsqrt(ms + eps) the VJP is
//   dx = r * (w . dy) - x * r^3 / D * sum_k(dy_k w_k x_k)
//   dw = sum_t dy_t . x_t * r_t
// (dw is written, not accumulated, so the caller needs no zeroing).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>

namespace halo::cpu {
namespace {

template <typename F> F inverseRms(const F *x, int64_t D, F eps) {
  F ss = 0;
  for (int64_t d = 0; d < D; ++d)
    ss += x[d] * x[d];
  return F(1) / std::sqrt(ss / F(D) + eps);
}

} // namespace

template <typename F>
void rmsNorm(const F *x, const F *w, F eps, F *y, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t) {
    const F *xt = x + t * D;
    F *yt = y + t * D;
    F r = inverseRms(xt, D, eps);
    for (int64_t d = 0; d < D; ++d)
      yt[d] = xt[d] * r * w[d];
  }
}

template <typename F>
void rmsNormBackward(const F *x, const F *w, F eps, const F *dy, F *dx, F *dw,
                     int64_t T, int64_t D) {
  std::fill(dw, dw + D, F(0));
  for (int64_t t = 0; t < T; ++t) {
    const F *xt = x + t * D;
    const F *gt = dy + t * D;
    F *dxt = dx + t * D;
    F r = inverseRms(xt, D, eps);
    F dot = 0;
    for (int64_t d = 0; d < D; ++d) {
      dot += gt[d] * w[d] * xt[d];
      dw[d] += gt[d] * xt[d] * r;
    }
    F c = dot * r * r * r / F(D);
    for (int64_t d = 0; d < D; ++d)
      dxt[d] = r * w[d] * gt[d] - xt[d] * c;
  }
}

template void rmsNorm<float>(const float *, const float *, float, float *,
                             int64_t, int64_t);
template void rmsNorm<double>(const double *, const double *, double, double *,
                              int64_t, int64_t);
template void rmsNormBackward<float>(const float *, const float *, float,
                                     const float *, float *, float *, int64_t,
                                     int64_t);
template void rmsNormBackward<double>(const double *, const double *, double,
                                      const double *, double *, double *,
                                      int64_t, int64_t);

} // namespace halo::cpu
