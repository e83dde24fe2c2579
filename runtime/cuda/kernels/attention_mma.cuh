// ===- attention_mma.cuh - Causal GQA attention on tensor cores -----------===//
//
// Same semantics and layouts as attention.cuh (q [T, H*HD], k/v [T, KV*HD],
// lse [(b*H + h)*S + s], query head h reads kv head h / (H/KV)), with every
// product on tensor cores: mma.sync m16n8k16 BF16 -> FP32 (sm_80+), operands
// from shared memory by ldmatrix. A flash scheme: the S x S scores never go
// to memory.
//
// Tiles: a block of W warps owns 16 W rows (16 per warp) of one operand and
// streams 64-row tiles of the other through two shared-memory buffers
// (cp.async: the next tile loads while this one is used). Shared-memory
// tiles are [rows][HD] BF16 with 16-byte chunks XOR-swizzled by row (chunk c
// of row r at c ^ (r % SW)), so that the 8 rows an ldmatrix reads hit
// distinct banks.
//
// Fragments (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4): A a0..a3 =
// (g, 2t), (g+8, 2t), (g, 2t+8), (g+8, 2t+8); B b0, b1 = (k 2t, n g),
// (k 2t+8, n g); C c0..c3 = (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1). Two
// adjacent C tiles (n 0..15) are one A fragment (k 0..15) after packing to
// BF16, so P and dS feed the next product straight from registers.
//
//   attn_mma_fwd : block = 16 W queries of (b, h); loops over the causal key
//                  tiles; online softmax in registers (exp2, the scale folded
//                  in); writes out and lse.
//   attn_mma_dkdv: block = 16 W keys of (b, kv head g); loops over the group's
//                  query heads and causal query tiles: S^T = K Q^T, P^T,
//                  dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta),
//                  dK += dS^T Q (FP32 accumulators in registers, no atomics).
//   attn_mma_dq  : block = 16 W queries of (b, h); loops over key tiles:
//                  S = Q K^T, dP = dO V^T, dS = P (dP - delta), dQ += dS K.
//   delta = dO . O comes from attention.cuh's attn_bwd_pre.
// P and dS are rounded to BF16 for the products (as in FlashAttention-2).
//
// ===----------------------------------------------------------------------===//

namespace halo {
namespace mma {

constexpr int kRows = 64; // rows of a streamed tile (the loop operand)

__device__ __forceinline__ unsigned smem_addr(const void *p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

/// Element offset of (r, c) in a swizzled [rows][HD] tile; c % 8 == 0.
template <int HD>
__device__ __forceinline__ int swz(int r, int c) {
  constexpr int CHUNKS = HD / 8, SW = CHUNKS < 8 ? CHUNKS : 8;
  return r * HD + (((c >> 3) ^ (r & (SW - 1))) << 3);
}

__device__ __forceinline__ void ldsm4(unsigned (&r)[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm4t(unsigned (&r)[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

/// c += a b (m16n8k16, BF16 in, FP32 accumulate).
__device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned *>(&v);
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// Rows [r0, r0 + ROWS) of a row-major BF16 matrix (leading dimension ld)
/// into a swizzled tile with cp.async (16 bytes per copy); rows >= limit are
/// zero-filled. The caller commits and waits.
template <int HD, int ROWS>
__device__ __forceinline__ void load_tile_async(bf16 *dst, const bf16 *src, size_t ld, int r0,
                                                int limit) {
  constexpr int VPR = HD / 8;
  for (int idx = threadIdx.x; idx < ROWS * VPR; idx += blockDim.x) {
    const int r = idx / VPR, c = (idx % VPR) * 8;
    const bool valid = r0 + r < limit;
    const bf16 *from = src + (size_t)(valid ? r0 + r : 0) * ld + c;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst + swz<HD>(r, c))),
                 "l"(from), "r"(valid ? 16 : 0));
  }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/// Key-tile loop step of the forward and dQ kernels (K and V tiles in two
/// buffers each): starts loading tile kt + 1 into the other buffer, then
/// waits until tile kt (buffer kt & 1) has landed; the caller syncs.
template <int HD>
__device__ __forceinline__ void next_kv_tile(bf16 *ks, bf16 *vs, const bf16 *kb, const bf16 *vb,
                                             size_t kld, int kt, int nkt, int limit) {
  if (kt < nkt) {
    const int nb = (kt + 1) & 1;
    load_tile_async<HD, kRows>(ks + nb * kRows * HD, kb, kld, (kt + 1) * kRows, limit);
    load_tile_async<HD, kRows>(vs + nb * kRows * HD, vb, kld, (kt + 1) * kRows, limit);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
}

/// A fragment of the 16 x 16 block at (r0, c0) of a swizzled tile.
template <int HD>
__device__ __forceinline__ void load_a(unsigned (&a)[4], const bf16 *tile, int r0, int c0) {
  const int lane = threadIdx.x & 31;
  ldsm4(a, tile + swz<HD>(r0 + (lane & 15), c0 + ((lane >> 4) << 3)));
}

/// B fragments of two n-tiles for B[k][n] = tile[n][k]: n rows n0..n0+15,
/// k columns k0..k0+15. b[0], b[1]: n0..n0+7; b[2], b[3]: n0+8..n0+15.
template <int HD>
__device__ __forceinline__ void load_b_rows(unsigned (&b)[4], const bf16 *tile, int n0,
                                            int k0) {
  const int lane = threadIdx.x & 31;
  ldsm4(b, tile + swz<HD>(n0 + (lane & 7) + ((lane >> 4) << 3), k0 + (((lane >> 3) & 1) << 3)));
}

/// B fragments of two n-tiles for B[k][n] = tile[k][n]: k rows k0..k0+15,
/// n columns n0..n0+15 (transposed ldmatrix). Same register order.
template <int HD>
__device__ __forceinline__ void load_b_cols(unsigned (&b)[4], const bf16 *tile, int k0,
                                            int n0) {
  const int lane = threadIdx.x & 31;
  ldsm4t(b, tile + swz<HD>(k0 + (lane & 15), n0 + ((lane >> 4) << 3)));
}

/// acc[NT][4] = A rows [r0, r0+16) of `a` times B = `b`^T (b: NT*8 rows of
/// HD), both swizzled tiles: the 16 x (NT*8) block of a b^T.
template <int HD, int NT>
__device__ __forceinline__ void gemm_abt(float (&acc)[NT][4], const bf16 *a, int r0,
                                         const bf16 *b) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    unsigned af[4];
    load_a<HD>(af, a, r0, kk * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      unsigned bf[4];
      load_b_rows<HD>(bf, b, np * 16, kk * 16);
      mma16816(acc[2 * np], af, bf[0], bf[1]);
      mma16816(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

/// acc[HD/8][4] += P b, P = the packed BF16 A fragments p[64/16][4] (16 x 64),
/// b a swizzled [64][HD] tile.
template <int HD>
__device__ __forceinline__ void gemm_pb(float (&acc)[HD / 8][4], const unsigned (&p)[kRows / 16][4],
                                        const bf16 *b) {
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk)
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      unsigned bf[4];
      load_b_cols<HD>(bf, b, kk * 16, dp * 16);
      mma16816(acc[2 * dp], p[kk], bf[0], bf[1]);
      mma16816(acc[2 * dp + 1], p[kk], bf[2], bf[3]);
    }
}

/// Packs C tiles s[8][4] (16 x 64) into A fragments (16 x 64, 4 k-steps).
__device__ __forceinline__ void pack_a(unsigned (&p)[kRows / 16][4], const float (&s)[kRows / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < kRows / 16; ++kk) {
    p[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    p[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    p[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    p[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}

/// Stores a warp's 16 x HD accumulator rows (row0 + g, row0 + g + 8) times
/// `mul` as BF16 into dst (row stride ld); rows >= limit are skipped.
template <int HD>
__device__ __forceinline__ void store_rows(bf16 *dst, size_t ld, int row0, int limit,
                                           const float (&acc)[HD / 8][4], float mul0,
                                           float mul1) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) {
    const int c = n * 8 + 2 * t;
    if (row0 + g < limit)
      *reinterpret_cast<unsigned *>(dst + (size_t)(row0 + g) * ld + c) =
          pack_bf16(acc[n][0] * mul0, acc[n][1] * mul0);
    if (row0 + g + 8 < limit)
      *reinterpret_cast<unsigned *>(dst + (size_t)(row0 + g + 8) * ld + c) =
          pack_bf16(acc[n][2] * mul1, acc[n][3] * mul1);
  }
}

} // namespace mma

// Dynamic shared memory (set by the generator, attentionForwardKernel /
// attentionBackwardKernel): the block's own 16 W-row tiles plus two buffers
// of each streamed 64-row tile (and of 64 lse/delta values for dK/dV).

// Forward. Block = 16 W queries of (b, h) (warp w: rows 16w..16w+15); key
// tiles of 64 stream through two shared-memory buffers (the next one loads
// while this one is used).
template <int S, int H, int KV, int HD, int W>
__device__ __forceinline__ void attn_mma_fwd(const bf16 *q, const bf16 *k, const bf16 *v,
                                             bf16 *out, float *lse) {
  using namespace mma;
  constexpr int NT = kRows / 8, DT = HD / 8, BR = 16 * W, LAST = (S - 1) / kRows;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_smem), *ks = qs + BR * HD, *vs = ks + 2 * kRows * HD;
  const int qt = gridDim.x - 1 - blockIdx.x; // long (late) tiles first
  const int bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR + warp * 16; // the warp's first query
  const int nkt = min((qt * BR + BR - 1) / kRows, LAST);
  load_tile_async<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  cp_async_commit();
  load_tile_async<HD, kRows>(ks, kb, kld, 0, S);
  load_tile_async<HD, kRows>(vs, vb, kld, 0, S);
  cp_async_commit();
  cp_async_wait<1>();
  __syncthreads();
  unsigned qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk)
    load_a<HD>(qf[kk], qs, warp * 16, kk * 16);

  const float sl2 = 1.4426950408889634f / sqrtf((float)HD); // scale * log2(e)
  const int row0 = first + g, row1 = row0 + 8;
  float o[DT][4];
#pragma unroll
  for (int n = 0; n < DT; ++n)
    o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.0f, l1 = 0.0f;
  for (int kt = 0; kt <= nkt; ++kt) {
    next_kv_tile<HD>(ks, vs, kb, vb, kld, kt, nkt, S);
    __syncthreads();
    const bf16 *kt_s = ks + (kt & 1) * kRows * HD, *vt_s = vs + (kt & 1) * kRows * HD;
    if (kt * kRows <= first + 15) { // some key of the tile is visible to the warp
      float s[NT][4];
#pragma unroll
      for (int n = 0; n < NT; ++n)
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk)
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          unsigned bf[4];
          load_b_rows<HD>(bf, kt_s, np * 16, kk * 16);
          mma16816(s[2 * np], qf[kk], bf[0], bf[1]);
          mma16816(s[2 * np + 1], qf[kk], bf[2], bf[3]);
        }
      if (kt * kRows + kRows - 1 > first) // keys after some query: mask them
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = kt * kRows + n * 8 + 2 * t + (e & 1);
            if (key > (e < 2 ? row0 : row1))
              s[n][e] = neg_inf();
          }
      float mx0 = m0, mx1 = m1;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
        mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
      }
#pragma unroll
      for (int o2 = 1; o2 <= 2; o2 <<= 1) {
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o2));
      }
      // Every row sees key 0 in the first tile, so mx0/mx1 are finite here.
      const float c0 = ex2((m0 - mx0) * sl2), c1 = ex2((m1 - mx1) * sl2);
      m0 = mx0;
      m1 = mx1;
      const float b0 = mx0 * sl2, b1 = mx1 * sl2;
      float r0 = 0.0f, r1 = 0.0f;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        s[n][0] = ex2(fmaf(s[n][0], sl2, -b0));
        s[n][1] = ex2(fmaf(s[n][1], sl2, -b0));
        s[n][2] = ex2(fmaf(s[n][2], sl2, -b1));
        s[n][3] = ex2(fmaf(s[n][3], sl2, -b1));
        r0 += s[n][0] + s[n][1];
        r1 += s[n][2] + s[n][3];
      }
      l0 = l0 * c0 + r0;
      l1 = l1 * c1 + r1;
#pragma unroll
      for (int n = 0; n < DT; ++n) {
        o[n][0] *= c0;
        o[n][1] *= c0;
        o[n][2] *= c1;
        o[n][3] *= c1;
      }
      unsigned p[kRows / 16][4];
      pack_a(p, s);
      gemm_pb<HD>(o, p, vt_s);
    }
    __syncthreads(); // the buffer is refilled by the next iteration's prefetch
  }
#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
  }
  store_rows<HD>(out + (size_t)b * S * qld + h * HD, qld, first, S, o, 1.0f / l0, 1.0f / l1);
  if (t == 0) {
    const float scale = 1.0f / sqrtf((float)HD);
    if (row0 < S)
      lse[(size_t)bh * S + row0] = m0 * scale + logf(l0);
    if (row1 < S)
      lse[(size_t)bh * S + row1] = m1 * scale + logf(l1);
  }
}

// dK, dV. Block = 16 W keys of (b, kv head); for each query head of the
// group, query tiles of 64 (with their lse and delta) stream through two
// buffers.
template <int S, int H, int KV, int HD, int W>
__device__ __forceinline__ void attn_mma_dkdv(const bf16 *q, const bf16 *k, const bf16 *v,
                                              const bf16 *dout, const float *lse,
                                              const float *delta, bf16 *dk, bf16 *dv) {
  using namespace mma;
  constexpr int NT = kRows / 8, DT = HD / 8, BR = 16 * W, QT = (S + kRows - 1) / kRows;
  constexpr int GRP = H / KV, TILE = kRows * HD;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *ks = reinterpret_cast<bf16 *>(attn_smem), *vs = ks + BR * HD, *qs = vs + BR * HD,
       *dos = qs + 2 * TILE;
  float *ls = reinterpret_cast<float *>(dos + 2 * TILE), *dls = ls + 2 * kRows;
  const int kt = blockIdx.x;
  const int bg = blockIdx.y, b = bg / KV, kvh = bg % KV;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const int first = kt * BR + warp * 16; // the warp's first key
  const int key0 = first + g, key1 = key0 + 8;
  const int qt0 = (kt * BR) / kRows, nq = QT - qt0; // query tiles per head
  // Work item i: head h = kvh * GRP + i / nq, query tile qt0 + i % nq.
  auto issue = [&](int i) {
    const int h = kvh * GRP + i / nq, qt = qt0 + i % nq, buf = i & 1;
    const size_t lb = ((size_t)b * H + h) * S;
    load_tile_async<HD, kRows>(qs + buf * TILE, q + (size_t)b * S * qld + h * HD, qld,
                               qt * kRows, S);
    load_tile_async<HD, kRows>(dos + buf * TILE, dout + (size_t)b * S * qld + h * HD, qld,
                               qt * kRows, S);
    for (int r = threadIdx.x; r < kRows; r += blockDim.x) {
      const int row = qt * kRows + r;
      ls[buf * kRows + r] = row < S ? lse[lb + row] * 1.4426950408889634f : 0.0f;
      dls[buf * kRows + r] = row < S ? delta[lb + row] : 0.0f;
    }
  };
  load_tile_async<HD, BR>(ks, k + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  load_tile_async<HD, BR>(vs, v + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  issue(0);
  cp_async_commit();
  float dkacc[DT][4], dvacc[DT][4];
#pragma unroll
  for (int n = 0; n < DT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      dkacc[n][e] = dvacc[n][e] = 0.0f;
  const int items = GRP * nq;
  for (int i = 0; i < items; ++i) {
    if (i + 1 < items) {
      issue(i + 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int qt = qt0 + i % nq, buf = i & 1;
    const bf16 *q_s = qs + buf * TILE, *do_s = dos + buf * TILE;
    const float *l_s = ls + buf * kRows, *d_s = dls + buf * kRows;
    if (qt * kRows + kRows - 1 >= first) { // some query of the tile sees the warp's keys
      // P^T (16 keys x 64 queries of this warp), zero where masked.
      float st[NT][4];
      gemm_abt<HD, NT>(st, ks, warp * 16, q_s);
      const bool diag = qt * kRows < first + 15;
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = n * 8 + 2 * t + (e & 1), query = qt * kRows + qi;
          const bool live = (!diag || query >= (e < 2 ? key0 : key1)) && query < S;
          st[n][e] = live ? ex2(fmaf(st[n][e], sl2, -l_s[qi])) : 0.0f;
        }
      unsigned pp[kRows / 16][4];
      pack_a(pp, st);
      gemm_pb<HD>(dvacc, pp, do_s);               // dV += P^T dO
      gemm_abt<HD, NT>(st, vs, warp * 16, do_s); // dP^T = V dO^T
#pragma unroll
      for (int kk = 0; kk < kRows / 16; ++kk)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          // A-fragment register e of k-step kk holds C tile 2kk + e/2, entries (e%2)*2, +1.
          const int n = 2 * kk + (e >> 1), c = (e & 1) * 2, qi = n * 8 + 2 * t;
          __nv_bfloat162 pv = *reinterpret_cast<const __nv_bfloat162 *>(&pp[kk][e]);
          pp[kk][e] = pack_bf16(__low2float(pv) * (st[n][c] - d_s[qi]),
                                __high2float(pv) * (st[n][c + 1] - d_s[qi + 1]));
        }
      gemm_pb<HD>(dkacc, pp, q_s); // dK += dS^T Q
    }
    __syncthreads(); // the buffer is refilled by the next iteration's prefetch
  }
  store_rows<HD>(dk + (size_t)b * S * kld + kvh * HD, kld, first, S, dkacc, scale, scale);
  store_rows<HD>(dv + (size_t)b * S * kld + kvh * HD, kld, first, S, dvacc, 1.0f, 1.0f);
}

// dQ. Block = 16 W queries of (b, h); key tiles of 64 (K and V) stream
// through two buffers.
template <int S, int H, int KV, int HD, int W>
__device__ __forceinline__ void attn_mma_dq(const bf16 *q, const bf16 *k, const bf16 *v,
                                            const bf16 *dout, const float *lse,
                                            const float *delta, bf16 *dq) {
  using namespace mma;
  constexpr int NT = kRows / 8, DT = HD / 8, BR = 16 * W, LAST = (S - 1) / kRows;
  constexpr int TILE = kRows * HD;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_smem), *dos = qs + BR * HD, *ks = dos + BR * HD,
       *vs = ks + 2 * TILE;
  const int qt = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR + warp * 16, row0 = first + g, row1 = row0 + 8;
  const int nkt = min((qt * BR + BR - 1) / kRows, LAST);
  load_tile_async<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  load_tile_async<HD, BR>(dos, dout + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  load_tile_async<HD, kRows>(ks, kb, kld, 0, S);
  load_tile_async<HD, kRows>(vs, vb, kld, 0, S);
  cp_async_commit();
  const size_t lb = (size_t)bh * S;
  const float L0 = row0 < S ? lse[lb + row0] * 1.4426950408889634f : 0.0f;
  const float L1 = row1 < S ? lse[lb + row1] * 1.4426950408889634f : 0.0f;
  const float D0 = row0 < S ? delta[lb + row0] : 0.0f;
  const float D1 = row1 < S ? delta[lb + row1] : 0.0f;
  float acc[DT][4];
#pragma unroll
  for (int n = 0; n < DT; ++n)
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
  for (int kt = 0; kt <= nkt; ++kt) {
    next_kv_tile<HD>(ks, vs, kb, vb, kld, kt, nkt, S);
    __syncthreads();
    const bf16 *k_s = ks + (kt & 1) * TILE, *v_s = vs + (kt & 1) * TILE;
    if (kt * kRows <= first + 15) {
      float s[NT][4], dp[NT][4];
      gemm_abt<HD, NT>(s, qs, warp * 16, k_s);   // S = Q K^T
      gemm_abt<HD, NT>(dp, dos, warp * 16, v_s); // dP = dO V^T
      const bool diag = kt * kRows + kRows - 1 > first;
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = kt * kRows + n * 8 + 2 * t + (e & 1);
          const bool lo = e < 2;
          const float p = !diag || key <= (lo ? row0 : row1)
                              ? ex2(fmaf(s[n][e], sl2, -(lo ? L0 : L1)))
                              : 0.0f;
          s[n][e] = p * (dp[n][e] - (lo ? D0 : D1));
        }
      unsigned ds[kRows / 16][4];
      pack_a(ds, s);
      gemm_pb<HD>(acc, ds, k_s); // dQ += dS K
    }
    __syncthreads();
  }
  store_rows<HD>(dq + (size_t)b * S * qld + h * HD, qld, first, S, acc, scale, scale);
}

} // namespace halo
