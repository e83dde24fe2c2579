// ===- rmsnorm.cuh - RMSNorm forward (+ residual add) and backward ---------===//
//
// Semantics of cpu::rmsNorm / rmsNormBackward (HF LlamaRMSNorm), BF16 storage
// and FP32 math; the sum of squares is a parallel reduction, so results match
// the CPU to FP32 reassociation plus the final BF16 rounding.
//   forward : h = bf16(x + res) (RES) or x;  r = rsqrt(mean(h^2) + eps)
//             y = bf16(h * r * w); optionally writes h and r (rstd[row]).
//   backward: dx = r * w * dy - h * (r^3 / D) * sum(dy * w * h)  (+ dres)
//             dw = sum_rows dy * h * r  (FP32), in two kernels: per-block
//             partial sums over ROWS_PER_BLOCK rows, then a fixed-order
//             reduction over blocks (deterministic). dy as stored, or
//             (DyRotated, needs hadamard_rows.cuh) the right rotation of
//             another tensor, done row by row in the kernel.
// One block per row (forward) / per ROWS_PER_BLOCK rows (backward); thread t
// owns the 8-element chunks t, t + THREADS, ... of the row (D % 8 == 0).
//
// ===----------------------------------------------------------------------===//

namespace halo {

template <int D, int THREADS> struct RowChunks {
  static constexpr int NCHUNK = D / 8;
  static constexpr int G = (NCHUNK + THREADS - 1) / THREADS;
  static __device__ __forceinline__ bool valid(int g) {
    return (NCHUNK % THREADS == 0) || (g * THREADS + (int)threadIdx.x) < NCHUNK;
  }
  static __device__ __forceinline__ int col(int g) {
    return (g * THREADS + threadIdx.x) * 8;
  }
};

template <int D, int THREADS, bool RES>
__device__ __forceinline__ void rmsnorm_fwd(const bf16 *x, const bf16 *res,
                                            const bf16 *w, float eps,
                                            bf16 *h_out, bf16 *y,
                                            float *rstd) {
  typedef RowChunks<D, THREADS> RC;
  __shared__ float red[32];
  const size_t row = blockIdx.x;
  const bf16 *xr = x + row * D;
  float v[RC::G][8];
  float ss = 0.0f;
#pragma unroll
  for (int g = 0; g < RC::G; ++g) {
    if (!RC::valid(g))
      continue;
    Elem<kBF16>::load8(xr + RC::col(g), v[g]);
    if constexpr (RES) {
      float r[8];
      Elem<kBF16>::load8(res + row * D + RC::col(g), r);
#pragma unroll
      for (int i = 0; i < 8; ++i)
        v[g][i] += r[i];
      round8_bf16(v[g]);
      if (h_out)
        store8_bf16(h_out + row * D + RC::col(g), v[g]);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i)
      ss += v[g][i] * v[g][i];
  }
  ss = block_sum<THREADS>(ss, red);
  const float r = 1.0f / sqrtf(ss / (float)D + eps);
  if (rstd && threadIdx.x == 0)
    rstd[row] = r;
#pragma unroll
  for (int g = 0; g < RC::G; ++g) {
    if (!RC::valid(g))
      continue;
    float wv[8], o[8];
    Elem<kBF16>::load8(w + RC::col(g), wv);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      o[i] = v[g][i] * r * wv[i];
    store8_bf16(y + row * D + RC::col(g), o);
  }
}

__device__ __forceinline__ void bf16x8_to_float(uint4 raw, float *v) {
  const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

/// The backward's dy as stored: fetch(row) loads a row's chunks (the next
/// row, while this one's sums reduce), take() converts them.
template <int D, int THREADS> struct DyStored {
  typedef RowChunks<D, THREADS> RC;
  const bf16 *dy;
  uint4 raw[RC::G];
  __device__ __forceinline__ void fetch(int row) {
#pragma unroll
    for (int g = 0; g < RC::G; ++g)
      if (RC::valid(g))
        raw[g] = __ldg(reinterpret_cast<const uint4 *>(dy + (size_t)row * D + RC::col(g)));
  }
  __device__ __forceinline__ void take(float (&gv)[RC::G][8], float *) const {
#pragma unroll
    for (int g = 0; g < RC::G; ++g)
      if (RC::valid(g))
        bf16x8_to_float(raw[g], gv[g]);
  }
};

/// dy = bf16(x H) (or x H^T) of rows x read through LOAD (LoadPlain of BF16):
/// the right un-rotation of the gradient reaching the RMSNorm backward at
/// HALO-1/2, which halo-fuse puts into this kernel. RH is hadamard_rows.cuh's
/// RowHadamard with THREADS threads, whose 8-element chunks are RowChunks';
/// fetch(row) prefetches x's chunks as DyStored does, take() rotates them
/// with RH's FP32 operations (those of the standalone rotation, so dy is
/// bit-identical to hadamardKernel's), rounds to BF16 as it stores them and
/// hands each thread its chunks back through ibuf (RH::BUF_FLOATS floats of
/// dynamic shared memory). All threads must call take().
template <class RH, class LOAD> struct DyRotated {
  typedef RowChunks<RH::N, RH::kThreads> RC;
  LOAD ld;
  float scale;
  typename LOAD::Raw raw[RC::G];
  __device__ __forceinline__ void fetch(int row) {
#pragma unroll
    for (int g = 0; g < RC::G; ++g)
      if (RC::valid(g))
        ld.fetch8((size_t)row * RH::N + RC::col(g), raw[g]);
  }
  __device__ __forceinline__ void take(float (&gv)[RC::G][8], float *ibuf) const {
    // Where rotate_b leaves element i (adamw_rows' places).
    auto at = [](int i) { return RH::REG ? RH::slot(i) : RH::N + i; };
    RH rh;
#pragma unroll
    for (int g = 0; g < RC::G; ++g) {
      if (RC::valid(g))
        ld.convert8(raw[g], rh.v[g]);
      else // as RH::load pads a partial last chunk group
#pragma unroll
        for (int e = 0; e < 8; ++e)
          rh.v[g][e] = 0.0f;
    }
    rh.rotate_a();
    __syncthreads(); // ibuf free: the previous row's readers are done
    rh.store_a(ibuf);
    __syncthreads();
    rh.rotate_b(ibuf, scale, [&](float v, int i) {
      ibuf[at(i)] = __bfloat162float(__float2bfloat16_rn(v)); // own element
    });
    __syncthreads();
#pragma unroll
    for (int g = 0; g < RC::G; ++g)
      if (RC::valid(g)) {
        const float4 lo = *reinterpret_cast<const float4 *>(ibuf + at(RC::col(g)));
        const float4 hi = *reinterpret_cast<const float4 *>(ibuf + at(RC::col(g) + 4));
        gv[g][0] = lo.x; gv[g][1] = lo.y; gv[g][2] = lo.z; gv[g][3] = lo.w;
        gv[g][4] = hi.x; gv[g][5] = hi.y; gv[g][6] = hi.z; gv[g][7] = hi.w;
      }
  }
};

/// Backward, part 1: dx for rows [RPB b, RPB b + RPB) and the block's dw
/// partial sums into part[b * D + d], dy from DY (DyStored, or DyRotated
/// with its exchange buffer as dynamic shared memory). The next row's h and
/// dy (and this row's dres) load while this row's sums reduce; both sums
/// share one barrier round (the same per-sum order as two block_sum calls).
template <int D, int THREADS, int RPB, bool DRES, class DY>
__device__ __forceinline__ void rmsnorm_bwd(const bf16 *h, const bf16 *w,
                                            DY dyp, const bf16 *dres,
                                            float eps, int rows, bf16 *dx,
                                            float *part) {
  typedef RowChunks<D, THREADS> RC;
  constexpr int NW = THREADS / 32;
  __shared__ float red[2][2][NW];
  extern __shared__ __align__(16) unsigned char smem[];
  float *ibuf = reinterpret_cast<float *>(smem);
  float dw[RC::G][8];
  float wv[RC::G][8];
#pragma unroll
  for (int g = 0; g < RC::G; ++g) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      dw[g][i] = 0.0f;
    if (RC::valid(g))
      Elem<kBF16>::load8(w + RC::col(g), wv[g]);
  }
  const int r0 = blockIdx.x * RPB;
  const int r1 = r0 + RPB < rows ? r0 + RPB : rows;
  uint4 hn[RC::G];
#pragma unroll
  for (int g = 0; g < RC::G; ++g)
    if (RC::valid(g) && r0 < r1)
      hn[g] = __ldg(reinterpret_cast<const uint4 *>(h + (size_t)r0 * D + RC::col(g)));
  if (r0 < r1)
    dyp.fetch(r0);
#pragma unroll 1
  for (int row = r0; row < r1; ++row) {
    float xv[RC::G][8], gv[RC::G][8];
    uint4 dr[RC::G];
    float ss = 0.0f, dot = 0.0f;
    dyp.take(gv, ibuf);
    if (row + 1 < r1)
      dyp.fetch(row + 1);
#pragma unroll
    for (int g = 0; g < RC::G; ++g) {
      if (!RC::valid(g))
        continue;
      bf16x8_to_float(hn[g], xv[g]);
      if constexpr (DRES)
        dr[g] = __ldg(reinterpret_cast<const uint4 *>(dres + (size_t)row * D + RC::col(g)));
      if (row + 1 < r1)
        hn[g] = __ldg(reinterpret_cast<const uint4 *>(h + (size_t)(row + 1) * D + RC::col(g)));
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ss += xv[g][i] * xv[g][i];
        dot += gv[g][i] * wv[g][i] * xv[g][i];
      }
    }
    ss = warp_sum(ss);
    dot = warp_sum(dot);
    const int par = row & 1; // alternate buffers: one barrier per row
    if ((threadIdx.x & 31) == 0) {
      red[par][0][threadIdx.x >> 5] = ss;
      red[par][1][threadIdx.x >> 5] = dot;
    }
    __syncthreads();
    ss = red[par][0][0];
    dot = red[par][1][0];
#pragma unroll
    for (int i = 1; i < NW; ++i) {
      ss += red[par][0][i];
      dot += red[par][1][i];
    }
    const float r = 1.0f / sqrtf(ss / (float)D + eps);
    const float c = dot * r * r * r / (float)D;
#pragma unroll
    for (int g = 0; g < RC::G; ++g) {
      if (!RC::valid(g))
        continue;
      float o[8];
      if constexpr (DRES)
        bf16x8_to_float(dr[g], o);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        float d = r * wv[g][i] * gv[g][i] - xv[g][i] * c;
        o[i] = DRES ? o[i] + d : d;
        dw[g][i] += gv[g][i] * xv[g][i] * r;
      }
      store8_bf16(dx + (size_t)row * D + RC::col(g), o);
    }
  }
#pragma unroll
  for (int g = 0; g < RC::G; ++g) {
    if (!RC::valid(g))
      continue;
    float4 *p = reinterpret_cast<float4 *>(part + (size_t)blockIdx.x * D +
                                           RC::col(g));
    p[0] = make_float4(dw[g][0], dw[g][1], dw[g][2], dw[g][3]);
    p[1] = make_float4(dw[g][4], dw[g][5], dw[g][6], dw[g][7]);
  }
}

/// Backward, part 2: dw[d] = sum over the NB partial rows: 32 columns per
/// block, warp j sums rows j, j + 8, ... in order, then the 8 sums add in
/// warp order (a fixed order: deterministic).
template <int D, int NB>
__device__ __forceinline__ void rmsnorm_dw_reduce(const float *part,
                                                  float *dw) {
  __shared__ float red[8][33];
  const int lane = threadIdx.x & 31, j = threadIdx.x >> 5;
  const int d = blockIdx.x * 32 + lane;
  float s = 0.0f;
  if (d < D) {
#pragma unroll 8
    for (int b = j; b < NB; b += 8)
      s += part[(size_t)b * D + d];
  }
  red[j][lane] = s;
  __syncthreads();
  if (j == 0 && d < D) {
#pragma unroll
    for (int i = 1; i < 8; ++i)
      s += red[i][lane];
    dw[d] = s;
  }
}

} // namespace halo
