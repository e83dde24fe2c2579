//===- Gemm.h - GEMM descriptors, validation, layout mapping ---*- C++ -*-===//
//
// The pure (driver-free, cuBLASLt-free) half of halo's GEMM layer: what the
// IR's `halo.qmatmul` / `halo.matmul` ask for, which combinations exist, and
// how a row-major problem maps onto cuBLASLt's column-major one. Everything
// here is unit-tested on machines without a GPU; GemmEngine.h executes it.
//
// Semantics (all matrices dense and row-major, as in the IR):
//
//   C[M,N] (+)= (op(A) op(B)) * sA * sB       FP32 accumulation
//
//   A is stored [M,K], or [K,M] when transA; B is stored [K,N], or [N,K]
//   when transB. sA is 1 (ScaleMode::None), one float (PerTensor) or one
//   float per row of op(A) ([M], PerRow); sB likewise per column of op(B)
//   ([N], PerRow, "per output channel"). Scales live in device memory.
//
// Supported operand formats: FP8 E4M3 x FP8 E4M3, INT8 x INT8 (both
// quantized, scales optional), BF16 x BF16 (no scales). Outputs: BF16 or
// FP32; INT8 also INT32 (the raw accumulators, no scales).
//
// Layouts: cuBLASLt's FP8 kernels on Hopper (sm_90) and Ada (sm_89) exist
// only in the "TN" form, i.e. both operands K-contiguous: in halo's
// row-major terms transA = false and transB = true (A [M,K], B [N,K];
// Y = X W^T). Its INT8 tensor-core (IMMA) kernels too: cuBLASLt 13.1 runs
// the other three INT8 forms correctly on an H100 but on a slow kernel
// (~130 TOP/s against ~1400). nativeLayoutError rejects those layouts with
// a Status that says which operand the compiler must transpose when it
// quantizes (GemmEngineOptions::checkLayouts = false lets INT8 through
// anyway). BF16 takes every layout; on Blackwell (sm_100+) FP8 does too.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_BLAS_GEMM_H
#define HALO_RUNTIME_CUDA_BLAS_GEMM_H

#include "halo/runtime/Status.h"

#include <cstdint>
#include <string>

namespace halo::cuda {

enum class GemmType : uint8_t { FP8E4M3, INT8, BF16, FP32, INT32 };
/// "fp8e4m3", "int8", "bf16", "f32", "i32".
const char *gemmTypeName(GemmType type);
/// Bytes per element.
int gemmTypeSize(GemmType type);

enum class ScaleMode : uint8_t {
  /// No scale (1).
  None,
  /// One float for the whole operand.
  PerTensor,
  /// One float per row of op(A) ([M]) or per column of op(B) ([N]).
  PerRow,
};
/// "none", "tensor", "row" (A) / "col" (B).
const char *scaleModeName(ScaleMode mode, bool forB);

struct GemmDesc {
  int64_t M = 0, N = 0, K = 0;
  bool transA = false;
  bool transB = false;
  GemmType aType = GemmType::BF16;
  GemmType bType = GemmType::BF16;
  GemmType outType = GemmType::BF16;
  ScaleMode scaleA = ScaleMode::None;
  ScaleMode scaleB = ScaleMode::None;
  /// C += result instead of C = result (gradient accumulation).
  bool accumulate = false;
  /// FP8 only: let cuBLASLt skip the periodic promotion of the tensor-core
  /// accumulators to FP32 registers (faster, less accurate; off by default,
  /// as in torch._scaled_mm).
  bool fastAccum = false;

  /// Y[M,N] = X[M,K] W[N,K]^T with per-tensor scales and BF16 output: the
  /// forward linear of a HALO layer, the natively supported 8-bit layout.
  static GemmDesc quantized(GemmType format, int64_t M, int64_t N, int64_t K,
                            bool transA = false, bool transB = true,
                            GemmType outType = GemmType::BF16);
  /// A plain BF16 GEMM (`halo.matmul`).
  static GemmDesc bf16(int64_t M, int64_t N, int64_t K, bool transA = false,
                       bool transB = false,
                       GemmType outType = GemmType::BF16);

  bool operator==(const GemmDesc &other) const;
  bool operator!=(const GemmDesc &other) const { return !(*this == other); }
};

/// "fp8e4m3 x fp8e4m3 -> bf16, M=8192 N=4096 K=4096, A [M,K] B^T [N,K],
/// scales tensor/tensor".
std::string describe(const GemmDesc &desc);

/// Bytes of A, B and C as stored.
int64_t bytesA(const GemmDesc &desc);
int64_t bytesB(const GemmDesc &desc);
int64_t bytesC(const GemmDesc &desc);
/// Elements of the scale vector of A / B (0 for None, 1 for PerTensor).
int64_t scaleElementsA(const GemmDesc &desc);
int64_t scaleElementsB(const GemmDesc &desc);
/// 2 M N K.
double gemmFlops(const GemmDesc &desc);

/// Largest K for which an INT8 GEMM cannot overflow its INT32 accumulators:
/// K * 128 * 128 <= 2^31 - 1 (codes are in [-127, 127] by halo's
/// quantization rule, but storage admits -128).
constexpr int64_t kMaxInt8K = 131071;

/// Checks a descriptor independently of the GPU: positive sizes, a supported
/// (aType, bType, outType, scales) combination and the 8-bit shape rules
/// (K and N multiples of 16, so that every row of A, B and C starts 16-byte
/// aligned, as cuBLASLt's FP8 and IMMA kernels require). The error names the
/// descriptor and the rule.
Status validate(const GemmDesc &desc);

/// Whether cuBLASLt runs this operand layout natively on a GPU of compute
/// capability (ccMajor, ccMinor); success or an error that says which
/// operand must be stored transposed. See the file comment.
Status nativeLayoutError(const GemmDesc &desc, int ccMajor, int ccMinor);

/// The column-major cuBLASLt problem equivalent to a row-major GemmDesc.
/// Row-major C[M,N] is column-major C^T[N,M] = op(B)^T op(A)^T, so cuBLASLt
/// sees A' = the user's B and B' = the user's A:
///   m = N, n = M, k = K;
///   A': B as stored, column-major (transB ? K x N, ld K : N x K, ld N),
///       opA = transB ? T : N;
///   B': A as stored, column-major (transA ? M x K, ld M : K x M, ld K),
///       opB = transA ? T : N;
///   C/D: N x M, ld N.
/// Per-row scales swap with the operands: cuBLASLt's A scale vector (m
/// elements) is the user's per-column scale of B, its B scale vector (n
/// elements) the user's per-row scale of A.
struct LtProblem {
  uint64_t m = 0, n = 0, k = 0;
  bool transa = false; ///< CUBLAS_OP_T on A' (the user's B)
  bool transb = false; ///< CUBLAS_OP_T on B' (the user's A)
  uint64_t aRows = 0, aCols = 0;
  int64_t lda = 0;
  uint64_t bRows = 0, bCols = 0;
  int64_t ldb = 0;
  uint64_t cRows = 0, cCols = 0;
  int64_t ldc = 0;

  /// "TN", "NN", ... (opA then opB, in cuBLASLt's column-major terms).
  std::string form() const;
};
LtProblem mapToColumnMajor(const GemmDesc &desc);

/// Largest power of two (at most 256) that divides `address`; 256 for 0.
unsigned pointerAlignment(uint64_t address);

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_BLAS_GEMM_H
