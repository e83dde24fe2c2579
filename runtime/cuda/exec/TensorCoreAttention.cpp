//===- TensorCoreAttention.cpp - Attention on tensor cores (cuBLASLt) -----===//
//
// See TensorCoreAttention.h for the scheme and the column-major mapping.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/exec/TensorCoreAttention.h"

#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/blas/LtCommon.h"

#include <cublasLt.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace halo::cuda {
namespace {

constexpr int kThreads = 256;
/// Query chunks per unit when S allows it (S % kChunks == 0 and S / kChunks a
/// multiple of kChunkAlign); otherwise one chunk (the full S x S scores).
constexpr int kChunks = 4;
constexpr int64_t kChunkAlign = 64;

constexpr const char *kSource = R"(
#include <cuda_bf16.h>
#define NT 256
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ void combine(float& m, float& l, float m2, float l2) {
  float M = fmaxf(m, m2);
  if (M == NEG_INF) return;
  l = l * expf(m - M) + l2 * expf(m2 - M);
  m = M;
}

__device__ __forceinline__ float blockSum(float x, float* red) {
  for (int o = 16; o > 0; o >>= 1)
    x += __shfl_xor_sync(0xffffffffu, x, o);
  if ((threadIdx.x & 31) == 0)
    red[threadIdx.x >> 5] = x;
  __syncthreads();
  float s = 0.0f;
  for (int i = 0; i < NT / 32; ++i)
    s += red[i];
  return s;
}

// One block per (query row s = row0 + blockIdx.x, kv head g) of one query
// chunk of unit (b, j): scores row s_[(g*S + s)*S + c], c < n (already
// scaled; n = the chunk's key count > s) -> P[.., c < n] (BF16, zero for
// s < c < n), lse. Entries c >= n are neither read nor written.
extern "C" __global__ void __launch_bounds__(NT)
halo_tca_softmax(const float* s_, __nv_bfloat16* p, float* lse, int S, int H, int grp, int j,
                 int b, int row0, int n) {
  const int row = row0 + blockIdx.x, g = blockIdx.y, h = g * grp + j;
  const size_t base = ((size_t)g * S + row) * S;
  const float* x = s_ + base;
  float m = NEG_INF, l = 0.0f;
  for (int c = threadIdx.x; c <= row; c += NT) {
    float v = x[c];
    if (v > m) {
      l = l * expf(m - v) + 1.0f;
      m = v;
    } else {
      l += expf(v - m);
    }
  }
  for (int o = 16; o > 0; o >>= 1)
    combine(m, l, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, l, o));
  __shared__ float sm[NT / 32], sl[NT / 32];
  if ((threadIdx.x & 31) == 0) {
    sm[threadIdx.x >> 5] = m;
    sl[threadIdx.x >> 5] = l;
  }
  __syncthreads();
  m = sm[0];
  l = sl[0];
  for (int i = 1; i < NT / 32; ++i)
    combine(m, l, sm[i], sl[i]);
  const float L = m + logf(l);
  if (threadIdx.x == 0)
    lse[((size_t)b * H + h) * S + row] = L;
  __nv_bfloat16* out = p + base;
  for (int c = threadIdx.x; c < n; c += NT)
    out[c] = __float2bfloat16(c <= row ? expf(x[c] - L) : 0.0f);
}

// Backward, one block per (row s = row0 + blockIdx.x, kv head g) of one
// query chunk of unit (b, j): P from the recomputed scaled scores and lse;
// delta = dout . out of the row; dS = P (dP - delta). Writes P and dS in
// BF16 for keys c < n (zero for s < c < n); c >= n untouched.
extern "C" __global__ void __launch_bounds__(NT)
halo_tca_dsoftmax(const float* s_, const float* dp, const __nv_bfloat16* out,
                  const __nv_bfloat16* dout, const float* lse, __nv_bfloat16* p,
                  __nv_bfloat16* ds, int S, int H, int grp, int j, int b, int hd, int row0,
                  int n) {
  const int row = row0 + blockIdx.x, g = blockIdx.y, h = g * grp + j;
  const size_t base = ((size_t)g * S + row) * S;
  const size_t off = ((size_t)b * S + row) * (size_t)H * hd + (size_t)h * hd;
  __shared__ float red[NT / 32];
  float acc = 0.0f;
  for (int d = threadIdx.x; d < hd; d += NT)
    acc += __bfloat162float(dout[off + d]) * __bfloat162float(out[off + d]);
  const float delta = blockSum(acc, red);
  const float L = lse[((size_t)b * H + h) * S + row];
  for (int c = threadIdx.x; c < n; c += NT) {
    float pv = 0.0f, dsv = 0.0f;
    if (c <= row) {
      pv = expf(s_[base + c] - L);
      dsv = pv * (dp[base + c] - delta);
    }
    p[base + c] = __float2bfloat16(pv);
    ds[base + c] = __float2bfloat16(dsv);
  }
}

extern "C" __global__ void halo_tca_to_bf16(const float* x, __nv_bfloat16* y,
                                            unsigned long long n) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
       i += (unsigned long long)gridDim.x * blockDim.x)
    y[i] = __float2bfloat16(x[i]);
}
)";

/// One strided-batched cuBLASLt matmul: descriptor, layouts, algorithm.
using Matmul = LtMatmul;

struct LayoutSpec {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch;
  int64_t stride; // elements
};

Status makeLayout(cublasLtMatrixLayout_t *layout, const LayoutSpec &s) {
  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(layout, s.type, s.rows, s.cols, s.ld));
  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                               &s.batch, sizeof(s.batch)));
  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(
      *layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s.stride, sizeof(s.stride)));
  return Status::success();
}

} // namespace

struct TensorCoreAttention::Impl {
  const CudaContext *context = nullptr;
  const CudaDriver *driver = nullptr;
  AttentionShape shape;
  int64_t grp = 1;
  float scale = 1;
  uint32_t align = 256; ///< Byte alignment assumed for q/k/v/out/... pointers.
  cublasLtHandle_t handle = nullptr;
  std::vector<DeviceBuffer> buffers;
  size_t bytes = 0;
  CUdeviceptr workspace = 0, s32 = 0, p16 = 0, dp32 = 0, ds16 = 0, dk32 = 0, dv32 = 0;
  size_t workspaceBytes = size_t(32) << 20;
  std::optional<CudaModule> module;
  CUfunction softmax = nullptr, dsoftmax = nullptr, toBf16 = nullptr;
  /// Query chunks: chunk c holds queries [c*L, (c+1)*L), L = S / chunks, and
  /// needs keys [0, n_c), n_c = (c+1)*L. One plan per chunk and GEMM kind:
  /// scores: C[n_c, L] (FP32, ld S) = A^T B, A = K-like [hd x n_c], B = Q-like [hd x L].
  /// pv:     C[hd, L] (BF16, Q-like) = A B, A = V-like [hd x n_c], B = P-like [n_c x L].
  /// grad:   C[hd, n_c] (FP32, K-like) = A B^T, A = Q-like [hd x L], B = P-like.
  int chunks = 1;
  int64_t chunkRows = 0; ///< L
  Matmul scores[kChunks], pv[kChunks], grad[kChunks];
  bool backwardReady = false;

  ~Impl() {
    if (handle)
      cublasLtDestroy(handle);
  }

  StatusOr<CUdeviceptr> allocate(size_t n) {
    StatusOr<DeviceBuffer> buffer = DeviceBuffer::allocate(*driver, std::max<size_t>(n, 256));
    if (!buffer.ok())
      return Status::error(fmt::format("tensor-core attention: allocating {:.1f} MiB: {}",
                                       double(n) / (1 << 20), buffer.status().message()));
    CUdeviceptr p = buffer->pointer();
    bytes += buffer->size();
    buffers.push_back(std::move(*buffer));
    return p;
  }

  /// Keys needed by query chunk c.
  int64_t keys(int c) const { return (c + 1) * chunkRows; }
  /// `cols` query rows of the Q-like buffers (q, out, dout, dq).
  LayoutSpec qLike(cudaDataType_t t, int64_t cols) const {
    const AttentionShape &d = shape;
    return {t, uint64_t(d.hd), uint64_t(cols), d.H * d.hd, int32_t(d.KV), grp * d.hd};
  }
  /// The first `cols` key rows of the K-like buffers (k, v, dk32, dv32).
  LayoutSpec kvLike(cudaDataType_t t, int64_t cols) const {
    const AttentionShape &d = shape;
    return {t, uint64_t(d.hd), uint64_t(cols), d.KV * d.hd, int32_t(d.KV), d.hd};
  }
  /// A [rows keys x cols queries] sub-block of the [KV, S, S] score buffers.
  LayoutSpec square(cudaDataType_t t, int64_t rows, int64_t cols) const {
    const AttentionShape &d = shape;
    return {t, uint64_t(rows), uint64_t(cols), d.S, int32_t(d.KV), d.S * d.S};
  }

  Status plan(Matmul &m, bool transA, bool transB, const LayoutSpec &a, const LayoutSpec &b,
              const LayoutSpec &c, const char *what) {
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&m.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    HALO_LT_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
    HALO_LT_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
    HALO_RETURN_IF_ERROR(makeLayout(&m.a, a));
    HALO_RETURN_IF_ERROR(makeLayout(&m.b, b));
    HALO_RETURN_IF_ERROR(makeLayout(&m.c, c));
    cublasLtMatmulPreference_t pref = nullptr;
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    cublasStatus_t (*)(cublasLtMatmulPreference_t)>
        owner(pref, cublasLtMatmulPreferenceDestroy);
    uint64_t maxWorkspace = workspaceBytes;
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &maxWorkspace, sizeof(maxWorkspace)));
    for (auto attribute :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(pref, attribute, &align, sizeof(align)));
    cublasLtMatmulHeuristicResult_t results[8] = {};
    int found = 0;
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(handle, m.op, m.a, m.b, m.c, m.c, pref, 8,
                                               results, &found));
    for (int i = 0; i < found; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS) {
        m.algo = results[i].algo;
        m.workspace = results[i].workspaceSize;
        return Status::success();
      }
    const AttentionShape &d = shape;
    return Status::error(fmt::format(
        "tensor-core attention: cuBLASLt has no algorithm for the {} GEMM (B={} S={} H={} "
        "KV={} hd={})",
        what, d.B, d.S, d.H, d.KV, d.hd));
  }

  Status matmul(Matmul &m, float alpha, CUdeviceptr a, CUdeviceptr b, float beta, CUdeviceptr c,
                CUstream stream) {
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmul(handle, m.op, &alpha, reinterpret_cast<const void *>(a), m.a,
                               reinterpret_cast<const void *>(b), m.b, &beta,
                               reinterpret_cast<const void *>(c), m.c,
                               reinterpret_cast<void *>(c), m.c, &m.algo,
                               reinterpret_cast<void *>(workspace), m.workspace, stream));
    return Status::success();
  }

  Status launch(CUfunction f, unsigned gx, unsigned gy, void **args, CUstream stream) {
    HALO_CU_RETURN_IF_ERROR(*driver,
                            cuLaunchKernel(f, gx, gy, 1, kThreads, 1, 1, 0, stream, args, nullptr));
    return Status::success();
  }

  Status checkAligned(std::initializer_list<CUdeviceptr> pointers) const {
    for (CUdeviceptr p : pointers)
      if (p % align != 0)
        return Status::error(fmt::format(
            "tensor-core attention: operand 0x{:x} is not {}-byte aligned", p, align));
    return Status::success();
  }
};

bool TensorCoreAttention::enabled() {
  static const bool on = [] {
    // The generated flash kernels (tensor cores) are the default.
    const char *v = std::getenv("HALO_ATTENTION");
    return v && std::string(v) == "cublaslt";
  }();
  return on;
}

TensorCoreAttention::TensorCoreAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TensorCoreAttention::~TensorCoreAttention() = default;

const AttentionShape &TensorCoreAttention::shape() const { return impl_->shape; }
size_t TensorCoreAttention::deviceBytes() const { return impl_->bytes; }

StatusOr<std::unique_ptr<TensorCoreAttention>>
TensorCoreAttention::create(const CudaContext &context, const AttentionShape &shape) {
  auto impl = std::make_unique<Impl>();
  Impl &m = *impl;
  m.context = &context;
  m.driver = &context.driver();
  m.shape = shape;
  const AttentionShape &d = shape;
  if (d.B <= 0 || d.S <= 0 || d.KV <= 0 || d.hd <= 0 || d.H % d.KV != 0)
    return Status::error("tensor-core attention: bad shape");
  m.grp = d.H / d.KV;
  m.chunks = d.S % kChunks == 0 && (d.S / kChunks) % kChunkAlign == 0 ? kChunks : 1;
  m.chunkRows = d.S / m.chunks;
  m.scale = float(1.0 / std::sqrt(double(d.hd)));
  // Every q/k/v/out offset is a multiple of hd BF16 elements.
  size_t hdBytes = size_t(d.hd) * 2;
  while (m.align > 2 && hdBytes % m.align != 0)
    m.align /= 2;
  HALO_RETURN_IF_ERROR(context.makeCurrent());
  HALO_LT_RETURN_IF_ERROR(cublasLtCreate(&m.handle));

  CompileOptions options;
  options.arch = context.info().arch();
  StatusOr<CompiledKernel> compiled = compileKernel({"halo_tca_softmax", kSource, {}}, options);
  if (!compiled.ok())
    return compiled.status();
  StatusOr<CudaModule> module = CudaModule::load(*m.driver, compiled->image);
  if (!module.ok())
    return module.status();
  m.module.emplace(std::move(*module));
  for (auto [name, fn] : {std::pair{"halo_tca_softmax", &m.softmax},
                          std::pair{"halo_tca_dsoftmax", &m.dsoftmax},
                          std::pair{"halo_tca_to_bf16", &m.toBf16}}) {
    StatusOr<CUfunction> f = m.module->function(name);
    if (!f.ok())
      return f.status();
    *fn = *f;
  }

  size_t square = size_t(d.KV) * d.S * d.S;
  StatusOr<CUdeviceptr> p = m.allocate(m.workspaceBytes);
  if (!p.ok())
    return p.status();
  m.workspace = *p;
  if (!(p = m.allocate(square * 4)).ok())
    return p.status();
  m.s32 = *p;
  if (!(p = m.allocate(square * 2)).ok())
    return p.status();
  m.p16 = *p;

  for (int c = 0; c < m.chunks; ++c) {
    int64_t n = m.keys(c), L = m.chunkRows;
    HALO_RETURN_IF_ERROR(m.plan(m.scores[c], true, false, m.kvLike(CUDA_R_16BF, n),
                                m.qLike(CUDA_R_16BF, L), m.square(CUDA_R_32F, n, L), "scores"));
    HALO_RETURN_IF_ERROR(m.plan(m.pv[c], false, false, m.kvLike(CUDA_R_16BF, n),
                                m.square(CUDA_R_16BF, n, L), m.qLike(CUDA_R_16BF, L), "P V"));
  }
  return std::unique_ptr<TensorCoreAttention>(new TensorCoreAttention(std::move(impl)));
}

Status TensorCoreAttention::enableBackward() {
  Impl &m = *impl_;
  if (m.backwardReady)
    return Status::success();
  const AttentionShape &d = m.shape;
  size_t square = size_t(d.KV) * d.S * d.S;
  size_t kvElems = size_t(d.B) * d.S * d.KV * d.hd;
  StatusOr<CUdeviceptr> p = m.allocate(square * 4);
  if (!p.ok())
    return p.status();
  m.dp32 = *p;
  if (!(p = m.allocate(square * 2)).ok())
    return p.status();
  m.ds16 = *p;
  if (!(p = m.allocate(kvElems * 4)).ok())
    return p.status();
  m.dk32 = *p;
  if (!(p = m.allocate(kvElems * 4)).ok())
    return p.status();
  m.dv32 = *p;
  for (int c = 0; c < m.chunks; ++c) {
    int64_t n = m.keys(c), L = m.chunkRows;
    HALO_RETURN_IF_ERROR(m.plan(m.grad[c], false, true, m.qLike(CUDA_R_16BF, L),
                                m.square(CUDA_R_16BF, n, L), m.kvLike(CUDA_R_32F, n), "dK/dV"));
  }
  m.backwardReady = true;
  return Status::success();
}

Status TensorCoreAttention::forward(const ForwardArgs &a, CUstream stream) {
  Impl &m = *impl_;
  const AttentionShape &d = m.shape;
  HALO_RETURN_IF_ERROR(m.checkAligned({a.q, a.k, a.v, a.out}));
  int S = int(d.S), H = int(d.H), grp = int(m.grp);
  const int64_t L = m.chunkRows;
  for (int64_t b = 0; b < d.B; ++b) {
    CUdeviceptr kb = a.k + CUdeviceptr(b * d.S * d.KV * d.hd * 2);
    CUdeviceptr vb = a.v + CUdeviceptr(b * d.S * d.KV * d.hd * 2);
    for (int j = 0; j < grp; ++j) {
      for (int c = 0; c < m.chunks; ++c) {
        // Query rows [q0, q0 + L) against keys [0, n).
        const int64_t q0 = c * L;
        CUdeviceptr qOff = CUdeviceptr(((b * d.S + q0) * d.H + j) * d.hd * 2);
        CUdeviceptr sOff = CUdeviceptr(q0 * d.S); // elements
        CUdeviceptr s32 = m.s32 + sOff * 4, p16 = m.p16 + sOff * 2, lse = a.lse;
        HALO_RETURN_IF_ERROR(m.matmul(m.scores[c], m.scale, kb, a.q + qOff, 0.0f, s32, stream));
        int jj = j, bb = int(b), row0 = int(q0), n = int(m.keys(c));
        // The kernel indexes the whole [KV, S, S] buffers by absolute row.
        CUdeviceptr s32All = m.s32, p16All = m.p16;
        void *args[] = {&s32All, &p16All, &lse, &S, &H, &grp, &jj, &bb, &row0, &n};
        HALO_RETURN_IF_ERROR(m.launch(m.softmax, unsigned(L), unsigned(d.KV), args, stream));
        HALO_RETURN_IF_ERROR(m.matmul(m.pv[c], 1.0f, vb, p16, 0.0f, a.out + qOff, stream));
      }
    }
  }
  return Status::success();
}

Status TensorCoreAttention::backward(const BackwardArgs &a, CUstream stream) {
  Impl &m = *impl_;
  if (!m.backwardReady)
    return Status::error("tensor-core attention: backward() before enableBackward()");
  const AttentionShape &d = m.shape;
  HALO_RETURN_IF_ERROR(m.checkAligned({a.q, a.k, a.v, a.out, a.dout, a.dq, a.dk, a.dv}));
  int S = int(d.S), H = int(d.H), grp = int(m.grp), hd = int(d.hd);
  const int64_t L = m.chunkRows;
  // dK/dV sum over group members and query chunks, and chunk c only reaches
  // keys [0, n_c): zero the FP32 accumulators, then always accumulate.
  size_t kvBytes = size_t(d.B) * d.S * d.KV * d.hd * 4;
  HALO_CU_RETURN_IF_ERROR(*m.driver, cuMemsetD8Async(m.dk32, 0, kvBytes, stream));
  HALO_CU_RETURN_IF_ERROR(*m.driver, cuMemsetD8Async(m.dv32, 0, kvBytes, stream));
  for (int64_t b = 0; b < d.B; ++b) {
    CUdeviceptr kvOff = CUdeviceptr(b * d.S * d.KV * d.hd);
    CUdeviceptr kb = a.k + kvOff * 2, vb = a.v + kvOff * 2;
    CUdeviceptr dk32 = m.dk32 + kvOff * 4, dv32 = m.dv32 + kvOff * 4;
    for (int j = 0; j < grp; ++j) {
      for (int c = 0; c < m.chunks; ++c) {
        const int64_t q0 = c * L;
        CUdeviceptr qOff = CUdeviceptr(((b * d.S + q0) * d.H + j) * d.hd * 2);
        CUdeviceptr sOff = CUdeviceptr(q0 * d.S); // elements
        CUdeviceptr s32c = m.s32 + sOff * 4, dp32c = m.dp32 + sOff * 4;
        CUdeviceptr p16c = m.p16 + sOff * 2, ds16c = m.ds16 + sOff * 2;
        HALO_RETURN_IF_ERROR(
            m.matmul(m.scores[c], m.scale, kb, a.q + qOff, 0.0f, s32c, stream));
        HALO_RETURN_IF_ERROR(m.matmul(m.scores[c], 1.0f, vb, a.dout + qOff, 0.0f, dp32c, stream));
        int jj = j, bb = int(b), row0 = int(q0), n = int(m.keys(c));
        CUdeviceptr s32 = m.s32, dp32 = m.dp32, out = a.out, dout = a.dout, lse = a.lse,
                    p16 = m.p16, ds16 = m.ds16;
        void *args[] = {&s32, &dp32, &out, &dout, &lse, &p16,  &ds16,
                        &S,   &H,    &grp, &jj,   &bb,  &hd,   &row0, &n};
        HALO_RETURN_IF_ERROR(m.launch(m.dsoftmax, unsigned(L), unsigned(d.KV), args, stream));
        // dV_g[:n] += P_jc^T dO_jc; dK_g[:n] += scale dS_jc^T Q_jc;
        // dQ_jc = scale dS_jc K_g[:n].
        HALO_RETURN_IF_ERROR(m.matmul(m.grad[c], 1.0f, a.dout + qOff, p16c, 1.0f, dv32, stream));
        HALO_RETURN_IF_ERROR(m.matmul(m.grad[c], m.scale, a.q + qOff, ds16c, 1.0f, dk32, stream));
        HALO_RETURN_IF_ERROR(m.matmul(m.pv[c], m.scale, kb, ds16c, 0.0f, a.dq + qOff, stream));
      }
    }
  }
  unsigned long long n = (unsigned long long)(d.B * d.S * d.KV * d.hd);
  unsigned blocks = unsigned(std::min<unsigned long long>((n + kThreads - 1) / kThreads, 65535));
  for (auto [from, to] : {std::pair{m.dk32, a.dk}, std::pair{m.dv32, a.dv}}) {
    CUdeviceptr x = from, y = to;
    void *args[] = {&x, &y, &n};
    HALO_RETURN_IF_ERROR(m.launch(m.toBf16, blocks, 1, args, stream));
  }
  return Status::success();
}

} // namespace halo::cuda
