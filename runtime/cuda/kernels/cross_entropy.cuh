// ===- cross_entropy.cuh - Fused cross-entropy forward + backward ----------===//
//
// cpu::crossEntropy + crossEntropyBackward in one pass over BF16 logits
// [T, V]: per row an online max / sum of exp (FP32) gives lse; the row loss
// lse - logit[target] goes to row_loss[t] (0 for ignored rows, target < 0);
// dlogits = (dloss / count) * (softmax - onehot) in BF16 (0 rows when
// ignored), count = number of targets >= 0. The mean loss is reduced by the
// last block in a fixed order (deterministic) and written to *loss.
// Launches: ce_count (1 block; count -> ws[1]), then ce_main (one block per
// row). ws[0] is an arrival counter; both words are left as the next step
// needs them (ws[0] = 0), so ws only has to be zeroed once.
//
// ===----------------------------------------------------------------------===//

namespace halo {

template <int T, int THREADS>
__device__ __forceinline__ void ce_count(const int *targets, unsigned *ws) {
  __shared__ float red[32];
  float c = 0.0f;
  for (int t = threadIdx.x; t < T; t += THREADS)
    c += targets[t] >= 0 ? 1.0f : 0.0f;
  c = block_sum<THREADS>(c, red);
  if (threadIdx.x == 0)
    ws[1] = (unsigned)c;
}

template <int V, int T, int THREADS>
__device__ __forceinline__ void ce_main(const bf16 *logits, const int *targets,
                                        const float *dloss, bf16 *dlogits,
                                        float *row_loss, unsigned *ws,
                                        float *loss) {
  __shared__ float red[32];
  __shared__ double redd[32];
  __shared__ int last;
  const size_t t = blockIdx.x;
  const bf16 *row = logits + t * V;
  bf16 *grow = dlogits + t * V;
  const int target = targets[t];
  const unsigned count = ws[1];
  constexpr bool VEC = (V % 8) == 0;
  if (target < 0) {
    if (VEC) {
      for (int c = threadIdx.x; c < V / 8; c += THREADS)
        reinterpret_cast<uint4 *>(grow)[c] = make_uint4(0, 0, 0, 0);
    } else {
      for (int j = threadIdx.x; j < V; j += THREADS)
        grow[j] = __float2bfloat16_rn(0.0f);
    }
    if (threadIdx.x == 0)
      row_loss[t] = 0.0f;
  } else {
    // Online max and sum of exp per thread, then combined over the block.
    float m = neg_inf(), s = 0.0f;
    auto add = [&](float x) {
      if (x > m) {
        s = s * expf(m - x) + 1.0f;
        m = x;
      } else {
        s += expf(x - m);
      }
    };
    if (VEC) {
      for (int c = threadIdx.x; c < V / 8; c += THREADS) {
        float v[8];
        Elem<kBF16>::load8(row + c * 8, v);
#pragma unroll
        for (int i = 0; i < 8; ++i)
          add(v[i]);
      }
    } else {
      for (int j = threadIdx.x; j < V; j += THREADS)
        add(__bfloat162float(row[j]));
    }
    const float M = block_max<THREADS>(m, red);
    const float S =
        block_sum<THREADS>(m == neg_inf() ? 0.0f : s * expf(m - M), red);
    const float lse = M + logf(S);
    const float scale = (dloss ? *dloss : 1.0f) / (float)count;
    if (VEC) {
      for (int c = threadIdx.x; c < V / 8; c += THREADS) {
        float v[8];
        Elem<kBF16>::load8(row + c * 8, v);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          v[i] = scale * expf(v[i] - lse);
          if (c * 8 + i == target)
            v[i] -= scale;
        }
        store8_bf16(grow + c * 8, v);
      }
    } else {
      for (int j = threadIdx.x; j < V; j += THREADS) {
        float g = scale * expf(__bfloat162float(row[j]) - lse);
        if (j == target)
          g -= scale;
        grow[j] = __float2bfloat16_rn(g);
      }
    }
    if (threadIdx.x == 0)
      row_loss[t] = lse - __bfloat162float(row[target]);
  }
  // The last block reduces the row losses in a fixed order.
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(&ws[0], 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last)
    return;
  __threadfence();
  double acc = 0.0;
  for (int i = threadIdx.x; i < T; i += THREADS)
    acc += (double)__ldcg(row_loss + i);
  acc = block_sum<THREADS>(acc, redd);
  if (threadIdx.x == 0) {
    *loss = count ? (float)(acc / (double)count) : 0.0f;
    ws[0] = 0u;
  }
}

} // namespace halo
