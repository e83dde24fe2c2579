//===- HadamardTest.cpp - Hadamard matrices and rotations ----------------===//
//
// Every H_K is checked exactly (H_K H_K^T = K I over the integers). For every
// size up to 2048 the fast kernels are compared with the dense matrix (on the
// identity, which pins down the whole linear map, and on random inputs), and
// H H^T = I is checked through them; larger Llama sizes are checked for norm
// preservation and exact inversion instead, which needs no n x n matrix.
//
//===----------------------------------------------------------------------===//
#include "runtime/numerics/Hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>

namespace halo::numerics {
namespace {

constexpr int kOrders[] = {12, 20,  28,  36,  40,  44, 52,
                           60, 100, 108, 140, 156, 172};

std::vector<int64_t> denseSizes() {
  std::vector<int64_t> sizes;
  for (int64_t n = 1; n <= 2048; n *= 2)
    sizes.push_back(n);
  for (int k : kOrders)
    for (int64_t mult : {1, 2, 4})
      sizes.push_back(k * mult);
  return sizes;
}

std::vector<double> randomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist;
  std::vector<double> m(rows * cols);
  for (double &v : m)
    v = dist(rng);
  return m;
}

std::vector<double> identity(int64_t n) {
  std::vector<double> m(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    m[i * n + i] = 1.0;
  return m;
}

/// a (r x inner) times b (inner x c), or times b^T when b is (c x inner).
std::vector<double> matmul(const std::vector<double> &a,
                           const std::vector<double> &b, int64_t r,
                           int64_t inner, int64_t c, bool transposeB) {
  std::vector<double> out(r * c, 0.0);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t l = 0; l < inner; ++l)
      for (int64_t j = 0; j < c; ++j)
        out[i * c + j] +=
            a[i * inner + l] * (transposeB ? b[j * inner + l] : b[l * c + j]);
  return out;
}

std::vector<double> transpose(const std::vector<double> &m, int64_t rows,
                              int64_t cols) {
  std::vector<double> t(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      t[j * rows + i] = m[i * cols + j];
  return t;
}

double maxAbsDiff(const std::vector<double> &a, const std::vector<double> &b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff = std::max(diff, std::abs(a[i] - b[i]));
  return diff;
}

TEST(Hadamard, EveryOrderKIsHadamard) {
  for (int k : kOrders) {
    const int8_t *h = hadamardMatrixK(k);
    ASSERT_NE(h, nullptr) << k;
    for (int i = 0; i < k * k; ++i)
      ASSERT_TRUE(h[i] == 1 || h[i] == -1) << k;
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        int dot = 0;
        for (int l = 0; l < k; ++l)
          dot += h[i * k + l] * h[j * k + l];
        ASSERT_EQ(dot, i == j ? k : 0)
            << "K=" << k << " rows " << i << "," << j;
      }
  }
  ASSERT_NE(hadamardMatrixK(1), nullptr);
  EXPECT_EQ(*hadamardMatrixK(1), 1);
  EXPECT_EQ(hadamardMatrixK(2), nullptr);
  EXPECT_EQ(hadamardMatrixK(24), nullptr);
}

TEST(Hadamard, DecomposesLlamaSizes) {
  std::vector<std::pair<int64_t, int64_t>> expected = {
      {14336, 28}, {11008, 172}, {5632, 44}, {3072, 12}, {576, 36},
      {1536, 12},  {4096, 1},    {1024, 1},  {1, 1}};
  for (auto [n, k] : expected) {
    auto shape = decomposeHadamardSize(n);
    ASSERT_TRUE(shape) << n;
    EXPECT_EQ(shape->K, k) << n;
    EXPECT_EQ(shape->K * shape->pow2, n);
  }
}

TEST(Hadamard, DecompositionFollowsTheReferenceOrder) {
  for (int k : kOrders)
    for (int j = 0; j < 7; ++j) {
      auto shape = decomposeHadamardSize(int64_t{k} << j);
      ASSERT_TRUE(shape);
      // 20 * 2^j for j >= 1 is also 40 * 2^(j-1), and 40 is tried first.
      int64_t expectedK = (k == 20 && j >= 1) ? 40 : k;
      EXPECT_EQ(shape->K, expectedK) << k << "<<" << j;
      EXPECT_EQ(shape->K * shape->pow2, int64_t{k} << j);
    }
}

TEST(Hadamard, RejectsSizesWithoutDecomposition) {
  for (int64_t n : {0, -4, 3, 6, 7, 18, 300, 1000, 11000})
    EXPECT_FALSE(decomposeHadamardSize(n)) << n;
  EXPECT_TRUE(denseHadamard(300).empty());
  std::vector<float> x(300);
  EXPECT_THROW(hadamardRows(x.data(), 1, 300, false), std::invalid_argument);
  EXPECT_THROW(hadamardCols(x.data(), 300, 1, false), std::invalid_argument);
  std::string forms = supportedHadamardForms();
  EXPECT_NE(forms.find("2^k"), std::string::npos);
  for (int k : kOrders)
    EXPECT_NE(forms.find(std::to_string(k)), std::string::npos) << k;
}

TEST(Hadamard, RowsMatchDenseAndAreOrthonormal) {
  for (int64_t n : denseSizes()) {
    SCOPED_TRACE(n);
    std::vector<double> dense = denseHadamard(n);
    ASSERT_EQ(dense.size(), static_cast<size_t>(n * n));
    // On the identity the kernel must produce H (or H^T) itself.
    std::vector<double> h = identity(n), ht = identity(n);
    hadamardRows(h.data(), n, n, false);
    hadamardRows(ht.data(), n, n, true);
    EXPECT_LT(maxAbsDiff(h, dense), 1e-12);
    EXPECT_LT(maxAbsDiff(ht, transpose(dense, n, n)), 1e-12);
    // H H^T = I, computed as the rows of H rotated by H^T.
    hadamardRows(h.data(), n, n, true);
    EXPECT_LT(maxAbsDiff(h, identity(n)), 1e-12);
    // Random rows: x H and x H^T against dense products.
    int64_t rows = 3;
    std::vector<double> x = randomMatrix(rows, n, n), y = x, z = x;
    hadamardRows(y.data(), rows, n, false);
    hadamardRows(z.data(), rows, n, true);
    EXPECT_LT(maxAbsDiff(y, matmul(x, dense, rows, n, n, false)), 1e-12);
    EXPECT_LT(maxAbsDiff(z, matmul(x, dense, rows, n, n, true)), 1e-12);
  }
}

TEST(Hadamard, ColsMatchDenseLeftProduct) {
  for (int64_t n : denseSizes()) {
    SCOPED_TRACE(n);
    std::vector<double> dense = denseHadamard(n);
    int64_t cols = 37; // more than one 32-column tile
    std::vector<double> x = randomMatrix(n, cols, n + 1), y = x, z = x;
    hadamardCols(y.data(), n, cols, false);
    hadamardCols(z.data(), n, cols, true);
    std::vector<double> dt = transpose(dense, n, n);
    EXPECT_LT(maxAbsDiff(y, matmul(dense, x, n, n, cols, false)), 1e-12);
    EXPECT_LT(maxAbsDiff(z, matmul(dt, x, n, n, cols, false)), 1e-12);
  }
}

TEST(Hadamard, LargeSizesPreserveNormAndInvert) {
  for (int64_t n : {576, 1536, 3072, 4096, 5632, 11008, 14336}) {
    SCOPED_TRACE(n);
    int64_t rows = 4;
    std::vector<double> x = randomMatrix(rows, n, n), y = x;
    hadamardRows(y.data(), rows, n, false);
    for (int64_t r = 0; r < rows; ++r) {
      double before = 0, after = 0;
      for (int64_t i = 0; i < n; ++i) {
        before += x[r * n + i] * x[r * n + i];
        after += y[r * n + i] * y[r * n + i];
      }
      EXPECT_LT(std::abs(after - before), 1e-12 * before);
    }
    EXPECT_GT(maxAbsDiff(x, y), 0.1);
    hadamardRows(y.data(), rows, n, true);
    EXPECT_LT(maxAbsDiff(x, y), 1e-12);
    // Left rotation over n tokens, undone by H^T.
    std::vector<double> t = randomMatrix(n, 5, n + 2), u = t;
    hadamardCols(u.data(), n, 5, false);
    hadamardCols(u.data(), n, 5, true);
    EXPECT_LT(maxAbsDiff(t, u), 1e-12);
  }
}

TEST(Hadamard, ColsIsRowsOfTheTranspose) {
  int64_t rows = 172 * 2, cols = 70;
  std::vector<double> x = randomMatrix(rows, cols, 7), viaCols = x;
  hadamardCols(viaCols.data(), rows, cols, false);
  // (H X)^T = X^T H^T.
  std::vector<double> xt = transpose(x, rows, cols);
  hadamardRows(xt.data(), cols, rows, true);
  EXPECT_EQ(viaCols, transpose(xt, cols, rows));
}

TEST(Hadamard, ThreadedRowsEqualRowByRow) {
  int64_t rows = 64, n = 14336;
  std::vector<double> x = randomMatrix(rows, n, 11), all = x;
  hadamardRows(all.data(), rows, n, false);
  for (int64_t r = 0; r < rows; ++r)
    hadamardRows(x.data() + r * n, 1, n, false);
  EXPECT_EQ(all, x);
}

TEST(Hadamard, FloatAgreesWithDouble) {
  for (int64_t n : {688, 4096, 11008}) {
    SCOPED_TRACE(n);
    int64_t rows = 2;
    std::vector<double> x = randomMatrix(rows, n, 5);
    std::vector<float> f(x.begin(), x.end());
    hadamardRows(x.data(), rows, n, true);
    hadamardRows(f.data(), rows, n, true);
    for (int64_t i = 0; i < rows * n; ++i)
      ASSERT_NEAR(f[i], x[i], 1e-5) << i;
    std::vector<double> c = randomMatrix(n, 3, 6);
    std::vector<float> g(c.begin(), c.end());
    hadamardCols(c.data(), n, 3, false);
    hadamardCols(g.data(), n, 3, false);
    for (int64_t i = 0; i < n * 3; ++i)
      ASSERT_NEAR(g[i], c[i], 1e-5) << i;
  }
}

} // namespace
} // namespace halo::numerics
