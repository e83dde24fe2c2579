//===- Hadamard.cpp - Orthonormal Hadamard rotations ----------------------===//
//
// H_K constructions (all verified by the unit tests, H_K H_K^T = K I):
//   Paley I, q = 3 mod 4, order q + 1: 12, 20, 28 (GF(27)), 44, 140.
//   Paley II, q = 1 mod 4, order 2(q + 1): 36, 52 (GF(25)), 60, 100 (GF(49)),
//   108. Sylvester doubling: 40 = 2 x 20.
//   Williamson array of four symmetric circulants: 156 (n = 39), 172 (n = 43);
//   no Paley construction reaches these orders, so the published sequences are
//   tabulated. Rotating a row costs K * 2^k * (k + K) additions, the dense K
//   mix dominating; it is an oracle, not a fast path.
//
//===----------------------------------------------------------------------===//
#include "runtime/numerics/Hadamard.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace halo::numerics {

namespace {

using Matrix = std::vector<int8_t>;

constexpr int kOrders[] = {12, 20,  28,  36,  40,  44, 52,
                           60, 100, 108, 140, 156, 172};
// The reference implementation's preference when several K fit (only 20 and
// 40 can both divide a size with a power-of-two quotient).
constexpr int kSearchOrder[] = {172, 156, 140, 108, 100, 60, 52,
                                36,  28,  40,  20,  12,  44};

bool isPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

/// GF(p^m) for m <= 3, just enough for Paley: an element is the integer whose
/// base-p digits are its polynomial coefficients (constant term first).
class FiniteField {
public:
  FiniteField(int p, int m) : p(p), m(m), q(1) {
    for (int i = 0; i < m; ++i)
      q *= p;
    findModulus();
    isSquare.assign(q, false);
    for (int x = 1; x < q; ++x)
      isSquare[square(x)] = true;
  }

  int size() const { return q; }

  int sub(int x, int y) const {
    int result = 0;
    for (int i = 0, unit = 1; i < m; ++i, unit *= p, x /= p, y /= p)
      result += ((x % p - y % p + p) % p) * unit;
    return result;
  }

  /// Quadratic character: 0 for 0, 1 for nonzero squares, -1 otherwise.
  int chi(int x) const { return x == 0 ? 0 : (isSquare[x] ? 1 : -1); }

private:
  // Monic t^m + c_{m-1} t^{m-1} + ... + c_0; for degree 2 and 3, having no
  // root in GF(p) is the same as being irreducible.
  void findModulus() {
    for (int code = 0; code < q; ++code) {
      modulus.clear();
      for (int i = 0, c = code; i < m; ++i, c /= p)
        modulus.push_back(c % p);
      if (m == 1 || !hasRoot())
        return;
    }
  }

  bool hasRoot() const {
    for (int t = 0; t < p; ++t) {
      int value = 1;
      for (int i = m - 1; i >= 0; --i)
        value = (value * t + modulus[i]) % p;
      if (value == 0)
        return true;
    }
    return false;
  }

  int square(int x) const {
    std::vector<int> digits(m), product(2 * m - 1, 0);
    for (int i = 0; i < m; ++i, x /= p)
      digits[i] = x % p;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j)
        product[i + j] = (product[i + j] + digits[i] * digits[j]) % p;
    // t^d = t^(d-m) * t^m = -t^(d-m) * (c_{m-1} t^{m-1} + ... + c_0).
    for (int d = 2 * m - 2; d >= m; --d) {
      int c = product[d];
      product[d] = 0;
      for (int i = 0; i < m; ++i)
        product[d - m + i] =
            ((product[d - m + i] - c * modulus[i]) % p + p) % p;
    }
    int result = 0;
    for (int i = m - 1; i >= 0; --i)
      result = result * p + product[i];
    return result;
  }

  int p, m, q;
  std::vector<int> modulus;
  std::vector<bool> isSquare;
};

/// q = 3 mod 4: H = I + [[0, 1^T], [-1, Q]], Q[i][j] = chi(x_i - x_j) the
/// (skew-symmetric) Jacobsthal matrix.
Matrix paleyI(int p, int m) {
  FiniteField field(p, m);
  int q = field.size(), order = q + 1;
  Matrix h(order * order);
  for (int i = 0; i < order; ++i)
    for (int j = 0; j < order; ++j) {
      int v = (i == j || i == 0) ? 1
              : j == 0           ? -1
                                 : field.chi(field.sub(i - 1, j - 1));
      h[i * order + j] = static_cast<int8_t>(v);
    }
  return h;
}

/// q = 1 mod 4: the symmetric conference matrix C = [[0, 1^T], [1, Q]] with
/// each 0 replaced by [[1, -1], [-1, -1]] and each +-1 by +-[[1, 1], [1, -1]].
Matrix paleyII(int p, int m) {
  FiniteField field(p, m);
  int q = field.size(), half = q + 1, order = 2 * half;
  Matrix h(order * order);
  for (int i = 0; i < half; ++i)
    for (int j = 0; j < half; ++j) {
      int c = (i == 0 || j == 0) ? (i == j ? 0 : 1)
                                 : field.chi(field.sub(i - 1, j - 1));
      for (int r = 0; r < 2; ++r)
        for (int s = 0; s < 2; ++s) {
          int v = c == 0 ? (r + s == 0 ? 1 : -1) : (r * s == 1 ? -c : c);
          h[(2 * i + r) * order + 2 * j + s] = static_cast<int8_t>(v);
        }
    }
  return h;
}

/// [[H, H], [H, -H]].
Matrix doubled(const Matrix &h, int order) {
  int n = 2 * order;
  Matrix d(n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      int8_t v = h[(i % order) * order + j % order];
      d[i * n + j] = (i >= order && j >= order) ? -v : v;
    }
  return d;
}

/// First rows of symmetric circulants A, B, C, D with A^2 + B^2 + C^2 + D^2 =
/// 4n I. n = 43: Baumert and Hall, as listed in M. Hall, "Combinatorial
/// Theory" (2nd ed., 1986). n = 39: as listed by Londhe (2013). Taken from
/// the table in SageMath's sage.combinat.matrices.hadamard_matrix.
const char *const kWilliamson39[4] = {
    "+++--+-+-----+--++----++--+-----+-+--++",
    "+++--++-+---+-+--+----+--+-+---+-++--++",
    "++++---+--++----+-+--+-+----++--+---+++",
    "+---++-+-+-----+++-++-+++-----+-+-++---"};
const char *const kWilliamson43[4] = {
    "++---++++-+--+--++--------++--+--+-++++---+",
    "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
    "++-++++++----+-+--++-++-++--+-+----++++++-+",
    "+---++--++++-+-+++-++--++-+++-+-++++--++---"};

/// Williamson array [[A, B, C, D], [-B, A, -D, C], [-C, D, A, -B],
/// [-D, -C, B, A]] of circulants X[i][j] = x[(j - i) mod n].
Matrix williamson(const char *const sequences[4]) {
  static constexpr int kBlock[4][4] = {
      {1, 2, 3, 4}, {-2, 1, -4, 3}, {-3, 4, 1, -2}, {-4, -3, 2, 1}};
  int n = static_cast<int>(std::string(sequences[0]).size());
  int order = 4 * n;
  Matrix h(order * order);
  for (int bi = 0; bi < 4; ++bi)
    for (int bj = 0; bj < 4; ++bj) {
      int which = std::abs(kBlock[bi][bj]) - 1;
      int sign = kBlock[bi][bj] > 0 ? 1 : -1;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          int v = sequences[which][(j - i + n) % n] == '+' ? sign : -sign;
          h[(bi * n + i) * order + bj * n + j] = static_cast<int8_t>(v);
        }
    }
  return h;
}

Matrix buildMatrixK(int k) {
  switch (k) {
  case 12:
    return paleyI(11, 1);
  case 20:
    return paleyI(19, 1);
  case 28:
    return paleyI(3, 3);
  case 36:
    return paleyII(17, 1);
  case 40:
    return doubled(paleyI(19, 1), 20);
  case 44:
    return paleyI(43, 1);
  case 52:
    return paleyII(5, 2);
  case 60:
    return paleyII(29, 1);
  case 100:
    return paleyII(7, 2);
  case 108:
    return paleyII(53, 1);
  case 140:
    return paleyI(139, 1);
  case 156:
    return williamson(kWilliamson39);
  default: // 172, the only order left in kOrders.
    return williamson(kWilliamson43);
  }
}

HadamardShape requireShape(int64_t n, const char *what) {
  if (auto shape = decomposeHadamardSize(n))
    return *shape;
  throw std::invalid_argument(
      std::string(what) + ": no Hadamard matrix of size " + std::to_string(n) +
      "; supported sizes: " + supportedHadamardForms());
}

int64_t log2Exact(int64_t pow2) {
  int64_t bits = 0;
  while ((int64_t{1} << bits) < pow2)
    ++bits;
  return bits;
}

/// Runs fn(begin, end) over [0, count) on up to hardware_concurrency threads,
/// giving each thread at least ~2^18 units of work (spawning costs ~10 us).
template <typename Fn>
void parallelFor(int64_t count, int64_t workPerItem, const Fn &fn) {
  constexpr int64_t kMinWorkPerThread = int64_t{1} << 18;
  int64_t hardware = std::max(1u, std::thread::hardware_concurrency());
  int64_t threads =
      std::min({hardware, count, count * workPerItem / kMinWorkPerThread});
  if (threads <= 1) {
    fn(int64_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t)
    pool.emplace_back(fn, count * t / threads, count * (t + 1) / threads);
  fn(int64_t{0}, count / threads);
  for (std::thread &thread : pool)
    thread.join();
}

/// In place v <- v H_len (Sylvester, unnormalised, symmetric).
template <typename F> void walshHadamard(F *v, int64_t len) {
  for (int64_t h = 1; h < len; h *= 2)
    for (int64_t i = 0; i < len; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        F a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
}

/// r <- r H (transposed: r H^T) for one row seen as R[a][b] (K x 2^k):
/// r H = H_K^T R H_{2^k}, r H^T = H_K R H_{2^k}. scratch holds n values.
template <typename F>
void rotateRow(F *r, F *scratch, const HadamardShape &shape, const int8_t *hk,
               bool transposed, F scale) {
  int64_t k = shape.K, p = shape.pow2, n = k * p;
  for (int64_t a = 0; a < k; ++a)
    walshHadamard(r + a * p, p);
  if (k == 1) {
    for (int64_t i = 0; i < n; ++i)
      r[i] *= scale;
    return;
  }
  for (int64_t c = 0; c < k; ++c) {
    F *out = scratch + c * p;
    std::fill(out, out + p, F(0));
    for (int64_t a = 0; a < k; ++a) {
      const F *in = r + a * p;
      if ((transposed ? hk[c * k + a] : hk[a * k + c]) > 0)
        for (int64_t b = 0; b < p; ++b)
          out[b] += in[b];
      else
        for (int64_t b = 0; b < p; ++b)
          out[b] -= in[b];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    r[i] = scratch[i] * scale;
}

} // namespace

std::optional<HadamardShape> decomposeHadamardSize(int64_t n) {
  if (isPowerOfTwo(n))
    return HadamardShape{1, n};
  for (int k : kSearchOrder)
    if (n > 0 && n % k == 0 && isPowerOfTwo(n / k))
      return HadamardShape{k, n / k};
  return std::nullopt;
}

std::string supportedHadamardForms() {
  std::string text = "2^k or K*2^k with K in {";
  for (int k : kOrders)
    text += (k == kOrders[0] ? "" : ", ") + std::to_string(k);
  return text + "}";
}

const int8_t *hadamardMatrixK(int k) {
  static const int8_t kOne = 1;
  static const std::vector<Matrix> kMatrices = [] {
    std::vector<Matrix> all;
    for (int order : kOrders)
      all.push_back(buildMatrixK(order));
    return all;
  }();
  if (k == 1)
    return &kOne;
  for (size_t i = 0; i < std::size(kOrders); ++i)
    if (kOrders[i] == k)
      return kMatrices[i].data();
  return nullptr;
}

template <typename F>
void hadamardRows(F *x, int64_t rows, int64_t n, bool transposed) {
  HadamardShape shape = requireShape(n, "hadamardRows");
  const int8_t *hk = hadamardMatrixK(static_cast<int>(shape.K));
  F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(n)));
  int64_t work = n * (log2Exact(shape.pow2) + shape.K);
  parallelFor(rows, work, [&](int64_t begin, int64_t end) {
    std::vector<F> scratch(n);
    for (int64_t row = begin; row < end; ++row)
      rotateRow(x + row * n, scratch.data(), shape, hk, transposed, scale);
  });
}

template <typename F>
void hadamardCols(F *x, int64_t rows, int64_t cols, bool transposed) {
  HadamardShape shape = requireShape(rows, "hadamardCols");
  const int8_t *hk = hadamardMatrixK(static_cast<int>(shape.K));
  F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(rows)));
  // Column tiles are gathered transposed so each column is one contiguous
  // row; (H X)^T = X^T H^T, hence the flipped flag.
  constexpr int64_t kTile = 32;
  int64_t tiles = (cols + kTile - 1) / kTile;
  int64_t work = kTile * rows * (log2Exact(shape.pow2) + shape.K);
  parallelFor(tiles, work, [&](int64_t begin, int64_t end) {
    std::vector<F> tile(kTile * rows), scratch(rows);
    for (int64_t t = begin; t < end; ++t) {
      int64_t c0 = t * kTile, width = std::min(kTile, cols - c0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < width; ++j)
          tile[j * rows + i] = x[i * cols + c0 + j];
      for (int64_t j = 0; j < width; ++j)
        rotateRow(tile.data() + j * rows, scratch.data(), shape, hk,
                  !transposed, scale);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < width; ++j)
          x[i * cols + c0 + j] = tile[j * rows + i];
    }
  });
}

std::vector<double> denseHadamard(int64_t n) {
  auto shape = decomposeHadamardSize(n);
  if (!shape)
    return {};
  int64_t k = shape->K, p = shape->pow2;
  const int8_t *hk = hadamardMatrixK(static_cast<int>(k));
  double scale = 1.0 / std::sqrt(static_cast<double>(n));
  std::vector<double> h(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      bool odd = std::bitset<64>((i % p) & (j % p)).count() & 1;
      h[i * n + j] = hk[(i / p) * k + j / p] * (odd ? -scale : scale);
    }
  return h;
}

template void hadamardRows<float>(float *, int64_t, int64_t, bool);
template void hadamardRows<double>(double *, int64_t, int64_t, bool);
template void hadamardCols<float>(float *, int64_t, int64_t, bool);
template void hadamardCols<double>(double *, int64_t, int64_t, bool);

} // namespace halo::numerics
