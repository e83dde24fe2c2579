// ===- attention.cuh - Causal GQA attention, forward and backward ---------===//
//
// Semantics of cpu::attention / attentionBackward: q [T, H*HD], k, v
// [T, KV*HD], T = B*S, token t = b*S + s, query head h reads kv head
// h / (H / KV), scores scaled by 1/sqrt(HD) and causally masked; lse
// [(b*H + h)*S + s]. BF16 storage, FP32 math on CUDA cores: a simple tiled
// flash scheme (correctness first; no tensor cores yet).
//   forward : block = 64 queries of one (b, h); TPX threads per query (a
//             power of two) own DPT = HD / TPX dimensions of q and o; 64-key K/V
//             tiles in shared memory; online softmax; writes out and lse.
//   backward: _pre   delta[(b*H+h)*S+s] = dO . O
//             _dkdv  block = 64 keys of one (b, kv head); loops over the
//                    query heads of the group and the causal query tiles,
//                    accumulating dK, dV in registers (no atomics)
//             _dq    block = 64 queries of one (b, h); loops over key tiles,
//                    dQ = sum_j dS_ij K_j (no atomics)
//   with P = exp(s * scale - lse), dS = scale * P * (dO.V - delta).
//
// ===----------------------------------------------------------------------===//

namespace halo {

/// Threads per row: the fewest, a power of two (group_sum's butterflies stay
/// inside the group), that leave at most 32 dimensions each, in whole 8s.
__host__ __device__ constexpr int attn_tpx(int hd, int t = 1) {
  return hd / t > 32 ? attn_tpx(hd, 2 * t) : t > 1 && hd % (8 * t) != 0 ? t / 2 : t;
}

template <int HD> struct AttnCfg {
  static constexpr int TPX = attn_tpx(HD);
  static constexpr int DPT = HD / TPX;
  static constexpr int TILE = 64;
  static constexpr int THREADS = TILE * TPX;
  static_assert(HD % 8 == 0 && HD % DPT == 0, "head dim must be a multiple of 8");
  static_assert(HD <= 256, "head dim must be <= 256");
};

/// Sum over the TPX consecutive lanes that share a row.
template <int TPX>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = 1; o < TPX; o <<= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Loads a [64][HD] BF16 tile (rows r0.., stride `ld` elements) into shared
/// memory; rows >= limit are zero.
template <int HD, int THREADS>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src,
                                          size_t ld, int r0, int limit) {
  constexpr int VPR = HD / 8;
  for (int idx = threadIdx.x; idx < 64 * VPR; idx += THREADS) {
    const int r = idx / VPR, c = (idx % VPR) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r0 + r < limit)
      v = *reinterpret_cast<const uint4 *>(src + (size_t)(r0 + r) * ld + c);
    *reinterpret_cast<uint4 *>(dst + r * HD + c) = v;
  }
}

/// DPT floats from a BF16 row (shared or global), 16-byte aligned.
template <int DPT>
__device__ __forceinline__ void load_dpt(const bf16 *p, float *v) {
#pragma unroll
  for (int i = 0; i < DPT / 8; ++i) {
    uint4 raw = *reinterpret_cast<const uint4 *>(p + 8 * i);
    const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      v[8 * i + 2 * j] = __uint_as_float(w[j] << 16);
      v[8 * i + 2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
    }
  }
}

template <int DPT>
__device__ __forceinline__ void store_dpt(bf16 *p, const float *v) {
#pragma unroll
  for (int i = 0; i < DPT / 8; ++i)
    store8_bf16(p + 8 * i, v + 8 * i);
}

template <int DPT>
__device__ __forceinline__ float dot_dpt(const float *a, const bf16 *b) {
  float w[DPT];
  load_dpt<DPT>(b, w);
  float s = 0.0f;
#pragma unroll
  for (int d = 0; d < DPT; ++d)
    s += a[d] * w[d];
  return s;
}

template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_fwd(const bf16 *q, const bf16 *k,
                                         const bf16 *v, bf16 *out,
                                         float *lse) {
  typedef AttnCfg<HD> C;
  constexpr int DPT = C::DPT, TPX = C::TPX;
  __shared__ __align__(16) bf16 ks[64 * HD];
  __shared__ __align__(16) bf16 vs[64 * HD];
  const int qt = gridDim.x - 1 - blockIdx.x; // long (late) tiles first
  const int bh = blockIdx.y, b = bh / H, h = bh % H, g = h / (H / KV);
  const int qi = threadIdx.x / TPX, part = threadIdx.x % TPX;
  const int qrow = qt * 64 + qi;
  const float scale = 1.0f / sqrtf((float)HD);
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const bf16 *kb = k + (size_t)b * S * kld + g * HD;
  const bf16 *vb = v + (size_t)b * S * kld + g * HD;
  float qv[DPT], o[DPT];
  const int qr = qrow < S ? qrow : S - 1;
  load_dpt<DPT>(q + ((size_t)b * S + qr) * qld + h * HD + part * DPT, qv);
#pragma unroll
  for (int d = 0; d < DPT; ++d)
    o[d] = 0.0f;
  float m = neg_inf(), l = 0.0f;
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();
    load_tile<HD, C::THREADS>(ks, kb, kld, kt * 64, S);
    load_tile<HD, C::THREADS>(vs, vb, kld, kt * 64, S);
    __syncthreads();
    for (int j = 0; j < 64; ++j) {
      const int key = kt * 64 + j;
      float s = group_sum<TPX>(dot_dpt<DPT>(qv, ks + j * HD + part * DPT));
      if (key <= qrow) {
        s *= scale;
        float vv[DPT];
        load_dpt<DPT>(vs + j * HD + part * DPT, vv);
        if (s > m) {
          const float corr = expf(m - s);
          l = l * corr + 1.0f;
#pragma unroll
          for (int d = 0; d < DPT; ++d)
            o[d] = o[d] * corr + vv[d];
          m = s;
        } else {
          const float p = expf(s - m);
          l += p;
#pragma unroll
          for (int d = 0; d < DPT; ++d)
            o[d] += p * vv[d];
        }
      }
    }
  }
  if (qrow < S) {
    const float inv = 1.0f / l;
#pragma unroll
    for (int d = 0; d < DPT; ++d)
      o[d] *= inv;
    store_dpt<DPT>(out + ((size_t)b * S + qrow) * qld + h * HD + part * DPT, o);
    if (part == 0)
      lse[(size_t)bh * S + qrow] = m + logf(l);
  }
}

/// delta = dO . O per (token, head); one thread-group of TPX per row.
template <int S, int H, int HD>
__device__ __forceinline__ void attn_bwd_pre(const bf16 *out, const bf16 *dout,
                                             float *delta, int rows) {
  typedef AttnCfg<HD> C;
  constexpr int DPT = C::DPT, TPX = C::TPX;
  const int idx = blockIdx.x * (C::THREADS / TPX) + threadIdx.x / TPX;
  const int part = threadIdx.x % TPX;
  const int r = idx < rows ? idx : rows - 1; // r = token * H + h
  float ov[DPT];
  load_dpt<DPT>(out + (size_t)r * HD + part * DPT, ov);
  const float d = group_sum<TPX>(dot_dpt<DPT>(ov, dout + (size_t)r * HD + part * DPT));
  if (idx < rows && part == 0) {
    const int t = r / H, h = r % H, b = t / S, s = t % S;
    delta[((size_t)b * H + h) * S + s] = d;
  }
}

template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_bwd_dkdv(const bf16 *q, const bf16 *k,
                                              const bf16 *v, const bf16 *dout,
                                              const float *lse,
                                              const float *delta, bf16 *dk,
                                              bf16 *dv) {
  typedef AttnCfg<HD> C;
  constexpr int DPT = C::DPT, TPX = C::TPX;
  constexpr int QT = (S + 63) / 64;
  __shared__ __align__(16) bf16 qs[64 * HD];
  __shared__ __align__(16) bf16 dos[64 * HD];
  __shared__ float ls[64], ds_[64];
  const int kt = blockIdx.x;
  const int bg = blockIdx.y, b = bg / KV, g = bg % KV;
  const int kj = threadIdx.x / TPX, part = threadIdx.x % TPX;
  const int key = kt * 64 + kj;
  const int kr = key < S ? key : S - 1;
  const float scale = 1.0f / sqrtf((float)HD);
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  float kv_[DPT], vv[DPT], dkv[DPT], dvv[DPT];
  load_dpt<DPT>(k + ((size_t)b * S + kr) * kld + g * HD + part * DPT, kv_);
  load_dpt<DPT>(v + ((size_t)b * S + kr) * kld + g * HD + part * DPT, vv);
#pragma unroll
  for (int d = 0; d < DPT; ++d)
    dkv[d] = dvv[d] = 0.0f;
  for (int h = g * (H / KV); h < (g + 1) * (H / KV); ++h) {
    const bf16 *qb = q + (size_t)b * S * qld + h * HD;
    const bf16 *db = dout + (size_t)b * S * qld + h * HD;
    const size_t lb = ((size_t)b * H + h) * S;
    for (int qt = kt; qt < QT; ++qt) {
      __syncthreads();
      load_tile<HD, C::THREADS>(qs, qb, qld, qt * 64, S);
      load_tile<HD, C::THREADS>(dos, db, qld, qt * 64, S);
      for (int i = threadIdx.x; i < 64; i += C::THREADS) {
        const int r = qt * 64 + i;
        ls[i] = r < S ? lse[lb + r] : 0.0f;
        ds_[i] = r < S ? delta[lb + r] : 0.0f;
      }
      __syncthreads();
      for (int i = 0; i < 64; ++i) {
        const int qrow = qt * 64 + i;
        const float s = group_sum<TPX>(dot_dpt<DPT>(kv_, qs + i * HD + part * DPT));
        const float dp = group_sum<TPX>(dot_dpt<DPT>(vv, dos + i * HD + part * DPT));
        if (qrow >= key && qrow < S && key < S) {
          const float p = expf(s * scale - ls[i]);
          const float dsc = scale * p * (dp - ds_[i]);
          float qq[DPT], dd[DPT];
          load_dpt<DPT>(qs + i * HD + part * DPT, qq);
          load_dpt<DPT>(dos + i * HD + part * DPT, dd);
#pragma unroll
          for (int d = 0; d < DPT; ++d) {
            dvv[d] += p * dd[d];
            dkv[d] += dsc * qq[d];
          }
        }
      }
    }
  }
  if (key < S) {
    store_dpt<DPT>(dk + ((size_t)b * S + key) * kld + g * HD + part * DPT, dkv);
    store_dpt<DPT>(dv + ((size_t)b * S + key) * kld + g * HD + part * DPT, dvv);
  }
}

template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_bwd_dq(const bf16 *q, const bf16 *k,
                                            const bf16 *v, const bf16 *dout,
                                            const float *lse,
                                            const float *delta, bf16 *dq) {
  typedef AttnCfg<HD> C;
  constexpr int DPT = C::DPT, TPX = C::TPX;
  __shared__ __align__(16) bf16 ks[64 * HD];
  __shared__ __align__(16) bf16 vs[64 * HD];
  const int qt = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y, b = bh / H, h = bh % H, g = h / (H / KV);
  const int qi = threadIdx.x / TPX, part = threadIdx.x % TPX;
  const int qrow = qt * 64 + qi;
  const int qr = qrow < S ? qrow : S - 1;
  const float scale = 1.0f / sqrtf((float)HD);
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const bf16 *kb = k + (size_t)b * S * kld + g * HD;
  const bf16 *vb = v + (size_t)b * S * kld + g * HD;
  float qv[DPT], dov[DPT], acc[DPT];
  load_dpt<DPT>(q + ((size_t)b * S + qr) * qld + h * HD + part * DPT, qv);
  load_dpt<DPT>(dout + ((size_t)b * S + qr) * qld + h * HD + part * DPT, dov);
  const float l = lse[(size_t)bh * S + qr], dl = delta[(size_t)bh * S + qr];
#pragma unroll
  for (int d = 0; d < DPT; ++d)
    acc[d] = 0.0f;
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();
    load_tile<HD, C::THREADS>(ks, kb, kld, kt * 64, S);
    load_tile<HD, C::THREADS>(vs, vb, kld, kt * 64, S);
    __syncthreads();
    for (int j = 0; j < 64; ++j) {
      const int key = kt * 64 + j;
      const float s = group_sum<TPX>(dot_dpt<DPT>(qv, ks + j * HD + part * DPT));
      const float dp = group_sum<TPX>(dot_dpt<DPT>(dov, vs + j * HD + part * DPT));
      if (key <= qrow) {
        const float p = expf(s * scale - l);
        const float dsc = scale * p * (dp - dl);
        float kk[DPT];
        load_dpt<DPT>(ks + j * HD + part * DPT, kk);
#pragma unroll
        for (int d = 0; d < DPT; ++d)
          acc[d] += dsc * kk[d];
      }
    }
  }
  if (qrow < S)
    store_dpt<DPT>(dq + ((size_t)b * S + qrow) * qld + h * HD + part * DPT, acc);
}

} // namespace halo
