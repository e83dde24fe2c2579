//===- Gemm.h - Strided GEMM shared by the CPU kernels ----------*- C++ -*-===//
//
// Internal to halo_cpu_kernels. gemm reads op(A) and op(B) through (row,
// column) strides, so transposes and per-head slices of [T, H * hd]
// activations need no copies; matmul and attention both sit on it. Each
// element of C is reduced over K in the same order whatever the thread split.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CPU_GEMM_H
#define HALO_RUNTIME_CPU_GEMM_H

#include <cstdint>

namespace halo::cpu {

/// Element (i, j) of a logical matrix is data[i * rowStride + j * colStride].
template <typename F> struct StridedView {
  const F *data;
  int64_t rowStride;
  int64_t colStride;
};

/// C (+)= A * B with A logically [M, K], B logically [K, N] and C [M, N] with
/// leading dimension ldc. Splits over the pool when large.
template <typename F>
void gemm(int64_t M, int64_t N, int64_t K, StridedView<F> A, StridedView<F> B,
          F *C, int64_t ldc, bool accumulate);

} // namespace halo::cpu

#endif // HALO_RUNTIME_CPU_GEMM_H
