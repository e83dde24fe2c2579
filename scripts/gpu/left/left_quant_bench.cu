// Times one generated left Hadamard + plain quantizer (the sm_90 cluster form) on its own:
// _absmax, _quant and both, 40 launches each after 5 warm-up, and prints FNV-1a hashes of
// the codes so that variants of the kernel text can be compared bit for bit. Built by
// run.sh with -DVARIANT="file.cu" -DLB_COLS=C -DLB_SMEM=bytes -DLB_ABSMAX=entry -DLB_QUANT=entry.
#include VARIANT
#include <cstdio>
#include <cstdlib>
#include <vector>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1);} } while (0)
__global__ void fill(__nv_bfloat16 *x, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 0x2c1b3c6du; h ^= h >> 12; h *= 0x297a2d39u; h ^= h >> 15;
    float u = (h & 0xffffff) / 16777216.0f - 0.5f;
    x[i] = __float2bfloat16(u * 0.02f * ((h >> 24) == 7 ? 50.f : 1.f));
  }
}
static unsigned long long fnv(const std::vector<unsigned char> &v) {
  unsigned long long h = 1469598103934665603ull;
  for (unsigned char c : v) { h ^= c; h *= 1099511628211ull; }
  return h;
}
int main(int argc, char **argv) {
  const size_t T = 8192, C = LB_COLS;
  int ga = argc > 1 ? atoi(argv[1]) : 264, gq = argc > 2 ? atoi(argv[2]) : ga;
  __nv_bfloat16 *x; unsigned char *codes, *plain; unsigned *ws; float *sc;
  CK(cudaMalloc(&x, T * C * 2)); CK(cudaMalloc(&codes, T * C)); CK(cudaMalloc(&plain, T * C));
  CK(cudaMalloc(&ws, 64)); CK(cudaMemset(ws, 0, 64)); CK(cudaMalloc(&sc, 64));
  fill<<<1024, 256>>>(x, T * C, 1234);
  int smem = LB_SMEM;
  CK(cudaFuncSetAttribute(LB_ABSMAX, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  CK(cudaFuncSetAttribute(LB_QUANT, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  auto a = [&] { LB_ABSMAX<<<ga, 256, smem>>>(x, ws, sc, sc + 1, sc + 2); };
  auto q = [&] { LB_QUANT<<<gq, 256, smem>>>(x, sc, codes, sc + 2, plain, ws); };
  a(); q(); CK(cudaDeviceSynchronize()); CK(cudaGetLastError());
  cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
  auto tm = [&](auto f) { for (int i = 0; i < 5; ++i) f(); cudaEventRecord(e0); for (int i = 0; i < 40; ++i) f(); cudaEventRecord(e1); cudaEventSynchronize(e1); float ms; cudaEventElapsedTime(&ms, e0, e1); return ms * 1e3f / 40; };
  float ta = tm(a), tq = tm(q), tb = tm([&] { a(); q(); });
  CK(cudaGetLastError());
  std::vector<unsigned char> hc(T * C), hp(T * C); float hs[3];
  CK(cudaMemcpy(hc.data(), codes, T * C, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hp.data(), plain, T * C, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hs, sc, 12, cudaMemcpyDeviceToHost));
  printf("%s C=%zu grid %d/%d: absmax %.1f us, quant %.1f us, both %.1f us; scale %a plain %a codes %016llx plain %016llx\n",
         VARIANT, C, ga, gq, ta, tq, tb, hs[0], hs[2], fnv(hc), fnv(hp));
}
