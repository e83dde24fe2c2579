// ===- attention_wgmma.cuh - Causal GQA attention with Hopper's wgmma -----===//
//
// attention_mma.cuh's forward, dQ and dK/dV kernels with every product issued
// as warpgroup MMAs (wgmma.mma_async, sm_90a only). Same semantics, grids,
// block sizes and shared-memory sizes as attn_mma_fwd (4 warps, 2 m16 tiles
// each), attn_mma_dq (the same, KR-key tiles) and attn_mma_dkdv2 (8 warps),
// so a generated entry point calls these under __CUDA_ARCH_FEAT_SM90_ALL and
// the mma.sync kernels otherwise (head dims 64 and 128).
//
// A warpgroup (4 warps) computes 64-row products; warp w holds rows
// 16w..16w+15 in the mma.m16n8k16 C and A fragment layouts, so the online
// softmax and the accumulator-to-A packing of attention_mma.cuh carry over.
// Shared-memory operands use the 128-byte swizzle: a [R][HD] tile is HD/64
// column blocks of [R][64] (128-byte rows), the 16-byte chunk c of row r at
// c ^ (r % 8), every tile at a 1024-byte boundary. As a K-major operand (the
// reduction runs over HD: Q K^T, dO V^T, K Q^T, V dO^T) the descriptor steps
// 32 bytes per k16 inside a column block; as an MN-major one (the reduction
// runs over the rows: P V, dS K, P^T dO, dS^T Q) it steps 16 rows (2 KiB) per
// k16, with the column blocks R * 128 bytes apart (leading byte offset) and
// 8-row groups 1 KiB apart (stride byte offset). Each product is issued,
// committed and waited for before its result is used (attn_wg_bwd's dQ
// product only polls a flag in between; the hd-128 forward issues both
// halves' Q K^T at once and overlaps one half's softmax with the other's
// products);
// the rest of the overlap comes from the other warpgroup or block on the SM.
//
// attn_wg_bwd (the default backward here) computes dQ inside the dK/dV
// kernel and adds the key blocks' partials in a fixed order; attn_wg_dkdv +
// attn_wg_dq are the separate pair (AttentionParams::separateDq).
//
// ===----------------------------------------------------------------------===//

namespace halo {
namespace wg {

/// Element offset of (r, c) in a swizzled [R][HD] tile; c % 8 == 0.
template <int R>
__device__ __forceinline__ int swz(int r, int c) {
  return ((c >> 6) * R + r) * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3);
}

/// Rows [r0, r0 + ROWS) of a row-major BF16 matrix (leading dimension ld)
/// into a swizzled [ROWS][HD] tile with cp.async; rows >= limit are zero.
template <int HD, int ROWS>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, size_t ld, int r0,
                                          int limit) {
  constexpr int VPR = HD / 8;
  for (int idx = threadIdx.x; idx < ROWS * VPR; idx += blockDim.x) {
    const int r = idx / VPR, c = (idx % VPR) * 8;
    const bool valid = r0 + r < limit;
    const bf16 *from = src + (size_t)(valid ? r0 + r : 0) * ld + c;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                     mma::smem_addr(dst + swz<ROWS>(r, c))),
                 "l"(from), "r"(valid ? 16 : 0));
  }
}

/// Waits for this thread's cp.async groups and makes the shared-memory
/// writes visible to wgmma (the async proxy); the caller syncs the block.
__device__ __forceinline__ void landed() {
  mma::cp_async_wait<0>();
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/// Matrix descriptor, 128-byte swizzle.
__device__ __forceinline__ unsigned long long desc(const bf16 *p, unsigned lbo, unsigned sbo) {
  return (unsigned long long)((mma::smem_addr(p) & 0x3FFFF) >> 4) |
         (unsigned long long)((lbo >> 4) & 0x3FFF) << 16 |
         (unsigned long long)((sbo >> 4) & 0x3FFF) << 32 | 1ull << 62;
}
/// K-major operand: rows r0.. of a swizzled [R][HD] tile, k-step kk (columns 16kk..16kk+15).
template <int R>
__device__ __forceinline__ unsigned long long desc_k(const bf16 *tile, int r0, int kk) {
  return desc(tile + ((kk >> 2) * R + r0) * 64 + (kk & 3) * 16, 16, 1024);
}
/// MN-major operand: rows 16kk..16kk+15 (the reduction) x all columns of a
/// swizzled [R][HD] tile.
template <int R>
__device__ __forceinline__ unsigned long long desc_mn(const bf16 *tile, int kk) {
  return desc(tile + kk * 16 * 64, R * 128, 1024);
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wait_all() {
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
/// dst = src in registers of its own: a product's result is rewritten in
/// place by the softmax, and ptxas serializes every wgmma of a function
/// (C7515) when an accumulator is written while another group is pending.
template <int NT>
__device__ __forceinline__ void copy_out(float (&dst)[NT][4], const float (&src)[NT][4]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      asm volatile("mov.b32 %0, %1;" : "=f"(dst[n][e]) : "f"(src[n][e]));
}
/// Waits until at most N committed groups are pending.
template <int N>
__device__ __forceinline__ void wait_pending() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/// Keeps the compiler from moving accesses of d across the asm around it.
template <int NT>
__device__ __forceinline__ void hold(float (&d)[NT][4]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      asm volatile("" : "+f"(d[n][e])::"memory");
}

// m64nNk16, BF16 in, FP32 accumulate. mma_ss: d (+)= A B^T, A [64 x 16] and
// B [N x 16] K-major in shared memory (`accumulate` 0 overwrites d); with
// MN = 1 both are MN-major instead (d (+)= A B: A stored [16][64], B
// [16][N]). mma_rs: d += A B, A [64 x 16] in registers, B [16 x N] MN-major
// in shared memory.
template <int MN = 0>
__device__ __forceinline__ void mma_ss(float (&d)[4][4], unsigned long long adesc,
                                       unsigned long long bdesc, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
               "}, %16, %17, p, 1, 1, %19, %19;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                 "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                 "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3])
               : "l"(adesc), "l"(bdesc), "r"(accumulate), "n"(MN));
}

template <int MN = 0>
__device__ __forceinline__ void mma_ss(float (&d)[8][4], unsigned long long adesc,
                                       unsigned long long bdesc, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16,"
               "%17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
               "}, %32, %33, p, 1, 1, %35, %35;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                 "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                 "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                 "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                 "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                 "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                 "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "l"(adesc), "l"(bdesc), "r"(accumulate), "n"(MN));
}

__device__ __forceinline__ void mma_rs(float (&d)[8][4], const unsigned (&a)[4],
                                       unsigned long long bdesc) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16,"
               "%17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
               "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                 "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                 "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                 "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                 "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                 "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                 "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(bdesc), "r"(1));
}

__device__ __forceinline__ void mma_rs(float (&d)[16][4], const unsigned (&a)[4],
                                       unsigned long long bdesc) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16,"
               "%17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46,"
               "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61,"
               "%62, %63"
               "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
                 "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                 "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
                 "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                 "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                 "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                 "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
                 "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
                 "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
                 "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
                 "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
                 "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
                 "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
                 "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
                 "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
                 "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(bdesc), "r"(1));
}

/// Issues acc = A B^T without waiting: A = rows a0..a0+63 of a swizzled
/// [RA][HD] tile, B = rows b0..b0+N-1 of a swizzled [RB][HD] tile (acc: N/8
/// C tiles per warp).
template <int HD, int RA, int RB, int NT>
__device__ __forceinline__ void issue_abt(float (&acc)[NT][4], const bf16 *a, int a0,
                                          const bf16 *b, int b0) {
  hold(acc);
  fence();
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk)
    mma_ss(acc, desc_k<RA>(a, a0, kk), desc_k<RB>(b, b0, kk), kk > 0);
  commit();
}

/// acc = A B^T (issue_abt's operands), waited for.
template <int HD, int RA, int RB, int NT>
__device__ __forceinline__ void gemm_abt(float (&acc)[NT][4], const bf16 *a, int a0,
                                         const bf16 *b, int b0) {
  issue_abt<HD, RA, RB, NT>(acc, a, a0, b, b0);
  wait_all();
  hold(acc);
}

/// Issues acc += P B without waiting: P = packed A fragments (64 x KR), B =
/// a swizzled [KR][HD] tile; p must stay unchanged until the group completes.
template <int HD, int KR>
__device__ __forceinline__ void issue_pb(float (&acc)[HD / 8][4], const unsigned (&p)[KR / 16][4],
                                         const bf16 *b) {
  hold(acc);
  fence();
#pragma unroll
  for (int kk = 0; kk < KR / 16; ++kk)
    mma_rs(acc, p[kk], desc_mn<KR>(b, kk));
  commit();
}

/// acc += P B (issue_pb's operands), waited for.
template <int HD, int KR>
__device__ __forceinline__ void gemm_pb(float (&acc)[HD / 8][4], const unsigned (&p)[KR / 16][4],
                                        const bf16 *b) {
  issue_pb<HD, KR>(acc, p, b);
  wait_all();
  hold(acc);
}

/// Issues acc = A B without waiting (the caller waits with wait_all): A =
/// the 64 x R transpose of a swizzled [R][64] tile (MN-major), B = columns
/// c0 .. c0 + 8 NT of a swizzled [R][HD] tile (MN-major); c0 % 32 == 0.
template <int R, int NT>
__device__ __forceinline__ void issue_atb(float (&acc)[NT][4], const bf16 *at, const bf16 *b,
                                          int c0) {
  hold(acc);
  fence();
#pragma unroll
  for (int kk = 0; kk < R / 16; ++kk)
    mma_ss<1>(acc, desc(at + kk * 16 * 64, R * 128, 1024),
              desc(b + swz<R>(16 * kk, c0), R * 128, 1024), kk > 0);
  commit();
}

/// A warpgroup's A fragments (64 rows from r0 x 64 columns, pack_a's layout)
/// into a swizzled [R][64] tile; zeros when `live` is false.
template <int R>
__device__ __forceinline__ void store_frags(bf16 *tile, int r0, const unsigned (&a)[4][4],
                                            bool live) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int row = r0 + 16 * ((threadIdx.x >> 5) & 3) + g;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      *reinterpret_cast<unsigned *>(tile + swz<R>(row + 8 * (e & 1), 16 * kk + 8 * (e >> 1)) +
                                    2 * t) = live ? a[kk][e] : 0u;
}

__device__ __forceinline__ unsigned ld_acquire(const unsigned *p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void red_release(unsigned *p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
/// Named barrier of `n` threads (id 0 is __syncthreads').
__device__ __forceinline__ void bar_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void red_add4(float *p, const float (&v)[4]) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v[0]), "f"(v[1]),
               "f"(v[2]), "f"(v[3])
               : "memory");
}

/// A dK/dV item's inputs into buffer `buf`: the Q and dO rows of query tile
/// qt (KR rows) of head h, with their lse (log2 units) and delta.
template <int S, int H, int HD, int KR>
__device__ __forceinline__ void load_queries(bf16 *qs, bf16 *dos, float *ls, float *dls,
                                             const bf16 *q, const bf16 *dout, const float *lse,
                                             const float *delta, int b, int h, int qt, int buf) {
  constexpr size_t qld = (size_t)H * HD;
  const size_t l0 = ((size_t)b * H + h) * S;
  load_tile<HD, KR>(qs + buf * KR * HD, q + (size_t)b * S * qld + h * HD, qld, qt * KR, S);
  load_tile<HD, KR>(dos + buf * KR * HD, dout + (size_t)b * S * qld + h * HD, qld, qt * KR, S);
  for (int r = threadIdx.x; r < KR; r += blockDim.x) {
    const int row = qt * KR + r;
    ls[buf * KR + r] = row < S ? lse[l0 + row] * 1.4426950408889634f : 0.0f;
    dls[buf * KR + r] = row < S ? delta[l0 + row] : 0.0f;
  }
}

/// One dK/dV item of a warpgroup (64 keys from `first`, rows 64 grp of the
/// swizzled [128][HD] K and V tiles) against a KR-query tile from query q0:
/// dV += P^T dO and dK += dS^T Q; dS^T is left in ds (A fragments).
template <int S, int HD, int KR>
__device__ __forceinline__ void dkdv_item(float (&dkacc)[HD / 8][4], float (&dvacc)[HD / 8][4],
                                          unsigned (&ds)[KR / 16][4], const bf16 *ks,
                                          const bf16 *vs, const bf16 *q_s, const bf16 *do_s,
                                          const float *l_s, const float *d_s, float sl2,
                                          int grp, int first, int q0) {
  constexpr int NT = KR / 8;
  const int key = first + 16 * ((threadIdx.x >> 5) & 3) + ((threadIdx.x & 31) >> 2);
  // P^T (64 keys x KR queries), zero where masked.
  float st[NT][4];
  gemm_abt<HD, 128, KR, NT>(st, ks, 64 * grp, q_s, 0);
  mma::probs_cols(ds, st, l_s, sl2, q0 < first + 63, key, q0, S);
  gemm_pb<HD, KR>(dvacc, ds, do_s);                 // dV += P^T dO
  gemm_abt<HD, 128, KR, NT>(st, vs, 64 * grp, do_s, 0); // dP^T = V dO^T
  mma::dscores_cols(ds, ds, st, d_s);
  gemm_pb<HD, KR>(dkacc, ds, q_s); // dK += dS^T Q
}

} // namespace wg

// Forward (attn_mma_fwd's geometry: 128 threads, 128 queries of (b, h) per
// block, 64-key K and V tiles through two buffers). The one warpgroup runs
// the two 64-query halves, their products interleaved at head dim 128; Q
// stays in shared memory.
template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_wg_fwd(const bf16 *q, const bf16 *k, const bf16 *v,
                                            bf16 *out, float *lse) {
  using namespace mma;
  constexpr int KR = 64, NT = KR / 8, DT = HD / 8, BR = 128, LAST = (S - 1) / KR;
  // The halves' products interleaved (OVERLAP) or one half after the other:
  // at hd 64 the interleaved form's registers (196 vs 158) cost a block per
  // SM (0.066 vs 0.057 ms at b8 s1024 12 heads).
  constexpr bool OVERLAP = HD == 128;
  static_assert(HD == 64 || HD == 128, "wgmma attention needs head dim 64 or 128");
  extern __shared__ __align__(1024) unsigned char attn_wg_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_wg_smem), *ks = qs + BR * HD, *vs = ks + 2 * KR * HD;
  const int qt = gridDim.y - 1 - blockIdx.y; // long (late) tiles first, over all heads
  const int bh = blockIdx.x, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR; // the block's first query
  const int nkt = min((first + BR - 1) / KR, LAST);
  wg::load_tile<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, first, S);
  wg::load_tile<HD, KR>(ks, kb, kld, 0, S);
  wg::load_tile<HD, KR>(vs, vb, kld, 0, S);
  cp_async_commit();

  const float sl2 = 1.4426950408889634f / sqrtf((float)HD); // scale * log2(e)
  float o[2][DT][4];
  zero_acc(o);
  float mx[2][2], l[2][2];
#pragma unroll
  for (int m = 0; m < 2; ++m)
    mx[m][0] = mx[m][1] = neg_inf(), l[m][0] = l[m][1] = 0.0f;
  for (int kt = 0; kt <= nkt; ++kt) {
    wg::landed();
    __syncthreads(); // tile kt is here; every warp is done with tile kt - 1
    if (kt < nkt) {
      const int nb = (kt + 1) & 1;
      wg::load_tile<HD, KR>(ks + nb * KR * HD, kb, kld, (kt + 1) * KR, S);
      wg::load_tile<HD, KR>(vs + nb * KR * HD, vb, kld, (kt + 1) * KR, S);
      cp_async_commit();
    }
    const bf16 *k_s = ks + (kt & 1) * KR * HD, *v_s = vs + (kt & 1) * KR * HD;
    if constexpr (OVERLAP) {
      // Both halves' S = Q K^T are issued at once; the first half's softmax
      // runs under the second's product, the second's under the first's P V.
      // The second half always sees the tile; the first may not (kt * KR >
      // first + 63: no key of the tile is visible to it).
      const bool live0 = kt * KR <= first + 63;
      float s0[NT][4], s1[NT][4], t[NT][4];
      if (live0)
        wg::issue_abt<HD, BR, KR, NT>(s0, qs, 0, k_s, 0);
      wg::issue_abt<HD, BR, KR, NT>(s1, qs, 64, k_s, 0);
      unsigned p0[KR / 16][4], p1[KR / 16][4];
      if (live0) {
        wg::wait_pending<1>();
        wg::copy_out(t, s0);
        softmax_step(t, mx[0], l[0], o[0], sl2, kt * KR + KR - 1 > first, kt * KR,
                     first + 16 * warp + g);
        pack_a<KR>(p0, t);
        wg::issue_pb<HD, KR>(o[0], p0, v_s);
        wg::wait_pending<1>();
      } else {
        wg::wait_all();
      }
      wg::copy_out(t, s1);
      softmax_step(t, mx[1], l[1], o[1], sl2, kt * KR + KR - 1 > first + 64, kt * KR,
                   first + 64 + 16 * warp + g);
      pack_a<KR>(p1, t);
      wg::issue_pb<HD, KR>(o[1], p1, v_s);
      wg::wait_all();
      wg::hold(o[0]);
      wg::hold(o[1]);
    } else {
#pragma unroll
      for (int m = 0; m < 2; ++m) {
        const int r0 = first + 64 * m; // the half's first query
        if (kt * KR > r0 + 63)
          continue; // no key of the tile is visible to this half
        float s[NT][4];
        wg::gemm_abt<HD, BR, KR, NT>(s, qs, 64 * m, k_s, 0);
        softmax_step(s, mx[m], l[m], o[m], sl2, kt * KR + KR - 1 > r0, kt * KR,
                     r0 + 16 * warp + g);
        unsigned p[KR / 16][4];
        pack_a<KR>(p, s);
        wg::gemm_pb<HD, KR>(o[m], p, v_s);
      }
    }
  }
  const float scale = 1.0f / sqrtf((float)HD);
#pragma unroll
  for (int m = 0; m < 2; ++m)
    store_softmax_rows<HD>(out + (size_t)b * S * qld + h * HD, qld, lse + (size_t)bh * S,
                           first + 64 * m + 16 * warp, S, o[m], mx[m], l[m], scale);
}

// dQ (attn_mma_dq's geometry with 4 warps and 2 m16 tiles each: 128 threads,
// 128 queries of (b, h) per block, KR-key K and V tiles through two buffers).
template <int S, int H, int KV, int HD, int KR>
__device__ __forceinline__ void attn_wg_dq(const bf16 *q, const bf16 *k, const bf16 *v,
                                           const bf16 *dout, const float *lse,
                                           const float *delta, bf16 *dq) {
  using namespace mma;
  constexpr int NT = KR / 8, DT = HD / 8, BR = 128, LAST = (S - 1) / KR, TILE = KR * HD;
  static_assert(HD == 64 || HD == 128, "wgmma attention needs head dim 64 or 128");
  static_assert(KR == 32 || KR == 64, "key tiles of 32 or 64");
  extern __shared__ __align__(1024) unsigned char attn_wg_smem[];
  bf16 *qs = reinterpret_cast<bf16 *>(attn_wg_smem), *dos = qs + BR * HD, *ks = dos + BR * HD,
       *vs = ks + 2 * TILE;
  const int qt = gridDim.y - 1 - blockIdx.y; // long (late) tiles first, over all heads
  const int bh = blockIdx.x, b = bh / H, h = bh % H, kvh = h / (H / KV);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const size_t qld = (size_t)H * HD, kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const bf16 *kb = k + (size_t)b * S * kld + kvh * HD;
  const bf16 *vb = v + (size_t)b * S * kld + kvh * HD;
  const int first = qt * BR;
  const int nkt = min((first + BR - 1) / KR, LAST);
  wg::load_tile<HD, BR>(qs, q + (size_t)b * S * qld + h * HD, qld, first, S);
  wg::load_tile<HD, BR>(dos, dout + (size_t)b * S * qld + h * HD, qld, first, S);
  wg::load_tile<HD, KR>(ks, kb, kld, 0, S);
  wg::load_tile<HD, KR>(vs, vb, kld, 0, S);
  cp_async_commit();
  const size_t lb = (size_t)bh * S;
  float L[2][2], D[2][2];
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int row = first + 64 * m + 16 * warp + g + 8 * j;
      L[m][j] = row < S ? lse[lb + row] * 1.4426950408889634f : 0.0f;
      D[m][j] = row < S ? delta[lb + row] : 0.0f;
    }
  float acc[2][DT][4];
  zero_acc(acc);
  for (int kt = 0; kt <= nkt; ++kt) {
    wg::landed();
    __syncthreads();
    if (kt < nkt) {
      const int nb = (kt + 1) & 1;
      wg::load_tile<HD, KR>(ks + nb * TILE, kb, kld, (kt + 1) * KR, S);
      wg::load_tile<HD, KR>(vs + nb * TILE, vb, kld, (kt + 1) * KR, S);
      cp_async_commit();
    }
    const bf16 *k_s = ks + (kt & 1) * TILE, *v_s = vs + (kt & 1) * TILE;
#pragma unroll
    for (int m = 0; m < 2; ++m) {
      const int r0 = first + 64 * m;
      if (kt * KR > r0 + 63)
        continue;
      unsigned ds[KR / 16][4];
      {
        float s[NT][4];
        wg::gemm_abt<HD, BR, KR, NT>(s, qs, 64 * m, k_s, 0); // S = Q K^T
        probs_rows(ds, s, L[m], sl2, kt * KR + KR - 1 > r0, kt * KR, r0 + 16 * warp + g);
      }
      float dp[NT][4];
      wg::gemm_abt<HD, BR, KR, NT>(dp, dos, 64 * m, v_s, 0); // dP = dO V^T
      dscores_rows(ds, dp, D[m]);
      wg::gemm_pb<HD, KR>(acc[m], ds, k_s); // dQ += dS K
    }
  }
#pragma unroll
  for (int m = 0; m < 2; ++m)
    store_rows<HD>(dq + (size_t)b * S * qld + h * HD, qld, first + 64 * m + 16 * warp, S, acc[m],
                   scale, scale);
}

// dK, dV (attn_mma_dkdv2's geometry: 256 threads, 128 keys of (b, kv head)
// per block). Warpgroup i owns keys 64i..64i+63 with their dK and dV
// accumulators; for each query head of the group, 64-query tiles of Q and dO
// (with their lse and delta) stream through two buffers.
template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_wg_dkdv(const bf16 *q, const bf16 *k, const bf16 *v,
                                             const bf16 *dout, const float *lse,
                                             const float *delta, bf16 *dk, bf16 *dv) {
  using namespace mma;
  constexpr int KR = 64, DT = HD / 8, BR = 128, QT = (S + KR - 1) / KR;
  constexpr int GRP = H / KV, TILE = KR * HD;
  static_assert(HD == 64 || HD == 128, "wgmma attention needs head dim 64 or 128");
  extern __shared__ __align__(1024) unsigned char attn_wg_smem[];
  bf16 *ks = reinterpret_cast<bf16 *>(attn_wg_smem), *vs = ks + BR * HD, *qs = vs + BR * HD,
       *dos = qs + 2 * TILE;
  float *ls = reinterpret_cast<float *>(dos + 2 * TILE), *dls = ls + 2 * KR;
  const int kt = blockIdx.y; // the key block: long (early) ones first, over all heads
  const int bg = blockIdx.x, b = bg / KV, kvh = bg % KV;
  const int grp = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3;
  const size_t kld = (size_t)KV * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const int first = kt * BR + 64 * grp; // the warpgroup's first key
  const int qt0 = (kt * BR) / KR, nq = QT - qt0; // query tiles per head
  auto issue = [&](int i) {
    wg::load_queries<S, H, HD, KR>(qs, dos, ls, dls, q, dout, lse, delta, b,
                                   kvh * GRP + i / nq, qt0 + i % nq, i & 1);
  };
  wg::load_tile<HD, BR>(ks, k + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  wg::load_tile<HD, BR>(vs, v + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
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
    // Item i has landed and every warp is done with item i - 1, whose
    // buffers item i + 1 refills (while item i is used): one barrier per item.
    wg::landed();
    __syncthreads();
    if (i + 1 < items) {
      issue(i + 1);
      cp_async_commit();
    }
    const int qt = qt0 + i % nq, buf = i & 1;
    const bf16 *q_s = qs + buf * TILE, *do_s = dos + buf * TILE;
    const float *l_s = ls + buf * KR, *d_s = dls + buf * KR;
    if (qt * KR + KR - 1 < first)
      continue; // no query of the tile sees the warpgroup's keys
    unsigned ds[KR / 16][4];
    wg::dkdv_item<S, HD, KR>(dkacc, dvacc, ds, ks, vs, q_s, do_s, l_s, d_s, sl2, grp, first,
                             qt * KR);
  }
  store_rows<HD>(dk + (size_t)b * S * kld + kvh * HD, kld, first + 16 * warp, S, dkacc, scale,
                 scale);
  store_rows<HD>(dv + (size_t)b * S * kld + kvh * HD, kld, first + 16 * warp, S, dvacc, 1.0f,
                 1.0f);
}

// dK, dV and dQ in one kernel: attn_wg_dkdv's blocks and products, plus
// dQ = dS K for the block's 128 keys. Each item's dS^T (both warpgroups'
// halves) goes through a swizzled [128][64] shared tile; warpgroup i then
// computes head-dim columns HD/2 i .. of the item's 64 queries (an MN-major
// product from shared memory) and adds them to an FP32 accumulator, dqacc
// (per batch, head, 64-query tile and warpgroup 64 x HD/2 floats in
// fragment order), in a fixed order, so the result is deterministic without
// a second pass over the scores:
//   - the key blocks that see query tile qt are kt = 0 .. last(qt); kt = 0
//     stores its partial, each later one waits until flags[b, h, qt] == kt
//     (one thread polls while the product runs) and adds its partial
//     (red.global.add.v4.f32), and the last one adds the sum to its partial
//     in registers and writes dQ in BF16 (and resets the flag: the flags
//     are zero between launches, workspace);
//   - after an item, thread 0 raises the flag (red.release) behind the next
//     item's barrier, which all threads' adds precede;
//   - items run query tiles in descending order, heads inner, so block kt
//     meets its tiles in block kt - 1's order and trails it by about one
//     item (ascending order would make every block wait for block 0's whole
//     run). Blocks start in blockIdx order (kt = blockIdx.y, all heads of
//     kt before kt + 1), so the block a block waits for has started.
template <int S, int H, int KV, int HD>
__device__ __forceinline__ void attn_wg_bwd(const bf16 *q, const bf16 *k, const bf16 *v,
                                            const bf16 *dout, const float *lse,
                                            const float *delta, bf16 *dk, bf16 *dv, bf16 *dq,
                                            float *dqacc, unsigned *flags) {
  using namespace mma;
  constexpr int KR = 64, DT = HD / 8, BR = 128, QT = (S + KR - 1) / KR;
  constexpr int GRP = H / KV, TILE = KR * HD, DQN = HD / 2;
  static_assert(HD == 64 || HD == 128, "wgmma attention needs head dim 64 or 128");
  extern __shared__ __align__(1024) unsigned char attn_wg_smem[];
  bf16 *ks = reinterpret_cast<bf16 *>(attn_wg_smem), *vs = ks + BR * HD, *qs = vs + BR * HD,
       *dos = qs + 2 * TILE;
  float *ls = reinterpret_cast<float *>(dos + 2 * TILE), *dls = ls + 2 * KR;
  bf16 *dst = reinterpret_cast<bf16 *>(dls + 2 * KR); // [BR][64] dS^T, 1 KiB aligned
  const int kt = blockIdx.y; // the key block: long (early) ones first, over all heads
  const int bg = blockIdx.x, b = bg / KV, kvh = bg % KV;
  const int grp = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3;
  const size_t kld = (size_t)KV * HD, qld = (size_t)H * HD;
  const float scale = 1.0f / sqrtf((float)HD), sl2 = scale * 1.4426950408889634f;
  const int first = kt * BR + 64 * grp; // the warpgroup's first key
  const int nq = QT - (kt * BR) / KR;   // query tiles per head
  auto tile_of = [&](int i, int &h, int &qt) {
    qt = QT - 1 - i / GRP;
    h = kvh * GRP + i % GRP;
  };
  auto issue = [&](int i) {
    int h, qt;
    tile_of(i, h, qt);
    wg::load_queries<S, H, HD, KR>(qs, dos, ls, dls, q, dout, lse, delta, b, h, qt, i & 1);
  };
  wg::load_tile<HD, BR>(ks, k + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  wg::load_tile<HD, BR>(vs, v + (size_t)b * S * kld + kvh * HD, kld, kt * BR, S);
  issue(0);
  cp_async_commit();
  float dkacc[DT][4], dvacc[DT][4];
#pragma unroll
  for (int n = 0; n < DT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      dkacc[n][e] = dvacc[n][e] = 0.0f;
  const int items = GRP * nq;
  // The flag to raise (or, after the last key block, reset) once every
  // thread's part of the item's partial is in: behind the next barrier.
  unsigned *raise = nullptr;
  bool reset = false;
  auto raise_flag = [&] {
    if (threadIdx.x == 0 && raise) {
      if (reset)
        *raise = 0u;
      else
        wg::red_release(raise, 1u);
    }
    raise = nullptr;
  };
  for (int i = 0; i < items; ++i) {
    wg::landed();
    __syncthreads();
    raise_flag();
    if (i + 1 < items) {
      issue(i + 1);
      cp_async_commit();
    }
    int h, qt;
    tile_of(i, h, qt);
    const int buf = i & 1;
    const bf16 *q_s = qs + buf * TILE, *do_s = dos + buf * TILE;
    const float *l_s = ls + buf * KR, *d_s = dls + buf * KR;
    // The warpgroup's keys are visible to some query of the tile.
    const bool live = qt * KR + KR - 1 >= first;
    unsigned ds[KR / 16][4];
    if (live)
      wg::dkdv_item<S, HD, KR>(dkacc, dvacc, ds, ks, vs, q_s, do_s, l_s, d_s, sl2, grp, first,
                               qt * KR);
    wg::store_frags<BR>(dst, 64 * grp, ds, live);
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    wg::bar_sync(1, 256); // both halves of dS^T are in place
    // dQ partial: the tile's 64 queries x columns DQN grp .. over the block's
    // keys; the earlier key blocks' flag is polled while the product runs.
    float dqp[DQN / 8][4];
    wg::issue_atb<BR, DQN / 8>(dqp, dst, ks, DQN * grp);
    const int last = min(qt * KR + KR - 1, S - 1) / BR;
    unsigned *flag = flags + ((size_t)b * H + h) * QT + qt;
    if (kt > 0 && (threadIdx.x & 127) == 0)
      while (wg::ld_acquire(flag) < (unsigned)kt) {
      }
    wg::wait_all();
    wg::hold(dqp);
    if (kt > 0)
      wg::bar_sync(2 + grp, 128); // the earlier key blocks' partials are in
    // The accumulator of (b, h, qt, grp) is 64 x DQN floats in fragment
    // order: tile n of thread x at [n][x][4], so each access is a float4 and
    // a warp's covers 512 contiguous bytes.
    float *acc = dqacc + ((((size_t)b * H + h) * QT + qt) * 2 + grp) * (64 * DQN) +
                 (threadIdx.x & 127) * 4;
    if (kt == last) {
      if (kt > 0)
#pragma unroll
        for (int n = 0; n < DQN / 8; ++n) {
          const float4 a = __ldcg(reinterpret_cast<const float4 *>(acc + n * 512));
          dqp[n][0] += a.x;
          dqp[n][1] += a.y;
          dqp[n][2] += a.z;
          dqp[n][3] += a.w;
        }
      store_rows<DQN>(dq + (size_t)b * S * qld + h * HD + DQN * grp, qld, qt * KR + 16 * warp, S,
                      dqp, scale, scale);
    } else {
#pragma unroll
      for (int n = 0; n < DQN / 8; ++n) {
        if (kt == 0)
          __stcg(reinterpret_cast<float4 *>(acc + n * 512),
                 make_float4(dqp[n][0], dqp[n][1], dqp[n][2], dqp[n][3]));
        else
          wg::red_add4(acc + n * 512, dqp[n]);
      }
    }
    raise = kt == last && kt == 0 ? nullptr : flag;
    reset = kt == last;
  }
  __syncthreads();
  raise_flag();
  store_rows<HD>(dk + (size_t)b * S * kld + kvh * HD, kld, first + 16 * warp, S, dkacc, scale,
                 scale);
  store_rows<HD>(dv + (size_t)b * S * kld + kvh * HD, kld, first + 16 * warp, S, dvacc, 1.0f,
                 1.0f);
}

} // namespace halo
