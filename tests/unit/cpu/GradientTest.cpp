//===- GradientTest.cpp - Kernel VJPs against central finite differences --===//
//
// Everything runs in double. For a random upstream gradient g and every input
// element i, the analytic VJP (J^T g)_i must match
//   sum_k g_k (f(x + h e_i) - f(x - h e_i))_k / (2h),   h = 1e-6.
// Tolerance |analytic - numeric| <= 1e-6 (1 + |numeric|): the central
// difference's truncation error is h^2/6 |f'''| ~ 1e-12 for these O(1)
// inputs, and rounding in <g, f> (at most ~100 outputs of size O(10), each
// good to ~1e-16 relative) contributes <= ~1e-13 / 2h ~ 5e-8. That leaves an
// order of magnitude of margin, while a wrong or missing VJP term is O(1e-2).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "tests/unit/cpu/TestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace halo::cpu {
namespace {

using test::randomIds;
using test::randomVector;
using Vec = std::vector<double>;

constexpr double kStep = 1e-6;
constexpr double kTol = 1e-6;

/// Perturbs each element of `input` (read by `forward`) and compares the
/// directional finite difference of <g, forward()> with analytic[i].
void checkVjp(const char *name, Vec &input, const std::function<Vec()> &forward,
              const Vec &g, const Vec &analytic) {
  ASSERT_EQ(input.size(), analytic.size()) << name;
  for (size_t i = 0; i < input.size(); ++i) {
    double saved = input[i];
    input[i] = saved + kStep;
    Vec plus = forward();
    input[i] = saved - kStep;
    Vec minus = forward();
    input[i] = saved;
    ASSERT_EQ(plus.size(), g.size()) << name;
    double numeric = 0;
    for (size_t k = 0; k < g.size(); ++k)
      numeric += g[k] * (plus[k] - minus[k]);
    numeric /= 2 * kStep;
    ASSERT_NEAR(analytic[i], numeric, kTol * (1 + std::fabs(numeric)))
        << name << " element " << i;
  }
}

TEST(Gradient, Matmul) {
  const int64_t M = 5, N = 4, K = 7;
  for (int t = 0; t < 4; ++t) {
    bool transA = t & 1, transB = t & 2;
    SCOPED_TRACE(::testing::Message()
                 << "transA=" << transA << " transB=" << transB);
    Vec A = randomVector(M * K, 1), B = randomVector(K * N, 2);
    Vec g = randomVector(M * N, 3);
    auto forward = [&] {
      Vec C(M * N);
      matmul(A.data(), B.data(), C.data(), M, N, K, transA, transB);
      return C;
    };
    Vec dA(A.size()), dB(B.size());
    matmulBackward(A.data(), B.data(), g.data(), dA.data(), dB.data(), M, N, K,
                   transA, transB);
    checkVjp("dA", A, forward, g, dA);
    checkVjp("dB", B, forward, g, dB);

    // accumulate adds the same gradients onto what is there.
    Vec accA(A.size(), 1.5), accB(B.size(), -2);
    matmulBackward(A.data(), B.data(), g.data(), accA.data(), accB.data(), M, N,
                   K, transA, transB, /*accumulate=*/true);
    for (size_t i = 0; i < A.size(); ++i)
      EXPECT_NEAR(accA[i], dA[i] + 1.5, 1e-12);
    for (size_t i = 0; i < B.size(); ++i)
      EXPECT_NEAR(accB[i], dB[i] - 2, 1e-12);
  }
}

TEST(Gradient, Embedding) {
  const int64_t T = 7, V = 5, D = 3;
  std::vector<int32_t> ids = {4, 0, 2, 2, 4, 4, 1}; // repeats; id 3 unused
  Vec table = randomVector(V * D, 4), g = randomVector(T * D, 5);
  auto forward = [&] {
    Vec out(T * D);
    EXPECT_TRUE(embedding(ids.data(), table.data(), out.data(), T, V, D).ok());
    return out;
  };
  Vec dTable(V * D, 9);
  ASSERT_TRUE(
      embeddingBackward(ids.data(), g.data(), dTable.data(), T, V, D).ok());
  checkVjp("dTable", table, forward, g, dTable);
}

TEST(Gradient, RmsNorm) {
  const int64_t T = 4, D = 8;
  const double eps = 1e-3; // large enough that dropping it would show
  Vec x = randomVector(T * D, 6, -2, 2), w = randomVector(D, 7, 0.5, 1.5);
  Vec g = randomVector(T * D, 8);
  auto forward = [&] {
    Vec y(T * D);
    rmsNorm(x.data(), w.data(), eps, y.data(), T, D);
    return y;
  };
  Vec dx(T * D), dw(D, 9);
  rmsNormBackward(x.data(), w.data(), eps, g.data(), dx.data(), dw.data(), T,
                  D);
  checkVjp("dx", x, forward, g, dx);
  checkVjp("dw", w, forward, g, dw);
}

TEST(Gradient, Rope) {
  const int64_t B = 2, S = 3, H = 2, hd = 6, T = B * S;
  Vec x = randomVector(T * H * hd, 9), g = randomVector(T * H * hd, 10);
  auto forward = [&] {
    Vec y(x.size());
    rope(x.data(), T, S, H, hd, 10000.0, false, y.data());
    return y;
  };
  Vec dx(x.size());
  rope(g.data(), T, S, H, hd, 10000.0, /*inverse=*/true, dx.data());
  checkVjp("dx", x, forward, g, dx);
}

void checkAttentionVjp(int64_t B, int64_t S, int64_t H, int64_t KV,
                       int64_t hd) {
  SCOPED_TRACE(::testing::Message() << "B=" << B << " S=" << S << " H=" << H
                                    << " KV=" << KV << " hd=" << hd);
  int64_t T = B * S;
  Vec q = randomVector(T * H * hd, 11, -2, 2);
  Vec k = randomVector(T * KV * hd, 12, -2, 2);
  Vec v = randomVector(T * KV * hd, 13);
  Vec g = randomVector(T * H * hd, 14);
  Vec lse(B * H * S);
  auto forward = [&] {
    Vec out(T * H * hd);
    attention(q.data(), k.data(), v.data(), B, S, H, KV, hd, out.data(),
              lse.data());
    return out;
  };
  Vec out = forward();
  Vec dq(q.size(), 9), dk(k.size(), 9), dv(v.size(), 9);
  attentionBackward(q.data(), k.data(), v.data(), out.data(), lse.data(),
                    g.data(), B, S, H, KV, hd, dq.data(), dk.data(), dv.data());
  checkVjp("dq", q, forward, g, dq);
  checkVjp("dk", k, forward, g, dk);
  checkVjp("dv", v, forward, g, dv);
}

TEST(Gradient, AttentionGroupedQuery) { checkAttentionVjp(2, 5, 4, 2, 4); }

TEST(Gradient, AttentionAcrossQueryBlocks) {
  // S > 64: dk/dv gather contributions from several query blocks.
  checkAttentionVjp(1, 67, 2, 1, 2);
}

TEST(Gradient, Silu) {
  const int64_t n = 40;
  Vec x = randomVector(n, 15, -6, 6), g = randomVector(n, 16);
  auto forward = [&] {
    Vec y(n);
    silu(x.data(), y.data(), n);
    return y;
  };
  Vec dx(n);
  siluBackward(x.data(), g.data(), dx.data(), n);
  checkVjp("dx", x, forward, g, dx);
}

TEST(Gradient, CrossEntropyWithIgnoredTargets) {
  const int64_t T = 6, V = 5;
  Vec logits = randomVector(T * V, 17, -3, 3);
  std::vector<int32_t> tgt = randomIds(T, 18, 0, V - 1);
  tgt[1] = -1;
  tgt[4] = -100;
  const double dLoss = 0.7;
  auto forward = [&] {
    return Vec{crossEntropy(logits.data(), tgt.data(), T, V)};
  };
  Vec dLogits(T * V, 9);
  crossEntropyBackward(logits.data(), tgt.data(), dLoss, dLogits.data(), T, V);
  checkVjp("dLogits", logits, forward, Vec{dLoss}, dLogits);
  for (int64_t j = 0; j < V; ++j)
    EXPECT_EQ(dLogits[1 * V + j], 0.0);
}

} // namespace
} // namespace halo::cpu
