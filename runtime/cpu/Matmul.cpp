//===- Matmul.cpp - Blocked, packed GEMM for the CPU kernels --------------===//
//
// BLIS-style: op(B) is packed in [KC, NR] column panels and op(A) in [MC, KC]
// blocks of MR-row panels, so the register-tiled micro-kernel streams both
// contiguously whatever the strides (transposes cost only in packing). The
// micro-kernel uses GCC vector extensions sized for the build's ISA (SSE2 by
// default, AVX/AVX-512 when the compiler targets them). Large products are
// split over the pool along M or N in whole tiles; every C element sees the
// same K order, so the split never changes the result.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Gemm.h"
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace halo::cpu {
namespace {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

// A 6 x (2 vectors) accumulator tile: 12 vector registers plus two for B and
// one broadcast fit the 16 architectural registers of SSE2/AVX2.
template <typename F> struct Tile {
  typedef F Vec __attribute__((vector_size(kVecBytes)));
  static constexpr int W = kVecBytes / sizeof(F);
  static constexpr int MR = 6;
  static constexpr int NR = 2 * W;
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = 20 * MR;
  static constexpr int64_t NC = 2048;
};

// Below this many multiply-adds a split costs more than it saves.
constexpr int64_t kParallelWork = int64_t(1) << 18;

template <typename F> F at(StridedView<F> m, int64_t i, int64_t j) {
  return m.data[i * m.rowStride + j * m.colStride];
}

/// Packs A[i0 : i0 + mc, p0 : p0 + kc] as MR-row panels, zero-padded to whole
/// panels: dst[r * kc * MR + p * MR + i] = A[i0 + r * MR + i, p0 + p].
template <typename F>
void packA(StridedView<F> A, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
           F *dst) {
  constexpr int MR = Tile<F>::MR;
  for (int64_t r = 0; r < mc; r += MR) {
    int64_t rows = std::min<int64_t>(MR, mc - r);
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t i = 0; i < rows; ++i)
        dst[p * MR + i] = at(A, i0 + r + i, p0 + p);
      for (int64_t i = rows; i < MR; ++i)
        dst[p * MR + i] = F(0);
    }
    dst += kc * MR;
  }
}

/// Packs B[p0 : p0 + kc, j0 : j0 + nc] as NR-column panels, zero-padded.
template <typename F>
void packB(StridedView<F> B, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
           F *dst) {
  constexpr int NR = Tile<F>::NR;
  for (int64_t c = 0; c < nc; c += NR) {
    int64_t cols = std::min<int64_t>(NR, nc - c);
    for (int64_t p = 0; p < kc; ++p) {
      for (int64_t j = 0; j < cols; ++j)
        dst[p * NR + j] = at(B, p0 + p, j0 + c + j);
      for (int64_t j = cols; j < NR; ++j)
        dst[p * NR + j] = F(0);
    }
    dst += kc * NR;
  }
}

/// C[MR, NR] (=|+=) Apanel * Bpanel over kc.
template <typename F>
void microKernel(int64_t kc, const F *ap, const F *bp, F *c, int64_t ldc,
                 bool overwrite) {
  using T = Tile<F>;
  using Vec = typename T::Vec;
  Vec acc[T::MR][2] = {};
  for (int64_t p = 0; p < kc; ++p) {
    Vec b0, b1;
    std::memcpy(&b0, bp, sizeof(Vec));
    std::memcpy(&b1, bp + T::W, sizeof(Vec));
#pragma GCC unroll 8
    for (int i = 0; i < T::MR; ++i) {
      acc[i][0] += ap[i] * b0;
      acc[i][1] += ap[i] * b1;
    }
    ap += T::MR;
    bp += T::NR;
  }
#pragma GCC unroll 8
  for (int i = 0; i < T::MR; ++i) {
    for (int h = 0; h < 2; ++h) {
      F *dst = c + i * ldc + h * T::W;
      Vec out = acc[i][h];
      if (!overwrite) {
        Vec old;
        std::memcpy(&old, dst, sizeof(Vec));
        out += old;
      }
      std::memcpy(dst, &out, sizeof(Vec));
    }
  }
}

template <typename F>
void gemmSerial(int64_t M, int64_t N, int64_t K, StridedView<F> A,
                StridedView<F> B, F *C, int64_t ldc, bool accumulate) {
  using T = Tile<F>;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i)
        std::fill(C + i * ldc, C + i * ldc + N, F(0));
    return;
  }
  thread_local std::vector<F> bufA, bufB;
  auto roundUp = [](int64_t x, int64_t m) { return (x + m - 1) / m * m; };
  bufA.resize(std::max<size_t>(bufA.size(), T::MC * T::KC));
  bufB.resize(std::max<size_t>(
      bufB.size(),
      size_t(std::min(T::KC, K) * roundUp(std::min(T::NC, N), T::NR))));
  F edge[T::MR * T::NR];

  for (int64_t jc = 0; jc < N; jc += T::NC) {
    int64_t nc = std::min(T::NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += T::KC) {
      int64_t kc = std::min(T::KC, K - pc);
      bool overwrite = !accumulate && pc == 0;
      packB(B, pc, kc, jc, nc, bufB.data());
      for (int64_t ic = 0; ic < M; ic += T::MC) {
        int64_t mc = std::min(T::MC, M - ic);
        packA(A, ic, mc, pc, kc, bufA.data());
        for (int64_t jr = 0; jr < nc; jr += T::NR) {
          int64_t nr = std::min<int64_t>(T::NR, nc - jr);
          const F *bp = bufB.data() + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += T::MR) {
            int64_t mr = std::min<int64_t>(T::MR, mc - ir);
            const F *ap = bufA.data() + ir * kc;
            F *c = C + (ic + ir) * ldc + jc + jr;
            if (mr == T::MR && nr == T::NR) {
              microKernel(kc, ap, bp, c, ldc, overwrite);
              continue;
            }
            // Partial tile: compute the full tile aside, copy what is inside C.
            microKernel(kc, ap, bp, edge, T::NR, /*overwrite=*/true);
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t j = 0; j < nr; ++j)
                c[i * ldc + j] = overwrite
                                     ? edge[i * T::NR + j]
                                     : c[i * ldc + j] + edge[i * T::NR + j];
          }
        }
      }
    }
  }
}

template <typename F> StridedView<F> transposed(StridedView<F> m) {
  return {m.data, m.colStride, m.rowStride};
}

} // namespace

template <typename F>
void gemm(int64_t M, int64_t N, int64_t K, StridedView<F> A, StridedView<F> B,
          F *C, int64_t ldc, bool accumulate) {
  using T = Tile<F>;
  if (M <= 0 || N <= 0)
    return;
  if (M * N * K < kParallelWork || numThreads() == 1) {
    gemmSerial(M, N, K, A, B, C, ldc, accumulate);
    return;
  }
  // Split the longer side in whole tiles.
  if (M >= N) {
    parallelFor((M + T::MR - 1) / T::MR, [&](int64_t begin, int64_t end) {
      int64_t i0 = begin * T::MR, i1 = std::min(M, end * T::MR);
      StridedView<F> a{A.data + i0 * A.rowStride, A.rowStride, A.colStride};
      gemmSerial(i1 - i0, N, K, a, B, C + i0 * ldc, ldc, accumulate);
    });
    return;
  }
  parallelFor((N + T::NR - 1) / T::NR, [&](int64_t begin, int64_t end) {
    int64_t j0 = begin * T::NR, j1 = std::min(N, end * T::NR);
    StridedView<F> b{B.data + j0 * B.colStride, B.rowStride, B.colStride};
    gemmSerial(M, j1 - j0, K, A, b, C + j0, ldc, accumulate);
  });
}

template <typename F>
void matmul(const F *A, const F *B, F *C, int64_t M, int64_t N, int64_t K,
            bool transA, bool transB, bool accumulate) {
  StridedView<F> a = transA ? StridedView<F>{A, 1, M} : StridedView<F>{A, K, 1};
  StridedView<F> b = transB ? StridedView<F>{B, 1, K} : StridedView<F>{B, N, 1};
  gemm(M, N, K, a, b, C, N, accumulate);
}

template <typename F>
void matmulBackward(const F *A, const F *B, const F *dC, F *dA, F *dB,
                    int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                    bool accumulate) {
  StridedView<F> a = transA ? StridedView<F>{A, 1, M} : StridedView<F>{A, K, 1};
  StridedView<F> b = transB ? StridedView<F>{B, 1, K} : StridedView<F>{B, N, 1};
  StridedView<F> g{dC, N, 1};
  // d op(A) = dC op(B)^T and d op(B) = op(A)^T dC; a transposed operand gets
  // the transposed product, written in its stored layout.
  if (dA) {
    if (transA)
      gemm(K, M, N, b, transposed(g), dA, M, accumulate);
    else
      gemm(M, K, N, g, transposed(b), dA, K, accumulate);
  }
  if (dB) {
    if (transB)
      gemm(N, K, M, transposed(g), a, dB, K, accumulate);
    else
      gemm(K, N, M, transposed(a), g, dB, N, accumulate);
  }
}

#define HALO_INSTANTIATE(F)                                                    \
  template void gemm<F>(int64_t, int64_t, int64_t, StridedView<F>,             \
                        StridedView<F>, F *, int64_t, bool);                   \
  template void matmul<F>(const F *, const F *, F *, int64_t, int64_t,         \
                          int64_t, bool, bool, bool);                          \
  template void matmulBackward<F>(const F *, const F *, const F *, F *, F *,   \
                                  int64_t, int64_t, int64_t, bool, bool,       \
                                  bool);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

} // namespace halo::cpu
