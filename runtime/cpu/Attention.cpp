//===- Attention.cpp - Causal grouped-query attention and its VJP ---------===//
//
// Work is split over (batch, kv head) so that the query heads sharing a kv
// head, which all add into the same dk/dv slice, stay on one thread. Queries
// are processed in blocks of kRowBlock rows against keys [0, end of block):
// the scores live in a [kRowBlock, S] buffer (two in the backward), never a
// full S x S matrix, and the causal mask halves the work. Heads are read in
// place from the [T, H * hd] activations through strided gemm views.
// Backward (P recomputed from lse, D_i = dO_i . O_i):
//   dV += P^T dO;  dP = dO V^T;  dS = scale * P * (dP - D);
//   dQ = dS K;     dK += dS^T Q.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/Gemm.h"
#include "runtime/cpu/Kernels.h"
#include "runtime/cpu/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace halo::cpu {
namespace {

constexpr int64_t kRowBlock = 64;

/// Shapes and strides of one attention call.
struct Dims {
  int64_t B, S, H, KV, hd;
  int64_t qStride() const { return H * hd; }   // between tokens of q/out
  int64_t kvStride() const { return KV * hd; } // between tokens of k/v
  int64_t group() const { return H / KV; }
};

/// Offset of (token s of batch b, head h) in an activation with `heads` heads.
int64_t offset(const Dims &d, int64_t b, int64_t s, int64_t h, int64_t heads) {
  return ((b * d.S + s) * heads + h) * d.hd;
}

/// scores[r, j] = q[r0 + r] . k[j] for r < rows, j < keys (unscaled).
template <typename F>
void scoreBlock(const Dims &d, const F *q, const F *k, int64_t b, int64_t h,
                int64_t g, int64_t r0, int64_t rows, int64_t keys,
                F *scores) { // [rows, keys]
  StridedView<F> qv{q + offset(d, b, r0, h, d.H), d.qStride(), 1};
  StridedView<F> kT{k + offset(d, b, 0, g, d.KV), 1, d.kvStride()};
  gemm(rows, keys, d.hd, qv, kT, scores, keys, /*accumulate=*/false);
}

template <typename F>
void forwardUnit(const Dims &d, const F *q, const F *k, const F *v, int64_t b,
                 int64_t g, F *out, F *lse, std::vector<F> &scores) {
  F scale = F(1) / std::sqrt(F(d.hd));
  for (int64_t h = g * d.group(); h < (g + 1) * d.group(); ++h) {
    for (int64_t r0 = 0; r0 < d.S; r0 += kRowBlock) {
      int64_t rows = std::min(kRowBlock, d.S - r0), keys = r0 + rows;
      scoreBlock(d, q, k, b, h, g, r0, rows, keys, scores.data());
      for (int64_t r = 0; r < rows; ++r) {
        F *row = scores.data() + r * keys;
        int64_t valid = r0 + r + 1; // causal: keys 0 .. r0 + r
        F mx = -std::numeric_limits<F>::infinity();
        for (int64_t j = 0; j < valid; ++j) {
          row[j] *= scale;
          mx = std::max(mx, row[j]);
        }
        F sum = 0;
        for (int64_t j = 0; j < valid; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        for (int64_t j = 0; j < valid; ++j)
          row[j] /= sum;
        std::fill(row + valid, row + keys, F(0));
        lse[(b * d.H + h) * d.S + r0 + r] = mx + std::log(sum);
      }
      StridedView<F> p{scores.data(), keys, 1};
      StridedView<F> vv{v + offset(d, b, 0, g, d.KV), d.kvStride(), 1};
      gemm(rows, d.hd, keys, p, vv, out + offset(d, b, r0, h, d.H), d.qStride(),
           /*accumulate=*/false);
    }
  }
}

template <typename F>
void backwardUnit(const Dims &d, const F *q, const F *k, const F *v,
                  const F *out, const F *lse, const F *dOut, int64_t b,
                  int64_t g, F *dq, F *dk, F *dv, std::vector<F> &probs,
                  std::vector<F> &dProbs) {
  F scale = F(1) / std::sqrt(F(d.hd));
  // This unit owns dk/dv of (b, g); its query heads add into them.
  for (int64_t s = 0; s < d.S; ++s) {
    std::fill_n(dk + offset(d, b, s, g, d.KV), d.hd, F(0));
    std::fill_n(dv + offset(d, b, s, g, d.KV), d.hd, F(0));
  }
  StridedView<F> kv{k + offset(d, b, 0, g, d.KV), d.kvStride(), 1};
  StridedView<F> vT{v + offset(d, b, 0, g, d.KV), 1, d.kvStride()};
  for (int64_t h = g * d.group(); h < (g + 1) * d.group(); ++h) {
    for (int64_t r0 = 0; r0 < d.S; r0 += kRowBlock) {
      int64_t rows = std::min(kRowBlock, d.S - r0), keys = r0 + rows;
      StridedView<F> dO{dOut + offset(d, b, r0, h, d.H), d.qStride(), 1};
      scoreBlock(d, q, k, b, h, g, r0, rows, keys, probs.data());
      for (int64_t r = 0; r < rows; ++r) {
        F *row = probs.data() + r * keys;
        int64_t valid = r0 + r + 1;
        F l = lse[(b * d.H + h) * d.S + r0 + r];
        for (int64_t j = 0; j < valid; ++j)
          row[j] = std::exp(row[j] * scale - l);
        std::fill(row + valid, row + keys, F(0));
      }
      StridedView<F> pT{probs.data(), 1, keys};
      gemm(keys, d.hd, rows, pT, dO, dv + offset(d, b, 0, g, d.KV),
           d.kvStride(), /*accumulate=*/true);
      gemm(rows, keys, d.hd, dO, vT, dProbs.data(), keys, false);
      for (int64_t r = 0; r < rows; ++r) {
        const F *o = out + offset(d, b, r0 + r, h, d.H);
        const F *go = dOut + offset(d, b, r0 + r, h, d.H);
        F delta = 0;
        for (int64_t e = 0; e < d.hd; ++e)
          delta += go[e] * o[e];
        const F *p = probs.data() + r * keys;
        F *ds = dProbs.data() + r * keys;
        // Masked entries have p = 0, so dS is 0 there as well.
        for (int64_t j = 0; j < keys; ++j)
          ds[j] = scale * p[j] * (ds[j] - delta);
      }
      StridedView<F> dS{dProbs.data(), keys, 1};
      gemm(rows, d.hd, keys, dS, kv, dq + offset(d, b, r0, h, d.H), d.qStride(),
           /*accumulate=*/false);
      StridedView<F> dST{dProbs.data(), 1, keys};
      StridedView<F> qv{q + offset(d, b, r0, h, d.H), d.qStride(), 1};
      gemm(keys, d.hd, rows, dST, qv, dk + offset(d, b, 0, g, d.KV),
           d.kvStride(), /*accumulate=*/true);
    }
  }
}

} // namespace

template <typename F>
void attention(const F *q, const F *k, const F *v, int64_t B, int64_t S,
               int64_t H, int64_t KV, int64_t hd, F *out, F *lse) {
  Dims d{B, S, H, KV, hd};
  parallelFor(B * KV, [&](int64_t begin, int64_t end) {
    std::vector<F> scores(std::min(kRowBlock, S) * S);
    for (int64_t unit = begin; unit < end; ++unit)
      forwardUnit(d, q, k, v, unit / KV, unit % KV, out, lse, scores);
  });
}

template <typename F>
void attentionBackward(const F *q, const F *k, const F *v, const F *out,
                       const F *lse, const F *dOut, int64_t B, int64_t S,
                       int64_t H, int64_t KV, int64_t hd, F *dq, F *dk, F *dv) {
  Dims d{B, S, H, KV, hd};
  parallelFor(B * KV, [&](int64_t begin, int64_t end) {
    std::vector<F> probs(std::min(kRowBlock, S) * S), dProbs(probs.size());
    for (int64_t unit = begin; unit < end; ++unit)
      backwardUnit(d, q, k, v, out, lse, dOut, unit / KV, unit % KV, dq, dk, dv,
                   probs, dProbs);
  });
}

#define HALO_INSTANTIATE(F)                                                    \
  template void attention<F>(const F *, const F *, const F *, int64_t,         \
                             int64_t, int64_t, int64_t, int64_t, F *, F *);    \
  template void attentionBackward<F>(                                          \
      const F *, const F *, const F *, const F *, const F *, const F *,        \
      int64_t, int64_t, int64_t, int64_t, int64_t, F *, F *, F *);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

} // namespace halo::cpu
