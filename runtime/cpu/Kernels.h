//===- Kernels.h - CPU reference kernels for HALO training -----*- C++ -*-===//
//
// The "oracle" math that the CPU interpreter calls for every op of the LLaMA
// training graph, forward and VJP. All tensors are dense and row-major;
// activations are [T, D] with T = B * S tokens and token t = (t / S, t % S).
// Every kernel is a template on the float type F, instantiated for float (the
// interpreter) and double (finite-difference tests). Subtle points: RoPE angles
// are always computed in float the way HF LLaMA does, whatever F is; attention
// holds at most two [64, S] blocks of scores per (batch, kv head); the
// heavy kernels (matmul, attention, cross entropy) use a small thread pool and
// give bit-identical results for any thread count.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CPU_KERNELS_H
#define HALO_RUNTIME_CPU_KERNELS_H

#include "halo/runtime/Status.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace halo::cpu {

//===----------------------------------------------------------------------===//
// Matmul
//===----------------------------------------------------------------------===//

/// C (+)= op(A) * op(B), accumulated in F. A is stored [M, K] ([K, M] when
/// transA), B is stored [K, N] ([N, K] when transB). C must not alias A or B.
/// A linear layer Y[T, n] = X[T, m] W^T with W [n, m] is
/// matmul(X, W, Y, T, n, m, false, true).
template <typename F>
void matmul(const F *A, // [M, K] or [K, M]
            const F *B, // [K, N] or [N, K]
            F *C,       // [M, N]
            int64_t M, int64_t N, int64_t K, bool transA, bool transB,
            bool accumulate = false);

/// VJP of matmul (without accumulate) for upstream dC: writes dA (stored like
/// A) and dB (stored like B), or adds into them when `accumulate`. Either
/// output may be null to skip it.
template <typename F>
void matmulBackward(const F *A,  // [M, K] or [K, M]
                    const F *B,  // [K, N] or [N, K]
                    const F *dC, // [M, N]
                    F *dA,       // like A
                    F *dB,       // like B
                    int64_t M, int64_t N, int64_t K, bool transA, bool transB,
                    bool accumulate = false);

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

/// Checks 0 <= ids[i] < limit for all i (ids[i] < 0 is also accepted when
/// `allowIgnored`, the cross-entropy convention). The error names `what`, the
/// first offending position and its value.
Status validateIndices(const int32_t *ids, // [n]
                       int64_t n, int64_t limit, bool allowIgnored,
                       const char *what);

/// out[t] = table[ids[t]]. Fails, writing nothing, on an out-of-range id.
template <typename F>
Status embedding(const int32_t *ids, // [T]
                 const F *table,     // [V, D]
                 F *out,             // [T, D]
                 int64_t T, int64_t V, int64_t D);

/// dTable = 0, then dTable[ids[t]] += dOut[t]. Fails, writing nothing, on an
/// out-of-range id.
template <typename F>
Status embeddingBackward(const int32_t *ids, // [T]
                         const F *dOut,      // [T, D]
                         F *dTable,          // [V, D]
                         int64_t T, int64_t V, int64_t D);

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

/// y = x * rsqrt(mean(x^2) + eps) * w per token (HF LlamaRMSNorm).
template <typename F>
void rmsNorm(const F *x, // [T, D]
             const F *w, // [D]
             F eps,
             F *y, // [T, D]
             int64_t T, int64_t D);

/// VJP of rmsNorm: writes dx and dw (dw summed over tokens, overwritten).
template <typename F>
void rmsNormBackward(const F *x, // [T, D]
                     const F *w, // [D]
                     F eps,
                     const F *dy, // [T, D]
                     F *dx,       // [T, D]
                     F *dw,       // [D]
                     int64_t T, int64_t D);

//===----------------------------------------------------------------------===//
// Rotary position embedding
//===----------------------------------------------------------------------===//

/// HF LLaMA rotate_half RoPE over H heads of width hd (even): for i < hd/2,
/// pos = t % S and angle = pos * inv_freq_i,
///   y[i]        = x[i] cos - x[i + hd/2] sin
///   y[i + hd/2] = x[i + hd/2] cos + x[i] sin.
/// The angle is computed in float exactly as HF does, whatever F is:
///   inv_freq_i = 1.0f / powf(float(theta), float(2i) / float(hd)),
///   angle = float(pos) * inv_freq_i, then cosf/sinf, cast to F.
/// `inverse` rotates by -angle (same cos, negated sin), which is both the
/// inverse and the VJP. y may alias x.
template <typename F>
void rope(const F *x, // [T, H * hd]
          int64_t T, int64_t S, int64_t H, int64_t hd, double theta,
          bool inverse,
          F *y); // [T, H * hd]

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// Causal grouped-query softmax attention with scale 1/sqrt(hd): query head h
/// reads kv head h / (H / KV). lse[(b * H + h) * S + s] is the logsumexp of
/// the scaled, masked scores of that query, saved for the backward pass.
template <typename F>
void attention(const F *q, // [T, H * hd]
               const F *k, // [T, KV * hd]
               const F *v, // [T, KV * hd]
               int64_t B, int64_t S, int64_t H, int64_t KV, int64_t hd,
               F *out,  // [T, H * hd]
               F *lse); // [B * H * S]

/// VJP of attention from the forward's out and lse; writes dq, dk, dv.
template <typename F>
void attentionBackward(const F *q,    // [T, H * hd]
                       const F *k,    // [T, KV * hd]
                       const F *v,    // [T, KV * hd]
                       const F *out,  // [T, H * hd]
                       const F *lse,  // [B * H * S]
                       const F *dOut, // [T, H * hd]
                       int64_t B, int64_t S, int64_t H, int64_t KV, int64_t hd,
                       F *dq,  // [T, H * hd]
                       F *dk,  // [T, KV * hd]
                       F *dv); // [T, KV * hd]

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

/// y = x * sigmoid(x).
template <typename F>
void silu(const F *x, // [n]
          F *y,       // [n]
          int64_t n);

/// dx = dy * sigmoid(x) * (1 + x * (1 - sigmoid(x))).
template <typename F>
void siluBackward(const F *x,  // [n]
                  const F *dy, // [n]
                  F *dx,       // [n]
                  int64_t n);

/// y = a * b elementwise; its VJP is itself (da = dy * b, db = dy * a).
template <typename F>
void mul(const F *a, // [n]
         const F *b, // [n]
         F *y,       // [n]
         int64_t n);

/// y = a + b elementwise.
template <typename F>
void add(const F *a, // [n]
         const F *b, // [n]
         F *y,       // [n]
         int64_t n);

/// x *= s in place.
template <typename F>
void scale(F *x, // [n]
           int64_t n, F s);

/// sum(x^2) accumulated in double (for the global gradient norm).
template <typename F>
double sumSquares(const F *x, // [n]
                  int64_t n);

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

/// Mean over counted tokens of logsumexp(logits[t]) - logits[t][targets[t]];
/// targets[t] < 0 is ignored, and no counted token gives 0. Precondition:
/// targets[t] < V (check with validateIndices(..., allowIgnored=true)).
template <typename F>
F crossEntropy(const F *logits,        // [T, V]
               const int32_t *targets, // [T]
               int64_t T, int64_t V);

/// dLogits[t] = dLoss * (softmax(logits[t]) - onehot(targets[t])) / count for
/// counted tokens, 0 for ignored ones. Same precondition as crossEntropy.
template <typename F>
void crossEntropyBackward(const F *logits,        // [T, V]
                          const int32_t *targets, // [T]
                          F dLoss,
                          F *dLogits, // [T, V]
                          int64_t T, int64_t V);

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

/// One AdamW step (PyTorch semantics), step 1-based:
///   param *= 1 - lr * weightDecay
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   param -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
/// bf16Moments: m and v are stored rounded stochastically to BF16
/// (numerics::momentRoundingBits); the update uses the unrounded values.
/// bf16Param: so is the updated param (numerics::paramRoundingBits).
template <typename F>
void adamw(F *param,      // [n]
           const F *grad, // [n]
           F *m,          // [n]
           F *v,          // [n]
           int64_t n, double lr, double beta1, double beta2, double eps,
           double weightDecay, int64_t step, bool bf16Moments = false,
           bool bf16Param = false);

/// The gradient scale of global-norm clipping and the overflow guard:
/// min(1, maxNorm / (norm + 1e-6)), 1 when maxNorm is 0 (no clipping), NaN
/// when norm is not finite (AdamW then skips the step).
template <typename F> F clipCoefficient(F norm, double maxNorm) {
  if (!std::isfinite(norm))
    return std::numeric_limits<F>::quiet_NaN();
  return maxNorm > 0 ? std::min(F(1), F(maxNorm) / (norm + F(1e-6))) : F(1);
}

enum class Schedule { Constant, Linear, Cosine };

/// Learning rate for 1-based `step`:
///   step <= warmup:  peak * step / warmup   (warmup = 0: no warm-up)
///   otherwise, with p = clamp((step - warmup) / max(1, total - warmup), 0, 1):
///     Constant: peak;  Linear: peak * (1 - p);
///     Cosine:   peak * 0.5 * (1 + cos(pi * p)).
/// So Linear/Cosine reach 0 at step = total and stay there.
double learningRate(int64_t step, double peak, int64_t warmup, int64_t total,
                    Schedule schedule);

} // namespace halo::cpu

#endif // HALO_RUNTIME_CPU_KERNELS_H
