//===- TensorCoreAttention.h - Attention on tensor cores (cuBLASLt) -*- C++ -*-===//
//
// Causal grouped-query attention and its VJP with the matmuls on tensor cores:
// strided-batched cuBLASLt GEMMs (BF16 in, FP32 accumulate) over a
// materialized score matrix, plus three small NVRTC kernels (causal softmax,
// softmax backward, FP32 -> BF16). Same semantics as runtime/cpu/Attention.cpp
// (docs/program-format.md): q [T, H*hd], k/v [T, KV*hd], out [T, H*hd] BF16,
// lse[(b*H + h)*S + s] FP32, query head h reads kv head h / (H/KV).
//
// Work unit: (batch element b, group member j). The query heads
// h = g*grp + j, g in [0, KV), are one strided batch of KV matrices (Q head
// offset (g*grp + j)*hd in a token row, batch stride grp*hd; K/V head offset
// g*hd, batch stride hd), so each GEMM of a unit is one cublasLtMatmul with
// batch count KV. Scores of a unit: [KV, S, S], reused unit after unit.
//
// Layouts: cuBLASLt sees the row-major buffers column-major (the row-major
// X [r, c] with leading dimension ld is the column-major X^T [c, r], ld):
//   forward   S^T  = K Q^T      (TN, FP32 out, alpha = 1/sqrt(hd))
//             O^T  = V^T P^T    (NN, BF16 out)
//   backward  S, and dP^T = V dO^T (TN), then the dsoftmax kernel writes P and
//             dS = P (dP - delta) in BF16;
//             dV^T += dO^T P    (NT, FP32 accumulators, beta = 1 after j = 0)
//             dK^T += scale Q^T dS (NT, likewise)
//             dQ^T  = scale K^T dS^T (NN, BF16 out)
//   and one kernel converts the dK/dV accumulators to BF16.
// The full S x S score matrix is computed (the causal upper half is wasted:
// about 2x the needed FLOPs); accepted for now.
//
// Memory (one instance serves every attention step of one shape in a
// function, fwd and bwd): scores FP32 + P BF16 = 6 KV S^2 bytes for the
// forward; plus dP FP32 + dS BF16 (another 6 KV S^2) and dK/dV FP32
// accumulators (8 T KV hd) for the backward; plus a 32 MiB cuBLASLt
// workspace. Llama-3-8B, S = 2048: 192 MiB fwd, 384 + 64 MiB with bwd.
//
// CUDA graphs: create()/enableBackward() do all allocation, compilation and
// heuristic queries; forward()/backward() only enqueue on the stream.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_EXEC_TENSORCOREATTENTION_H
#define HALO_RUNTIME_CUDA_EXEC_TENSORCOREATTENTION_H

#include "runtime/cuda/CudaContext.h"

#include <cstdint>
#include <memory>

namespace halo::cuda {

struct AttentionShape {
  int64_t B = 0, S = 0, H = 0, KV = 0, hd = 0;
  bool operator==(const AttentionShape &o) const {
    return B == o.B && S == o.S && H == o.H && KV == o.KV && hd == o.hd;
  }
};

class TensorCoreAttention {
public:
  /// True unless HALO_ATTENTION=cuda-core.
  static bool enabled();

  static StatusOr<std::unique_ptr<TensorCoreAttention>> create(const CudaContext &context,
                                                               const AttentionShape &shape);
  ~TensorCoreAttention();
  TensorCoreAttention(const TensorCoreAttention &) = delete;
  TensorCoreAttention &operator=(const TensorCoreAttention &) = delete;

  /// Allocates the backward's buffers and plans its GEMMs (idempotent).
  Status enableBackward();

  struct ForwardArgs {
    CUdeviceptr q = 0, k = 0, v = 0, out = 0, lse = 0;
  };
  struct BackwardArgs {
    CUdeviceptr q = 0, k = 0, v = 0, out = 0, lse = 0, dout = 0, dq = 0, dk = 0, dv = 0;
  };
  /// Enqueue only (capturable).
  Status forward(const ForwardArgs &args, CUstream stream);
  Status backward(const BackwardArgs &args, CUstream stream);

  const AttentionShape &shape() const;
  size_t deviceBytes() const;

  struct Impl;

private:
  explicit TensorCoreAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_EXEC_TENSORCOREATTENTION_H
