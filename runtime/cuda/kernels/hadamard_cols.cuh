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

} // namespace halo
