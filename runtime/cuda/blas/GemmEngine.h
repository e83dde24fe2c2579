//===- GemmEngine.h - halo's GEMMs on cuBLASLt -------------------*- C++ -*-===//
//
// Executes the GemmDesc problems of Gemm.h on one device:
//
//   auto engine = GemmEngine::create(context);          // once
//   GemmDesc d = GemmDesc::quantized(GemmType::FP8E4M3, M, N, K);
//   engine->prepare(d);                                 // once per shape
//   engine->run(d, {a, b, c, scaleA, scaleB}, stream);  // every step
//
// How each combination runs (see docs/gemm.md for the measured numbers):
//  - BF16 x BF16 -> BF16/F32: one cublasLtMatmul (any layout).
//  - FP8 x FP8, per-tensor (or no) scales: one cublasLtMatmul with the scales
//    as CUBLASLT_MATMUL_DESC_{A,B}_SCALE_POINTER (device pointers, so no host
//    sync), FP32 accumulation, BF16/F32 output written by cuBLASLt.
//    With accumulate and a BF16 C, cuBLASLt rounds the scaled product to
//    BF16 before adding C (one extra rounding of at most half an ulp of the
//    product; measured on an H100); F32 outputs are rounded once.
//  - FP8 x FP8, per-row scales of A and per-column scales of B: cuBLASLt's
//    outer-vector scale mode (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F,
//    Hopper only) when the library offers it for the problem, else the
//    epilogue path. Mixed per-row / per-tensor scales use the epilogue path.
//  - INT8 x INT8 -> I32: one cublasLtMatmul (CUBLAS_COMPUTE_32I).
//  - INT8 -> BF16/F32 and every other scale mix (the "epilogue path"): an
//    unscaled cublasLtMatmul into 32-bit accumulators (I32, or F32 for FP8)
//    followed by a small NVRTC kernel that applies sA sB (scalars or
//    vectors), adds the old C when accumulating and converts. The
//    accumulators are written in place when C is F32 and not accumulated,
//    else into an engine-owned scratch buffer of M*N*4 bytes.
//
// Algorithm choice: cublasLtMatmulAlgoGetHeuristic once per (descriptor,
// pointer alignment class), with the engine's workspace (32 MiB by default,
// allocated once in create()) as the limit; the result is cached as a plan.
// With autotuning (by default for INT8 operands only, the one kind where it
// won on the H100; HALO_GEMM_AUTOTUNE=1 tunes every GEMM, =0 none),
// prepare() asks for the top 16 candidates (cuBLASLt 13.1 offers at most 8
// at halo's shapes) and times each on the real problem size: engine-owned
// scratch A, B, D, scales and workspace holding full-entropy random values,
// a private stream, ~3 ms of untimed calls then 5 to 30 timed ones (~5 ms;
// CUDA events, median); one timed call 1.5x slower than the best so far
// drops a candidate. The fastest replaces the heuristic's first only when
// at least 2% faster. Candidates that fail, need more than the workspace, or
// split K with the parts summed in a 16-bit D are skipped; any tuning
// failure (e.g. no memory for the scratch buffers) falls back to the
// heuristic's first with a warning. Choices persist next to the NVRTC
// kernels (GemmTuneCache.h): later starts and resumed runs take the same
// algorithm without timing (a cache hit costs one heuristic query). One
// line is printed once tuning has taken over a second. Other algorithms only
// change the summation order (FP32 or INT32 accumulation either way).
//
// CUDA graphs: prepare() does every allocation, NVRTC compile, module load
// and heuristic query a descriptor needs; afterwards run() only sets
// descriptor attributes on the host and enqueues cublasLtMatmul (plus the
// epilogue kernel) on `stream`: no allocation, no host synchronization, so
// it can be captured. run() of an unprepared descriptor prepares it first
// (an allocation inside a capture fails with the driver's capture error);
// call prepare() before capturing. That on-demand preparation never tunes
// (it may be inside a capture), so such plans keep the heuristic's first.
// Scratch buffers replaced by a larger one stay allocated until the engine
// dies, so earlier graphs stay valid.
//
// Concurrency: the workspace and the scratch buffer are shared by all calls.
// Calls on one stream (or in one graph, serialized) are safe; calls that may
// overlap on different streams need one engine per stream. Not thread-safe.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_BLAS_GEMMENGINE_H
#define HALO_RUNTIME_CUDA_BLAS_GEMMENGINE_H

#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/blas/Gemm.h"
#include "runtime/cuda/blas/GemmTuneCache.h"

#include <cstddef>
#include <memory>
#include <string>

namespace halo::cuda {

/// Device pointers of one GEMM. scaleA / scaleB point to FP32 (one value, or
/// M / N values for ScaleMode::PerRow) and must be 0 exactly when the mode is
/// None. For 8-bit operands, a, b and c must be 16-byte aligned.
struct GemmOperands {
  CUdeviceptr a = 0;
  CUdeviceptr b = 0;
  CUdeviceptr c = 0;
  CUdeviceptr scaleA = 0;
  CUdeviceptr scaleB = 0;
};

struct GemmEngineOptions {
  /// cuBLASLt workspace, allocated once; 32 MiB is what cuBLAS recommends
  /// (and PyTorch uses) on Hopper.
  size_t workspaceBytes = size_t(32) << 20;
  /// Reject layouts cuBLASLt does not run natively and fast
  /// (nativeLayoutError) before asking it; false asks anyway (probing the
  /// library; non-TN INT8 then runs, ~10x slower).
  bool checkLayouts = true;
  /// Try cuBLASLt's outer-vector scales for FP8 per-row/per-column scales;
  /// false always uses the epilogue path for them.
  bool outerVectorScales = true;
  /// Which GEMMs prepare() tunes (see the file comment);
  /// HALO_GEMM_AUTOTUNE=0/int8/1 overrides this.
  GemmAutotune autotune = GemmAutotune::Int8;
  /// How many heuristic candidates to ask for when tuning.
  int tuneCandidates = 16;
};

enum class GemmPath {
  /// One cublasLtMatmul computes the final C.
  Native,
  /// Unscaled cublasLtMatmul into 32-bit accumulators + NVRTC epilogue.
  Epilogue,
};

/// What prepare() chose for a descriptor.
struct GemmPlanInfo {
  GemmPath path = GemmPath::Native;
  /// cuBLASLt's column-major form, e.g. "TN" (see mapToColumnMajor).
  std::string form;
  /// "scalar", "outer-vector" (FP8 scales inside cuBLASLt), "epilogue" or
  /// "none".
  std::string scaleHandling;
  /// cuBLASLt algorithm: id, tile and stages ids as cublasLtMatmulAlgo
  /// config attributes report them.
  int algoId = -1;
  int tileId = -1;
  int stagesId = -1;
  size_t workspaceBytes = 0;
  size_t scratchBytes = 0;
  /// How the algorithm was chosen: "heuristic" (its first: autotuning off,
  /// a single candidate, or tuning failed), "tuned" (timed just now) or
  /// "cached" (a stored tuning result).
  std::string choice = "heuristic";
  /// The algorithm's index in the heuristic's order (0: its first) and, when
  /// tuned, how many candidates were timed.
  int candidate = 0;
  int candidates = 0;
  /// When tuned or cached: median ms of the chosen algorithm and of the
  /// heuristic's first, as measured at tuning time.
  double tunedMs = 0;
  double heuristicMs = 0;
  /// One line: "native TN scales=none algo=39 tile=... workspace=...
  /// tuned=#1/8 (0.5868 ms, heuristic's first 0.6797 ms)".
  std::string text;
};

class GemmEngine {
public:
  /// Creates a cuBLASLt handle and the workspace in `context` (made current
  /// on this thread). The context must outlive the engine.
  static StatusOr<std::unique_ptr<GemmEngine>>
  create(const CudaContext &context, GemmEngineOptions options = {});

  ~GemmEngine();
  GemmEngine(const GemmEngine &) = delete;
  GemmEngine &operator=(const GemmEngine &) = delete;

  /// Validates `desc`, checks the layout, queries (and, with autotuning,
  /// times) and caches the algorithm, compiles the epilogue kernel and sizes
  /// the scratch buffer it needs. `operands` only informs the pointer
  /// alignment assumed (256 bytes, as cuMemAlloc returns, when null); tuning
  /// runs on engine-owned scratch buffers, never on the caller's. Idempotent;
  /// never touches the caller's streams. Not during a graph capture.
  Status prepare(const GemmDesc &desc, const GemmOperands *operands = nullptr);

  /// C = (op(A) op(B)) sA sB (+ C) on `stream`; see the file comment.
  Status run(const GemmDesc &desc, const GemmOperands &operands,
             CUstream stream);

  /// The plan prepare() made (preparing it if needed).
  StatusOr<GemmPlanInfo> planInfo(const GemmDesc &desc,
                                  const GemmOperands *operands = nullptr);

  /// Number of cached plans (one per descriptor and alignment class).
  size_t planCount() const;
  /// Current scratch buffer size in bytes (0 until an epilogue plan needs
  /// one).
  size_t scratchBytes() const;
  const CudaContext &context() const;

  /// The loaded cuBLASLt's version, e.g. 130100 for 13.1.0 (no GPU needed).
  static size_t cublasLtVersion();

  struct Impl;

private:
  explicit GemmEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_BLAS_GEMMENGINE_H
