// ===- hadamard_rows.cuh - Right Hadamard (+ absmax + quantize) per row ---===//
//
// Each row x (length N = K * P, P = 2^k) becomes x H (or x H^T) with
// H = (H_K kron H_P) / sqrt(N), index i = a * P + b. One block owns a row at
// a time and never writes the rotated BF16/FP32 row to memory unless asked.
//
// Exactness: the FP32 operations are those of numerics::hadamardRows, in the
// same order: Walsh-Hadamard stages h = 1, 2, 4, ... (a+b, a-b), then for K > 1
// out[c] = ((0 +- in[0]) +- in[1]) ... +- in[K-1], then one multiply by the
// FP32 constant 1/sqrt(N). Which thread does a butterfly does not change its
// result, so the codes are bit-identical to the CPU oracle's.
//
// Data movement, with VEC = 8 elements per 16-byte load:
//   layout A: thread t owns chunks c = g * THREADS + t (g < G) of 8 elements.
//     Stages h = 1..4 run in registers, h = 8..128 by warp shuffles (the
//     lane is bits 3..7 of the element index).
//   one exchange through shared memory (FP32, N floats), then
//   layout B: "column" m in [0, MB), MB = min(P, 256), holds the K * Q
//     elements a * P + q * MB + m (Q = P / MB); stages h >= 256 and the K mix
//     run in registers (K * Q <= 64), or through a second shared buffer.
// The sign table is a generated struct HK with
//   __device__ static bool neg(int a, int c)  // input a feeds output c negated
//   __device__ static unsigned word(int a, int w) // neg(a, 32w..32w+31) bits
// (already transposed by the generator when x H^T is wanted).
//
// Entry points (called by generated extern "C" wrappers, one row per block
// unless noted; dynamic shared memory = Cfg::smem_bytes(...)):
//   hadq_absmax      : per-tensor phase 1, persistent (rows b, b + grid, ...),
//                      absmax -> ws once per block, last block -> scale
//   hadq_apply       : per-tensor phase 2, codes with the device scale; a
//                      grid-stride loop over rows (persistent when the grid
//                      is smaller than rows; transposed output: R rows per
//                      block, codes [N, rows])
//   hadq_rowwise     : one pass, one scale per row (row_scale[rows])
//   had_store        : plain rotation, BF16 or FP32 output
//   quant_tiles_t    : plain per-tensor phase 2 into transposed codes (and,
//                      optionally, the [rows, cols] codes too), 64-row tiles
//   transpose_codes  : [rows, cols] codes -> [cols, rows] (transpose_tiles)
// ROTATE = false turns all of them into plain (un-rotated) quantization.
// RowWide (below) is the shuffle-free layout for K = 1, N = 2^10..2^12, and
// FAST selects the grouped K mix (kmix_fast); both keep this interface.
//
// ===----------------------------------------------------------------------===//

namespace halo {

template <class HK, int K, int P, int THREADS, bool ROTATE, bool FAST = false>
struct RowHadamard {
  static constexpr int N = K * P;
  static constexpr int VEC = 8;
  static constexpr int NCHUNK = N / VEC;
  static constexpr int G = (NCHUNK + THREADS - 1) / THREADS;
  static constexpr bool FULL = (NCHUNK % THREADS) == 0;
  static constexpr int MB = P < 32 * VEC ? P : 32 * VEC;
  static constexpr int Q = P / MB;
  static constexpr int COLS = MB;
  static constexpr bool REG = K * Q <= 64;
  static constexpr int CPT = (COLS + THREADS - 1) / THREADS;
  static constexpr int KB = (K + 31) / 32; // 32-output blocks (smem path)
  /// Floats of the exchange buffers.
  static constexpr int BUF_FLOATS = ROTATE ? (REG ? N : 2 * N) : 0;
  static constexpr int kThreads = THREADS;
  static constexpr bool ROTATE_ = ROTATE;
  /// Grouped K mix (see kmix_fast); only with K a multiple of 4.
  static constexpr bool FAST_ = FAST && K % 4 == 0 && K >= 8;

  static_assert(THREADS % 32 == 0, "THREADS must be a multiple of 32");
  static_assert(N % VEC == 0, "row length must be a multiple of 8");
  static_assert(!ROTATE || P >= VEC, "the power-of-two part must be >= 8");
  static_assert(!ROTATE || (P & (P - 1)) == 0, "P must be a power of two");
  static_assert(!ROTATE || Q <= 64, "P / 256 must be <= 64");

  /// Exact-order absmax through the grouped mix plus a rounding bound (see
  /// absmax_b); the running maximum is kept unscaled.
  static constexpr bool BOUNDED = ROTATE && REG && !FAST_ && K >= 8 && K % 4 == 0;
  static constexpr bool AMAX_UNSCALED = BOUNDED;
  static constexpr bool AMAX_SEED = BOUNDED; // share the running max (hadq_absmax)
  static constexpr int NRAW = 1; // no register prefetch (see fetch)

  float v[G][VEC]; // layout A
  size_t pending_;

  /// The persistent loops' prefetch hook. RowHadamard only records the row:
  /// a prefetched row costs G * 4 registers more, and at K = 28 that spilled
  /// and ran slower (measured); convert() then loads it.
  template <class LOAD>
  __device__ __forceinline__ void fetch(const LOAD &, size_t row,
                                        typename LOAD::Raw (&)[NRAW]) {
    pending_ = row;
  }
  template <class LOAD>
  __device__ __forceinline__ void convert(const LOAD &ld,
                                          const typename LOAD::Raw (&)[NRAW]) {
    load(ld, pending_);
  }

  template <class LOAD>
  __device__ __forceinline__ void load(const LOAD &ld, size_t row) {
    const int t = threadIdx.x;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int c = g * THREADS + t;
      if (FULL || g < G - 1 || c < NCHUNK)
        ld.load8(row * (size_t)N + (size_t)c * VEC, v[g]);
      else
#pragma unroll
        for (int e = 0; e < VEC; ++e)
          v[g][e] = 0.0f;
    }
  }

  /// Stages h = 1 .. min(P, 256) / 2 in layout A.
  __device__ __forceinline__ void rotate_a() {
    if (!ROTATE)
      return;
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int h = 1; h < VEC; h <<= 1)
#pragma unroll
        for (int e = 0; e < VEC; ++e)
          if (!(e & h)) {
            float a = v[g][e], b = v[g][e + h];
            v[g][e] = a + b;
            v[g][e + h] = a - b;
          }
    }
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int s = 0; s < 5; ++s) {
      if ((VEC << s) < P) {
        // lo: v + other; hi: other - v. fma with +-1 rounds once, like
        // the add (bit-identical), and saves the select.
        const float sign = ((lane >> s) & 1) ? -1.0f : 1.0f;
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
          for (int e = 0; e < VEC; ++e) {
            float other = __shfl_xor_sync(0xffffffffu, v[g][e], 1 << s);
            v[g][e] = __fmaf_rn(v[g][e], sign, other);
          }
      }
    }
  }

  /// Layout A -> shared FP32 row (conflict-free 16-byte stores).
  __device__ __forceinline__ void store_a(float *ibuf) const {
    const int t = threadIdx.x;
    const int first = (t >> 2) & 1;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int c = g * THREADS + t;
      if (FULL || g < G - 1 || c < NCHUNK) {
        float4 *dst = reinterpret_cast<float4 *>(ibuf + (size_t)c * VEC);
        float4 lo = make_float4(v[g][0], v[g][1], v[g][2], v[g][3]);
        float4 hi = make_float4(v[g][4], v[g][5], v[g][6], v[g][7]);
        if (first) {
          dst[1] = hi;
          dst[0] = lo;
        } else {
          dst[0] = lo;
          dst[1] = hi;
        }
      }
    }
  }

  /// Layout B: calls f(value, index) for every element this thread owns
  /// (the final scaled value). `scale` is 1/sqrt(N). Needs a barrier between
  /// store_a and this call; the smem path synchronises internally, so all
  /// threads must call it.
  template <class F>
  __device__ __forceinline__ void rotate_b(float *ibuf, float scale,
                                           F &&f) const {
    const int t = threadIdx.x;
    if constexpr (!ROTATE) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const int c = g * THREADS + t;
        if (FULL || g < G - 1 || c < NCHUNK)
#pragma unroll
          for (int e = 0; e < VEC; ++e)
            f(v[g][e], c * VEC + e);
      }
    } else if constexpr (REG) {
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const int m = t + j * THREADS;
        if (COLS % THREADS == 0 || m < COLS) {
          float w[K][Q];
#pragma unroll
          for (int a = 0; a < K; ++a)
#pragma unroll
            for (int q = 0; q < Q; ++q)
              w[a][q] = ibuf[a * P + q * MB + m];
#pragma unroll
          for (int h = 1; h < Q; h <<= 1)
#pragma unroll
            for (int a = 0; a < K; ++a)
#pragma unroll
              for (int q = 0; q < Q; ++q)
                if (!(q & h)) {
                  float x = w[a][q], y = w[a][q + h];
                  w[a][q] = x + y;
                  w[a][q + h] = x - y;
                }
          if constexpr (K == 1) {
#pragma unroll
            for (int q = 0; q < Q; ++q)
              f(w[0][q] * scale, q * MB + m);
          } else if constexpr (FAST_) {
#pragma unroll
            for (int q = 0; q < Q; ++q)
              kmix_fast(w, q, [&](float x, int c) {
                f(x * scale, c * P + q * MB + m);
              });
          } else {
#pragma unroll
            for (int q = 0; q < Q; ++q)
#pragma unroll
              for (int c = 0; c < K; ++c) {
                float acc = 0.0f;
#pragma unroll
                for (int a = 0; a < K; ++a)
                  acc = HK::neg(a, c) ? acc - w[a][q] : acc + w[a][q];
                f(acc * scale, c * P + q * MB + m);
              }
          }
        }
      }
    } else {
      // Large K * Q: stages over q in place, then the K mix in blocks of 32
      // outputs into obuf, then visit obuf.
      float *obuf = ibuf + N;
      if constexpr (Q > 1) {
        for (int item = t; item < K * COLS; item += THREADS) {
          const int a = item / COLS, m = item % COLS;
          float w[Q];
#pragma unroll
          for (int q = 0; q < Q; ++q)
            w[q] = ibuf[a * P + q * MB + m];
#pragma unroll
          for (int h = 1; h < Q; h <<= 1)
#pragma unroll
            for (int q = 0; q < Q; ++q)
              if (!(q & h)) {
                float x = w[q], y = w[q + h];
                w[q] = x + y;
                w[q + h] = x - y;
              }
#pragma unroll
          for (int q = 0; q < Q; ++q)
            ibuf[a * P + q * MB + m] = w[q];
        }
        __syncthreads();
      }
      for (int item = t; item < KB * Q * COLS; item += THREADS) {
        const int cb = item / (Q * COLS);
        const int qm = item % (Q * COLS);
        const int q = qm / COLS, m = qm % COLS;
        float acc[32];
#pragma unroll
        for (int i = 0; i < 32; ++i)
          acc[i] = 0.0f;
        for (int a = 0; a < K; ++a) {
          const unsigned x = __float_as_uint(ibuf[a * P + q * MB + m]);
          const unsigned bits = HK::word(a, cb);
#pragma unroll
          for (int i = 0; i < 32; ++i)
            acc[i] += __uint_as_float(x ^ (((bits >> i) & 1u) << 31));
        }
#pragma unroll
        for (int i = 0; i < 32; ++i) {
          const int c = cb * 32 + i;
          if (c < K)
            obuf[c * P + q * MB + m] = acc[i] * scale;
        }
      }
      __syncthreads();
      for (int i = t; i < N; i += THREADS)
        f(obuf[i], i);
    }
  }

  /// The grouped K mix (FAST): inputs in groups of four, g = 4j .. 4j+3;
  /// per group the 8 sign patterns with a positive first term,
  ///   C_j(s1,s2,s3) = ((x0 +- x1) +- x2) +- x3  (14 additions),
  /// then out[c] = ((0 +- C_0) +- C_1) ... +- C_{K/4-1}, C_j's pattern and
  /// sign taken from row c of the sign table. About K/4 + 3.5 additions per
  /// output instead of K; a different (equally accurate) rounding order than
  /// numerics::hadamardRows, so codes may differ by one step, rarely.
  template <class F>
  static __device__ __forceinline__ void kmix_fast(const float (&w)[K][Q], int q,
                                                   F &&f) {
    float cmb[K / 4][8];
#pragma unroll
    for (int j = 0; j < K / 4; ++j) {
      const float x0 = w[4 * j][q], x1 = w[4 * j + 1][q];
      const float x2 = w[4 * j + 2][q], x3 = w[4 * j + 3][q];
      const float t[2] = {x0 + x1, x0 - x1};
#pragma unroll
      for (int b1 = 0; b1 < 2; ++b1) {
        const float u0 = t[b1] + x2, u1 = t[b1] - x2;
        cmb[j][b1 * 4 + 0] = u0 + x3;
        cmb[j][b1 * 4 + 1] = u0 - x3;
        cmb[j][b1 * 4 + 2] = u1 + x3;
        cmb[j][b1 * 4 + 3] = u1 - x3;
      }
    }
#pragma unroll
    for (int c = 0; c < K; ++c) {
      float acc = 0.0f;
#pragma unroll
      for (int j = 0; j < K / 4; ++j) {
        const bool s0 = HK::neg(4 * j, c);
        const int idx = ((HK::neg(4 * j + 1, c) != s0) << 2) |
                        ((HK::neg(4 * j + 2, c) != s0) << 1) |
                        (HK::neg(4 * j + 3, c) != s0);
        acc = s0 ? acc - cmb[j][idx] : acc + cmb[j][idx];
      }
      f(acc, c);
    }
  }

  /// Absmax of this thread's layout-B elements folded into m. BOUNDED: m is
  /// the maximum of the unscaled exact-order sums |acc| (the caller multiplies
  /// by 1/sqrt(N) once at the end: RN is monotone, so that equals the maximum
  /// of the scaled values). Per column and q the grouped mix (kmix_fast, about
  /// K/4 + 3.5 additions per output) gives each output within
  /// 2 gamma_{K-1} S of the exact-order sum, S = sum_a |w_a|; the bound used,
  /// S K 2^-21, is four times that. Only when the largest grouped |output|
  /// plus the bound reaches m are the K exact-order sums formed (K additions
  /// each, rare once m is seeded). NaN or infinite inputs always take the
  /// exact branch. Otherwise as rotate_b (all threads must call it).
  __device__ __forceinline__ void absmax_b(float *ibuf, float scale,
                                           float &m) const {
    if constexpr (!BOUNDED) {
      rotate_b(ibuf, scale, [&](float x, int) { m = fmaxf(m, fabsf(x)); });
    } else {
      const int t = threadIdx.x;
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const int mc = t + j * THREADS;
        if (COLS % THREADS == 0 || mc < COLS) {
          float w[K][Q];
#pragma unroll
          for (int a = 0; a < K; ++a)
#pragma unroll
            for (int q = 0; q < Q; ++q)
              w[a][q] = ibuf[a * P + q * MB + mc];
#pragma unroll
          for (int h = 1; h < Q; h <<= 1)
#pragma unroll
            for (int a = 0; a < K; ++a)
#pragma unroll
              for (int q = 0; q < Q; ++q)
                if (!(q & h)) {
                  float x = w[a][q], y = w[a][q + h];
                  w[a][q] = x + y;
                  w[a][q + h] = x - y;
                }
#pragma unroll
          for (int q = 0; q < Q; ++q) {
            float sum = 0.0f;
#pragma unroll
            for (int a = 0; a < K; ++a)
              sum += fabsf(w[a][q]);
            const float bnd = sum * ((float)K * 0x1p-21f);
            // kmix_fast's operations, group by group into K accumulators
            // (fewer live registers than kmix_fast's 2K group terms).
            float acc[K];
#pragma unroll
            for (int c = 0; c < K; ++c)
              acc[c] = 0.0f;
#pragma unroll
            for (int jg = 0; jg < K / 4; ++jg) {
              const float x0 = w[4 * jg][q], x1 = w[4 * jg + 1][q];
              const float x2 = w[4 * jg + 2][q], x3 = w[4 * jg + 3][q];
              const float t2[2] = {x0 + x1, x0 - x1};
              float cmb[8];
#pragma unroll
              for (int b1 = 0; b1 < 2; ++b1) {
                const float u0 = t2[b1] + x2, u1 = t2[b1] - x2;
                cmb[b1 * 4 + 0] = u0 + x3;
                cmb[b1 * 4 + 1] = u0 - x3;
                cmb[b1 * 4 + 2] = u1 + x3;
                cmb[b1 * 4 + 3] = u1 - x3;
              }
#pragma unroll
              for (int c = 0; c < K; ++c) {
                const bool s0 = HK::neg(4 * jg, c);
                const int idx = ((HK::neg(4 * jg + 1, c) != s0) << 2) |
                                ((HK::neg(4 * jg + 2, c) != s0) << 1) |
                                (HK::neg(4 * jg + 3, c) != s0);
                acc[c] = s0 ? acc[c] - cmb[idx] : acc[c] + cmb[idx];
              }
            }
            float fmx = 0.0f;
#pragma unroll
            for (int c = 0; c < K; ++c)
              fmx = fmaxf(fmx, fabsf(acc[c]));
            if (!(fmx + bnd < m)) {
#pragma unroll
              for (int c = 0; c < K; ++c) {
                float ex = 0.0f;
#pragma unroll
                for (int a = 0; a < K; ++a)
                  ex = HK::neg(a, c) ? ex - w[a][q] : ex + w[a][q];
                m = fmaxf(m, fabsf(ex));
              }
            }
          }
        }
      }
    }
  }

  /// Where rotate_b's visitor may park the value of element i (thread-owned).
  static __device__ __forceinline__ int slot(int i) { return i; }

  /// Calls f(index) for the indices rotate_b gave this thread (same order).
  template <class F> __device__ __forceinline__ void indices(F &&f) const {
    const int t = threadIdx.x;
    if constexpr (!ROTATE) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const int c = g * THREADS + t;
        if (FULL || g < G - 1 || c < NCHUNK)
#pragma unroll
          for (int e = 0; e < VEC; ++e)
            f(g * VEC + e, c * VEC + e);
      }
    } else if constexpr (REG) {
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const int m = t + j * THREADS;
        if (COLS % THREADS == 0 || m < COLS)
#pragma unroll
          for (int q = 0; q < Q; ++q)
#pragma unroll
            for (int c = 0; c < K; ++c)
              f(0, c * P + q * MB + m);
      }
    } else {
      for (int i = t; i < N; i += THREADS)
        f(0, i);
    }
  }

  /// The whole rotation of one row; f(value, index) per owned element.
  template <class LOAD, class F>
  __device__ __forceinline__ void row(const LOAD &ld, size_t r, float *ibuf,
                                      float scale, F &&f) {
    load(ld, r);
    rotate_a();
    if constexpr (ROTATE) {
      __syncthreads(); // ibuf free (previous row's readers are done)
      store_a(ibuf);
      __syncthreads();
    }
    rotate_b(ibuf, scale, f);
  }
};

// ---------------------------------------------------------------------------
// RowWide: K = 1 rows of N = 2^k (10 <= k <= 12) with no shuffles. Thread t
// of THREADS = N / L owns L = 2^ceil(k/2) contiguous elements (stages
// h < L in registers), one swizzled exchange, then CPT = L / THREADS columns
// m (elements m + L j, j < N / L) with the remaining stages in registers.
// Same interface as RowHadamard; one row per block.

template <int P, int THREADS> struct RowWide {
  static constexpr int N = P;
  static constexpr int K = 1;
  static constexpr int LOGN = ilog2(P);
  static constexpr int L = 1 << ((LOGN + 1) / 2);
  static constexpr int J = N / L;
  static constexpr int CPT = L / THREADS;
  static constexpr int BUF_FLOATS = N;
  static constexpr int kThreads = THREADS;
  static constexpr bool ROTATE_ = true;
  static constexpr bool REG = true;
  static constexpr int VEC = 8;
  static_assert(THREADS * L == N && THREADS % 32 == 0 && L >= 32,
                "RowWide needs N = 2^k, 10 <= k <= 12");
  static constexpr bool AMAX_UNSCALED = true; // see absmax_b
  static constexpr bool AMAX_SEED = false;
  static constexpr int NRAW = L / 8;
  float v[1][L];

  template <class LOAD>
  __device__ __forceinline__ void load(const LOAD &ld, size_t row) {
#pragma unroll
    for (int c = 0; c < L / 8; ++c)
      ld.load8(row * (size_t)N + (size_t)threadIdx.x * L + 8 * c, v[0] + 8 * c);
  }
  template <class LOAD>
  __device__ __forceinline__ void fetch(const LOAD &ld, size_t row,
                                        typename LOAD::Raw (&raw)[NRAW]) {
#pragma unroll
    for (int c = 0; c < L / 8; ++c)
      ld.fetch8(row * (size_t)N + (size_t)threadIdx.x * L + 8 * c, raw[c]);
  }
  template <class LOAD>
  __device__ __forceinline__ void convert(const LOAD &ld,
                                          const typename LOAD::Raw (&raw)[NRAW]) {
#pragma unroll
    for (int c = 0; c < L / 8; ++c)
      ld.convert8(raw[c], v[0] + 8 * c);
  }

  __device__ __forceinline__ void rotate_a() {
#pragma unroll
    for (int h = 1; h < L; h <<= 1)
#pragma unroll
      for (int e = 0; e < L; ++e)
        if (!(e & h)) {
          float a = v[0][e], b = v[0][e + h];
          v[0][e] = a + b;
          v[0][e + h] = a - b;
        }
  }

  /// Physical float index of element i = t * L + e (16-byte groups XORed
  /// with t mod 8: conflict-free float4 stores and column loads).
  static __device__ __forceinline__ int phys(int t, int e) {
    return t * L + ((((e >> 2) ^ (t & 7))) << 2) + (e & 3);
  }
  static __device__ __forceinline__ int slot(int i) { return phys(i / L, i % L); }

  __device__ __forceinline__ void store_a(float *ibuf) const {
    const int t = threadIdx.x;
#pragma unroll
    for (int f = 0; f < L / 4; ++f)
      *reinterpret_cast<float4 *>(ibuf + phys(t, 4 * f)) =
          make_float4(v[0][4 * f], v[0][4 * f + 1], v[0][4 * f + 2], v[0][4 * f + 3]);
  }

  template <class F>
  __device__ __forceinline__ void rotate_b(float *ibuf, float scale, F &&f) const {
#pragma unroll
    for (int cc = 0; cc < CPT; ++cc) {
      const int m = threadIdx.x + cc * THREADS;
      float w[J];
#pragma unroll
      for (int j = 0; j < J; ++j)
        w[j] = ibuf[phys(j, m)];
#pragma unroll
      for (int h = 1; h < J; h <<= 1)
#pragma unroll
        for (int j = 0; j < J; ++j)
          if (!(j & h)) {
            float a = w[j], b = w[j + h];
            w[j] = a + b;
            w[j + h] = a - b;
          }
#pragma unroll
      for (int j = 0; j < J; ++j)
        f(w[j] * scale, m + L * j);
    }
  }

  /// Folds max |x H| of this thread's columns into m, unscaled (the caller
  /// multiplies by 1/sqrt(N) once: RN is monotone). The last stage is not
  /// formed: max(|RN(a + b)|, |RN(a - b)|) = RN(|a| + |b|) exactly, since one
  /// of a + b, a - b has the magnitude |a| + |b| and RN is monotone and odd.
  __device__ __forceinline__ void absmax_b(float *ibuf, float,
                                           float &m) const {
#pragma unroll
    for (int cc = 0; cc < CPT; ++cc) {
      const int mc = threadIdx.x + cc * THREADS;
      float w[J];
#pragma unroll
      for (int j = 0; j < J; ++j)
        w[j] = ibuf[phys(j, mc)];
#pragma unroll
      for (int h = 1; h < J / 2; h <<= 1)
#pragma unroll
        for (int j = 0; j < J; ++j)
          if (!(j & h)) {
            float a = w[j], b = w[j + h];
            w[j] = a + b;
            w[j + h] = a - b;
          }
#pragma unroll
      for (int j = 0; j < J / 2; ++j)
        m = fmaxf(m, fabsf(w[j]) + fabsf(w[j + J / 2]));
    }
  }

  template <class F> __device__ __forceinline__ void indices(F &&f) const {
#pragma unroll
    for (int cc = 0; cc < CPT; ++cc)
#pragma unroll
      for (int j = 0; j < J; ++j)
        f(0, threadIdx.x + cc * THREADS + L * j);
  }

  template <class LOAD, class F>
  __device__ __forceinline__ void row(const LOAD &ld, size_t r, float *ibuf,
                                      float scale, F &&f) {
    load(ld, r);
    rotate_a();
    __syncthreads();
    store_a(ibuf);
    __syncthreads();
    rotate_b(ibuf, scale, f);
  }
};

// ---------------------------------------------------------------------------
// Loaders: load8(offset, v) fills 8 floats from element `offset`.

// fetch8(offset, raw) only issues the 16-byte loads; convert8(raw, v) turns
// them into the 8 floats load8 gives (software prefetch of the next row).

template <int IN> struct LoadPlain {
  const typename Elem<IN>::type *x;
  struct Raw {
    uint4 w[sizeof(typename Elem<IN>::type) / 2];
  };
  __device__ __forceinline__ void load8(size_t off, float *v) const {
    Elem<IN>::load8(x + off, v);
  }
  __device__ __forceinline__ void fetch8(size_t off, Raw &r) const {
    const uint4 *p = reinterpret_cast<const uint4 *>(x + off);
#pragma unroll
    for (int i = 0; i < (int)(sizeof(r.w) / sizeof(uint4)); ++i)
      r.w[i] = __ldg(p + i);
  }
  __device__ __forceinline__ void convert8(const Raw &r, float *v) const {
    if constexpr (IN == kBF16) {
      const unsigned w[4] = {r.w[0].x, r.w[0].y, r.w[0].z, r.w[0].w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        v[2 * i] = __uint_as_float(w[i] << 16);
        v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
      }
    } else {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        v[4 * i] = __uint_as_float(r.w[i].x);
        v[4 * i + 1] = __uint_as_float(r.w[i].y);
        v[4 * i + 2] = __uint_as_float(r.w[i].z);
        v[4 * i + 3] = __uint_as_float(r.w[i].w);
      }
    }
  }
};

/// silu(g) * u rounded to BF16 (the SwiGLU product the unfused graph
/// stores), from BF16 gate and up projections.
struct LoadSwiGLU {
  const bf16 *g;
  const bf16 *u;
  // No prefetch: the two raw rows would cost 8 registers per 8 elements
  // (spills at 128 registers); fetch8 records the offset, convert8 loads.
  struct Raw {
    size_t off;
  };
  static __device__ __forceinline__ void combine(const float *gv,
                                                 const float *uv, float *v) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float s = 1.0f / (1.0f + expf(-gv[i]));
      v[i] = __bfloat162float(__float2bfloat16_rn(gv[i] * s * uv[i]));
    }
  }
  __device__ __forceinline__ void load8(size_t off, float *v) const {
    float gv[8], uv[8];
    Elem<kBF16>::load8(g + off, gv);
    Elem<kBF16>::load8(u + off, uv);
    combine(gv, uv, v);
  }
  __device__ __forceinline__ void fetch8(size_t off, Raw &r) const {
    r.off = off;
  }
  __device__ __forceinline__ void convert8(const Raw &r, float *v) const {
    load8(r.off, v);
  }
};

// ---------------------------------------------------------------------------
// Block-wide copy of a staged shared buffer to global memory.

__device__ __forceinline__ void copy_out(const unsigned char *s,
                                         unsigned char *g, int bytes,
                                         int threads) {
  if ((bytes & 15) == 0) {
    for (int i = threadIdx.x; i < bytes / 16; i += threads)
      reinterpret_cast<uint4 *>(g)[i] =
          reinterpret_cast<const uint4 *>(s)[i];
  } else if ((bytes & 7) == 0) {
    for (int i = threadIdx.x; i < bytes / 8; i += threads)
      reinterpret_cast<uint2 *>(g)[i] =
          reinterpret_cast<const uint2 *>(s)[i];
  } else {
    for (int i = threadIdx.x; i < bytes; i += threads)
      g[i] = s[i];
  }
}

/// R bytes per column i of a [N][R] staging buffer to out[i * ld + r0 ..].
template <int R>
__device__ __forceinline__ void copy_out_transposed(const unsigned char *s,
                                                    unsigned char *out,
                                                    int n, size_t ld,
                                                    size_t r0, int threads) {
  for (int i = threadIdx.x; i < n; i += threads) {
    unsigned char *dst = out + (size_t)i * ld + r0;
    const unsigned char *src = s + (size_t)i * R;
    if constexpr (R == 16)
      *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
    else if constexpr (R == 8)
      *reinterpret_cast<uint2 *>(dst) = *reinterpret_cast<const uint2 *>(src);
    else if constexpr (R == 4)
      *reinterpret_cast<unsigned *>(dst) =
          *reinterpret_cast<const unsigned *>(src);
    else if constexpr (R == 2)
      *reinterpret_cast<unsigned short *>(dst) =
          *reinterpret_cast<const unsigned short *>(src);
    else
#pragma unroll
      for (int r = 0; r < R; ++r)
        dst[r] = src[r];
  }
}

// ---------------------------------------------------------------------------
// Entry points. Dynamic shared memory: [BUF_FLOATS floats][staging bytes,
// rounded up to 16][32 floats for reductions]; see smem_bytes().

template <class RH>
__host__ __device__ constexpr size_t smem_bytes(size_t staging) {
  return RH::BUF_FLOATS * 4 + ((staging + 15) & ~size_t(15)) + 32 * 4;
}

template <class RH>
__device__ __forceinline__ float *reduction_area(unsigned char *smem,
                                                 size_t staging) {
  return reinterpret_cast<float *>(smem + RH::BUF_FLOATS * 4 +
                                   ((staging + 15) & ~size_t(15)));
}

/// Per-tensor phase 1, persistent: block b reads rows b, b + grid, ... (the
/// generator sizes the grid to the resident blocks), prefetching the next row
/// while it rotates the current one, and folds one absmax per block into ws;
/// the last block writes *scale_out (and *absmax_out if non-null).
/// RH::AMAX_UNSCALED: absmax_b keeps the maximum before the multiply by
/// 1/sqrt(N), applied once here. RH::AMAX_SEED (the bounded exact-order mix):
/// the running maximum is seeded with the block's maximum after the first row
/// and shared within the warp after every row, so the exact branch of
/// absmax_b is rarely taken.
template <class RH, int FMT, class LOAD>
__device__ __forceinline__ void hadq_absmax(const LOAD &ld, int rows,
                                            float scale_h, unsigned *ws,
                                            float *scale_out,
                                            float *absmax_out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float *ibuf = reinterpret_cast<float *>(smem);
  float *red = reduction_area<RH>(smem, 0);
  RH rh;
  typename LOAD::Raw raw[RH::NRAW];
  float amax = 0.0f;
  int r = blockIdx.x;
  if (r < rows)
    rh.fetch(ld, (size_t)r, raw);
  bool first = true;
#pragma unroll 1
  for (; r < rows; r += gridDim.x) {
    rh.convert(ld, raw);
    if (r + (int)gridDim.x < rows)
      rh.fetch(ld, (size_t)(r + gridDim.x), raw);
    rh.rotate_a();
    if constexpr (RH::ROTATE_) {
      __syncthreads(); // ibuf free (previous row's readers are done)
      rh.store_a(ibuf);
      __syncthreads();
    }
    rh.absmax_b(ibuf, scale_h, amax);
    if constexpr (RH::AMAX_SEED) {
      if (first)
        amax = block_max<RH::kThreads>(amax, red);
      else
        amax = warp_max(amax);
      first = false;
    }
  }
  amax = block_max<RH::kThreads>(amax, red);
  if constexpr (RH::AMAX_UNSCALED)
    amax = amax * scale_h;
  if (threadIdx.x == 0)
    publish_absmax<FMT>(amax, ws, scale_out, absmax_out, gridDim.x);
}

/// Per-tensor phase 2: codes with the scale phase 1 left on the device.
/// !TRANS (R = 1): persistent, block b quantizes rows b, b + grid, ...
/// (REVERSE: counted from the end, so the rows phase 1 read last are still
/// in L2), prefetching the next row. (Evict-first hints on its loads and
/// code stores measured slower: 91 vs 86 us at 8192 x 4096.) TRANS: block b quantizes rows
/// [R b, R b + R) and writes them as the [N, rows] transpose (R bytes per
/// column and block).
template <class RH, int FMT, class LOAD, bool TRANS, int R, bool REVERSE>
__device__ __forceinline__ void hadq_apply(const LOAD &ld, int rows,
                                           float scale_h,
                                           const float *scale_in,
                                           unsigned char *out) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int N = RH::N;
  float *ibuf = reinterpret_cast<float *>(smem);
  unsigned char *stage = smem + RH::BUF_FLOATS * 4;
  const float s = *scale_in;
  const float rcp = __frcp_rn(s);
  RH rh;
  if constexpr (!TRANS) {
    static_assert(R == 1, "R rows per block only with TRANS");
    typename LOAD::Raw raw[RH::NRAW];
    int k = blockIdx.x;
    auto rowOf = [&](int kk) { return REVERSE ? rows - 1 - kk : kk; };
    if (k < rows)
      rh.fetch(ld, (size_t)rowOf(k), raw);
#pragma unroll 1
    for (; k < rows; k += gridDim.x) {
      const int r = rowOf(k);
      rh.convert(ld, raw);
      if (k + (int)gridDim.x < rows)
        rh.fetch(ld, (size_t)rowOf(k + gridDim.x), raw);
      rh.rotate_a();
      __syncthreads(); // ibuf and stage free (previous row's copy_out done)
      if constexpr (RH::ROTATE_) {
        rh.store_a(ibuf);
        __syncthreads();
      }
      rh.rotate_b(ibuf, scale_h, [&](float x, int i) {
        stage[i] = quantize_rcp<FMT>(x, s, rcp);
      });
      __syncthreads();
      copy_out(stage, out + (size_t)r * N, N, RH::kThreads);
    }
  } else {
    const int grp = REVERSE ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
    const size_t r0 = (size_t)grp * R;
#pragma unroll 1
    for (int r = 0; r < R; ++r)
      rh.row(ld, r0 + r, ibuf, scale_h, [&](float x, int i) {
        stage[i * R + r] = quantize_rcp<FMT>(x, s, rcp);
      });
    __syncthreads();
    copy_out_transposed<R>(stage, out, N, (size_t)rows, r0, RH::kThreads);
  }
}

/// One pass with a scale per row: row_scale[row] = scale_from_absmax(row's
/// absmax). Rows [R b, R b + R) per block; TRANS as in hadq_apply.
template <class RH, int FMT, class LOAD, bool TRANS, int R>
__device__ __forceinline__ void hadq_rowwise(const LOAD &ld, int rows,
                                             float scale_h, float *row_scale,
                                             unsigned char *out) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int N = RH::N;
  float *ibuf = reinterpret_cast<float *>(smem);
  unsigned char *stage = smem + RH::BUF_FLOATS * 4;
  float *red = reduction_area<RH>(smem, (size_t)N * R);
  const size_t r0 = (size_t)blockIdx.x * R;
  RH rh;
#pragma unroll 1
  for (int r = 0; r < R; ++r) {
    float amax = 0.0f;
    rh.row(ld, r0 + r, ibuf, scale_h, [&](float x, int i) {
      amax = fmaxf(amax, fabsf(x));
      if constexpr (RH::ROTATE_ && RH::REG)
        ibuf[RH::slot(i)] = x; // this thread's own element: no other reader
    });
    const float s = scale_from_absmax<FMT>(block_max<RH::kThreads>(amax, red));
    const float rcp = __frcp_rn(s);
    if (threadIdx.x == 0)
      row_scale[r0 + r] = s;
    rh.indices([&](int slot, int i) {
      float x;
      if constexpr (!RH::ROTATE_)
        x = rh.v[slot / RH::VEC][slot % RH::VEC];
      else if constexpr (RH::REG)
        x = ibuf[RH::slot(i)];
      else
        x = ibuf[RH::N + i];
      stage[TRANS ? i * R + r : i] = quantize_rcp<FMT>(x, s, rcp);
    });
    if (!TRANS) {
      __syncthreads();
      copy_out(stage, out + (r0 + r) * N, N, RH::kThreads);
      __syncthreads();
    }
  }
  if (TRANS) {
    __syncthreads();
    copy_out_transposed<R>(stage, out, N, (size_t)rows, r0, RH::kThreads);
  }
}

/// Plain rotation: y[row] = x[row] H (or H^T), stored as OUT (BF16 / F32).
template <class RH, class LOAD, int OUT>
__device__ __forceinline__ void had_store(const LOAD &ld, float scale_h,
                                          typename Elem<OUT>::type *y) {
  extern __shared__ __align__(16) unsigned char smem[];
  typedef typename Elem<OUT>::type out_t;
  constexpr int N = RH::N;
  float *ibuf = reinterpret_cast<float *>(smem);
  out_t *stage = reinterpret_cast<out_t *>(smem + RH::BUF_FLOATS * 4);
  const size_t r = blockIdx.x;
  RH rh;
  rh.row(ld, r, ibuf, scale_h,
         [&](float x, int i) { Elem<OUT>::store(stage + i, x); });
  __syncthreads();
  copy_out(reinterpret_cast<const unsigned char *>(stage),
           reinterpret_cast<unsigned char *>(y + r * N), N * (int)sizeof(out_t),
           RH::kThreads);
}

/// The 8-bit transpose behind the transposed outputs: a [rows, cols] byte
/// matrix, read through codes8(off) (the 8 codes at element offset off of a
/// row, as two words), into out_t [cols, rows]; rows a multiple of 64, cols
/// of TC. Block (bx, by) owns rows 64 by .. + 63 (REVERSE: by counted from
/// the end) and columns TC bx .. + TC - 1; 2 TC threads. Thread (rg, cg)
/// reads rows 4 rg .. 4 rg + 3 at columns 8 cg .. 8 cg + 7 (a warp covers
/// 64-byte row pieces), transposes each 4 x 4 byte block in registers (prmt)
/// and puts the column words into a padded tile [TC][17] words; word rg of
/// column c sits at rg ^ (4 ((c >> 5) & 1)), which makes those stores
/// conflict-free. Each warp then writes 64-byte pieces of two output rows
/// (32-bit stores).
template <int TC, bool REVERSE, class CODES8>
__device__ __forceinline__ void transpose_tiles(size_t rows, size_t cols,
                                                const CODES8 &codes8,
                                                unsigned char *out_t) {
  static_assert(TC == 64 || TC == 128, "tiles of 64 or 128 columns");
  constexpr int THREADS = 2 * TC;
  __shared__ unsigned tile[TC][17];
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  const int cg = (lane & 7) + 8 * (warp >> 2), rg = (lane >> 3) + 4 * (warp & 3);
  const size_t r0 = (size_t)(REVERSE ? gridDim.y - 1 - blockIdx.y : blockIdx.y) * 64;
  const size_t c0 = (size_t)blockIdx.x * TC;
  uint2 w[4]; // row i of the thread's 4 x 8 codes
#pragma unroll
  for (int i = 0; i < 4; ++i)
    w[i] = codes8((r0 + 4 * rg + i) * cols + c0 + 8 * cg);
  const int swz = 4 * ((cg >> 2) & 1);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const unsigned w0 = h ? w[0].y : w[0].x, w1 = h ? w[1].y : w[1].x;
    const unsigned w2 = h ? w[2].y : w[2].x, w3 = h ? w[3].y : w[3].x;
    // Column j of the 4 x 4 block: byte j of each row word.
    const unsigned lo01 = __byte_perm(w0, w1, 0x5140), hi01 = __byte_perm(w0, w1, 0x7362);
    const unsigned lo23 = __byte_perm(w2, w3, 0x5140), hi23 = __byte_perm(w2, w3, 0x7362);
    unsigned *col = &tile[8 * cg + 4 * h][rg ^ swz];
    col[0 * 17] = __byte_perm(lo01, lo23, 0x5410);
    col[1 * 17] = __byte_perm(lo01, lo23, 0x7632);
    col[2 * 17] = __byte_perm(hi01, hi23, 0x5410);
    col[3 * 17] = __byte_perm(hi01, hi23, 0x7632);
  }
  __syncthreads();
  const int word = t & 15;
#pragma unroll
  for (int orow = t >> 4; orow < TC; orow += THREADS / 16)
    *reinterpret_cast<unsigned *>(out_t + (c0 + orow) * rows + r0 + 4 * word) =
        tile[orow][word ^ (4 * ((orow >> 5) & 1))];
}

/// Plain per-tensor phase 2 straight into transposed codes out_t [cols, rows]
/// and, BOTH, also out [rows, cols]: one pass over transpose_tiles (16-byte
/// loads, the arithmetic of hadq_apply), no scratch. Row tiles from the end:
/// phase 1 read those last, so they may still be in L2.
template <int FMT, int TC, bool BOTH, class LOAD>
__device__ __forceinline__ void quant_tiles_t(const LOAD &ld, size_t rows,
                                              size_t cols,
                                              const float *scale_in,
                                              unsigned char *out_t,
                                              unsigned char *out) {
  const float s = *scale_in;
  const float rcp = __frcp_rn(s);
  transpose_tiles<TC, true>(
      rows, cols,
      [&](size_t off) {
        float v[8];
        ld.load8(off, v);
        unsigned w[2] = {0, 0};
#pragma unroll
        for (int e = 0; e < 8; ++e)
          w[e / 4] |= (unsigned)quantize_rcp<FMT>(v[e], s, rcp) << (8 * (e % 4));
        if constexpr (BOTH)
          *reinterpret_cast<uint2 *>(out + off) = make_uint2(w[0], w[1]);
        return make_uint2(w[0], w[1]);
      },
      out_t);
}

/// Byte transpose of codes [rows, cols] -> [cols, rows] (transpose_tiles;
/// 8-byte loads). REVERSE as there: start where the writer of `in` ended.
template <int TC, bool REVERSE>
__device__ __forceinline__ void transpose_codes(const unsigned char *in,
                                                unsigned char *out,
                                                size_t rows, size_t cols) {
  transpose_tiles<TC, REVERSE>(
      rows, cols,
      [&](size_t off) { return __ldg(reinterpret_cast<const uint2 *>(in + off)); },
      out);
}

} // namespace halo
