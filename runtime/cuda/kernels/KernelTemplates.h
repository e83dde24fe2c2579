//===- KernelTemplates.h - Self-contained CUDA sources per shape -*- C++ -*-===//
//
// The CUDA kernel templates of runtime/cuda/kernels/*.cuh are embedded in this
// library at build time. Each function below returns a GeneratedKernel: one
// self-contained CUDA C++ source (the templates, then a short generated
// `extern "C" __global__` wrapper that instantiates them with compile-time
// shapes and, for Hadamards, the H_K sign table of numerics::hadamardMatrixK)
// plus the launches that make up the operation, in order. The source needs
// only <cuda_bf16.h> and <cuda_fp8.h> and compiles with compileKernel
// (Nvrtc.h) for sm_89 and sm_90 (cubin or PTX; no fast math).
//
// Conventions for every kernel:
//   * Tensors are dense row-major; activations BF16, scales / optimizer state
//     / weight gradients FP32, codes one byte (FP8 E4M3 or INT8).
//   * Every pointer is 16-byte aligned, every size is baked into the source.
//   * LaunchSpec::signature lists the kernel's parameters in order; launch
//     with exactly those (cuLaunchKernel kernelParams).
//   * sharedBytes is dynamic shared memory; above 48 KiB the function needs
//     cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
//     once before its first launch.
//   * workspaceBytes: device memory that must be zeroed once when allocated;
//     the kernels leave it zeroed again (self-resetting counters), so one
//     buffer serves every step and CUDA-graph replays. scratchBytes: device
//     memory with no required contents (a temporary).
//   * Per-tensor scales stay on the device: the quantizer writes `scale`
//     (float), which the GEMM epilogue reads; nothing syncs with the host.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_KERNELS_KERNELTEMPLATES_H
#define HALO_RUNTIME_CUDA_KERNELS_KERNELTEMPLATES_H

#include "halo/runtime/Status.h"
#include "runtime/numerics/Float8.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace halo::cuda::kernels {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// One kernel launch of a generated program.
struct LaunchSpec {
  /// The extern "C" entry point.
  std::string entry;
  Dim3 grid;
  Dim3 block;
  /// Dynamic shared memory in bytes.
  unsigned sharedBytes = 0;
  /// The parameter list, e.g. "const __nv_bfloat16* x, float* scale".
  std::string signature;
};

struct GeneratedKernel {
  /// A C identifier unique to the parameters (prefix of every entry).
  std::string program;
  /// The complete CUDA C++ source.
  std::string source;
  /// In launch order; all on one stream.
  std::vector<LaunchSpec> launches;
  /// Zero once at allocation; kernels leave it zero (see file comment).
  size_t workspaceBytes = 0;
  /// Temporary device memory the launches need (no required contents).
  size_t scratchBytes = 0;

  /// The launch whose entry ends with `suffix` ("_absmax"), or nullptr.
  const LaunchSpec *find(std::string_view suffix) const;
};

enum class ElemType { BF16, F32 };
enum class HadamardSide { Right, Left };
enum class ScaleGranularity { Tensor, Row };

/// The FP32 operation order of the K part of a K * 2^k Hadamard (K > 1).
/// Exact: numerics::hadamardRows' order, so codes and values are bit-identical
/// to the CPU oracle (K additions per element). Fast: inputs in groups of
/// four (hadamard_rows.cuh, kmix_fast), about K/4 + 3.5 additions per
/// element; equally accurate, but a different rounding order, so a code may
/// differ from the oracle's by one step on a tiny fraction of elements.
/// Identical for K = 1 (e.g. 4096) and for K not a multiple of 4 or < 8.
enum class HadamardOrder { Exact, Fast };

//===----------------------------------------------------------------------===//
// 1. Hadamard + absmax + quantize (the HALO core)
//===----------------------------------------------------------------------===//

/// Q(x H) (or Q(x H^T), Q(H x), Q(H^T x), or plain Q(x) with rotate = false)
/// of x [rows, cols]; the rotated BF16/FP32 tensor never goes to memory.
///
/// Right side, ScaleGranularity::Tensor: two launches
///   <p>_absmax(x [, u], unsigned* ws, float* scale, float* absmax)
///       a persistent grid (blocksPerSm blocks per SM, each walking rows with
///       a stride of the grid); rotates, reduces the absmax (one atomicMax on
///       the float's bits into ws[0] per block); the last block writes
///       *scale = quantScale(absmax) and *absmax (absmax may be null); ws
///       (8 bytes, workspaceBytes) is left zeroed.
///   <p>_quant(x [, u], const float* scale, uint8_t* codes)
///       recomputes the rotation and writes codes [rows, cols]; walks the
///       rows backwards so the rows phase 1 read last hit in L2 (persistent
///       like _absmax for K = 1 rows of 2^10..2^12, else one row per block).
/// Right side, ScaleGranularity::Row: one launch
///   <p>_rowq(x [, u], float* rowScale, uint8_t* codes), rowScale [rows].
/// transposedOutput (codes [cols, rows]), rows and cols multiples of 64:
///   plain per-tensor (rotate = false): _quant writes the transpose itself
///     from tiles of 64 rows x 128 (or 64) columns, grid [cols / 128, rows /
///     64], 256 (128) threads, no scratch; with bothLayouts it is
///     <p>_quant(x [, u], scale, uint8_t* codes, uint8_t* codesT) and writes
///     codes [rows, cols] and codesT [cols, rows] from the same tiles;
///   otherwise _quant / _rowq write [rows, cols] codes to `uint8_t* tmp`
///     (scratchBytes) instead, and a third launch
///       <p>_transpose(const uint8_t* tmp, uint8_t* codes)
///     transposes them in the same tiles; with bothLayouts _quant / _rowq
///     write codes [rows, cols] and the third launch is
///       <p>_transpose(const uint8_t* codes, uint8_t* codesT).
/// Other shapes: _quant / _rowq write the transpose directly (R rows per
/// block, narrow column stores).
/// Left side (rotation over rows, HALO-2's H_T E), Tensor only, codes
/// [rows, cols]: [<p>_pass1(x, float* tmp)] <p>_absmax(src, ws, scale,
/// absmax) <p>_quant(src, scale, codes) where src is x, or tmp (FP32,
/// scratchBytes) when the rows need the two-pass split. With targetSm >= 90,
/// BF16 x, K = 1 and 2048..8192 rows (cols a multiple of 16) the split is
/// replaced by thread-block clusters (program suffix _cl<X>): one pass,
/// <p>_absmax(src, ws, scale, absmax) <p>_quant(src, scale, codes, ws) with
/// src = x and ws 16 bytes (workspaceBytes). plainTransposed (cluster form
/// only, plainTransposedFits): the same two launches also quantize x itself,
/// unrotated, with a scale of its own, into transposed codes [cols, rows]
/// (HALO-2 reads E once for Q(H_T E) and Q(E)^T):
///   <p>_absmax(src, ws, scale, absmax, float* plainScale)
///   <p>_quant(src, scale, codes, const float* plainScale,
///             uint8_t* plainCodesT, ws), ws 24 bytes.
/// swigluInput: x = bf16(silu(g) * u) computed on load from two BF16
/// tensors (x is g; u follows x in every signature); right side only.
struct HadamardQuantizeParams {
  int64_t rows = 0;
  int64_t cols = 0;
  HadamardSide side = HadamardSide::Right;
  bool rotate = true;
  /// Use H^T instead of H.
  bool transposed = false;
  numerics::QuantFormat format = numerics::QuantFormat::FP8E4M3;
  ScaleGranularity granularity = ScaleGranularity::Tensor;
  /// Codes as [cols, rows] (K-major operand of the weight-gradient GEMM).
  bool transposedOutput = false;
  /// With transposedOutput: the [rows, cols] codes too (their other readers);
  /// right side, rows and cols multiples of 64.
  bool bothLayouts = false;
  /// Left side: plain Q(x)^T as well (see above).
  bool plainTransposed = false;
  ElemType input = ElemType::BF16;
  bool swigluInput = false;
  /// Right side only.
  HadamardOrder order = HadamardOrder::Exact;
  /// Compute capability the source will run on, major * 10 + minor (90 for
  /// H100); 0 = not known. >= 90 lets the left side use thread-block
  /// clusters (one pass at T = 2048..8192), whose kernels trap below sm_90.
  int targetSm = 0;
  /// Right side, per tensor: resident blocks per SM of the persistent
  /// `_absmax` (and, for RowWide rows, `_quant`) grid, also their
  /// __launch_bounds__ minimum; 0 picks the tuned default. A tuning knob:
  /// results do not depend on it.
  int blocksPerSm = 0;
};
StatusOr<GeneratedKernel> hadamardQuantizeKernel(const HadamardQuantizeParams &);
/// Whether hadamardQuantizeKernel takes p with plainTransposed set: the left
/// side's cluster form (targetSm >= 90, BF16, K = 1, 2048..8192 rows).
bool plainTransposedFits(const HadamardQuantizeParams &p);

//===----------------------------------------------------------------------===//
// 2. Plain Hadamard (un-rotating GEMM outputs; HALO-2's left rotation)
//===----------------------------------------------------------------------===//

/// y = x H / x H^T (Right) or H x / H^T x (Left), x and y [rows, cols].
/// Right: <p>_rot(x, y), one block per row.
/// Right with swigluGrad (BF16 in and out): SwiGLU's backward on dy = y, which
/// never reaches memory (halo-fuse's hadamard_swiglu_grad: down_proj's input
/// gradient un-rotated inside the SwiGLU backward),
///   <p>_swiglu_bwd(x, g, u, dg, du), g, u, dg, du [rows, cols] BF16,
/// one block per row: y bit-identical to <p>_rot's, then swigluBackwardKernel's
/// arithmetic. Takes every shape the plain right rotation takes.
/// Left: <p>_rot(x, y) when one pass suffices, <p>_rot(x, y, unsigned* ws)
/// for the cluster form (targetSm >= 90, as for hadamardQuantizeKernel), else
/// <p>_pass1(x, float* tmp) then <p>_rot(tmp, y) (tmp: scratchBytes, FP32).
struct HadamardParams {
  int64_t rows = 0;
  int64_t cols = 0;
  HadamardSide side = HadamardSide::Right;
  bool transposed = false;
  ElemType input = ElemType::BF16;
  ElemType output = ElemType::BF16;
  /// Right side only.
  HadamardOrder order = HadamardOrder::Exact;
  /// As HadamardQuantizeParams::targetSm.
  int targetSm = 0;
  /// Right side, BF16: the SwiGLU backward on the rotated rows (see above).
  bool swigluGrad = false;
};
StatusOr<GeneratedKernel> hadamardKernel(const HadamardParams &);

//===----------------------------------------------------------------------===//
// 3. RMSNorm
//===----------------------------------------------------------------------===//

/// <p>_fwd(x, res, w, h, y, float* rstd): h = bf16(x + res) (residual; else
/// res and h are ignored and h = x), y = bf16(h rsqrt(mean(h^2) + eps) w);
/// rstd [rows] may be null. One block per row.
struct RmsNormParams {
  int64_t rows = 0;
  int64_t dim = 0;
  double eps = 1e-5;
  bool residual = false;
  /// Backward only: dy arrives as dyRot with dy = bf16(dyRot H) (H^T when
  /// transposed), the right un-rotation of HALO-1/2's summed q/k/v and
  /// gate/up input gradients (halo-fuse's hadamard_rms_norm_grad), done row
  /// by row in the kernel (see rmsNormBackwardKernel).
  bool rotateDy = false;
  bool transposed = false;
};
StatusOr<GeneratedKernel> rmsNormForwardKernel(const RmsNormParams &);

/// <p>_bwd(h, w, dy, dres, dx, float* part) then <p>_dw(part, float* dw):
/// dx = VJP (+ dres when residual: the gradient of the residual stream is
/// added in the same pass; else dres is ignored), dw FP32 summed over rows
/// deterministically; part is scratchBytes. With rotateDy the first launch is
/// <p>_bwd(h, w, dyRot, dres, dx, part): each row of dyRot is rotated with
/// the right hadamardKernel's FP32 operations and rounding (dy bit-identical
/// to its output; never stored), in dynamic shared memory; every dim the
/// right rotation takes.
StatusOr<GeneratedKernel> rmsNormBackwardKernel(const RmsNormParams &);

//===----------------------------------------------------------------------===//
// 4. RoPE, SwiGLU, embedding, cross entropy, norms, optimizer
//===----------------------------------------------------------------------===//

/// <p>_rope(q, k, qOut, kOut): HF rotate_half on q [tokens, qHeads*headDim]
/// and k [tokens, kvHeads*headDim] (in place allowed); inverse = VJP.
struct RopeParams {
  int64_t tokens = 0;
  int64_t seqLen = 0;
  int64_t qHeads = 0;
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  double theta = 10000.0;
  bool inverse = false;
};
StatusOr<GeneratedKernel> ropeKernel(const RopeParams &);

/// <p>_fwd(g, u, y): y = silu(g) * u over `elements` BF16 values.
StatusOr<GeneratedKernel> swigluForwardKernel(int64_t elements);
/// <p>_bwd(g, u, dy, dg, du).
StatusOr<GeneratedKernel> swigluBackwardKernel(int64_t elements);

/// <p>_fwd(const int* ids, table, out, int* error) and the backward: for a
/// vocab whose 16-column slice fits 64 KiB, <p>_bwd(const int* ids, dout,
/// float* dtable, int* error); else <p>_bwd_list(const int* ids, int* part,
/// int* error) then <p>_bwd(const int* part, dout, float* dtable) (part is
/// scratchBytes). The backward writes every element of dtable (no zeroing)
/// and sums each row in token order without atomics (deterministic, the CPU
/// oracle's FP32 order). A bad id sets *error = 1 (forward writes a zero row,
/// backward skips it).
struct EmbeddingParams {
  int64_t tokens = 0;
  int64_t vocab = 0;
  int64_t dim = 0;
};
StatusOr<GeneratedKernel> embeddingKernel(const EmbeddingParams &);

/// <p>_count(const int* targets, unsigned* ws) then
/// <p>_main(logits, targets, const float* dloss, dlogits, float* rowLoss,
///          unsigned* ws, float* loss):
/// fused forward (mean loss over targets >= 0 into *loss) and backward
/// (dlogits BF16, seeded by *dloss, or 1 when dloss is null). rowLoss
/// [tokens] is scratch; ws (workspaceBytes) zeroed once.
struct CrossEntropyParams {
  int64_t tokens = 0;
  int64_t vocab = 0;
};
StatusOr<GeneratedKernel> crossEntropyKernel(const CrossEntropyParams &);

/// <p>_sumsq(x, double* acc, int* bad, int tag): adds sum(x^2) of `elements`
/// values into *acc (workspaceBytes); a non-finite partial sum lowers *bad to
/// tag (atomicMin; bad may be null): which gradient overflowed.
StatusOr<GeneratedKernel> sumSquaresKernel(int64_t elements, ElemType input);
/// <p>_finish(double* acc, float* norm, float* clip): norm = sqrt(*acc),
/// clip = min(1, maxNorm / (norm + 1e-6)) (1 when maxNorm <= 0; NaN when
/// the norm is not finite), *acc = 0.
StatusOr<GeneratedKernel> globalNormKernel(double maxNorm);

/// <p>_lr(const int* step, float* lr): cpu::learningRate on the device.
/// schedule: 0 constant, 1 linear, 2 cosine.
struct LrScheduleParams {
  double peak = 0;
  int64_t warmup = 0;
  int64_t total = 0;
  int schedule = 0;
};
StatusOr<GeneratedKernel> lrScheduleKernel(const LrScheduleParams &);

/// <p>_step(param, grad, m, v, const float* lr, const int* step,
///          const float* gradScale, bf16* copy): one AdamW step on FP32
/// master weights, or on BF16 weights rounded stochastically (`param`; no
/// copy then) (gradScale may be null; a non-finite *gradScale skips the
/// update: the overflow guard; copy is written when writeBf16Copy, else
/// ignored).
/// rotateRows: `grad` is G_rot, the gradient before a right Hadamard over rows
/// of rowLength elements (G = G_rot H^T when transposed, else G_rot H; the
/// halo.hadamard inside the optimizer kernel), un-rotated row by row (one per
/// block, hadamardKernel's FP32 operations and rounding to `grad`'s type)
/// before the update; writeGrad adds a last parameter `gradOut` that receives G.
struct AdamWParams {
  int64_t elements = 0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
  bool writeBf16Copy = true;
  ElemType grad = ElemType::F32;
  /// BF16 moments are stored rounded stochastically (elementwise.cuh).
  ElemType moments = ElemType::F32;
  /// BF16 parameters too (train.master_dtype).
  ElemType param = ElemType::F32;
  bool rotateRows = false;
  int64_t rowLength = 0;
  bool transposed = false;
  bool writeGrad = false;
};
StatusOr<GeneratedKernel> adamwKernel(const AdamWParams &);

//===----------------------------------------------------------------------===//
// 5. Attention
//===----------------------------------------------------------------------===//

/// Causal GQA attention, scale 1/sqrt(headDim), BF16 q/k/v/out, FP32 lse
/// [batch * heads * seqLen] (the layout of cpu::attention). A simple tiled
/// flash scheme on CUDA cores (correctness first, see attention.cuh).
/// Forward: <p>_fwd(q, k, v, out, float* lse).
/// Backward: <p>_pre(out, dout, float* delta), <p>_dkdv(q, k, v, dout, lse,
/// delta, dk, dv), <p>_dq(q, k, v, dout, lse, delta, dq); delta
/// [batch * heads * seqLen] is scratchBytes. With the warpgroup-MMA kernels
/// (targetSm >= 90, head dims 64 and 128) _dkdv also takes (dq, float* tmp
/// = scratch, unsigned* ws = workspace) and computes dQ under sm_90a (see
/// separateDq). Deterministic: no unordered atomics.
struct AttentionParams {
  int64_t batch = 0;
  int64_t seqLen = 0;
  int64_t heads = 0;
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  /// Tensor-core kernels: warps per block (4 or 8); 0 picks 4, whose shared
  /// memory (<= 97 KiB at headDim 128) fits sm_80/89. With 4 warps each
  /// forward/dQ warp owns 32 rows (two m16 tiles), with 8 warps 16.
  int64_t warps = 0;
  /// With targetSm >= 90 (and warps 0) the dK/dV kernel takes the
  /// FlashAttention-2 layout (attn_mma_dkdv2, 8 warps) at head dims that are
  /// multiples of 32: faster, but 161 KiB of shared memory at headDim 128.
  /// At head dims 64 and 128 every entry point then also carries the
  /// warpgroup-MMA kernel of the same geometry (attention_wgmma.cuh), which
  /// it runs when compiled for sm_90a.
  int targetSm = 0;
  /// With the warpgroup-MMA kernels, dQ is computed by the dK/dV kernel
  /// (attn_wg_bwd: each key block adds dS K to an FP32 accumulator in key
  /// order, deterministic) and the _dq entry is empty under sm_90a; true
  /// keeps the separate dQ kernel, which recomputes S and dP (for A/B runs).
  bool separateDq = false;
};
StatusOr<GeneratedKernel> attentionForwardKernel(const AttentionParams &);
StatusOr<GeneratedKernel> attentionBackwardKernel(const AttentionParams &);

//===----------------------------------------------------------------------===//
// Raw templates
//===----------------------------------------------------------------------===//

/// The embedded text of a template file ("common.cuh", ...), empty if none.
std::string_view templateText(std::string_view file);
/// Names of all embedded template files.
std::vector<std::string_view> templateFiles();

/// A C float literal that reads back as exactly `value` ("0x1p-6f").
std::string floatLiteral(float value);

} // namespace halo::cuda::kernels

#endif // HALO_RUNTIME_CUDA_KERNELS_KERNELTEMPLATES_H
