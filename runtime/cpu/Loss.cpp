//===- Loss.cpp - Mean token cross entropy with ignored targets -----------===//
//
// Each row uses a max-shifted log-sum-exp, so large logits never overflow.
// Rows are independent and split over the pool; per-row losses are summed in
// double in row order afterwards, so the result does not depend on the split.
// Ignored rows (target < 0) contribute nothing and are excluded from the mean.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace halo::cpu {
namespace {

template <typename F> F logSumExp(const F *row, int64_t V) {
  F mx = *std::max_element(row, row + V);
  F sum = 0;
  for (int64_t j = 0; j < V; ++j)
    sum += std::exp(row[j] - mx);
  return mx + std::log(sum);
}

int64_t countTargets(const int32_t *targets, int64_t T) {
  return std::count_if(targets, targets + T, [](int32_t t) { return t >= 0; });
}

} // namespace

template <typename F>
F crossEntropy(const F *logits, const int32_t *targets, int64_t T, int64_t V) {
  int64_t count = countTargets(targets, T);
  if (count == 0)
    return F(0);
  std::vector<F> rowLoss(T, F(0));
  parallelFor(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      if (targets[t] < 0)
        continue;
      const F *row = logits + t * V;
      rowLoss[t] = logSumExp(row, V) - row[targets[t]];
    }
  });
  double total = 0;
  for (F l : rowLoss)
    total += double(l);
  return F(total / double(count));
}

template <typename F>
void crossEntropyBackward(const F *logits, const int32_t *targets, F dLoss,
                          F *dLogits, int64_t T, int64_t V) {
  int64_t count = countTargets(targets, T);
  F rowScale = count ? dLoss / F(count) : F(0);
  parallelFor(T, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      F *grad = dLogits + t * V;
      if (targets[t] < 0) {
        std::fill(grad, grad + V, F(0));
        continue;
      }
      const F *row = logits + t * V;
      F lse = logSumExp(row, V);
      for (int64_t j = 0; j < V; ++j)
        grad[j] = rowScale * std::exp(row[j] - lse);
      grad[targets[t]] -= rowScale;
    }
  });
}

#define HALO_INSTANTIATE(F)                                                    \
  template F crossEntropy<F>(const F *, const int32_t *, int64_t, int64_t);    \
  template void crossEntropyBackward<F>(const F *, const int32_t *, F, F *,    \
                                        int64_t, int64_t);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

} // namespace halo::cpu
