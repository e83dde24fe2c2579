// ===- attention_mma.cuh - Causal GQA attention on tensor cores -----------===//
//
// Same semantics and layouts as attention.cuh (q [T, H*HD], k/v [T, KV*HD],
// lse [(b*H + h)*S + s], query head h reads kv head h / (H/KV)), with every
// product on tensor cores: mma.sync m16n8k16 BF16 -> FP32 (sm_80+), operands
// from shared memory by ldmatrix. A flash scheme: the S x S scores never go
// to memory.
//
// Tiles: a block of W warps owns 16 MT W rows (MT m16 tiles per warp, which
// share every B fragment: 1 ldmatrix per 2 MT mma) of one operand and
// streams KR-row tiles of the other through two shared-memory buffers
// (cp.async: the next tile loads while this one is used; one barrier per
// tile). The row tile is blockIdx.y, so blocks start longest causal work
// first across all heads (the generator sets the grid). Shared-memory
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
//   attn_mma_fwd : block = 16 MT W queries of (b, h); loops over the causal key
//                  tiles; online softmax in registers (exp2, the scale folded
//                  in); writes out and lse.
//   attn_mma_dkdv: block = 16 W keys of (b, kv head g); loops over the group's
//                  query heads and causal query tiles: S^T = K Q^T, P^T,
//                  dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta),
//                  dK += dS^T Q (FP32 accumulators in registers, no atomics).
//   attn_mma_dkdv2: the same products with warp pairs sharing P^T and dS^T
//                  through shared memory (FlashAttention-2's layout; sm_90).
//   attn_mma_dq  : block = 16 MT W queries of (b, h); loops over key tiles:
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

/// Element offset of (r, c) in a swizzled [rows][HD] tile; c % 8 == 0. The
/// XOR stays inside aligned groups of SW chunks (the largest power of two up
/// to 8 dividing HD / 8), so rows of 6, 10, 12 or 14 chunks (HD 48, 80, 96,
/// 112) are not left.
template <int HD>
__device__ __forceinline__ int swz(int r, int c) {
  constexpr int CHUNKS = HD / 8;
  constexpr int SW = CHUNKS % 8 == 0 ? 8 : CHUNKS % 4 == 0 ? 4 : CHUNKS % 2 == 0 ? 2 : 1;
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

/// Key-tile loop step of the forward and dQ kernels (K and V tiles of KR
/// rows in two buffers each): waits until tile kt (buffer kt & 1) has landed
/// and syncs the block, after which every warp is also done with tile kt - 1,
/// so tile kt + 1 starts loading into that buffer (it lands while tile kt is
/// used). One barrier per tile.
template <int HD, int KR>
__device__ __forceinline__ void next_kv_tile(bf16 *ks, bf16 *vs, const bf16 *kb, const bf16 *vb,
                                             size_t kld, int kt, int nkt, int limit) {
  cp_async_wait<0>();
  __syncthreads();
  if (kt < nkt) {
    const int nb = (kt + 1) & 1;
    load_tile_async<HD, KR>(ks + nb * KR * HD, kb, kld, (kt + 1) * KR, limit);
    load_tile_async<HD, KR>(vs + nb * KR * HD, vb, kld, (kt + 1) * KR, limit);
    cp_async_commit();
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

template <int MT, int NT>
__device__ __forceinline__ void zero_acc(float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int n = 0; n < NT; ++n)
      acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
}

template <int MT, int KT>
__device__ __forceinline__ void zero_frags(unsigned (&f)[MT][KT][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int k = 0; k < KT; ++k)
      f[m][k][0] = f[m][k][1] = f[m][k][2] = f[m][k][3] = 0u;
}

/// acc[MT][NT][4] = rows [r0, r0 + 16 MT) of `a` times B = `b`^T (b: NT*8
/// rows of HD), both swizzled tiles: MT m16 tiles that share every B
/// fragment (one ldmatrix feeds 2 MT mma).
template <int HD, int MT, int NT>
__device__ __forceinline__ void gemm_abt(float (&acc)[MT][NT][4], const bf16 *a, int r0,
                                         const bf16 *b) {
  zero_acc(acc);
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    unsigned af[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
      load_a<HD>(af[m], a, r0 + 16 * m, kk * 16);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      unsigned bf[4];
      load_b_rows<HD>(bf, b, np * 16, kk * 16);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        mma16816(acc[m][2 * np], af[m], bf[0], bf[1]);
        mma16816(acc[m][2 * np + 1], af[m], bf[2], bf[3]);
      }
    }
  }
}

/// The same with the A fragments (one m16 tile, k = 0..HD) in registers.
template <int HD, int NT>
__device__ __forceinline__ void gemm_abt_r(float (&acc)[NT][4], const unsigned (&af)[HD / 16][4],
                                           const bf16 *b) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
    acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk)
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      unsigned bf[4];
      load_b_rows<HD>(bf, b, np * 16, kk * 16);
      mma16816(acc[2 * np], af[kk], bf[0], bf[1]);
      mma16816(acc[2 * np + 1], af[kk], bf[2], bf[3]);
    }
}

/// acc[MT][HD/8][4] += P b, P = the packed BF16 A fragments p[MT][KR/16][4]
/// (16 MT x KR), b a swizzled [KR][HD] tile.
template <int HD, int MT, int KR>
__device__ __forceinline__ void gemm_pb(float (&acc)[MT][HD / 8][4],
                                        const unsigned (&p)[MT][KR / 16][4], const bf16 *b) {
#pragma unroll
  for (int kk = 0; kk < KR / 16; ++kk)
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      unsigned bf[4];
      load_b_cols<HD>(bf, b, kk * 16, dp * 16);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        mma16816(acc[m][2 * dp], p[m][kk], bf[0], bf[1]);
        mma16816(acc[m][2 * dp + 1], p[m][kk], bf[2], bf[3]);
      }
    }
}

/// Packs C tiles s[KR/8][4] (16 x KR) into A fragments (16 x KR, KR/16 k-steps).
template <int KR>
__device__ __forceinline__ void pack_a(unsigned (&p)[KR / 16][4], const float (&s)[KR / 8][4]) {
#pragma unroll
  for (int kk = 0; kk < KR / 16; ++kk) {
    p[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    p[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    p[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    p[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}

/// acc[MT][NC/8][4] += A B: A = rows [r0, r0 + 16 MT) of a swizzled tile of
/// KD-element rows, except k-steps [OK OWN, OK OWN + OWN), whose A fragments
/// are `ar` (registers); B = columns [c0, c0 + NC) of a swizzled [KD][HD]
/// tile (transposed ldmatrix). One B fragment feeds 2 MT mma.
template <int HD, int KD, int MT, int NC, int OWN, int OK>
__device__ __forceinline__ void gemm_ab(float (&acc)[MT][NC / 8][4], const bf16 *a, int r0,
                                        const unsigned (&ar)[MT][OWN][4], const bf16 *b,
                                        int c0) {
#pragma unroll
  for (int kk = 0; kk < KD / 16; ++kk) {
    unsigned af[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (kk / OWN == OK) {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          af[m][e] = ar[m][kk % OWN][e];
      } else {
        load_a<KD>(af[m], a, r0 + 16 * m, kk * 16);
      }
    }
#pragma unroll
    for (int dp = 0; dp < NC / 16; ++dp) {
      unsigned bf[4];
      load_b_cols<HD>(bf, b, kk * 16, c0 + dp * 16);
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        mma16816(acc[m][2 * dp], af[m], bf[0], bf[1]);
        mma16816(acc[m][2 * dp + 1], af[m], bf[2], bf[3]);
      }
    }
  }
}

/// Stores packed A fragments p[MT][NC/16][4] (rows r0 + 16 m.., columns
/// c0..c0 + NC) into a swizzled tile of RW-element rows.
template <int RW, int MT, int NC>
__device__ __forceinline__ void store_a(bf16 *tile, int r0, int c0,
                                        const unsigned (&p)[MT][NC / 16][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int kk = 0; kk < NC / 16; ++kk)
#pragma unroll
      for (int e = 0; e < 4; ++e) // register e: row g + 8 (e & 1), column 8 (e >> 1) + 2t
        *reinterpret_cast<unsigned *>(
            tile + swz<RW>(r0 + 16 * m + g + 8 * (e & 1), c0 + 16 * kk + 8 * (e >> 1)) + 2 * t) =
            p[m][kk][e];
}

/// Stores a warp's 16 x N accumulator rows (row0 + g, row0 + g + 8) times
/// `mul` as BF16 into dst (row stride ld); rows >= limit are skipped.
template <int N>
__device__ __forceinline__ void store_rows(bf16 *dst, size_t ld, int row0, int limit,
                                           const float (&acc)[N / 8][4], float mul0,
                                           float mul1) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int n = 0; n < N / 8; ++n) {
    const int c = n * 8 + 2 * t;
    if (row0 + g < limit)
      *reinterpret_cast<unsigned *>(dst + (size_t)(row0 + g) * ld + c) =
          pack_bf16(acc[n][0] * mul0, acc[n][1] * mul0);
    if (row0 + g + 8 < limit)
      *reinterpret_cast<unsigned *>(dst + (size_t)(row0 + g + 8) * ld + c) =
          pack_bf16(acc[n][2] * mul1, acc[n][3] * mul1);
  }
}


// Score arithmetic on a warp's C tiles, shared by the mma.sync kernels here
// and the wgmma ones (attention_wgmma.cuh), whose accumulators have the same
// layout: register e of tile n is row g + 8 (e >> 1), column 8n + 2t + (e & 1).

/// One online-softmax step of a warp's 16 query rows (row0 = row g's query)
/// over 8 NT keys from key0: with `mask`, keys after the row become -inf;
/// then the running max mx and sum l are updated, o is rescaled, and s holds
/// exp2 of the scaled, max-shifted scores. Every row must have seen a key
/// (key 0 is in the first tile), so the max is finite.
template <int NT, int DT>
__device__ __forceinline__ void softmax_step(float (&s)[NT][4], float (&mx)[2], float (&l)[2],
                                             float (&o)[DT][4], float sl2, bool mask, int key0,
                                             int row0) {
  const int t = threadIdx.x & 3;
  if (mask)
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (key0 + n * 8 + 2 * t + (e & 1) > row0 + (e < 2 ? 0 : 8))
          s[n][e] = neg_inf();
  float mx0 = mx[0], mx1 = mx[1];
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
  const float c0 = ex2((mx[0] - mx0) * sl2), c1 = ex2((mx[1] - mx1) * sl2);
  mx[0] = mx0;
  mx[1] = mx1;
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
  l[0] = l[0] * c0 + r0;
  l[1] = l[1] * c1 + r1;
#pragma unroll
  for (int n = 0; n < DT; ++n) {
    o[n][0] *= c0;
    o[n][1] *= c0;
    o[n][2] *= c1;
    o[n][3] *= c1;
  }
}

/// The forward's end for a warp's 16 rows from r: out = o / l (row sums
/// reduced over the quad), lse = max * scale + log(l) (lse of this head).
template <int HD>
__device__ __forceinline__ void store_softmax_rows(bf16 *out, size_t ld, float *lse, int r,
                                                   int limit, const float (&o)[HD / 8][4],
                                                   const float (&mx)[2], const float (&l)[2],
                                                   float scale) {
  float l0 = l[0], l1 = l[1];
#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
  }
  store_rows<HD>(out, ld, r, limit, o, 1.0f / l0, 1.0f / l1);
  const int row0 = r + ((threadIdx.x & 31) >> 2), row1 = row0 + 8;
  if ((threadIdx.x & 3) == 0) {
    if (row0 < limit)
      lse[row0] = mx[0] * scale + logf(l0);
    if (row1 < limit)
      lse[row1] = mx[1] * scale + logf(l1);
  }
}

/// dQ side, a warp's 16 query rows (row0 = row g's query) x 8 NT keys from
/// key0: P = exp2(S sl2 - L) (L per row, log2 units), zero at keys after the
/// row when `diag`, rounded into A fragments p.
template <int NT>
__device__ __forceinline__ void probs_rows(unsigned (&p)[NT / 2][4], float (&s)[NT][4],
                                           const float (&L)[2], float sl2, bool diag, int key0,
                                           int row0) {
  const int t = threadIdx.x & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = key0 + n * 8 + 2 * t + (e & 1), j = e >> 1;
      s[n][e] = !diag || key <= row0 + 8 * j ? ex2(fmaf(s[n][e], sl2, -L[j])) : 0.0f;
    }
  pack_a<8 * NT>(p, s);
}

/// dS = P (dP - delta) in place of the P fragments, delta per row (D).
template <int NT>
__device__ __forceinline__ void dscores_rows(unsigned (&p)[NT / 2][4], const float (&dp)[NT][4],
                                             const float (&D)[2]) {
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      // A-fragment register e of k-step kk holds C tile 2kk + e/2, entries (e%2)*2, +1.
      const int n = 2 * kk + (e >> 1), c = (e & 1) * 2;
      const float dl = D[e & 1];
      __nv_bfloat162 pv = *reinterpret_cast<const __nv_bfloat162 *>(&p[kk][e]);
      p[kk][e] = pack_bf16(__low2float(pv) * (dp[n][c] - dl), __high2float(pv) * (dp[n][c + 1] - dl));
    }
}

/// dK/dV side, a warp's 16 keys (key0 = row g's key) x 8 NT queries from
/// query q0 (ls: their lse in log2 units): P^T = exp2(S^T sl2 - lse), zero for
/// queries before the key when `diag` and for queries >= limit.
template <int NT>
__device__ __forceinline__ void probs_cols(unsigned (&p)[NT / 2][4], float (&st)[NT][4],
                                           const float *ls, float sl2, bool diag, int key0,
                                           int q0, int limit) {
  const int t = threadIdx.x & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int qi = n * 8 + 2 * t + (e & 1), query = q0 + qi;
      const bool live = (!diag || query >= key0 + 8 * (e >> 1)) && query < limit;
      st[n][e] = live ? ex2(fmaf(st[n][e], sl2, -ls[qi])) : 0.0f;
    }
  pack_a<8 * NT>(p, st);
}

/// dS^T = P^T (dP^T - delta) into ds (which may be pt), delta per query (ds_).
template <int NT>
__device__ __forceinline__ void dscores_cols(unsigned (&ds)[NT / 2][4],
                                             const unsigned (&pt)[NT / 2][4],
                                             const float (&dpt)[NT][4], const float *ds_) {
  const int t = threadIdx.x & 3;
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = 2 * kk + (e >> 1), c = (e & 1) * 2, qi = n * 8 + 2 * t;
      __nv_bfloat162 pv = *reinterpret_cast<const __nv_bfloat162 *>(&pt[kk][e]);
      ds[kk][e] = pack_bf16(__low2float(pv) * (dpt[n][c] - ds_[qi]),
                            __high2float(pv) * (dpt[n][c + 1] - ds_[qi + 1]));
    }
}

} // namespace mma

// Dynamic shared memory (set by the generator, attentionForwardKernel /
// attentionBackwardKernel): the block's own rows plus two buffers of each
// streamed tile (and of its lse/delta values for dK/dV).

// Forward. Block = W warps of 16 MT queries of (b, h) (warp w: rows
// 16 MT w ..); each warp's MT m16 tiles share every K and V fragment. Key
// tiles of 64 stream through two shared-memory buffers (the next one loads
// while this one is used). Q stays in registers where it fits (MT HD <= 128),
// otherwise its fragments are re-read from shared memory per key tile.
template <int S, int H, int KV, int HD, int W, int MT = 1, int KR = mma::kRows>
__device__ __forceinline__ void attn_mma_fwd(const bf16 *q, const bf16 *k, const bf16 *v,
                                             bf16 *out, float *lse) {
  using namespace mma;
  constexpr int NT = KR / 8, DT = HD / 8, WR = 16 * MT, BR = WR * W, LAST = (S - 1) / KR;
  constexpr bool QREG = MT * HD <= 128;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  static_assert(MT == 1 || MT == 2, "one or two m16 tiles per warp");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_smem), *ks = qs + BR * HD, *vs = ks + 2 * KR * HD;
  const int qt = gridDim.y - 1 - blockIdx.y; // long (late) tiles first, over all heads
  const int bh = blockIdx.x, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR + warp * WR; // the warp's first query
  const int nkt = min((qt * BR + BR - 1) / KR, LAST);
  load_tile_async<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  load_tile_async<HD, KR>(ks, kb, kld, 0, S);
  load_tile_async<HD, KR>(vs, vb, kld, 0, S);
  cp_async_commit();
  unsigned qf[MT][HD / 16][4]; // unused (and dropped) unless QREG

  const float sl2 = 1.4426950408889634f / sqrtf((float)HD); // scale * log2(e)
  float o[MT][DT][4];
  zero_acc(o);
  float mx[MT][2], l[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m)
    mx[m][0] = mx[m][1] = neg_inf(), l[m][0] = l[m][1] = 0.0f;
  for (int kt = 0; kt <= nkt; ++kt) {
    next_kv_tile<HD, KR>(ks, vs, kb, vb, kld, kt, nkt, S);
    if constexpr (QREG)
      if (kt == 0)
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int kk = 0; kk < HD / 16; ++kk)
            load_a<HD>(qf[m][kk], qs, warp * WR + 16 * m, kk * 16);
    const bf16 *kt_s = ks + (kt & 1) * KR * HD, *vt_s = vs + (kt & 1) * KR * HD;
    if (kt * KR <= first + WR - 1) { // some key of the tile is visible to the warp
      float s[MT][NT][4];
      zero_acc(s);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        unsigned af[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if constexpr (QREG) {
#pragma unroll
            for (int e = 0; e < 4; ++e)
              af[m][e] = qf[m][kk][e];
          } else {
            load_a<HD>(af[m], qs, warp * WR + 16 * m, kk * 16);
          }
        }
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          unsigned bf[4];
          load_b_rows<HD>(bf, kt_s, np * 16, kk * 16);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            mma16816(s[m][2 * np], af[m], bf[0], bf[1]);
            mma16816(s[m][2 * np + 1], af[m], bf[2], bf[3]);
          }
        }
      }
      unsigned p[MT][KR / 16][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        softmax_step(s[m], mx[m], l[m], o[m], sl2, kt * KR + KR - 1 > first, kt * KR,
                     first + 16 * m + g);
        pack_a<KR>(p[m], s[m]);
      }
      gemm_pb<HD, MT, KR>(o, p, vt_s);
    }
  }
  const float scale = 1.0f / sqrtf((float)HD);
#pragma unroll
  for (int m = 0; m < MT; ++m)
    store_softmax_rows<HD>(out + (size_t)b * S * qld + h * HD, qld, lse + (size_t)bh * S,
                           first + 16 * m, S, o[m], mx[m], l[m], scale);
}

// Work item i of a dK/dV block of kv head kvh: query head kvh * GRP + i / nq,
// query tile qt0 + i % nq. Its Q and dO tiles (cp.async), lse (in log2
// units) and delta go to buffer i & 1.
template <int S, int H, int HD, int KR, int GRP>
__device__ __forceinline__ void dkdv_load_query_tile(int i, int b, int kvh, int qt0, int nq,
                                                     const bf16 *q, const bf16 *dout,
                                                     const float *lse, const float *delta,
                                                     bf16 *qs, bf16 *dos, float *ls, float *dls) {
  constexpr int TILE = KR * HD;
  const size_t qld = (size_t)H * HD;
  const int h = kvh * GRP + i / nq, qt = qt0 + i % nq, buf = i & 1;
  const size_t lb = ((size_t)b * H + h) * S;
  mma::load_tile_async<HD, KR>(qs + buf * TILE, q + (size_t)b * S * qld + h * HD, qld, qt * KR, S);
  mma::load_tile_async<HD, KR>(dos + buf * TILE, dout + (size_t)b * S * qld + h * HD, qld, qt * KR, S);
  for (int r = threadIdx.x; r < KR; r += blockDim.x) {
    const int row = qt * KR + r;
    ls[buf * KR + r] = row < S ? lse[lb + row] * 1.4426950408889634f : 0.0f;
    dls[buf * KR + r] = row < S ? delta[lb + row] : 0.0f;
  }
}

// dK, dV. Block = 16 W keys of (b, kv head); for each query head of the
// group, query tiles of KR (with their lse and delta) stream through two
// buffers. KVREG: the warp's K and V fragments stay in registers.
template <int S, int H, int KV, int HD, int W, int KR = mma::kRows, bool KVREG = false>
__device__ __forceinline__ void attn_mma_dkdv(const bf16 *q, const bf16 *k, const bf16 *v,
                                              const bf16 *dout, const float *lse,
                                              const float *delta, bf16 *dk, bf16 *dv) {
  using namespace mma;
  constexpr int NT = KR / 8, DT = HD / 8, BR = 16 * W, QT = (S + KR - 1) / KR;
  constexpr int GRP = H / KV, TILE = KR * HD;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  static_assert(BR % KR == 0, "the key block is a whole number of query tiles");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *ks = reinterpret_cast<bf16 *>(attn_smem), *vs = ks + BR * HD, *qs = vs + BR * HD,
       *dos = qs + 2 * TILE;
  float *ls = reinterpret_cast<float *>(dos + 2 * TILE), *dls = ls + 2 * KR;
  const int kt = blockIdx.y; // the key block: long (early) ones first, over all heads
  const int bg = blockIdx.x, b = bg / KV, kvh = bg % KV;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const size_t kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const int first = kt * BR + warp * 16; // the warp's first key
  const int key0 = first + g;
  const int qt0 = (kt * BR) / KR, nq = QT - qt0; // query tiles per head
  auto issue = [&](int i) {
    dkdv_load_query_tile<S, H, HD, KR, GRP>(i, b, kvh, qt0, nq, q, dout, lse, delta, qs, dos, ls,
                                            dls);
  };
  load_tile_async<HD, BR>(ks, k + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  load_tile_async<HD, BR>(vs, v + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  issue(0);
  cp_async_commit();
  float dkacc[1][DT][4], dvacc[1][DT][4];
  zero_acc(dkacc);
  zero_acc(dvacc);
  unsigned kf[HD / 16][4], vf[HD / 16][4]; // unused (and dropped) unless KVREG
  const int items = GRP * nq;
  for (int i = 0; i < items; ++i) {
    // Item i has landed and every warp is done with item i - 1, whose
    // buffers item i + 1 refills (while item i is used): one barrier per item.
    cp_async_wait<0>();
    __syncthreads();
    if (i + 1 < items) {
      issue(i + 1);
      cp_async_commit();
    }
    if constexpr (KVREG)
      if (i == 0)
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk) {
          load_a<HD>(kf[kk], ks, warp * 16, kk * 16);
          load_a<HD>(vf[kk], vs, warp * 16, kk * 16);
        }
    const int qt = qt0 + i % nq, buf = i & 1;
    const bf16 *q_s = qs + buf * TILE, *do_s = dos + buf * TILE;
    const float *l_s = ls + buf * KR, *d_s = dls + buf * KR;
    if (qt * KR + KR - 1 >= first) { // some query of the tile sees the warp's keys
      // P^T (16 keys x KR queries of this warp), zero where masked.
      float st[1][NT][4];
      if constexpr (KVREG)
        gemm_abt_r<HD, NT>(st[0], kf, q_s);
      else
        gemm_abt<HD, 1, NT>(st, ks, warp * 16, q_s);
      unsigned pp[1][KR / 16][4];
      probs_cols(pp[0], st[0], l_s, sl2, qt * KR < first + 15, key0, qt * KR, S);
      gemm_pb<HD, 1, KR>(dvacc, pp, do_s); // dV += P^T dO
      if constexpr (KVREG)                  // dP^T = V dO^T
        gemm_abt_r<HD, NT>(st[0], vf, do_s);
      else
        gemm_abt<HD, 1, NT>(st, vs, warp * 16, do_s);
      dscores_cols(pp[0], pp[0], st[0], d_s);
      gemm_pb<HD, 1, KR>(dkacc, pp, q_s); // dK += dS^T Q
    }
  }
  store_rows<HD>(dk + (size_t)b * S * kld + kvh * HD, kld, first, S, dkacc[0], scale, scale);
  store_rows<HD>(dv + (size_t)b * S * kld + kvh * HD, kld, first, S, dvacc[0], 1.0f, 1.0f);
}

// dK, dV in the FlashAttention-2 layout (HD % 32 == 0). Block = 16 W keys
// of (b, kv head); warp pair pr = w / 2 owns 32 of them, and warp w of the
// pair its half hs = w % 2. Per streamed query tile of KR: S^T, P^T, dP^T and
// dS^T for the pair's 32 keys x the half's KR/2 queries; P^T and dS^T go to
// shared memory, a pair barrier; then dV += P^T dO, dK += dS^T Q for the 32
// keys x the half's HD/2 columns over all KR queries, the own half's A
// fragments straight from registers. Every product has two m16 tiles per
// warp, so each ldmatrix'd B fragment feeds 4 mma (2 in attn_mma_dkdv, whose
// 16 keys x HD accumulators per warp leave no registers for a second tile).
template <int S, int H, int KV, int HD, int W, int KR = mma::kRows>
__device__ __forceinline__ void attn_mma_dkdv2(const bf16 *q, const bf16 *k, const bf16 *v,
                                               const bf16 *dout, const float *lse,
                                               const float *delta, bf16 *dk, bf16 *dv) {
  using namespace mma;
  constexpr int BR = 16 * W, QT = (S + KR - 1) / KR, GRP = H / KV, TILE = KR * HD;
  constexpr int HQ = KR / 2, HH = HD / 2; // a warp's queries (S^T, dP^T), columns (dK, dV)
  static_assert(HD % 32 == 0 && HD <= 128, "pairs split HD into halves of whole k-steps");
  static_assert(W % 2 == 0 && KR % 32 == 0 && BR % KR == 0, "whole pairs, k-steps, tiles");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *ks = reinterpret_cast<bf16 *>(attn_smem), *vs = ks + BR * HD, *qs = vs + BR * HD,
       *dos = qs + 2 * TILE, *pts = dos + 2 * TILE, *dss = pts + BR * KR;
  float *ls = reinterpret_cast<float *>(dss + BR * KR), *dls = ls + 2 * KR;
  const int kt = blockIdx.y; // the key block: long (early) ones first, over all heads
  const int bg = blockIdx.x, b = bg / KV, kvh = bg % KV;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int pr = warp >> 1, hs = warp & 1, kr0 = 32 * pr; // the pair's rows of ks, vs
  const size_t kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const int first = kt * BR + kr0; // the pair's first key
  const int qt0 = (kt * BR) / KR, nq = QT - qt0; // query tiles per head
  auto issue = [&](int i) {
    dkdv_load_query_tile<S, H, HD, KR, GRP>(i, b, kvh, qt0, nq, q, dout, lse, delta, qs, dos, ls,
                                            dls);
  };
  load_tile_async<HD, BR>(ks, k + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  load_tile_async<HD, BR>(vs, v + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  issue(0);
  cp_async_commit();
  float dkacc[2][HH / 8][4], dvacc[2][HH / 8][4];
  zero_acc(dkacc);
  zero_acc(dvacc);
  const int items = GRP * nq;
  for (int i = 0; i < items; ++i) {
    // Item i has landed and every warp is done with item i - 1 (its tiles,
    // P^T and dS^T), whose buffers item i + 1 refills: one block barrier per item.
    cp_async_wait<0>();
    __syncthreads();
    if (i + 1 < items) {
      issue(i + 1);
      cp_async_commit();
    }
    const int qt = qt0 + i % nq, buf = i & 1;
    const bf16 *q_s = qs + buf * TILE, *do_s = dos + buf * TILE;
    const float *l_s = ls + buf * KR, *d_s = dls + buf * KR;
    if (qt * KR + KR - 1 < first) // no query of the tile sees the pair's keys
      continue;
    const int q0 = qt * KR + hs * HQ; // the half's first query
    unsigned pt[2][HQ / 16][4], ds[2][HQ / 16][4]; // the half's P^T, dS^T (A fragments)
    if (q0 + HQ - 1 >= first) {
      float st[2][HQ / 8][4];
      gemm_abt<HD, 2, HQ / 8>(st, ks, kr0, q_s + hs * HQ * HD); // S^T = K Q^T
#pragma unroll
      for (int m = 0; m < 2; ++m)
        probs_cols(pt[m], st[m], l_s + hs * HQ, sl2, q0 < first + 31, first + 16 * m + g, q0, S);
      store_a<KR, 2, HQ>(pts, kr0, hs * HQ, pt);
      gemm_abt<HD, 2, HQ / 8>(st, vs, kr0, do_s + hs * HQ * HD); // dP^T = V dO^T
#pragma unroll
      for (int m = 0; m < 2; ++m)
        dscores_cols(ds[m], pt[m], st[m], d_s + hs * HQ);
    } else { // the half's queries all precede the pair's keys
      zero_frags(pt);
      zero_frags(ds);
      store_a<KR, 2, HQ>(pts, kr0, hs * HQ, pt);
    }
    store_a<KR, 2, HQ>(dss, kr0, hs * HQ, ds);
    asm volatile("bar.sync %0, 64;\n" ::"r"(1 + pr) : "memory"); // the partner's half is in
    // dV += P^T dO, dK += dS^T Q; the own half's A fragments from registers
    // (hs a template argument, so that the choice is made per k-step at compile time).
    if (hs == 0) {
      gemm_ab<HD, KR, 2, HH, HQ / 16, 0>(dvacc, pts, kr0, pt, do_s, 0);
      gemm_ab<HD, KR, 2, HH, HQ / 16, 0>(dkacc, dss, kr0, ds, q_s, 0);
    } else {
      gemm_ab<HD, KR, 2, HH, HQ / 16, 1>(dvacc, pts, kr0, pt, do_s, HH);
      gemm_ab<HD, KR, 2, HH, HQ / 16, 1>(dkacc, dss, kr0, ds, q_s, HH);
    }
  }
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const size_t off = (size_t)b * S * kld + kvh * HD + hs * HH;
    store_rows<HH>(dk + off, kld, first + 16 * m, S, dkacc[m], scale, scale);
    store_rows<HH>(dv + off, kld, first + 16 * m, S, dvacc[m], 1.0f, 1.0f);
  }
}

// dQ. Block = W warps of 16 MT queries of (b, h) (each warp's MT m16 tiles
// share every K and V fragment); key tiles of KR (K and V) stream through
// two buffers.
template <int S, int H, int KV, int HD, int W, int MT = 1, int KR = mma::kRows>
__device__ __forceinline__ void attn_mma_dq(const bf16 *q, const bf16 *k, const bf16 *v,
                                            const bf16 *dout, const float *lse,
                                            const float *delta, bf16 *dq) {
  using namespace mma;
  constexpr int NT = KR / 8, DT = HD / 8, WR = 16 * MT, BR = WR * W, LAST = (S - 1) / KR;
  constexpr int TILE = KR * HD;
  static_assert(HD % 16 == 0 && HD <= 128, "tensor-core attention needs HD % 16 == 0, <= 128");
  extern __shared__ __align__(16) unsigned char attn_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_smem), *dos = qs + BR * HD, *ks = dos + BR * HD,
       *vs = ks + 2 * TILE;
  const int qt = gridDim.y - 1 - blockIdx.y; // long (late) tiles first, over all heads
  const int bh = blockIdx.x, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR + warp * WR;
  const int nkt = min((qt * BR + BR - 1) / KR, LAST);
  load_tile_async<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  load_tile_async<HD, BR>(dos, dout + (size_t)b * S * qld + h * HD, qld, qt * BR, S);
  load_tile_async<HD, KR>(ks, kb, kld, 0, S);
  load_tile_async<HD, KR>(vs, vb, kld, 0, S);
  cp_async_commit();
  const size_t lb = (size_t)bh * S;
  float L[MT][2], D[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int row = first + 16 * m + g + 8 * j;
      L[m][j] = row < S ? lse[lb + row] * 1.4426950408889634f : 0.0f;
      D[m][j] = row < S ? delta[lb + row] : 0.0f;
    }
  float acc[MT][DT][4];
  zero_acc(acc);
  for (int kt = 0; kt <= nkt; ++kt) {
    next_kv_tile<HD, KR>(ks, vs, kb, vb, kld, kt, nkt, S);
    const bf16 *k_s = ks + (kt & 1) * TILE, *v_s = vs + (kt & 1) * TILE;
    if (kt * KR <= first + WR - 1) {
      // P (rounded to BF16 as in the dK/dV kernel, which keeps fewer
      // registers live across dP), then dS = P (dP - delta) in place.
      unsigned ds[MT][KR / 16][4];
      {
        float s[MT][NT][4];
        gemm_abt<HD, MT, NT>(s, qs, warp * WR, k_s); // S = Q K^T
#pragma unroll
        for (int m = 0; m < MT; ++m)
          probs_rows(ds[m], s[m], L[m], sl2, kt * KR + KR - 1 > first, kt * KR,
                     first + 16 * m + g);
      }
      float dp[MT][NT][4];
      gemm_abt<HD, MT, NT>(dp, dos, warp * WR, v_s); // dP = dO V^T
#pragma unroll
      for (int m = 0; m < MT; ++m)
        dscores_rows(ds[m], dp[m], D[m]);
      gemm_pb<HD, MT, KR>(acc, ds, k_s); // dQ += dS K
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m)
    store_rows<HD>(dq + (size_t)b * S * qld + h * HD, qld, first + 16 * m, S, acc[m], scale,
                   scale);
}

} // namespace halo
