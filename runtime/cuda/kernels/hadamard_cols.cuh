// ===- hadamard_cols.cuh - Left (token-dimension) Hadamard -----------------===//
//
// X [T, C] becomes H X (or H^T X), H = (H_K kron H_P) / sqrt(T), T = K * P:
// every column is rotated like a row of hadamard_rows.cuh, with the same FP32
// operations in the same order as numerics::hadamardCols (Walsh-Hadamard
// stages h = 1, 2, ... over the row index, then the K mix from 0, then the
// 1/sqrt(T) multiply), so results are bit-identical to the CPU oracle.
//
// A block owns a tile of CW columns and J rows t(j) = base + a * P + b * SB
// (j = a * PB + b, a < KA, b < PB) in shared memory (FP32 [J][CW]) and runs the
// Walsh-Hadamard stages over b (radix-16 passes through shared memory) and,
// when KA = K > 1, the K mix. When T * CW floats fit in shared memory that is
// the whole transform (one pass: KA = K, PB = P, SB = 1). Otherwise it is two
// passes split at R = 2^r rows:
//   pass 1: KA = 1, PB = R, SB = 1, base = R * blockIdx.y: stages h < R,
//           written as FP32 to a [T, C] workspace (exact, no rounding);
//   pass 2: KA = K, PB = P / R, SB = R, base = blockIdx.y (< R): stages
//           h >= R, K mix, 1/sqrt(T), and the epilogue.
// Epilogues (FINAL passes): store BF16/F32, per-tensor absmax (self-resetting
// workspace as in hadamard_rows.cuh) and per-tensor quantize with the device
// scale. Grid: (C / CW, bases); THREADS threads.
//
// For sm_90 (targetSm >= 90) the generator uses ColCluster (below) instead of
// the two passes when K = 1, T = 2048..8192, x is BF16 and C is a multiple
// of 16: one pass, the rows of a column tile spread over the shared memory
// of a thread-block cluster.
//
// ===----------------------------------------------------------------------===//

namespace halo {

template <class HK, int KA, int PB, int P, int SB, int CW, int THREADS>
struct ColTile {
  static constexpr int J = KA * PB;
  static constexpr int VPR = CW / 8; // 8-element vectors per tile row
  static constexpr int TILE_FLOATS = J * CW;
  static constexpr int kThreads = THREADS;
  static constexpr int kPB = PB;
  static_assert(CW % 8 == 0, "CW must be a multiple of 8");
  static_assert((PB & (PB - 1)) == 0, "PB must be a power of two");
  static_assert(KA <= 64, "left Hadamard supports K <= 64");

  /// Global row of tile row j.
  static __device__ __forceinline__ size_t row_of(size_t base, int j) {
    return base + (size_t)(j / PB) * P + (size_t)(j % PB) * SB;
  }

  template <class LOAD>
  static __device__ __forceinline__ void load(const LOAD &ld, size_t base,
                                              size_t c0, size_t C,
                                              float *tile) {
    for (int idx = threadIdx.x; idx < J * VPR; idx += THREADS) {
      const int j = idx / VPR, cc = (idx % VPR) * 8;
      float v[8];
      ld.load8(row_of(base, j) * C + c0 + cc, v);
      float4 *dst = reinterpret_cast<float4 *>(tile + j * CW + cc);
      dst[0] = make_float4(v[0], v[1], v[2], v[3]);
      dst[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
  }

  /// Walsh-Hadamard over b in radix-2^RB passes (stage order h = 1, 2, ...).
  template <int S0, int RB>
  static __device__ __forceinline__ void wht_pass(float *tile) {
    constexpr int M = 1 << RB;
    constexpr int GROUPS = KA * (PB / M) * CW;
    for (int gi = threadIdx.x; gi < GROUPS; gi += THREADS) {
      const int col = gi % CW;
      const int rest = gi / CW; // a * (PB / M) + g
      const int a = rest / (PB / M), g = rest % (PB / M);
      // b = low S0 bits of g, then RB zero bits, then the rest of g.
      const int lowmask = (1 << S0) - 1;
      const int b0 = (g & lowmask) | ((g & ~lowmask) << RB);
      float w[M];
#pragma unroll
      for (int k = 0; k < M; ++k)
        w[k] = tile[(a * PB + b0 + (k << S0)) * CW + col];
#pragma unroll
      for (int h = 1; h < M; h <<= 1)
#pragma unroll
        for (int k = 0; k < M; ++k)
          if (!(k & h)) {
            float x = w[k], y = w[k + h];
            w[k] = x + y;
            w[k + h] = x - y;
          }
#pragma unroll
      for (int k = 0; k < M; ++k)
        tile[(a * PB + b0 + (k << S0)) * CW + col] = w[k];
    }
  }

  template <int S0>
  static __device__ __forceinline__ void wht_from(float *tile) {
    constexpr int LOG = ilog2(PB);
    if constexpr (S0 < LOG) {
      constexpr int RB = (LOG - S0) < 4 ? (LOG - S0) : 4;
      wht_pass<S0, RB>(tile);
      __syncthreads();
      wht_from<S0 + RB>(tile);
    }
  }

  static __device__ __forceinline__ void kmix(float *tile) {
    if constexpr (KA > 1) {
      for (int gi = threadIdx.x; gi < PB * CW; gi += THREADS) {
        const int col = gi % CW, b = gi / CW;
        float w[KA];
#pragma unroll
        for (int a = 0; a < KA; ++a)
          w[a] = tile[(a * PB + b) * CW + col];
#pragma unroll
        for (int c = 0; c < KA; ++c) {
          float acc = 0.0f;
#pragma unroll
          for (int a = 0; a < KA; ++a)
            acc = HK::neg(a, c) ? acc - w[a] : acc + w[a];
          tile[(c * PB + b) * CW + col] = acc;
        }
      }
      __syncthreads();
    }
  }

  /// Load, all stages of this pass, K mix; the tile is then ready (synced).
  template <class LOAD>
  static __device__ __forceinline__ void run(const LOAD &ld, size_t base,
                                             size_t c0, size_t C,
                                             float *tile) {
    load(ld, base, c0, C, tile);
    __syncthreads();
    wht_from<0>(tile);
    kmix(tile);
  }

  /// f(v[8], global element offset) for every 8-vector of the tile.
  template <class F>
  static __device__ __forceinline__ void each8(const float *tile, size_t base,
                                               size_t c0, size_t C,
                                               float scale, F &&f) {
    for (int idx = threadIdx.x; idx < J * VPR; idx += THREADS) {
      const int j = idx / VPR, cc = (idx % VPR) * 8;
      const float4 *src = reinterpret_cast<const float4 *>(tile + j * CW + cc);
      float4 lo = src[0], hi = src[1];
      float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
      for (int e = 0; e < 8; ++e)
        v[e] = v[e] * scale;
      f(v, row_of(base, j) * C + c0 + cc);
    }
  }
};

template <class CT>
__host__ __device__ constexpr size_t col_smem_bytes() {
  return CT::TILE_FLOATS * 4 + 32 * 4;
}

/// Non-final pass 1 (or any pass) writing the FP32 tile unscaled.
template <class CT, class LOAD>
__device__ __forceinline__ void hadl_partial(const LOAD &ld, size_t C,
                                             float *tmp) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *tile = reinterpret_cast<float *>(smem);
  const size_t c0 = (size_t)blockIdx.x * (CT::VPR * 8);
  const size_t base = (size_t)blockIdx.y * CT::kPB;
  CT::run(ld, base, c0, C, tile);
  CT::each8(tile, base, c0, C, 1.0f, [&](const float *v, size_t off) {
    float4 *d = reinterpret_cast<float4 *>(tmp + off);
    d[0] = make_float4(v[0], v[1], v[2], v[3]);
    d[1] = make_float4(v[4], v[5], v[6], v[7]);
  });
}

/// Final pass: base = blockIdx.y (two-pass) or 0 (one pass), see BASE_Y.
template <class CT, class LOAD, int OUT, bool BASE_Y>
__device__ __forceinline__ void hadl_store(const LOAD &ld, size_t C,
                                           float scale_h,
                                           typename Elem<OUT>::type *y) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *tile = reinterpret_cast<float *>(smem);
  const size_t c0 = (size_t)blockIdx.x * (CT::VPR * 8);
  const size_t base = BASE_Y ? blockIdx.y : 0;
  CT::run(ld, base, c0, C, tile);
  CT::each8(tile, base, c0, C, scale_h, [&](const float *v, size_t off) {
    if constexpr (OUT == kF32) {
      float4 *d = reinterpret_cast<float4 *>(y + off);
      d[0] = make_float4(v[0], v[1], v[2], v[3]);
      d[1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      unsigned w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        __nv_bfloat162 p = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
        w[i] = *reinterpret_cast<unsigned *>(&p);
      }
      *reinterpret_cast<uint4 *>(y + off) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  });
}

template <class CT, int FMT, class LOAD, bool BASE_Y>
__device__ __forceinline__ void hadl_absmax(const LOAD &ld, size_t C,
                                            float scale_h, unsigned *ws,
                                            float *scale_out,
                                            float *absmax_out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *tile = reinterpret_cast<float *>(smem);
  float *red = tile + CT::TILE_FLOATS;
  const size_t c0 = (size_t)blockIdx.x * (CT::VPR * 8);
  const size_t base = BASE_Y ? blockIdx.y : 0;
  CT::run(ld, base, c0, C, tile);
  float amax = 0.0f;
  CT::each8(tile, base, c0, C, scale_h, [&](const float *v, size_t) {
#pragma unroll
    for (int e = 0; e < 8; ++e)
      amax = fmaxf(amax, fabsf(v[e]));
  });
  amax = block_max<CT::kThreads>(amax, red);
  if (threadIdx.x == 0)
    publish_absmax<FMT>(amax, ws, scale_out, absmax_out,
                        gridDim.x * gridDim.y);
}

template <class CT, int FMT, class LOAD, bool BASE_Y>
__device__ __forceinline__ void hadl_apply(const LOAD &ld, size_t C,
                                           float scale_h,
                                           const float *scale_in,
                                           unsigned char *out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *tile = reinterpret_cast<float *>(smem);
  const size_t c0 = (size_t)blockIdx.x * (CT::VPR * 8);
  const size_t base = BASE_Y ? blockIdx.y : 0;
  const float s = *scale_in;
  CT::run(ld, base, c0, C, tile);
  CT::each8(tile, base, c0, C, scale_h, [&](const float *v, size_t off) {
    unsigned w[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e)
      w[e / 4] |= (unsigned)quantize<FMT>(v[e], s) << (8 * (e % 4));
    *reinterpret_cast<uint2 *>(out + off) = make_uint2(w[0], w[1]);
  });
}

// ---------------------------------------------------------------------------
// ColCluster: the left Hadamard of T = X * 1024 rows (K = 1, X = 2, 4, 8) in
// one pass on sm_90. A cluster of X CTAs works on a tile of 16 columns
// (32-byte BF16 row segments); CTA rank r holds rows [1024 r, 1024 r + 1024)
// of it as FP32 in shared memory (64 KiB). 256 threads; local row l:
//   phase 0: thread (cq, rb) = (t % 4, t / 4) has rows 16 rb + k (k < 16),
//            columns 4 cq .. 4 cq + 3 (8-byte loads): h = 1..8 in registers;
//   phase 1: thread (cp, lo) = (t % 8, t / 8) takes columns 2 cp, 2 cp + 1 of
//            rows (lo % 16) + 16 j + 512 (lo / 16), j < 32: h = 16..256;
//   phase 2, after a cluster barrier: thread (cq, lr) = (t % 4, t / 4)
//            gathers rows l and l + 512, columns 4 cq .. 4 cq + 3 of every
//            rank through distributed shared memory (ld.shared::cluster),
//            l = (512 / X) r + lr + 64 i (i < 8 / X), and runs h = 512,
//            then h = 1024 .. T / 2 over the ranks, then 1/sqrt(T) and the
//            epilogue. Each butterfly belongs to one thread and each value
//            crosses the cluster once.
// The stage order is numerics::hadamardCols' (h = 1, 2, ..., then the
// multiply): results are bit-identical to the oracle and the other forms.
// Row l is stored at l ^ bit4(l) (row pairs swap in odd 16-row blocks), so
// every phase's 8- and 16-byte shared accesses are conflict-free.
//
// Plain per-tensor Q(x) of the same input (HALO-2's Q(E)^T next to
// Q(H_T E)), PLAIN: the phase-0 registers of a thread are 16 consecutive
// rows x 4 columns of x, i.e. 16 contiguous bytes of 4 rows of the
// transposed codes [C, T]. _absmax folds max |x| of them into a second
// scale (ws[4..5]), _quant writes those codes with it: x is read twice for
// both quantizers instead of four times.
//
// Persistent: the grid is about the resident clusters (2 CTAs per SM) and
// clusters take tiles from a counter in ws[2] (ws[3] counts finished
// clusters; the last one zeroes both), two tiles ahead, so that each CTA
// loads the next tile into registers while it gathers and writes the
// current one. Rank 0 publishes the tile numbers in its shared memory.
// Barriers: shared stores are released with a CTA-scope fence (MEMBAR.CTA;
// the default release of barrier.cluster.arrive is a GPU-scope MEMBAR, a
// large stall); remote reads need no fence, as the arrive after them waits
// for their values (cluster_arrive_after).
// Below sm_90 the entry points compile to a trap: the generator emits them
// only for targetSm >= 90.

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define HALO_CLUSTERS 1
#define HALO_CLUSTER_DIMS(x) __cluster_dims__(x, 1, 1)
#else
#define HALO_CLUSTERS 0
#define HALO_CLUSTER_DIMS(x)
#endif

#if HALO_CLUSTERS
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
/// Arrive after this thread's shared::cta stores, released to the cluster.
__device__ __forceinline__ void cluster_arrive_shared() {
  asm volatile("fence.release.sync_restrict::shared::cta.cluster;\n\t"
               "barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
/// Arrive once `dep` is computed, so the loads it depends on are complete:
/// the store of dep to `sink` (shared) waits for it, and the arrive issues
/// after the store (ptxas moves a bare arrive above the loads' consumers).
__device__ __forceinline__ void cluster_arrive_after(float dep, unsigned sink) {
  asm volatile("st.shared.f32 [%0], %1;\n\t"
               "barrier.cluster.arrive.relaxed.aligned;" ::"r"(sink), "f"(dep)
               : "memory");
}
__device__ __forceinline__ void cluster_arrive_release() {
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
/// The shared::cluster address of `p` (in this CTA's shared memory) in the
/// shared memory of CTA `rank`.
__device__ __forceinline__ unsigned cluster_addr(const void *p, unsigned rank) {
  unsigned a = (unsigned)__cvta_generic_to_shared(p), out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(out) : "r"(a), "r"(rank));
  return out;
}
__device__ __forceinline__ float4 ld_cluster4(unsigned addr) {
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}
__device__ __forceinline__ int ld_cluster_s32(unsigned addr) {
  int v;
  asm volatile("ld.shared::cluster.s32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void st_cluster(unsigned addr, float v) {
  asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory");
}
#endif

/// quantize_rcp's correctly rounded quotient x / scale, with the sign of x
/// (one LOP3: bits of q where the mask is clear, of x where it is set).
__device__ __forceinline__ float quotient_rcp(float x, float scale, float rcp) {
  float q = __fmul_rn(x, rcp);
  const float e = __fmaf_rn(-q, scale, x);
  q = __fmaf_rn(e, rcp, q);
  unsigned r;
  asm("lop3.b32 %0, %1, %2, %3, 0xD8;"
      : "=r"(r)
      : "r"(__float_as_uint(q)), "r"(__float_as_uint(x)), "r"(0x80000000u));
  return __uint_as_float(r);
}

/// The codes quantize_rcp gives v[0..3], packed little-endian (FP8 converts
/// pairs: the same cvt.rn.satfinite as one at a time).
template <int FMT>
__device__ __forceinline__ unsigned quantize4_rcp(const float *v, float s, float rcp) {
  if constexpr (FMT == kFP8) {
    unsigned w = 0;
#pragma unroll
    for (int e = 0; e < 4; e += 2)
      w |= (unsigned)__nv_cvt_float2_to_fp8x2(
               make_float2(quotient_rcp(v[e], s, rcp), quotient_rcp(v[e + 1], s, rcp)),
               __NV_SATFINITE, __NV_E4M3)
           << (8 * e);
    return w;
  } else {
    unsigned w = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e)
      w |= (unsigned)quantize_rcp<FMT>(v[e], s, rcp) << (8 * e);
    return w;
  }
}

template <int X> struct ColCluster {
  static constexpr int L = 1024, CW = 16, THREADS = 256;
  static constexpr int TILE_FLOATS = L * CW;
  static constexpr int ITEMS = 8 / X; // phase-2 row pairs per thread
  static_assert(X == 2 || X == 4 || X == 8, "cluster of 2, 4 or 8 CTAs");
  /// Shared memory: the tile, 32 floats for block reductions, 2 X for the
  /// ranks' maxima (rotated, plain), 4 tile numbers (rank 0's are read by the
  /// cluster) and a sink word.
  static constexpr int RED = TILE_FLOATS, RANKS = RED + 32, SLOTS = RANKS + 16;
  static_assert((SLOTS + 5) * 4 <= TILE_FLOATS * 4 + 256, "the generator's size");
  /// The quantizer's staging of a pair's first codes (THREADS x 64 bytes)
  /// follows, from byte STAGE.
  static constexpr int STAGE = TILE_FLOATS * 4 + 256;
  enum Part { kFirst, kSecond, kAlone };

  static __device__ __forceinline__ int phys(int l) { return l ^ ((l >> 4) & 1); }

  /// Phase-0 input: rows 16 (t / 4) + k, columns 4 (t % 4) .. + 3, raw BF16.
  static __device__ __forceinline__ void fetch(const bf16 *x, size_t C, size_t row0,
                                               size_t c0, uint2 (&raw)[16]) {
    const bf16 *src = x + (row0 + 16 * (threadIdx.x >> 2)) * C + c0 + 4 * (threadIdx.x & 3);
#pragma unroll
    for (int k = 0; k < 16; ++k)
      raw[k] = __ldg(reinterpret_cast<const uint2 *>(src + k * C));
  }

  /// Phases 0 and 1: stages h < 512 of the fetched rows, left in `tile`
  /// (the caller releases them to the cluster).
  static __device__ __forceinline__ void local(const uint2 (&raw)[16], float *tile) {
    const int t = threadIdx.x;
    float v[16][4];
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      v[k][0] = __uint_as_float(raw[k].x << 16);
      v[k][1] = __uint_as_float(raw[k].x & 0xFFFF0000u);
      v[k][2] = __uint_as_float(raw[k].y << 16);
      v[k][3] = __uint_as_float(raw[k].y & 0xFFFF0000u);
    }
#pragma unroll
    for (int h = 1; h < 16; h <<= 1)
#pragma unroll
      for (int k = 0; k < 16; ++k)
        if (!(k & h))
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float a = v[k][e], b = v[k + h][e];
            v[k][e] = a + b;
            v[k + h][e] = a - b;
          }
    // Row 16 rb + k is stored at 16 rb + (k ^ (rb & 1)).
    const int rb = t >> 2, flip = rb & 1;
    float *even = tile + ((16 * rb + flip) << 4) + 4 * (t & 3);
    float *odd = tile + ((16 * rb - flip) << 4) + 4 * (t & 3);
#pragma unroll
    for (int k = 0; k < 16; ++k)
      *reinterpret_cast<float4 *>((k & 1 ? odd : even) + (k << 4)) =
          make_float4(v[k][0], v[k][1], v[k][2], v[k][3]);
    __syncthreads();
    // Row base + 16 j is stored at (base ^ (j & 1)) + 16 j.
    const int lo = t >> 3, cp = t & 7;
    const int base = (lo & 15) + 512 * (lo >> 4);
    float *pe = tile + (base << 4) + 2 * cp, *po = tile + ((base ^ 1) << 4) + 2 * cp;
    float w[32][2];
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const float2 f = *reinterpret_cast<const float2 *>((j & 1 ? po : pe) + (j << 8));
      w[j][0] = f.x;
      w[j][1] = f.y;
    }
#pragma unroll
    for (int h = 1; h < 32; h <<= 1)
#pragma unroll
      for (int j = 0; j < 32; ++j)
        if (!(j & h))
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float a = w[j][e], b = w[j + h][e];
            w[j][e] = a + b;
            w[j + h][e] = a - b;
          }
#pragma unroll
    for (int j = 0; j < 32; ++j)
      *reinterpret_cast<float2 *>((j & 1 ? po : pe) + (j << 8)) = make_float2(w[j][0], w[j][1]);
  }

  /// max(m, |x|) over the fetched values, pairwise (max.bf16x2 skips a NaN
  /// like fmaxf and the oracle's std::max; exact, as BF16 -> FP32 is).
  static __device__ __forceinline__ __nv_bfloat162 absmax_plain(const uint2 (&raw)[16],
                                                                __nv_bfloat162 m) {
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      m = __hmax2(m, __habs2(*reinterpret_cast<const __nv_bfloat162 *>(&raw[k].x)));
      m = __hmax2(m, __habs2(*reinterpret_cast<const __nv_bfloat162 *>(&raw[k].y)));
    }
    return m;
  }

  /// The plain codes of the fetched values into codes_t [C, T]: column
  /// c0 + 4 (t % 4) + e gets 16 bytes, rows row0 + 16 (t / 4) .. + 15.
  template <int FMT>
  static __device__ __forceinline__ void quantize_plain_t(const uint2 (&raw)[16], size_t T,
                                                          size_t row0, size_t c0, float s,
                                                          float rcp, unsigned char *codes_t) {
    unsigned char *dst = codes_t + (c0 + 4 * (threadIdx.x & 3)) * T + row0 + 16 * (threadIdx.x >> 2);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      unsigned w[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float v[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const unsigned b = e < 2 ? raw[4 * j + i].x : raw[4 * j + i].y;
          v[i] = __uint_as_float(e & 1 ? b & 0xFFFF0000u : b << 16);
        }
        w[j] = quantize4_rcp<FMT>(v, s, rcp);
      }
      *reinterpret_cast<uint4 *>(dst + e * T) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }

  /// Local row l of phase-2 item i, half hf (rows l and l + 512).
  static __device__ __forceinline__ int row_of(unsigned rank, int i, int hf) {
    return (int)rank * (512 / X) + (threadIdx.x >> 2) + 64 * i + 512 * hf;
  }

#if HALO_CLUSTERS
  /// Phase-2 loads: w[i][hf][r] = row row_of(rank, i, hf), columns 4 (t % 4)
  /// .. + 3 of rank r's tile.
  static __device__ __forceinline__ void gather(const float *tile, unsigned rank,
                                                float4 (&w)[ITEMS][2][X]) {
    unsigned base[X];
#pragma unroll
    for (int r = 0; r < X; ++r)
      base[r] = cluster_addr(tile, r);
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const unsigned off = ((phys(row_of(rank, i, hf)) << 4) + 4 * (threadIdx.x & 3)) * 4;
#pragma unroll
        for (int r = 0; r < X; ++r)
          w[i][hf][r] = ld_cluster4(base[r] + off);
      }
  }
#endif

  static __device__ __forceinline__ void bfly(float4 &a, float4 &b) {
    const float4 x = a, y = b;
    a = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
    b = make_float4(x.x - y.x, x.y - y.y, x.z - y.z, x.w - y.w);
  }

  /// Stage h = 512, then h = 1024 .. 512 H over the ranks (H = X: all).
  template <int H>
  static __device__ __forceinline__ void mix(float4 (&w)[ITEMS][2][X]) {
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) {
#pragma unroll
      for (int r = 0; r < X; ++r)
        bfly(w[i][0][r], w[i][1][r]);
#pragma unroll
      for (int h = 1; h < H; h <<= 1)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf)
#pragma unroll
          for (int r = 0; r < X; ++r)
            if (!(r & h))
              bfly(w[i][hf][r], w[i][hf][r + h]);
    }
  }

  /// A value that depends on every load of gather() once mix<X> has run.
  static __device__ __forceinline__ float depend(const float4 (&w)[ITEMS][2][X]) {
    float d = w[0][0][0].x;
#pragma unroll
    for (int i = 1; i < ITEMS; ++i)
      d += w[i][0][0].x;
    return d;
  }

  /// f(v[4] scaled by 1/sqrt(T), element offset) for every gathered value.
  template <class F>
  static __device__ __forceinline__ void each4(const float4 (&w)[ITEMS][2][X],
                                               unsigned rank, size_t C, size_t c0,
                                               float scale, F &&f) {
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf)
#pragma unroll
        for (int r = 0; r < X; ++r) {
          const float4 a = w[i][hf][r];
          const float v[4] = {a.x * scale, a.y * scale, a.z * scale, a.w * scale};
          f(v, (size_t)(r * L + row_of(rank, i, hf)) * C + c0 + 4 * (threadIdx.x & 3));
        }
  }

  /// The codes of the gathered values (quantize_rcp's, scaled by 1/sqrt(T)
  /// first) into out [T, C]. A thread has 4 bytes of each of its rows; the
  /// quad's 4 x 4 words are transposed with shuffles, so that each thread
  /// holds whole 16-byte row segments, and a pair's first tile waits in the
  /// thread's shared staging slot until the second completes the rows'
  /// 32-byte sectors (16-byte halves written by different clusters at
  /// different times cost the quantizer 40% of its time at 8192 x 14336).
  template <int FMT>
  static __device__ __forceinline__ void store_codes(const float4 (&w)[ITEMS][2][X],
                                                     unsigned rank, size_t C, size_t c0,
                                                     int part, float scale_h, float s,
                                                     float rcp, unsigned char *out) {
    extern __shared__ __align__(16) unsigned char smem[];
    // The thread's 16 rows, n = (i * 2 + hf) * X + r, in groups of 4.
    static_assert(ITEMS * 2 * X == 16, "16 rows per thread");
    uint4 *stage = reinterpret_cast<uint4 *>(smem + STAGE) + threadIdx.x * 4;
    const unsigned cq = threadIdx.x & 3, b0 = cq & 1, b1 = cq >> 1;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      // a[j]: columns 4 cq .. 4 cq + 3 of row n = 4 g + j; afterwards all
      // 16 columns of row 4 g + cq.
      unsigned a[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = 4 * g + j;
        const float4 f = w[n / (2 * X)][(n / X) % 2][n % X];
        const float v[4] = {f.x * scale_h, f.y * scale_h, f.z * scale_h, f.w * scale_h};
        a[j] = quantize4_rcp<FMT>(v, s, rcp);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) { // swap the off-diagonal 2 x 2 blocks
        const unsigned y = __shfl_xor_sync(0xffffffffu, b1 ? a[j] : a[j + 2], 2);
        (b1 ? a[j] : a[j + 2]) = y;
      }
#pragma unroll
      for (int j = 0; j < 4; j += 2) { // then the 2 x 2 blocks themselves
        const unsigned y = __shfl_xor_sync(0xffffffffu, b0 ? a[j] : a[j + 1], 1);
        (b0 ? a[j] : a[j + 1]) = y;
      }
      const uint4 mine = make_uint4(a[0], a[1], a[2], a[3]);
      const int n = 4 * g + (int)cq;
      const size_t row = (size_t)(n % X) * L + row_of(rank, n / (2 * X), (n / X) % 2);
      uint4 *dst = reinterpret_cast<uint4 *>(out + row * C + c0);
      if (part == kFirst) {
        stage[g] = mine;
      } else if (part == kSecond) {
        dst[-1] = stage[g];
        dst[0] = mine;
      } else {
        dst[0] = mine;
      }
    }
  }

#if HALO_CLUSTERS
  /// The persistent loop over the tiles of columns [0, C), one at a time or
  /// (PAIR) in pairs of adjacent tiles, so that a byte-wide output can be
  /// written in whole 32-byte sectors: for each tile, input(raw, c0) (the
  /// thread's phase-0 values, before the rotation), consume(w) (the gathered
  /// values; returns a value that depends on all of them) and then emit(w,
  /// c0, part), part = kFirst (a pair's first tile), kSecond or kAlone (no
  /// pairs, or no second tile). ws[2..3]: the self-resetting unit counter.
  template <bool PAIR, class INPUT, class CONSUME, class EMIT>
  static __device__ __forceinline__ void run(const bf16 *x, size_t C, unsigned *ws,
                                             INPUT &&input, CONSUME &&consume,
                                             EMIT &&emit) {
    extern __shared__ __align__(16) unsigned char smem[];
    float *tile = reinterpret_cast<float *>(smem);
    int *slots = reinterpret_cast<int *>(tile + SLOTS);
    const unsigned rank = cluster_rank();
    constexpr int U = PAIR ? 2 : 1; // tiles per unit
    const int tiles = (int)(C / CW), units = (tiles + U - 1) / U;
    const size_t row0 = (size_t)rank * L;
    const bool leader = rank == 0 && threadIdx.x == 0;
    // Slots 0, 1: the first two units; 2 + (k & 1): the one after k + 1;
    // 4: a sink for cluster_arrive_after.
    const unsigned slot0 = cluster_addr(slots, 0);
    const unsigned sink = (unsigned)__cvta_generic_to_shared(slots + 4);
    if (leader) {
      slots[0] = (int)atomicAdd(&ws[2], 1u);
      slots[1] = (int)atomicAdd(&ws[2], 1u);
    }
    cluster_arrive_shared();
    cluster_wait();
    int cur = ld_cluster_s32(slot0), nxt = ld_cluster_s32(slot0 + 4), after = 0;
    uint2 raw[16];
    if (cur < units)
      fetch(x, C, row0, (size_t)cur * U * CW, raw);
#pragma unroll 1
    for (int k = 0; cur < units; ++k) {
      if (leader)
        slots[2 + (k & 1)] = (int)atomicAdd(&ws[2], 1u);
      const bool both = PAIR && 2 * cur + 1 < tiles;
#pragma unroll 1
      for (int sub = 0; sub < (both ? 2 : 1); ++sub) {
        const size_t c0 = (size_t)(U * cur + sub) * CW;
        input(raw, c0);
        local(raw, tile);
        cluster_arrive_shared();
        cluster_wait();
        if (sub == 0)
          after = ld_cluster_s32(slot0 + 4 * (2 + (k & 1)));
        // The next tile's loads fly during the gather, the epilogue and the
        // barrier (issued earlier they measured slower).
        if (sub == 0 && both)
          fetch(x, C, row0, c0 + CW, raw);
        else if (nxt < units)
          fetch(x, C, row0, (size_t)nxt * U * CW, raw);
        float4 w[ITEMS][2][X];
        gather(tile, rank, w);
        cluster_arrive_after(consume(w) + (float)after, sink);
        emit(w, c0, !both ? kAlone : sub == 0 ? kFirst : kSecond);
        cluster_wait();
      }
      cur = nxt;
      nxt = after;
    }
    // Rank 0's slots stay until every rank has read them.
    cluster_arrive_after((float)(cur + nxt), sink);
    cluster_wait();
    if (leader) {
      __threadfence();
      if (atomicAdd(&ws[3], 1u) == gridDim.x / X - 1) {
        atomicExch(&ws[2], 0u);
        atomicExch(&ws[3], 0u);
      }
    }
  }
#endif
};

/// y = H x (BF16 / F32 out) in one pass.
template <int X, int OUT>
__device__ __forceinline__ void hadc_store(const bf16 *x, size_t C, float scale_h,
                                           typename Elem<OUT>::type *y, unsigned *ws) {
#if HALO_CLUSTERS
  typedef ColCluster<X> CC;
  const unsigned rank = cluster_rank();
  CC::template run<false>(
      x, C, ws, [](const uint2 (&)[16], size_t) {},
      [&](float4 (&w)[CC::ITEMS][2][X]) {
        CC::template mix<X>(w);
        return CC::depend(w);
      },
      [&](const float4 (&w)[CC::ITEMS][2][X], size_t c0, int) {
        CC::each4(w, rank, C, c0, scale_h, [&](const float *v, size_t off) {
          if constexpr (OUT == kF32) {
            *reinterpret_cast<float4 *>(y + off) = make_float4(v[0], v[1], v[2], v[3]);
          } else {
            __nv_bfloat162 p0 = __floats2bfloat162_rn(v[0], v[1]);
            __nv_bfloat162 p1 = __floats2bfloat162_rn(v[2], v[3]);
            *reinterpret_cast<uint2 *>(y + off) = make_uint2(
                *reinterpret_cast<unsigned *>(&p0), *reinterpret_cast<unsigned *>(&p1));
          }
        });
      });
#else
  __trap();
#endif
}

/// Per-tensor absmax: the last stage is not formed (max(|a + b|, |a - b|) =
/// RN(|a| + |b|), see RowWide::absmax_b) and 1/sqrt(T) multiplies the
/// maximum once. Ranks fold their maxima into rank 0's shared memory; rank 0
/// publishes (one arrival per cluster). PLAIN: also max |x| -> *plain_scale
/// (ws[4..5]).
template <int X, int FMT, bool PLAIN>
__device__ __forceinline__ void hadc_absmax(const bf16 *x, size_t C, float scale_h,
                                            unsigned *ws, float *scale_out,
                                            float *absmax_out, float *plain_scale_out) {
#if HALO_CLUSTERS
  typedef ColCluster<X> CC;
  extern __shared__ __align__(16) unsigned char smem[];
  float *red = reinterpret_cast<float *>(smem) + CC::RED;
  float *ranks = reinterpret_cast<float *>(smem) + CC::RANKS;
  float amax = 0.0f;
  __nv_bfloat162 plain = __float2bfloat162_rn(0.0f);
  CC::template run<false>(
      x, C, ws,
      [&](const uint2 (&raw)[16], size_t) {
        if constexpr (PLAIN)
          plain = CC::absmax_plain(raw, plain);
      },
      [&](float4 (&w)[CC::ITEMS][2][X]) {
        CC::template mix<X / 2>(w);
#pragma unroll
        for (int i = 0; i < CC::ITEMS; ++i)
#pragma unroll
          for (int hf = 0; hf < 2; ++hf)
#pragma unroll
            for (int r = 0; r < X / 2; ++r) {
              const float4 a = w[i][hf][r], b = w[i][hf][r + X / 2];
              amax = fmaxf(amax, fmaxf(fmaxf(fabsf(a.x) + fabsf(b.x), fabsf(a.y) + fabsf(b.y)),
                                       fmaxf(fabsf(a.z) + fabsf(b.z), fabsf(a.w) + fabsf(b.w))));
            }
        return amax;
      },
      [](const float4 (&)[CC::ITEMS][2][X], size_t, int) {});
  const unsigned rank = cluster_rank();
  amax = block_max<CC::THREADS>(amax, red);
  if (threadIdx.x == 0)
    st_cluster(cluster_addr(ranks + rank, 0), amax);
  if constexpr (PLAIN) {
    const float p = block_max<CC::THREADS>(
        fmaxf(__low2float(plain), __high2float(plain)), red);
    if (threadIdx.x == 0)
      st_cluster(cluster_addr(ranks + 8 + rank, 0), p);
  }
  cluster_arrive_release();
  cluster_wait();
  if (rank == 0 && threadIdx.x == 0) {
    float m = ranks[0];
#pragma unroll
    for (int r = 1; r < X; ++r)
      m = fmaxf(m, ranks[r]);
    publish_absmax<FMT>(m * scale_h, ws, scale_out, absmax_out, gridDim.x / X);
    if constexpr (PLAIN) {
      float p = ranks[8];
#pragma unroll
      for (int r = 1; r < X; ++r)
        p = fmaxf(p, ranks[8 + r]);
      publish_absmax<FMT>(p, ws + 4, plain_scale_out, nullptr, gridDim.x / X);
    }
  }
#else
  __trap();
#endif
}

/// Per-tensor quantize with the device scale (quantize_rcp's codes, the
/// same as x / scale). PLAIN: also the plain codes of x with *plain_scale
/// into plain_codes_t [C, T]. PAIR: tiles in pairs (ColCluster::run; the
/// launch has ColCluster::STAGE + 16 KiB of shared memory).
template <int X, int FMT, bool PLAIN, bool PAIR>
__device__ __forceinline__ void hadc_apply(const bf16 *x, size_t C, float scale_h,
                                           const float *scale_in, unsigned char *out,
                                           const float *plain_scale_in,
                                           unsigned char *plain_codes_t, unsigned *ws) {
#if HALO_CLUSTERS
  typedef ColCluster<X> CC;
  const unsigned rank = cluster_rank();
  const float s = *scale_in;
  const float rcp = __frcp_rn(s);
  float ps = 0.0f, prcp = 0.0f;
  if constexpr (PLAIN) {
    ps = *plain_scale_in;
    prcp = __frcp_rn(ps);
  }
  CC::template run<PAIR>(
      x, C, ws,
      [&](const uint2 (&raw)[16], size_t c0) {
        if constexpr (PLAIN)
          CC::template quantize_plain_t<FMT>(raw, (size_t)X * CC::L, (size_t)rank * CC::L, c0,
                                             ps, prcp, plain_codes_t);
      },
      [&](float4 (&w)[CC::ITEMS][2][X]) {
        CC::template mix<X>(w);
        return CC::depend(w);
      },
      [&](const float4 (&w)[CC::ITEMS][2][X], size_t c0, int part) {
        CC::template store_codes<FMT>(w, rank, C, c0, part, scale_h, s, rcp, out);
      });
#else
  __trap();
#endif
}

} // namespace halo
