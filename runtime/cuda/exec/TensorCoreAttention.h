//===- TensorCoreAttention.h - Attention on tensor cores (cuBLASLt) -*- C++ -*-===//
//
// Causal grouped-query attention and its VJP with the matmuls on tensor cores:
// strided-batched cuBLASLt GEMMs (BF16 in, FP32 accumulate) over a
// materialized score matrix, plus three small NVRTC kernels (causal softmax,
// softmax backward, FP32 -> BF16). Same semantics as runtime/cpu/Attention.cpp
// (docs/program-format.md): q [T, H*hd], k/v [T, KV*hd], out [T, H*hd] BF16,
// lse[(b*H + h)*S + s] FP32, query head h reads kv head h / (H/KV).
//
// Work unit: (batch element b, group member j, query chunk c). The query
// heads h = g*grp + j, g in [0, KV), are one strided batch of KV matrices (Q
// head offset (g*grp + j)*hd in a token row, batch stride grp*hd; K/V head
// offset g*hd, batch stride hd), so each GEMM of a unit is one cublasLtMatmul
// with batch count KV. Scores of a (b, j): [KV, S, S] FP32, reused.
//
// Causal chunks: the queries are split into C chunks of L = S/C rows (C = 4
// when S % 4 == 0 and L % 64 == 0, else C = 1, the full square). Chunk c
// (queries [cL, (c+1)L)) only needs keys [0, n_c), n_c = (c+1)L, so its
// GEMMs run on the [n_c keys x L queries] sub-block at row cL of the score
// buffers (pointer offsets, leading dimension S unchanged) and on Q/O/dO/dQ
// rows [cL, (c+1)L); the kernels touch keys c' < n_c only, writing P/dS = 0
// for s < c' < n_c. With C = 4 the GEMMs do 10/16 of the full square's work
// (the causal lower half plus the diagonal blocks). One cuBLASLt plan per
// chunk and GEMM kind (all made in create()/enableBackward()).
//
// Layouts: cuBLASLt sees the row-major buffers column-major (the row-major
// X [r, c] with leading dimension ld is the column-major X^T [c, r], ld):
//   forward   S^T  = K Q^T      (TN, FP32 out, alpha = 1/sqrt(hd))
//             O^T  = V^T P^T    (NN, BF16 out)
//   backward  S, and dP^T = V dO^T (TN), then the dsoftmax kernel writes P and
//             dS = P (dP - delta) in BF16;
//             dV^T += dO^T P    (NT, FP32 accumulators, beta = 1)
//             dK^T += scale Q^T dS (NT, likewise)
//             dQ^T  = scale K^T dS^T (NN, BF16 out)
//   dK/dV sum over group members and query chunks (chunk c reaches keys
//   [0, n_c) only): the FP32 accumulators are zeroed (cuMemsetD8Async) at the
//   start of backward(), and one kernel converts them to BF16 at the end.
//
// Memory (one instance serves every attention step of one shape in a
// function, fwd and bwd; the buffers stay full [KV, S, S] even with chunks,
// only the lower block triangle is touched): scores FP32 + P BF16 =
// 6 KV S^2 bytes for the forward; plus dP FP32 + dS BF16 (another 6 KV S^2)
// and dK/dV FP32 accumulators (8 T KV hd) for the backward; plus a 32 MiB
// cuBLASLt workspace. Llama-3-8B, S = 2048: 192 MiB fwd, 384 + 64 MiB with
// bwd.
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
  /// True with HALO_ATTENTION=cublaslt.
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
