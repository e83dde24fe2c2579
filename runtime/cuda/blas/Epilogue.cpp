//===- Epilogue.cpp - The GEMM epilogue kernel (NVRTC source) -------------===//
#include "runtime/cuda/blas/Epilogue.h"

namespace halo::cuda {

const char *epilogueSource() {
  return R"(
#include <cuda_bf16.h>

namespace {

__device__ __forceinline__ float4 loadAcc(const int *p) {
  int4 v = *reinterpret_cast<const int4 *>(p);
  return make_float4(__int2float_rn(v.x), __int2float_rn(v.y),
                     __int2float_rn(v.z), __int2float_rn(v.w));
}
__device__ __forceinline__ float4 loadAcc(const float *p) {
  return *reinterpret_cast<const float4 *>(p);
}

__device__ __forceinline__ float4 loadOut(const float *p) {
  return *reinterpret_cast<const float4 *>(p);
}
__device__ __forceinline__ float4 loadOut(const __nv_bfloat16 *p) {
  uint2 bits = *reinterpret_cast<const uint2 *>(p);
  __nv_bfloat162 lo = *reinterpret_cast<__nv_bfloat162 *>(&bits.x);
  __nv_bfloat162 hi = *reinterpret_cast<__nv_bfloat162 *>(&bits.y);
  float2 a = __bfloat1622float2(lo), b = __bfloat1622float2(hi);
  return make_float4(a.x, a.y, b.x, b.y);
}

__device__ __forceinline__ void storeOut(float *p, float4 v) {
  *reinterpret_cast<float4 *>(p) = v;
}
__device__ __forceinline__ void storeOut(__nv_bfloat16 *p, float4 v) {
  __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y);
  __nv_bfloat162 hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 bits;
  bits.x = *reinterpret_cast<unsigned *>(&lo);
  bits.y = *reinterpret_cast<unsigned *>(&hi);
  *reinterpret_cast<uint2 *>(p) = bits;
}

// acc and out may alias (in-place F32 output), so no __restrict__.
template <typename Acc, typename Out>
__device__ __forceinline__ void epilogue(const Acc *acc, Out *out,
                                         const float *sA, const float *sB,
                                         long long M, long long N, int modeA,
                                         int modeB, int accumulate) {
  const long long groups = M * N / 4;
  const float a0 = modeA == 1 ? __ldg(sA) : 1.0f;
  const float b0 = modeB == 1 ? __ldg(sB) : 1.0f;
  for (long long g = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       g < groups; g += (long long)gridDim.x * blockDim.x) {
    const long long i = g * 4;
    const long long row = i / N;
    const long long col = i - row * N;
    const float a = modeA == 2 ? __ldg(sA + row) : a0;
    float4 b = make_float4(b0, b0, b0, b0);
    if (modeB == 2) {
      b.x = __ldg(sB + col);
      b.y = __ldg(sB + col + 1);
      b.z = __ldg(sB + col + 2);
      b.w = __ldg(sB + col + 3);
    }
    float4 v = loadAcc(acc + i);
    v.x *= a * b.x;
    v.y *= a * b.y;
    v.z *= a * b.z;
    v.w *= a * b.w;
    if (accumulate) {
      float4 old = loadOut(out + i);
      v.x += old.x;
      v.y += old.y;
      v.z += old.z;
      v.w += old.w;
    }
    storeOut(out + i, v);
  }
}

} // namespace

#define HALO_EPILOGUE(NAME, ACC, OUT)                                          \
  extern "C" __global__ void NAME(const ACC *acc, OUT *out, const float *sA,   \
                                  const float *sB, long long M, long long N,   \
                                  int modeA, int modeB, int accumulate) {      \
    epilogue(acc, out, sA, sB, M, N, modeA, modeB, accumulate);                \
  }

HALO_EPILOGUE(halo_gemm_epilogue_i32_bf16, int, __nv_bfloat16)
HALO_EPILOGUE(halo_gemm_epilogue_i32_f32, int, float)
HALO_EPILOGUE(halo_gemm_epilogue_f32_bf16, float, __nv_bfloat16)
HALO_EPILOGUE(halo_gemm_epilogue_f32_f32, float, float)
)";
}

const char *epilogueKernelName(GemmType acc, GemmType out) {
  if (acc == GemmType::INT32 && out == GemmType::BF16)
    return "halo_gemm_epilogue_i32_bf16";
  if (acc == GemmType::INT32 && out == GemmType::FP32)
    return "halo_gemm_epilogue_i32_f32";
  if (acc == GemmType::FP32 && out == GemmType::BF16)
    return "halo_gemm_epilogue_f32_bf16";
  if (acc == GemmType::FP32 && out == GemmType::FP32)
    return "halo_gemm_epilogue_f32_f32";
  return nullptr;
}

} // namespace halo::cuda
