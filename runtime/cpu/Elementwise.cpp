//===- Elementwise.cpp - SiLU, mul, add, scale, sum of squares ------------===//
//
// Plain loops the compiler vectorises. sigmoid is written as 1 / (1 + e^-x),
// which overflows gracefully (e^-x = inf gives 0) for very negative x. The sum
// of squares accumulates in double because it feeds the global gradient norm
// over hundreds of millions of elements.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"

#include <cmath>

namespace halo::cpu {
namespace {

template <typename F> F sigmoid(F x) { return F(1) / (F(1) + std::exp(-x)); }

} // namespace

template <typename F> void silu(const F *x, F *y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = x[i] * sigmoid(x[i]);
}

template <typename F>
void siluBackward(const F *x, const F *dy, F *dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    F s = sigmoid(x[i]);
    dx[i] = dy[i] * s * (F(1) + x[i] * (F(1) - s));
  }
}

template <typename F> void mul(const F *a, const F *b, F *y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] * b[i];
}

template <typename F> void add(const F *a, const F *b, F *y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

template <typename F> void scale(F *x, int64_t n, F s) {
  for (int64_t i = 0; i < n; ++i)
    x[i] *= s;
}

template <typename F> double sumSquares(const F *x, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += double(x[i]) * double(x[i]);
  return sum;
}

#define HALO_INSTANTIATE(F)                                                    \
  template void silu<F>(const F *, F *, int64_t);                              \
  template void siluBackward<F>(const F *, const F *, F *, int64_t);           \
  template void mul<F>(const F *, const F *, F *, int64_t);                    \
  template void add<F>(const F *, const F *, F *, int64_t);                    \
  template void scale<F>(F *, int64_t, F);                                     \
  template double sumSquares<F>(const F *, int64_t);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

} // namespace halo::cpu
