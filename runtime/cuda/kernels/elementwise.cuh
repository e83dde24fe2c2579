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
// Thread (token, VEC pairs i..i+VEC-1) over HPB heads (blockIdx.y picks the
// group): cos/sin depend on the token and i only, so they are computed once
// for HPB heads, and x[i..] / x[i+HD/2..] move as VEC-element vectors.
// y may alias x (each element is read and written by one thread).

template <int VEC> struct BfVec;
template <> struct BfVec<8> { typedef uint4 type; };
template <> struct BfVec<4> { typedef uint2 type; };
template <> struct BfVec<2> { typedef unsigned type; };
template <> struct BfVec<1> { typedef unsigned short type; };

template <int S, int H, int KV, int HD, int VEC, int HPB, bool INVERSE, class INV_FREQ>
__device__ __forceinline__ void rope(const bf16 *q, const bf16 *k, bf16 *qo,
                                     bf16 *ko, int tokens) {
  constexpr int HALF = HD / 2, CHUNKS = HALF / VEC;
  typedef typename BfVec<VEC>::type V;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)tokens * CHUNKS)
    return;
  const int i0 = (int)(idx % CHUNKS) * VEC;
  const size_t t = idx / CHUNKS;
  float c[VEC], s[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    const float angle = (float)(int)(t % S) * INV_FREQ::at(i0 + j);
    c[j] = cosf(angle);
    s[j] = INVERSE ? -sinf(angle) : sinf(angle);
  }
#pragma unroll 4
  for (int hh = 0; hh < HPB; ++hh) {
    const int head = blockIdx.y * HPB + hh;
    if (head >= H + KV)
      break;
    const bool isq = head < H;
    const size_t off = isq ? (t * H + head) * HD : (t * KV + (head - H)) * HD;
    const bf16 *src = (isq ? q : k) + off + i0;
    bf16 *dst = (isq ? qo : ko) + off + i0;
    union { V v; bf16 e[VEC]; } lo, hi, olo, ohi;
    lo.v = *reinterpret_cast<const V *>(src);
    hi.v = *reinterpret_cast<const V *>(src + HALF);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float l = __bfloat162float(lo.e[j]), h = __bfloat162float(hi.e[j]);
      olo.e[j] = __float2bfloat16_rn(l * c[j] - h * s[j]);
      ohi.e[j] = __float2bfloat16_rn(h * c[j] + l * s[j]);
    }
    *reinterpret_cast<V *>(dst) = olo.v;
    *reinterpret_cast<V *>(dst + HALF) = ohi.v;
  }
}

// ---------------------------------------------------------------------------
// SwiGLU: y = silu(g) * u; backward dg = dy * u * s * (1 + g (1 - s)),
// du = dy * silu(g), s = sigmoid(g). N % 8 == 0. swiglu_bwd_rows: the
// backward on a dy that arrives rotated (needs hadamard_rows.cuh).

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

/// The backward of 8 elements at offset off (shared by swiglu_bwd and
/// swiglu_bwd_rows, so both round alike).
__device__ __forceinline__ void swiglu_bwd8(const bf16 *g, const bf16 *u,
                                            const float *dv, size_t off,
                                            bf16 *dg, bf16 *du) {
  float gv[8], uv[8], og[8], ou[8];
  Elem<kBF16>::load8(g + off, gv);
  Elem<kBF16>::load8(u + off, uv);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float s = sigmoidf_(gv[i]);
    ou[i] = dv[i] * (gv[i] * s);
    og[i] = dv[i] * uv[i] * s * (1.0f + gv[i] * (1.0f - s));
  }
  store8_bf16(dg + off, og);
  store8_bf16(du + off, ou);
}

template <size_t N>
__device__ __forceinline__ void swiglu_bwd(const bf16 *g, const bf16 *u,
                                           const bf16 *dy, bf16 *dg,
                                           bf16 *du) {
  for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < N / 8;
       v += (size_t)gridDim.x * blockDim.x) {
    float dv[8];
    Elem<kBF16>::load8(dy + v * 8, dv);
    swiglu_bwd8(g, u, dv, v * 8, dg, du);
  }
}

/// swiglu_bwd on dy = bf16(x H) (or x H^T), x read through LOAD (LoadPlain
/// of BF16): the right un-rotation of the down_proj input gradient that
/// halo-fuse puts into this kernel. One row per block, rotated by RH (a
/// RowHadamard / RowWide of hadamard_rows.cuh: the FP32 operations of the
/// standalone rotation, had_store, so dy is bit-identical to its output),
/// rounded to BF16 as that kernel stores it, parked in shared memory and read
/// back 8 contiguous elements at a time for 16-byte loads of g, u and stores
/// of dg, du. dy never reaches memory.
template <class RH, class LOAD>
__device__ __forceinline__ void swiglu_bwd_rows(const LOAD &ld, float scale_h,
                                                const bf16 *g, const bf16 *u,
                                                bf16 *dg, bf16 *du) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int N = RH::N;
  float *ibuf = reinterpret_cast<float *>(smem);
  // Where row() leaves element i (adamw_rows' places): 4-aligned groups of
  // elements stay contiguous there.
  auto at = [](int i) { return RH::REG ? RH::slot(i) : N + i; };
  const size_t r = blockIdx.x;
  RH rh;
  rh.row(ld, r, ibuf, scale_h, [&](float v, int i) {
    // This thread's own element: no other thread reads it yet.
    ibuf[at(i)] = __bfloat162float(__float2bfloat16_rn(v));
  });
  __syncthreads();
  for (int c = threadIdx.x; c < N / 8; c += RH::kThreads) {
    float dv[8];
    const float4 lo = *reinterpret_cast<const float4 *>(ibuf + at(8 * c));
    const float4 hi = *reinterpret_cast<const float4 *>(ibuf + at(8 * c + 4));
    dv[0] = lo.x; dv[1] = lo.y; dv[2] = lo.z; dv[3] = lo.w;
    dv[4] = hi.x; dv[5] = hi.y; dv[6] = hi.z; dv[7] = hi.w;
    swiglu_bwd8(g, u, dv, r * N + 8 * c, dg, du);
  }
}

// ---------------------------------------------------------------------------
// Embedding: out[t] = table[ids[t]] (BF16); an id outside [0, V) writes a
// zero row and sets *error = 1 (the caller checks it once per step).
// One block per token; D % 8 == 0.
// Backward, deterministic and without atomics: block (x, y) owns columns
// [S x, S x + S) of the vocab rows [VS y, VS y + VS) as FP32 in shared
// memory and writes all of them at the end (zeros included: dtable needs no
// zeroing). Per tile of THREADS tokens it keeps the tokens of its rows (in
// order), copies their dout slices to shared memory, and group g of S/2
// lanes (2 columns each) adds the rows r = g mod THREADS/(S/2) in token
// order: the CPU oracle's order, so dtable is bit-identical to it. Invalid
// ids are skipped and flagged. One vocab segment (VS = V) reads ids itself;
// more walk the segment's token list from embedding_bwd_list (`part`:
// NSEG counts, padded to even, then NSEG x T (token, row) pairs).

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

/// Exclusive prefix sum of v over the block; *total gets the sum.
template <int THREADS>
__device__ __forceinline__ int block_excl_scan(int v, int *wsum, int *total) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o)
      x += y;
  }
  if (lane == 31)
    wsum[w] = x;
  __syncthreads();
  int base = 0, all = 0;
#pragma unroll
  for (int i = 0; i < THREADS / 32; ++i) {
    const int c = wsum[i];
    base += i < w ? c : 0;
    all += c;
  }
  __syncthreads();
  *total = all;
  return base + x - v;
}

/// Segment blockIdx.x's (token, id - VS x) pairs in token order (K tokens
/// per thread per pass); segment 0 flags invalid ids.
template <int V, int T, int VS, int NSEG, int THREADS, int K>
__device__ __forceinline__ void embedding_bwd_list(const int *ids, int *part,
                                                   int *error) {
  __shared__ int wsum[THREADS / 32];
  const int v0 = blockIdx.x * VS;
  int2 *ent = reinterpret_cast<int2 *>(part + (NSEG + 1) / 2 * 2) + (size_t)blockIdx.x * T;
  int count = 0;
  for (int base = 0; base < T; base += THREADS * K) {
    const int t0 = base + threadIdx.x * K;
    int id[K], n = 0;
#pragma unroll
    for (int j = 0; j < K; ++j)
      id[j] = t0 + j < T ? ids[t0 + j] : -1;
#pragma unroll
    for (int j = 0; j < K; ++j) {
      if (blockIdx.x == 0 && t0 + j < T && (id[j] < 0 || id[j] >= V) && error)
        *error = 1;
      n += id[j] >= v0 && id[j] < v0 + VS && id[j] < V;
    }
    int total;
    int off = count + block_excl_scan<THREADS>(n, wsum, &total);
#pragma unroll
    for (int j = 0; j < K; ++j)
      if (id[j] >= v0 && id[j] < v0 + VS && id[j] < V)
        ent[off++] = make_int2(t0 + j, id[j] - v0);
    count += total;
  }
  if (threadIdx.x == 0)
    part[blockIdx.x] = count;
}

/// Dynamic shared memory: (VS * S + THREADS * S / 2 + 2 * THREADS) * 4 bytes.
template <int V, int D, int T, int VS, int S, int NSEG, int THREADS>
__device__ __forceinline__ void embedding_bwd(const int *ids, const int *part,
                                              const bf16 *dout, float *dtable,
                                              int *error) {
  constexpr int GL = S / 2, GPW = 32 / GL, G = THREADS / GL, CH = S / 8;
  extern __shared__ float4 emb_smem[];
  __shared__ int wsum[THREADS / 32];
  float *acc = reinterpret_cast<float *>(emb_smem);
  bf16 *dyt = reinterpret_cast<bf16 *>(acc + VS * S);
  int *trow = reinterpret_cast<int *>(dyt + THREADS * S), *ttok = trow + THREADS;
  const int v0 = blockIdx.y * VS, c0 = blockIdx.x * S;
  for (int i = threadIdx.x; i < VS * S / 4; i += THREADS)
    reinterpret_cast<float4 *>(acc)[i] = make_float4(0.f, 0.f, 0.f, 0.f);
  const int items = NSEG > 1 ? part[blockIdx.y] : T;
  const int2 *ent = NSEG > 1 ? reinterpret_cast<const int2 *>(part + (NSEG + 1) / 2 * 2) +
                                  (size_t)blockIdx.y * T
                           : nullptr;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, li = lane % GL;
  float2 *acc2 = reinterpret_cast<float2 *>(acc);
  const __nv_bfloat162 *d2 = reinterpret_cast<const __nv_bfloat162 *>(dyt);
  for (int base = 0; base < items; base += THREADS) {
    const int e = base + threadIdx.x;
    int tok = -1, row = -1;
    if (e < items) {
      if (NSEG > 1) {
        const int2 p = ent[e];
        tok = p.x;
        row = p.y;
      } else {
        const int id = ids[e];
        tok = e;
        if (id >= 0 && id < V)
          row = id;
        else if (error && blockIdx.x == 0)
          *error = 1;
      }
    }
    int n;
    const int off = block_excl_scan<THREADS>(row >= 0, wsum, &n);
    if (row >= 0) {
      trow[off] = row;
      ttok[off] = tok;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n * CH; i += THREADS)
      reinterpret_cast<uint4 *>(dyt)[i] = __ldg(reinterpret_cast<const uint4 *>(
          dout + (size_t)ttok[i / CH] * D + c0 + (i % CH) * 8));
    __syncthreads();
    for (int k = 0; k < n; k += 32) {
      const int r = k + lane < n ? trow[k + lane] : -1;
      unsigned mine = 0;
#pragma unroll
      for (int q = 0; q < GPW; ++q) {
        const unsigned m = __ballot_sync(0xffffffffu, r >= 0 && r % G == warp * GPW + q);
        if (lane / GL == q)
          mine = m;
      }
      while (__any_sync(0xffffffffu, mine)) {
        const int b = mine ? __ffs(mine) - 1 : 0;
        const int rr = __shfl_sync(0xffffffffu, r, b);
        if (mine) {
          mine &= mine - 1;
          float2 a = acc2[rr * GL + li];
          const float2 d = __bfloat1622float2(d2[(k + b) * GL + li]);
          a.x += d.x;
          a.y += d.y;
          acc2[rr * GL + li] = a;
        }
      }
    }
    __syncthreads();
  }
  __syncthreads();
  for (int i = threadIdx.x; i < VS * S / 4; i += THREADS) {
    const int r = i / (S / 4), c = i % (S / 4);
    if (v0 + r < V)
      reinterpret_cast<float4 *>(dtable + (size_t)(v0 + r) * D + c0)[c] =
          reinterpret_cast<const float4 *>(acc)[i];
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
// gradient is F32 or BF16 (G: kF32 / kBF16), so are the moments (M) and the
// parameter (P). BF16 moments are stored rounded stochastically with the
// bits of numerics::momentRoundingBits (one hash of step and element: its low
// 16 bits round exp_avg, its high 16 exp_avg_sq), a BF16 parameter with
// those of numerics::paramRoundingBits, so the CPU oracle rounds the same
// way.

__device__ __forceinline__ unsigned hash_bits32(unsigned x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// The element's 32 random bits; salt = hash_bits32(step).
__device__ __forceinline__ unsigned moment_bits(size_t element, unsigned salt) {
  return hash_bits32(((unsigned)element ^ ((unsigned)(element >> 32) * 0x9E3779B9u)) ^ salt);
}

// numerics::paramRoundingBits from the element's moment_bits: hashed once more.
__device__ __forceinline__ unsigned param_bits(unsigned moment) {
  return hash_bits32(moment ^ 0x5851F42Du);
}

// BF16 bits of x rounded stochastically with 16 random bits
// (numerics::stochasticRoundToBF16).
__device__ __forceinline__ unsigned sr_bf16_bits(float x, unsigned random16) {
  const unsigned b = __float_as_uint(x);
  if ((b & 0x7F800000u) == 0x7F800000u)
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return (b + (random16 & 0xFFFFu)) >> 16;
}

template <int T>
__device__ __forceinline__ float4 load4(const typename Elem<T>::type *p, size_t i4) {
  if (T == kF32)
    return reinterpret_cast<const float4 *>(p)[i4];
  const uint2 raw = reinterpret_cast<const uint2 *>(p)[i4];
  return make_float4(__uint_as_float(raw.x << 16), __uint_as_float(raw.x & 0xFFFF0000u),
                     __uint_as_float(raw.y << 16), __uint_as_float(raw.y & 0xFFFF0000u));
}

// Stores 4 elements at 4 i4 (or one at i); BF16 ones rounded stochastically
// with the low 16 bits of bits[j] (bits).
template <int T>
__device__ __forceinline__ void store4_sr(typename Elem<T>::type *p, size_t i4, float4 x,
                                          const unsigned (&bits)[4]) {
  if (T == kF32) {
    reinterpret_cast<float4 *>(p)[i4] = x;
    return;
  }
  const float *xp = &x.x;
  unsigned b[4];
#pragma unroll
  for (int j = 0; j < 4; ++j)
    b[j] = sr_bf16_bits(xp[j], bits[j]);
  reinterpret_cast<uint2 *>(p)[i4] = make_uint2(b[0] | (b[1] << 16), b[2] | (b[3] << 16));
}

template <int T>
__device__ __forceinline__ void store_sr(typename Elem<T>::type *p, size_t i, float x,
                                         unsigned bits) {
  if (T == kF32)
    reinterpret_cast<float *>(p)[i] = x;
  else
    reinterpret_cast<unsigned short *>(p)[i] = (unsigned short)sr_bf16_bits(x, bits);
}

/// The step's scalars, read once per block.
struct AdamWStep {
  float decay, c1, c2, gs, lrf, b1, b2, a1, a2, eps;
  unsigned salt;
};

/// All threads call it; false: a non-finite grad_scale skips the update.
__device__ __forceinline__ bool adamw_begin(const float *lr_p, const int *step_p,
                                            const float *grad_scale, double beta1,
                                            double beta2, double eps, double wd,
                                            AdamWStep &st) {
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
  st.decay = coef[0];
  st.c1 = coef[1];
  st.c2 = coef[2];
  st.gs = coef[3];
  st.lrf = (float)*lr_p;
  st.b1 = (float)beta1;
  st.b2 = (float)beta2;
  st.a1 = (float)(1.0 - beta1);
  st.a2 = (float)(1.0 - beta2);
  st.eps = (float)eps;
  st.salt = hash_bits32((unsigned)*step_p);
  return isfinite(st.gs);
}

/// Elements 4 i4 .. 4 i4 + 3 with gradient gr (before grad_scale).
template <int P, int M, bool BF16COPY>
__device__ __forceinline__ void adamw4(typename Elem<P>::type *param, float4 gr,
                                       typename Elem<M>::type *m, typename Elem<M>::type *v,
                                       size_t i4, const AdamWStep &st, bf16 *copy) {
  float4 p = load4<P>(param, i4);
  float4 mm = load4<M>(m, i4);
  float4 vv = load4<M>(v, i4);
  float *pp = &p.x, *gg = &gr.x, *mp = &mm.x, *vp = &vv.x;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float g = gg[j] * st.gs;
    mp[j] = st.b1 * mp[j] + st.a1 * g;
    vp[j] = st.b2 * vp[j] + st.a2 * g * g;
    const float mhat = mp[j] * st.c1, vhat = vp[j] * st.c2;
    pp[j] = pp[j] * st.decay - st.lrf * mhat / (sqrtf(vhat) + st.eps);
  }
  // One hash per element (dead code when nothing is BF16).
  unsigned rm[4], rv[4], rp[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    rm[j] = moment_bits(i4 * 4 + j, st.salt);
    rv[j] = rm[j] >> 16;
    rp[j] = param_bits(rm[j]);
  }
  store4_sr<P>(param, i4, p, rp);
  store4_sr<M>(m, i4, mm, rm);
  store4_sr<M>(v, i4, vv, rv);
  if (BF16COPY) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y);
    __nv_bfloat162 hi = __floats2bfloat162_rn(p.z, p.w);
    uint2 w = make_uint2(*reinterpret_cast<unsigned *>(&lo),
                         *reinterpret_cast<unsigned *>(&hi));
    reinterpret_cast<uint2 *>(copy)[i4] = w;
  }
}

template <int P, int G, int M, size_t N, int THREADS, bool BF16COPY>
__device__ __forceinline__ void adamw(typename Elem<P>::type *param,
                                      const typename Elem<G>::type *grad,
                                      typename Elem<M>::type *m, typename Elem<M>::type *v,
                                      const float *lr_p, const int *step_p,
                                      const float *grad_scale, double beta1,
                                      double beta2, double eps, double wd,
                                      bf16 *copy) {
  AdamWStep st;
  if (!adamw_begin(lr_p, step_p, grad_scale, beta1, beta2, eps, wd, st))
    return;
  for (size_t i4 = (size_t)blockIdx.x * THREADS + threadIdx.x; i4 < N / 4;
       i4 += (size_t)gridDim.x * THREADS)
    adamw4<P, M, BF16COPY>(param, load4<G>(grad, i4), m, v, i4, st, copy);
  // Tail (N % 4 elements), handled by block 0.
  if (N % 4 && blockIdx.x == 0 && threadIdx.x < N % 4) {
    const size_t i = (N / 4) * 4 + threadIdx.x;
    const float g = Elem<G>::load(grad + i) * st.gs;
    const float mi = st.b1 * Elem<M>::load(m + i) + st.a1 * g;
    const float vi = st.b2 * Elem<M>::load(v + i) + st.a2 * g * g;
    const float mhat = mi * st.c1, vhat = vi * st.c2;
    const float p = Elem<P>::load(param + i) * st.decay - st.lrf * mhat / (sqrtf(vhat) + st.eps);
    const unsigned r = moment_bits(i, st.salt);
    store_sr<P>(param, i, p, param_bits(r));
    store_sr<M>(m, i, mi, r);
    store_sr<M>(v, i, vi, r >> 16);
    if (BF16COPY)
      copy[i] = __float2bfloat16_rn(p);
  }
}

/// AdamW on a gradient stored rotated: row r of the [rows, N] gradient is
/// G[r] = bf16(G_rot[r] H^T) (or H), the halo.hadamard the optimizer kernel
/// holds, un-rotated here by RH (a RowHadamard / RowWide of hadamard_rows.cuh,
/// one row per block: the FP32 operations of that op's own kernel, so G is
/// bit-identical), rounded to G as the op's output is, parked in shared
/// memory, then updated as adamw does with element index r * N + i (the
/// BF16 moments' rounding bits). grad_out (may be null): G itself, when the
/// un-rotated gradient is read elsewhere too.
template <class RH, int P, int G, int M, bool BF16COPY>
__device__ __forceinline__ void adamw_rows(typename Elem<P>::type *param,
                                           const typename Elem<G>::type *grad_rot,
                                           float scale_h,
                                           typename Elem<M>::type *m, typename Elem<M>::type *v,
                                           const float *lr_p, const int *step_p,
                                           const float *grad_scale, double beta1, double beta2,
                                           double eps, double wd, bf16 *copy,
                                           typename Elem<G>::type *grad_out) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int N = RH::N;
  float *ibuf = reinterpret_cast<float *>(smem);
  // Where row() leaves element i (hadq_rowwise's places).
  auto at = [](int i) { return RH::REG ? RH::slot(i) : N + i; };
  AdamWStep st;
  if (!adamw_begin(lr_p, step_p, grad_scale, beta1, beta2, eps, wd, st))
    return;
  const size_t r = blockIdx.x;
  RH rh;
  rh.row(LoadPlain<G>{grad_rot}, r, ibuf, scale_h, [&](float x, int i) {
    // This thread's own element: no other thread reads it.
    ibuf[at(i)] = G == kBF16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
  });
  __syncthreads();
  for (int c = threadIdx.x; c < N / 4; c += RH::kThreads) {
    const float4 g = make_float4(ibuf[at(4 * c)], ibuf[at(4 * c + 1)], ibuf[at(4 * c + 2)],
                                 ibuf[at(4 * c + 3)]);
    const size_t i4 = r * (N / 4) + c;
    adamw4<P, M, BF16COPY>(param, g, m, v, i4, st, copy);
    if (grad_out)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        Elem<G>::store(grad_out + 4 * i4 + j, (&g.x)[j]);
  }
}

} // namespace halo
