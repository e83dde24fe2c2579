//===- Epilogue.h - The GEMM epilogue kernel (NVRTC source) -----*- C++ -*-===//
//
// out[i, j] = convert(float(acc[i, j]) * (sA[i or 0] * sB[j or 0])
//                     (+ float(out[i, j]) when accumulating))
// for 32-bit accumulators acc (I32 from IMMA, F32 from an unscaled FP8
// GEMM) and out in BF16 (round to nearest even) or F32. acc and out may be
// the same buffer (F32 output written in place). Each thread handles four
// consecutive elements of a row (N % 4 == 0, 16-byte aligned acc and out)
// in a grid-stride loop.
//
// Kernel signature, for every (Acc, Out) pair named by epilogueKernelName:
//   (const Acc *acc, Out *out, const float *sA, const float *sB,
//    long long M, long long N, int modeA, int modeB, int accumulate)
// with mode 0 = no scale, 1 = one scalar, 2 = one value per row (A, [M]) or
// per column (B, [N]).
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_BLAS_EPILOGUE_H
#define HALO_RUNTIME_CUDA_BLAS_EPILOGUE_H

#include "runtime/cuda/blas/Gemm.h"

namespace halo::cuda {

/// The CUDA C++ source of all epilogue kernels (one NVRTC module).
const char *epilogueSource();
/// "halo_gemm_epilogue_i32_bf16" etc.; acc is INT32 or FP32, out BF16 or
/// FP32. nullptr for other types.
const char *epilogueKernelName(GemmType acc, GemmType out);
/// Elements per thread and per loop iteration.
constexpr int kEpilogueVector = 4;
constexpr int kEpilogueBlock = 256;

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_BLAS_EPILOGUE_H
