//===- ForwardTest.cpp - CPU kernels against naive float64 references -----===//
//
// Each kernel runs in float (and matmul also in double) on inputs rounded to
// that type; the references below are deliberately simple float64 loops
// (full score matrix for attention, triple loop for matmul, double-precision
// RoPE angles) written from the op definitions, not from the kernels. Shapes
// are chosen to cross the kernels' internal blocks (matmul KC = 256, MC = 120,
// NC = 2048; attention's 64-row query blocks) and their thread splits.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Kernels.h"
#include "tests/unit/cpu/TestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

namespace halo::cpu {
namespace {

using test::convert;
using test::randomIds;
using test::randomVector;
using Vec = std::vector<double>;

//===----------------------------------------------------------------------===//
// Naive references
//===----------------------------------------------------------------------===//

/// C = op(A) op(B) and, per element, sum_p |op(A)_ip op(B)_pj| (the scale of
/// the rounding error bound).
void naiveMatmul(const Vec &A, const Vec &B, int64_t M, int64_t N, int64_t K,
                 bool transA, bool transB, Vec &C, Vec &absC) {
  C.assign(M * N, 0);
  absC.assign(M * N, 0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t p = 0; p < K; ++p) {
        double a = transA ? A[p * M + i] : A[i * K + p];
        double b = transB ? B[j * K + p] : B[p * N + j];
        C[i * N + j] += a * b;
        absC[i * N + j] += std::fabs(a * b);
      }
}

Vec naiveRmsNorm(const Vec &x, const Vec &w, double eps, int64_t T, int64_t D) {
  Vec y(T * D);
  for (int64_t t = 0; t < T; ++t) {
    double ms = 0;
    for (int64_t d = 0; d < D; ++d)
      ms += x[t * D + d] * x[t * D + d] / double(D);
    for (int64_t d = 0; d < D; ++d)
      y[t * D + d] = x[t * D + d] / std::sqrt(ms + eps) * w[d];
  }
  return y;
}

/// RoPE with the angle in double: pos * theta^(-2i/hd).
Vec naiveRope(const Vec &x, int64_t T, int64_t S, int64_t H, int64_t hd,
              double theta) {
  Vec y(x.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < hd / 2; ++i) {
        double angle = double(t % S) * std::pow(theta, -2.0 * i / hd);
        int64_t lo = (t * H + h) * hd + i, hi = lo + hd / 2;
        y[lo] = x[lo] * std::cos(angle) - x[hi] * std::sin(angle);
        y[hi] = x[hi] * std::cos(angle) + x[lo] * std::sin(angle);
      }
  return y;
}

/// Attention through the full masked S x S score matrix of each (b, h).
void naiveAttention(const Vec &q, const Vec &k, const Vec &v, int64_t B,
                    int64_t S, int64_t H, int64_t KV, int64_t hd, Vec &out,
                    Vec &lse) {
  out.assign(B * S * H * hd, 0);
  lse.assign(B * H * S, 0);
  double scale = 1 / std::sqrt(double(hd));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t g = h / (H / KV);
      Vec scores(S * S, -std::numeric_limits<double>::infinity());
      for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < hd; ++e)
            dot += q[((b * S + i) * H + h) * hd + e] *
                   k[((b * S + j) * KV + g) * hd + e];
          scores[i * S + j] = dot * scale;
        }
      for (int64_t i = 0; i < S; ++i) {
        double mx = *std::max_element(&scores[i * S], &scores[i * S] + S);
        double sum = 0;
        for (int64_t j = 0; j < S; ++j)
          sum += std::exp(scores[i * S + j] - mx);
        lse[(b * H + h) * S + i] = mx + std::log(sum);
        for (int64_t j = 0; j < S; ++j) {
          double p = std::exp(scores[i * S + j] - mx) / sum;
          for (int64_t e = 0; e < hd; ++e)
            out[((b * S + i) * H + h) * hd + e] +=
                p * v[((b * S + j) * KV + g) * hd + e];
        }
      }
    }
}

double naiveCrossEntropy(const Vec &logits, const std::vector<int32_t> &tgt,
                         int64_t T, int64_t V) {
  double total = 0;
  int64_t count = 0;
  for (int64_t t = 0; t < T; ++t) {
    if (tgt[t] < 0)
      continue;
    const double *row = &logits[t * V];
    double mx = *std::max_element(row, row + V), sum = 0;
    for (int64_t j = 0; j < V; ++j)
      sum += std::exp(row[j] - mx);
    total += mx + std::log(sum) - row[tgt[t]];
    ++count;
  }
  return count ? total / double(count) : 0;
}

/// Expects |got - want| <= tol * max(1, |want|) elementwise.
template <typename F>
void expectClose(const std::vector<F> &got, const Vec &want, double tol,
                 const char *what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(double(got[i]), want[i],
                tol * std::max(1.0, std::fabs(want[i])))
        << what << " at " << i;
}

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

struct MatmulShape {
  int64_t M, N, K;
};

template <typename F>
void checkMatmul(const MatmulShape &s, bool transA, bool transB,
                 bool accumulate) {
  SCOPED_TRACE(::testing::Message()
               << s.M << "x" << s.N << "x" << s.K << " transA=" << transA
               << " transB=" << transB << " accumulate=" << accumulate);
  std::vector<F> A = randomVector<F>(s.M * s.K, 1);
  std::vector<F> B = randomVector<F>(s.K * s.N, 2);
  std::vector<F> C = randomVector<F>(s.M * s.N, 3);
  Vec C0 = convert<double>(C), want, absWant;
  naiveMatmul(convert<double>(A), convert<double>(B), s.M, s.N, s.K, transA,
              transB, want, absWant);
  matmul(A.data(), B.data(), C.data(), s.M, s.N, s.K, transA, transB,
         accumulate);
  // Any order of K products and one extra add is within (K + 1) u sum|a b|
  // (+ |C0|) of the exact value (Higham, gamma_n); u = eps / 2, so using eps
  // leaves a factor 2 of slack while a misplaced term is off by O(1).
  double u = std::numeric_limits<F>::epsilon();
  for (int64_t i = 0; i < s.M * s.N; ++i) {
    double exact = want[i] + (accumulate ? C0[i] : 0);
    double scale = absWant[i] + (accumulate ? std::fabs(C0[i]) : 0);
    ASSERT_NEAR(double(C[i]), exact, (s.K + 1) * u * scale) << "element " << i;
  }
}

TEST(Matmul, AllTransposesAndBlockEdgesFloat) {
  // Sizes not multiple of the tiles; K > KC; M > MC; N > NC; parallel splits
  // along M (200x150x64) and N (20x2100x20); K = 0 leaves 0 or C.
  const MatmulShape shapes[] = {{1, 1, 1},      {7, 5, 3},      {13, 29, 17},
                                {130, 70, 300}, {200, 150, 64}, {20, 2100, 20},
                                {3, 2100, 5},   {3, 4, 0}};
  for (const MatmulShape &s : shapes)
    for (int t = 0; t < 8; ++t)
      checkMatmul<float>(s, t & 1, t & 2, t & 4);
}

TEST(Matmul, AllTransposesAndBlockEdgesDouble) {
  const MatmulShape shapes[] = {{7, 5, 3}, {130, 70, 300}, {200, 150, 64}};
  for (const MatmulShape &s : shapes)
    for (int t = 0; t < 8; ++t)
      checkMatmul<double>(s, t & 1, t & 2, t & 4);
}

TEST(Matmul, LinearIsMatmulWithTransposedWeight) {
  // Y[T, n] = X[T, m] W^T with W [n, m].
  const int64_t T = 3, n = 2, m = 4;
  std::vector<float> X = {1, 2, 3, 4, 0, 1, 0, 1, -1, 0, 2, 0};
  std::vector<float> W = {1, 0, 0, 0, 1, 1, 1, 1};
  std::vector<float> Y(T * n);
  matmul(X.data(), W.data(), Y.data(), T, n, m, false, true);
  EXPECT_EQ(Y, (std::vector<float>{1, 10, 0, 2, -1, 1}));
}

//===----------------------------------------------------------------------===//
// Embedding, RMSNorm, RoPE
//===----------------------------------------------------------------------===//

TEST(Embedding, GathersRows) {
  const int64_t T = 5, V = 7, D = 3;
  std::vector<float> table = randomVector<float>(V * D, 4);
  std::vector<int32_t> ids = {6, 0, 3, 3, 1};
  std::vector<float> out(T * D);
  ASSERT_TRUE(embedding(ids.data(), table.data(), out.data(), T, V, D).ok());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d)
      EXPECT_EQ(out[t * D + d], table[ids[t] * D + d]);
}

TEST(Embedding, RejectsOutOfRangeIdsWithoutWriting) {
  const int64_t V = 4, D = 2;
  std::vector<float> table(V * D, 1), out(3 * D, -7), dTable(V * D, -7);
  for (std::vector<int32_t> ids :
       {std::vector<int32_t>{0, 4, 1}, std::vector<int32_t>{0, 1, -1}}) {
    Status st = embedding(ids.data(), table.data(), out.data(), 3, V, D);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("position"), std::string::npos) << st.message();
    EXPECT_FALSE(
        embeddingBackward(ids.data(), out.data(), dTable.data(), 3, V, D).ok());
    EXPECT_EQ(out, std::vector<float>(3 * D, -7));
    EXPECT_EQ(dTable, std::vector<float>(V * D, -7));
  }
}

TEST(Embedding, ValidateIndicesAllowsIgnoredOnlyWhenAsked) {
  std::vector<int32_t> ids = {0, -100, 2};
  EXPECT_TRUE(validateIndices(ids.data(), 3, 3, true, "targets").ok());
  EXPECT_FALSE(validateIndices(ids.data(), 3, 3, false, "targets").ok());
  EXPECT_FALSE(validateIndices(ids.data(), 3, 2, true, "targets").ok());
}

TEST(RmsNorm, MatchesReference) {
  const int64_t T = 6, D = 64;
  const double eps = 1e-5;
  std::vector<float> x = randomVector<float>(T * D, 5, -3, 3);
  std::vector<float> w = randomVector<float>(D, 6, 0.5, 1.5);
  std::vector<float> y(T * D);
  rmsNorm(x.data(), w.data(), float(eps), y.data(), T, D);
  expectClose(y,
              naiveRmsNorm(convert<double>(x), convert<double>(w), eps, T, D),
              1e-6, "rmsNorm");
}

TEST(Rope, MatchesDoubleAngleReference) {
  const int64_t B = 2, S = 40, H = 3, hd = 16, T = B * S;
  const double theta = 10000;
  std::vector<float> x = randomVector<float>(T * H * hd, 7);
  std::vector<float> y(x.size());
  rope(x.data(), T, S, H, hd, theta, false, y.data());
  // The float angle pos * inv_freq is within a few ulp of the exact one, i.e.
  // ~ S * 2^-23 absolute, which bounds the difference to the double angle.
  expectClose(y, naiveRope(convert<double>(x), T, S, H, hd, theta), 1e-5,
              "rope");
}

TEST(Rope, UsesHfFloatAngles) {
  // At pos 2047 the float and double angles differ in their low bits; the
  // kernel must follow HF: inv_freq and pos * inv_freq in float, then cos/sin.
  const int64_t S = 2048, hd = 4;
  const float theta = 500000.0f;
  std::vector<double> x(S * hd, 0);
  x[(S - 1) * hd + 1] = 1; // i = 1 of the last position: y[1] = cos, y[3] = sin
  std::vector<double> y(x.size());
  rope(x.data(), S, S, 1, hd, theta, false, y.data());
  float invFreq = 1.0f / std::pow(theta, 2.0f / 4.0f);
  float angle = float(S - 1) * invFreq;
  EXPECT_EQ(y[(S - 1) * hd + 1], double(std::cos(angle)));
  EXPECT_EQ(y[(S - 1) * hd + 3], double(std::sin(angle)));
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

void checkAttention(int64_t B, int64_t S, int64_t H, int64_t KV, int64_t hd) {
  SCOPED_TRACE(::testing::Message() << "B=" << B << " S=" << S << " H=" << H
                                    << " KV=" << KV << " hd=" << hd);
  int64_t T = B * S;
  std::vector<float> q = randomVector<float>(T * H * hd, 8, -2, 2);
  std::vector<float> k = randomVector<float>(T * KV * hd, 9, -2, 2);
  std::vector<float> v = randomVector<float>(T * KV * hd, 10);
  std::vector<float> out(q.size()), lse(B * H * S);
  attention(q.data(), k.data(), v.data(), B, S, H, KV, hd, out.data(),
            lse.data());
  Vec wantOut, wantLse;
  naiveAttention(convert<double>(q), convert<double>(k), convert<double>(v), B,
                 S, H, KV, hd, wantOut, wantLse);
  expectClose(out, wantOut, 2e-6, "out");
  expectClose(lse, wantLse, 2e-6, "lse");
}

TEST(Attention, MatchesFullMatrixReference) {
  checkAttention(2, 5, 4, 2, 4);
  checkAttention(2, 70, 4, 2, 8); // two query blocks
  checkAttention(1, 129, 2, 2, 16);
  checkAttention(3, 33, 6, 1, 8); // multi-query
}

TEST(Attention, LongSequence) {
  // S = 2048 runs in [64, S] score blocks; compare a few rows per head.
  const int64_t S = 2048, H = 2, KV = 1, hd = 16;
  std::vector<float> q = randomVector<float>(S * H * hd, 11, -2, 2);
  std::vector<float> k = randomVector<float>(S * KV * hd, 12, -2, 2);
  std::vector<float> v = randomVector<float>(S * KV * hd, 13);
  std::vector<float> out(q.size()), lse(H * S);
  attention(q.data(), k.data(), v.data(), 1, S, H, KV, hd, out.data(),
            lse.data());
  double scale = 1 / std::sqrt(double(hd));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i : {0, 1, 63, 64, 1000, 2047}) {
      Vec scores(i + 1);
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e)
          dot += double(q[(i * H + h) * hd + e]) * double(k[j * hd + e]);
        scores[j] = dot * scale;
      }
      double mx = *std::max_element(scores.begin(), scores.end()), sum = 0;
      for (double s : scores)
        sum += std::exp(s - mx);
      EXPECT_NEAR(lse[h * S + i], mx + std::log(sum), 1e-5);
      for (int64_t e = 0; e < hd; ++e) {
        double o = 0;
        for (int64_t j = 0; j <= i; ++j)
          o += std::exp(scores[j] - mx) / sum * double(v[j * hd + e]);
        EXPECT_NEAR(out[(i * H + h) * hd + e], o, 1e-5) << "row " << i;
      }
    }
}

//===----------------------------------------------------------------------===//
// Elementwise and loss
//===----------------------------------------------------------------------===//

TEST(Elementwise, SiluMulAddScaleSumSquares) {
  const int64_t n = 257;
  std::vector<float> a = randomVector<float>(n, 14, -30, 30);
  std::vector<float> b = randomVector<float>(n, 15);
  std::vector<float> y(n);
  silu(a.data(), y.data(), n);
  Vec want(n);
  for (int64_t i = 0; i < n; ++i)
    want[i] = double(a[i]) / (1 + std::exp(-double(a[i])));
  expectClose(y, want, 1e-6, "silu");
  mul(a.data(), b.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], a[i] * b[i]);
  add(a.data(), b.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], a[i] + b[i]);
  double ss = 0;
  for (float x : b)
    ss += double(x) * double(x);
  EXPECT_DOUBLE_EQ(sumSquares(b.data(), n), ss);
  std::vector<float> scaled = b;
  scale(scaled.data(), n, 0.5f);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(scaled[i], b[i] * 0.5f);
}

TEST(CrossEntropy, MatchesReferenceWithIgnoredAndLargeLogits) {
  const int64_t T = 9, V = 50;
  std::vector<float> logits = randomVector<float>(T * V, 16, -5, 5);
  logits[3 * V + 7] = 1000; // would overflow a naive exp
  std::vector<int32_t> tgt = randomIds(T, 17, 0, V - 1);
  tgt[2] = -1;
  tgt[5] = -100;
  double want = naiveCrossEntropy(convert<double>(logits), tgt, T, V);
  EXPECT_NEAR(crossEntropy(logits.data(), tgt.data(), T, V), want,
              2e-6 * std::fabs(want));
}

TEST(CrossEntropy, AllIgnoredIsZero) {
  const int64_t T = 3, V = 4;
  std::vector<float> logits = randomVector<float>(T * V, 18);
  std::vector<int32_t> tgt(T, -1);
  std::vector<float> grad(T * V, 5);
  EXPECT_EQ(crossEntropy(logits.data(), tgt.data(), T, V), 0.0f);
  crossEntropyBackward(logits.data(), tgt.data(), 1.0f, grad.data(), T, V);
  EXPECT_EQ(grad, std::vector<float>(T * V, 0));
}

} // namespace
} // namespace halo::cpu
