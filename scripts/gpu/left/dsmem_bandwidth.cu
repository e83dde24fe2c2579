// Read bandwidth of distributed shared memory: clusters of X CTAs (256 threads, 64 KiB
// each, 2 per SM) read float4s from the other ranks' shared memory (REMOTE=1) or their own
// (REMOTE=0); prints TB/s over the whole GPU.

#include <cstdio>
#include <cooperative_groups.h>
namespace cg = cooperative_groups;
template <int X, int REMOTE>
__global__ void __launch_bounds__(256, 2) rd(float *out, int iters) {
  extern __shared__ float4 sm[];
  cg::cluster_group cl = cg::this_cluster();
  for (int i = threadIdx.x; i < 4096; i += 256) sm[i] = make_float4(i, 1, 2, 3);
  cl.sync();
  const unsigned rank = cl.block_rank();
  float4 acc = make_float4(0, 0, 0, 0);
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const unsigned src = REMOTE ? (rank + 1 + r % (X - 1)) % X : rank;
      float4 *p = cl.map_shared_rank(sm, src);
      float4 v = p[(threadIdx.x + 256 * r + it * 64) & 4095];
      acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
    }
  }
  cl.sync();
  if (acc.x == -1.f) out[0] = acc.y + acc.z + acc.w;
}
template <int X, int REMOTE> void go(int grid) {
  auto k = rd<X, REMOTE>;
  cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 65536);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid; cfg.blockDim = 256; cfg.dynamicSmemBytes = 65536;
  cudaLaunchAttribute at[1]; at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = X; at[0].val.clusterDim.y = 1; at[0].val.clusterDim.z = 1;
  cfg.attrs = at; cfg.numAttrs = 1;
  float *o; cudaMalloc(&o, 4);
  int iters = 2000;
  cudaLaunchKernelEx(&cfg, k, o, iters);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  cudaEventRecord(a); cudaLaunchKernelEx(&cfg, k, o, iters); cudaEventRecord(b); cudaEventSynchronize(b);
  float ms; cudaEventElapsedTime(&ms, a, b);
  double bytes = (double)grid * 256 * iters * 8 * 16;
  printf("X=%d remote=%d grid=%d: %.1f us, %.2f TB/s (%s)\n", X, REMOTE, grid, ms * 1e3, bytes / (ms * 1e-3) / 1e12, cudaGetErrorString(cudaGetLastError()));
}
int main() {
  go<8, 1>(240); go<8, 1>(264); go<8, 0>(264); go<4, 1>(264); go<2, 1>(264);
}
