// ===- common.cuh - Shared device helpers of the halo kernel templates ----===//
//
// Prepended to every generated kernel source (see KernelTemplates.h). Needs
// only <cuda_bf16.h> and <cuda_fp8.h>; compiles under NVRTC for sm_89/sm_90
// without fast math, so `/` is IEEE division and nothing is flushed to zero.
//
// Numerics shared with runtime/numerics/Float8.h (bit-exact):
//   scale = absmax / qmax (IEEE), 1 when that is not finite and positive;
//   FP8 code = __nv_cvt_float_to_fp8(x / scale, SATFINITE, E4M3) (RNE);
//   INT8 code = clamp(round_half_even(x / scale), -127, 127), NaN -> 0.
//
// ===----------------------------------------------------------------------===//
#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace halo {

typedef __nv_bfloat16 bf16;

/// log2 of a power of two (0 for 1).
__host__ __device__ constexpr int ilog2(int v) { return v <= 1 ? 0 : 1 + ilog2(v / 2); }

/// -infinity (NVRTC has no <cmath> INFINITY).
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// Quantization formats (template arguments).
enum { kFP8 = 0, kINT8 = 1 };

template <int FMT> struct QuantFmt;
template <> struct QuantFmt<kFP8> {
  static constexpr float kMax = 448.0f;
  static __device__ __forceinline__ unsigned char encode(float scaled) {
    return (unsigned char)__nv_cvt_float_to_fp8(scaled, __NV_SATFINITE,
                                                __NV_E4M3);
  }
};
template <> struct QuantFmt<kINT8> {
  static constexpr float kMax = 127.0f;
  static __device__ __forceinline__ unsigned char encode(float scaled) {
    // cvt.rni: round half to even, saturating, NaN -> 0.
    int r = __float2int_rn(scaled);
    r = r > 127 ? 127 : (r < -127 ? -127 : r);
    return (unsigned char)(signed char)r;
  }
};

/// quantScale of Float8.h: absmax / qmax, or 1 if not finite and positive.
template <int FMT>
__device__ __forceinline__ float scale_from_absmax(float absmax) {
  float s = __fdiv_rn(absmax, QuantFmt<FMT>::kMax);
  return (s > 0.0f && s <= 3.402823466e38f) ? s : 1.0f;
}

/// The code of x / scale (real division, as the CPU oracle does).
template <int FMT>
__device__ __forceinline__ unsigned char quantize(float x, float scale) {
  return QuantFmt<FMT>::encode(__fdiv_rn(x, scale));
}

/// The same code as quantize(x, scale) from rcp = RN(1 / scale), without a
/// division per element: q = RN(x rcp), e = x - q scale (exact with FMA),
/// RN(q + e rcp) is the correctly rounded quotient x / scale (Markstein's
/// correction with a correctly rounded reciprocal; results that would be
/// subnormal quantize to +-0 either way). The correction turns -0 into +0,
/// so the sign is taken from x (scale > 0): -0 keeps the FP8 code 0x80.
template <int FMT>
__device__ __forceinline__ unsigned char quantize_rcp(float x, float scale,
                                                      float rcp) {
  float q = __fmul_rn(x, rcp);
  const float e = __fmaf_rn(-q, scale, x);
  q = __fmaf_rn(e, rcp, q);
  q = __int_as_float((__float_as_int(q) & 0x7fffffff) |
                     (__float_as_int(x) & 0x80000000));
  return QuantFmt<FMT>::encode(q);
}

__device__ __forceinline__ void store8_bf16(bf16 *p, const float *v) {
  unsigned w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    w[i] = *reinterpret_cast<unsigned *>(&h);
  }
  *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Element types (template arguments) and their loads/stores.
enum { kBF16 = 0, kF32 = 1 };

template <int T> struct Elem;
template <> struct Elem<kBF16> {
  typedef bf16 type;
  static __device__ __forceinline__ float load(const bf16 *p) {
    return __bfloat162float(*p);
  }
  static __device__ __forceinline__ void store(bf16 *p, float v) {
    *p = __float2bfloat16_rn(v);
  }
  /// 8 consecutive elements (16-byte aligned) -> floats.
  static __device__ __forceinline__ void load8(const bf16 *p, float *v) {
    uint4 raw = __ldg(reinterpret_cast<const uint4 *>(p));
    const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    }
  }
  static __device__ __forceinline__ void store8(bf16 *p, const float *v) { store8_bf16(p, v); }
};
template <> struct Elem<kF32> {
  typedef float type;
  static __device__ __forceinline__ float load(const float *p) { return *p; }
  static __device__ __forceinline__ void store(float *p, float v) { *p = v; }
  static __device__ __forceinline__ void load8(const float *p, float *v) {
    float4 a = __ldg(reinterpret_cast<const float4 *>(p));
    float4 b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  }
  static __device__ __forceinline__ void store8(float *p, const float *v) {
    reinterpret_cast<float4 *>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4 *>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
};

__device__ __forceinline__ float bf16_bits_to_float(unsigned short b) {
  return __uint_as_float(((unsigned)b) << 16);
}

__device__ __forceinline__ void round8_bf16(float *v) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
    v[i] = __bfloat162float(__float2bfloat16_rn(v[i]));
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Max over the block (THREADS a multiple of 32); every thread gets it.
/// `red` holds THREADS/32 floats; the call begins and ends with a barrier.
template <int THREADS>
__device__ __forceinline__ float block_max(float v, float *red) {
  v = warp_max(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0)
    red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int i = 1; i < THREADS / 32; ++i)
    r = fmaxf(r, red[i]);
  return r;
}

template <int THREADS, typename F>
__device__ __forceinline__ F block_sum(F v, F *red) {
  v = warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0)
    red[threadIdx.x >> 5] = v;
  __syncthreads();
  F r = red[0];
#pragma unroll
  for (int i = 1; i < THREADS / 32; ++i)
    r += red[i];
  return r;
}

/// Per-tensor absmax with a self-resetting workspace ws[2] (absmax bits,
/// arrival counter; zero before the first launch, zero again after each).
/// Called by one thread per block with the block's absmax (>= 0). The last
/// block to arrive writes *absmax_out (if non-null) and *scale_out.
template <int FMT>
__device__ __forceinline__ void publish_absmax(float block_absmax,
                                               unsigned *ws, float *scale_out,
                                               float *absmax_out,
                                               unsigned blocks) {
  // Non-negative floats order like their bit patterns; NaN sorts above inf
  // and then yields scale 1, as on the host.
  atomicMax(&ws[0], __float_as_uint(block_absmax));
  __threadfence();
  unsigned arrived = atomicAdd(&ws[1], 1u);
  if (arrived == blocks - 1) {
    __threadfence();
    float amax = __uint_as_float(atomicExch(&ws[0], 0u));
    atomicExch(&ws[1], 0u);
    if (absmax_out)
      *absmax_out = amax;
    *scale_out = scale_from_absmax<FMT>(amax);
  }
}

} // namespace halo
