// ===- elementwise.cuh - RoPE, SwiGLU, embedding, norms, AdamW -------------===//
//
// Memory-bound kernels with the semantics of runtime/cpu/Kernels.h, BF16
// activations and FP32 math (FP32 master weights, moments and gradients of
// the optimizer). All are grid-stride loops over 8-element (16-byte) vectors
// unless noted; the generated wrapper fixes every size at compile time.
//
// ===----------------------------------------------------------------------===//

namespace halo {

__device__ __forceinline__ float sigmoidf_(float x) {
  return 1.0f / (1.0f + expf(-x));
}

// ---------------------------------------------------------------------------
// RoPE (HF rotate_half) on q [T, H*HD] and k [T, KV*HD] in one launch.
// INV_FREQ is the generated table inv_freq_i = 1 / theta^(2i/HD) computed on
// the host exactly as the CPU oracle does; the angle is float(pos) * inv_freq
// and cos/sin are the accurate cosf/sinf. INVERSE negates sin (the VJP).
// One thread per (token, head, i < HD/2) pair; y may alias x.

template <int S, int H, int KV, int HD, bool INVERSE, class INV_FREQ>
__device__ __forceinline__ void rope(const bf16 *q, const bf16 *k, bf16 *qo,
                                     bf16 *ko, int tokens) {
  constexpr int HALF = HD / 2;
  const size_t total = (size_t)tokens * (H + KV) * HALF;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int i = (int)(idx % HALF);
    const size_t th = idx / HALF; // token * (H + KV) + head
    const int head = (int)(th % (H + KV));
    const size_t t = th / (H + KV);
    const bool isq = head < H;
    const bf16 *src = isq ? q + (t * H + head) * HD
                          : k + (t * KV + (head - H)) * HD;
    bf16 *dst = isq ? qo + (t * H + head) * HD : ko + (t * KV + (head - H)) * HD;
    const float angle = (float)(int)(t % S) * INV_FREQ::at(i);
    const float c = cosf(angle);
    const float s = INVERSE ? -sinf(angle) : sinf(angle);
    const float lo = __bfloat162float(src[i]);
    const float hi = __bfloat162float(src[i + HALF]);
    dst[i] = __float2bfloat16_rn(lo * c - hi * s);
    dst[i + HALF] = __float2bfloat16_rn(hi * c + lo * s);
  }
}

// ---------------------------------------------------------------------------
// SwiGLU: y = silu(g) * u; backward dg = dy * u * s * (1 + g (1 - s)),
// du = dy * silu(g), s = sigmoid(g). N % 8 == 0.

template <size_t N>
__device__ __forceinline__ void swiglu_fwd(const bf16 *g, const bf16 *u,
                                           bf16 *y) {
  for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < N / 8;
       v += (size_t)gridDim.x * blockDim.x) {
    float gv[8], uv[8], o[8];
    Elem<kBF16>::load8(g + v * 8, gv);
    Elem<kBF16>::load8(u + v * 8, uv);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      o[i] = gv[i] * sigmoidf_(gv[i]) * uv[i];
    store8_bf16(y + v * 8, o);
  }
}

template <size_t N>
__device__ __forceinline__ void swiglu_bwd(const bf16 *g, const bf16 *u,
                                           const bf16 *dy, bf16 *dg,
                                           bf16 *du) {
  for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < N / 8;
       v += (size_t)gridDim.x * blockDim.x) {
    float gv[8], uv[8], dv[8], og[8], ou[8];
    Elem<kBF16>::load8(g + v * 8, gv);
    Elem<kBF16>::load8(u + v * 8, uv);
    Elem<kBF16>::load8(dy + v * 8, dv);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float s = sigmoidf_(gv[i]);
      ou[i] = dv[i] * (gv[i] * s);
      og[i] = dv[i] * uv[i] * s * (1.0f + gv[i] * (1.0f - s));
    }
    store8_bf16(dg + v * 8, og);
    store8_bf16(du + v * 8, ou);
  }
}

// ---------------------------------------------------------------------------
// Embedding: out[t] = table[ids[t]] (BF16); an id outside [0, V) writes a
// zero row and sets *error = 1 (the caller checks it once per step).
// Backward: dtable[ids[t]] += dout[t] with FP32 atomics (dtable zeroed by
// the caller); invalid ids are skipped and flagged the same way.
// One block per token; D % 8 == 0.

template <int V, int D>
__device__ __forceinline__ void embedding_fwd(const int *ids,
                                              const bf16 *table, bf16 *out,
                                              int *error) {
  const size_t t = blockIdx.x;
  const int id = ids[t];
  const bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0 && error)
    *error = 1;
  for (int c = threadIdx.x; c < D / 8; c += blockDim.x) {
    uint4 v = ok ? __ldg(reinterpret_cast<const uint4 *>(table +
                                                        (size_t)id * D) + c)
                 : make_uint4(0, 0, 0, 0);
    reinterpret_cast<uint4 *>(out + t * D)[c] = v;
  }
}

template <int V, int D>
__device__ __forceinline__ void embedding_bwd(const int *ids,
                                              const bf16 *dout,
                                              float *dtable, int *error) {
  const size_t t = blockIdx.x;
  const int id = ids[t];
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0 && error)
      *error = 1;
    return;
  }
  for (int c = threadIdx.x; c < D / 8; c += blockDim.x) {
    float v[8];
    Elem<kBF16>::load8(dout + t * D + c * 8, v);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      atomicAdd(dtable + (size_t)id * D + c * 8 + i, v[i]);
  }
}

// ---------------------------------------------------------------------------
// Global gradient norm: sumsq adds sum(x^2) (in double) of one tensor into
// *acc (call once per tensor) and, when a block's sum is not finite, lowers
// *bad to `tag` (the overflow guard's "which tensor"; bad may be null);
// norm_finish then writes norm = sqrt(*acc), clip = min(1, max_norm /
// (norm + 1e-6)) (max_norm > 0, else 1), or NaN for a non-finite norm (AdamW
// then skips the step), and resets *acc to 0 for the next step.

template <int IN, size_t N, int THREADS>
__device__ __forceinline__ void sumsq(const typename Elem<IN>::type *x,
                                      double *acc, int *bad, int tag) {
  __shared__ double red[32];
  double s = 0.0;
  for (size_t v = (size_t)blockIdx.x * THREADS + threadIdx.x; v < N / 8;
       v += (size_t)gridDim.x * THREADS) {
    float e[8];
    Elem<IN>::load8(x + v * 8, e);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      s += (double)e[i] * (double)e[i];
  }
  if (N % 8) {
    const size_t i = (N / 8) * 8 + (size_t)blockIdx.x * THREADS + threadIdx.x;
    if (i < N) {
      double e = (double)Elem<IN>::load(x + i);
      s += e * e;
    }
  }
  s = block_sum<THREADS>(s, red);
  if (threadIdx.x == 0) {
    atomicAdd(acc, s);
    if (bad && !isfinite(s))
      atomicMin(bad, tag);
  }
}

__device__ __forceinline__ void norm_finish(double *acc, float max_norm,
                                            float *norm_out, float *clip_out) {
  if (threadIdx.x != 0 || blockIdx.x != 0)
    return;
  const double ss = *acc;
  const float norm = (float)sqrt(ss);
  if (norm_out)
    *norm_out = norm;
  if (clip_out)
    *clip_out = !isfinite(norm) ? __int_as_float(0x7fc00000)
                : max_norm > 0.0f ? fminf(1.0f, max_norm / (norm + 1e-6f))
                                  : 1.0f;
  *acc = 0.0;
}

// ---------------------------------------------------------------------------
// Learning rate of cpu::learningRate for the 1-based *step (one thread).
// SCHED: 0 constant, 1 linear, 2 cosine.

template <int SCHED>
__device__ __forceinline__ void lr_schedule(const int *step, double peak,
                                            long long warmup, long long total,
                                            float *lr_out) {
  if (threadIdx.x != 0 || blockIdx.x != 0)
    return;
  const long long s = *step;
  double lr;
  if (warmup > 0 && s <= warmup) {
    lr = peak * (double)s / (double)warmup;
  } else if (SCHED == 0) {
    lr = peak;
  } else {
    long long span = total - warmup;
    double p = (double)(s - warmup) / (double)(span > 1 ? span : 1);
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    lr = SCHED == 1 ? peak * (1.0 - p)
                    : peak * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
  }
  *lr_out = (float)lr;
}

// ---------------------------------------------------------------------------
// AdamW (torch semantics, as cpu::adamw) on g = grad * (*grad_scale):
//   p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr (m c1) / (sqrt(v c2) + eps), c = 1 / (1 - beta^step) in double.
// lr, step and grad_scale are device scalars (grad_scale may be null = 1;
// a non-finite grad_scale, the overflow guard's verdict, skips the update);
// BF16COPY also writes the BF16 compute copy of the updated parameter. The
// gradient is F32 or BF16 (G: kF32 / kBF16), so are the moments (M). BF16
// moments are stored rounded stochastically with the bits of
// numerics::momentRoundingBits (a hash of step, element and moment), so the
// CPU oracle rounds the same way.

__device__ __forceinline__ unsigned hash_bits32(unsigned x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// BF16 bits of x rounded stochastically with the element's random bits
// (numerics::stochasticRoundToBF16); salt = hash_bits32(step * 2 + moment).
__device__ __forceinline__ unsigned moment_bf16_bits(float x, size_t element, unsigned salt) {
  const unsigned e = (unsigned)element ^ ((unsigned)(element >> 32) * 0x9E3779B9u);
  const unsigned b = __float_as_uint(x);
  if ((b & 0x7F800000u) == 0x7F800000u)
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return (b + (hash_bits32(e ^ salt) & 0xFFFFu)) >> 16;
}

template <int T>
__device__ __forceinline__ float4 load4(const typename Elem<T>::type *p, size_t i4) {
  if (T == kF32)
    return reinterpret_cast<const float4 *>(p)[i4];
  const uint2 raw = reinterpret_cast<const uint2 *>(p)[i4];
  return make_float4(__uint_as_float(raw.x << 16), __uint_as_float(raw.x & 0xFFFF0000u),
                     __uint_as_float(raw.y << 16), __uint_as_float(raw.y & 0xFFFF0000u));
}

template <int M>
__device__ __forceinline__ void store_moment4(typename Elem<M>::type *p, size_t i4, float4 x,
                                              unsigned salt) {
  if (M == kF32) {
    reinterpret_cast<float4 *>(p)[i4] = x;
    return;
  }
  const size_t e = i4 * 4;
  const unsigned lo = moment_bf16_bits(x.x, e, salt) | (moment_bf16_bits(x.y, e + 1, salt) << 16);
  const unsigned hi = moment_bf16_bits(x.z, e + 2, salt) | (moment_bf16_bits(x.w, e + 3, salt) << 16);
  reinterpret_cast<uint2 *>(p)[i4] = make_uint2(lo, hi);
}

template <int M>
__device__ __forceinline__ void store_moment(typename Elem<M>::type *p, size_t i, float x,
                                             unsigned salt) {
  if (M == kF32)
    reinterpret_cast<float *>(p)[i] = x;
  else
    reinterpret_cast<unsigned short *>(p)[i] = (unsigned short)moment_bf16_bits(x, i, salt);
}

template <int G, int M, size_t N, int THREADS, bool BF16COPY>
__device__ __forceinline__ void adamw(float *param, const typename Elem<G>::type *grad,
                                      typename Elem<M>::type *m, typename Elem<M>::type *v,
                                      const float *lr_p, const int *step_p,
                                      const float *grad_scale, double beta1,
                                      double beta2, double eps, double wd,
                                      bf16 *copy) {
  __shared__ float coef[4];
  if (threadIdx.x == 0) {
    const double lr = (double)*lr_p;
    const double step = (double)*step_p;
    coef[0] = (float)(1.0 - lr * wd);
    coef[1] = (float)(1.0 / (1.0 - pow(beta1, step)));
    coef[2] = (float)(1.0 / (1.0 - pow(beta2, step)));
    coef[3] = grad_scale ? *grad_scale : 1.0f;
  }
  __syncthreads();
  const float decay = coef[0], c1 = coef[1], c2 = coef[2], gs = coef[3];
  if (!isfinite(gs))
    return;
  const float lrf = (float)*lr_p;
  const float b1 = (float)beta1, b2 = (float)beta2;
  const float a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
  const float epsf = (float)eps;
  const unsigned saltM = hash_bits32((unsigned)*step_p * 2u);
  const unsigned saltV = hash_bits32((unsigned)*step_p * 2u + 1u);
  for (size_t i4 = (size_t)blockIdx.x * THREADS + threadIdx.x; i4 < N / 4;
       i4 += (size_t)gridDim.x * THREADS) {
    float4 p = reinterpret_cast<float4 *>(param)[i4];
    float4 gr = load4<G>(grad, i4);
    float4 mm = load4<M>(m, i4);
    float4 vv = load4<M>(v, i4);
    float *pp = &p.x, *gg = &gr.x, *mp = &mm.x, *vp = &vv.x;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float g = gg[j] * gs;
      mp[j] = b1 * mp[j] + a1 * g;
      vp[j] = b2 * vp[j] + a2 * g * g;
      const float mhat = mp[j] * c1, vhat = vp[j] * c2;
      pp[j] = pp[j] * decay - lrf * mhat / (sqrtf(vhat) + epsf);
    }
    reinterpret_cast<float4 *>(param)[i4] = p;
    store_moment4<M>(m, i4, mm, saltM);
    store_moment4<M>(v, i4, vv, saltV);
    if (BF16COPY) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y);
      __nv_bfloat162 hi = __floats2bfloat162_rn(p.z, p.w);
      uint2 w = make_uint2(*reinterpret_cast<unsigned *>(&lo),
                           *reinterpret_cast<unsigned *>(&hi));
      reinterpret_cast<uint2 *>(copy)[i4] = w;
    }
  }
  // Tail (N % 4 elements), handled by block 0.
  if (N % 4 && blockIdx.x == 0 && threadIdx.x < N % 4) {
    const size_t i = (N / 4) * 4 + threadIdx.x;
    const float g = Elem<G>::load(grad + i) * gs;
    const float mi = b1 * Elem<M>::load(m + i) + a1 * g;
    const float vi = b2 * Elem<M>::load(v + i) + a2 * g * g;
    const float mhat = mi * c1, vhat = vi * c2;
    param[i] = param[i] * decay - lrf * mhat / (sqrtf(vhat) + epsf);
    store_moment<M>(m, i, mi, saltM);
    store_moment<M>(v, i, vi, saltV);
    if (BF16COPY)
      copy[i] = __float2bfloat16_rn(param[i]);
  }
}

} // namespace halo
