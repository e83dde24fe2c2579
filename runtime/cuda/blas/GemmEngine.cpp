//===- GemmEngine.cpp - halo's GEMMs on cuBLASLt --------------------------===//
//
// libcublasLt is linked normally: its only DT_NEEDED entries are libc, libm,
// libdl, librt, libpthread and libgcc_s (it dlopens libcuda itself, like
// halo), so binaries still start without a driver; the blas linkage test
// checks this. It shares the device's primary context with CudaContext.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/blas/GemmEngine.h"

#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/blas/Epilogue.h"
#include "runtime/cuda/blas/LtCommon.h"

#include <cublasLt.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace halo::cuda {

std::string ltStatusText(cublasStatus_t status) {
  const char *name = cublasLtGetStatusName(status);
  const char *text = cublasLtGetStatusString(status);
  return fmt::format("{} ({}){}{}", name ? name : "CUBLAS_STATUS",
                     int(status), text ? ": " : "", text ? text : "");
}

Status ltCheck(cublasStatus_t status, const char *call, const char *file,
               int line) {
  if (status == CUBLAS_STATUS_SUCCESS)
    return Status::success();
  std::string message =
      fmt::format("{} failed: {} [{}:{}]", call, ltStatusText(status), file,
                  line);
  if (status == CUBLAS_STATUS_NOT_INITIALIZED)
    message += "; hint: cuBLASLt could not initialize the CUDA runtime "
               "(driver missing or too old for this cuBLASLt?)";
  else if (status == CUBLAS_STATUS_ALLOC_FAILED)
    message += "; hint: out of host or device memory";
  return Status::error(std::move(message));
}

namespace {

cudaDataType_t ltType(GemmType type) {
  switch (type) {
  case GemmType::FP8E4M3:
    return CUDA_R_8F_E4M3;
  case GemmType::INT8:
    return CUDA_R_8I;
  case GemmType::BF16:
    return CUDA_R_16BF;
  case GemmType::FP32:
    return CUDA_R_32F;
  case GemmType::INT32:
    return CUDA_R_32I;
  }
  return CUDA_R_32F;
}

int epilogueMode(ScaleMode mode) {
  switch (mode) {
  case ScaleMode::None:
    return 0;
  case ScaleMode::PerTensor:
    return 1;
  case ScaleMode::PerRow:
    return 2;
  }
  return 0;
}

/// The plan cache key: the descriptor and the pointer alignment classes the
/// heuristic was told about.
struct PlanKey {
  GemmDesc desc;
  unsigned alignA = 256, alignB = 256, alignC = 256;

  auto tie() const {
    const GemmDesc &d = desc;
    return std::make_tuple(d.M, d.N, d.K, d.transA, d.transB, d.aType,
                           d.bType, d.outType, d.scaleA, d.scaleB,
                           d.accumulate, d.fastAccum, alignA, alignB, alignC);
  }
  bool operator<(const PlanKey &other) const { return tie() < other.tie(); }
};

struct Plan {
  GemmDesc desc;
  GemmPlanInfo info;
  std::unique_ptr<LtMatmul> lt;
  /// Type of cuBLASLt's D: desc.outType (native) or INT32/FP32 accumulators.
  GemmType gemmOut = GemmType::BF16;
  /// Native FP8: scales passed to cuBLASLt (scalar or outer-vector).
  bool ltScales = false;
  /// Epilogue path: accumulators go to the scratch buffer (else into C).
  bool useScratch = false;
  CUfunction epilogue = nullptr;
  unsigned epilogueGrid = 0;
  /// alpha / beta, as float (compute 32F) or int32 (compute 32I).
  float alphaF = 1, betaF = 0;
  int32_t alphaI = 1, betaI = 0;
};

} // namespace

struct GemmEngine::Impl {
  const CudaContext *context = nullptr;
  const CudaDriver *driver = nullptr;
  GemmEngineOptions options;
  cublasLtHandle_t handle = nullptr;
  std::optional<DeviceBuffer> workspace;
  /// The current scratch buffer is the last; earlier ones stay alive so that
  /// graphs captured with them remain valid.
  std::vector<DeviceBuffer> scratch;
  std::optional<CudaModule> epilogueModule;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  ~Impl() {
    if (handle)
      cublasLtDestroy(handle);
  }

  size_t scratchSize() const {
    return scratch.empty() ? 0 : scratch.back().size();
  }

  StatusOr<Plan *> plan(const GemmDesc &desc, const GemmOperands *operands);
  StatusOr<std::unique_ptr<Plan>> makePlan(const PlanKey &key);
  Status makeLtMatmul(Plan &plan, const PlanKey &key, bool outerVector,
                      bool *unsupported);
  StatusOr<CUfunction> epilogueFunction(GemmType acc, GemmType out);
  Status ensureScratch(size_t bytes);
};

StatusOr<CUfunction> GemmEngine::Impl::epilogueFunction(GemmType acc,
                                                        GemmType out) {
  if (!epilogueModule) {
    KernelSource source;
    source.name = "halo_gemm_epilogue";
    source.source = epilogueSource();
    CompileOptions compile;
    compile.arch = context->info().arch();
    StatusOr<CompiledKernel> compiled = compileKernel(source, compile);
    if (!compiled.ok())
      return compiled.status();
    StatusOr<CudaModule> module = CudaModule::load(*driver, compiled->image);
    if (!module.ok())
      return module.status();
    epilogueModule.emplace(std::move(*module));
  }
  return epilogueModule->function(epilogueKernelName(acc, out));
}

Status GemmEngine::Impl::ensureScratch(size_t bytes) {
  if (bytes <= scratchSize())
    return Status::success();
  StatusOr<DeviceBuffer> buffer = DeviceBuffer::allocate(*driver, bytes);
  if (!buffer.ok())
    return Status::error(fmt::format(
        "GEMM scratch buffer of {} bytes: {} (allocations inside a CUDA "
        "graph capture fail: call GemmEngine::prepare before capturing)",
        bytes, buffer.status().message()));
  scratch.push_back(std::move(*buffer));
  return Status::success();
}

Status GemmEngine::Impl::makeLtMatmul(Plan &plan, const PlanKey &key,
                                      bool outerVector, bool *unsupported) {
  const GemmDesc &d = plan.desc;
  const LtProblem p = mapToColumnMajor(d);
  LtMatmul &lt = *plan.lt;
  *unsupported = false;

  const bool integer = d.aType == GemmType::INT8;
  cublasComputeType_t compute =
      integer ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F;
  cudaDataType_t scaleType = integer ? CUDA_R_32I : CUDA_R_32F;
  HALO_LT_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(&lt.op, compute, scaleType));
  cublasOperation_t opA = p.transa ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = p.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      lt.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
      lt.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  if (d.aType == GemmType::FP8E4M3) {
    int8_t fast = d.fastAccum ? 1 : 0;
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        lt.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
  }
  if (plan.ltScales) {
    if (outerVector) {
      int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
      HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
          lt.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode)));
      HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
          lt.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode)));
    }
    // The heuristic rejects vector scale modes without scale pointers
    // (CUBLAS_STATUS_INVALID_VALUE); it never reads them, and run() sets
    // the real ones, so any non-null device address serves here.
    const void *placeholder =
        workspace ? reinterpret_cast<const void *>(workspace->pointer())
                  : reinterpret_cast<const void *>(uintptr_t(256));
    for (cublasLtMatmulDescAttributes_t attribute :
         {CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
          CUBLASLT_MATMUL_DESC_B_SCALE_POINTER})
      HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
          lt.op, attribute, &placeholder, sizeof(placeholder)));
  }

  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &lt.a, ltType(d.bType), p.aRows, p.aCols, p.lda));
  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &lt.b, ltType(d.aType), p.bRows, p.bCols, p.ldb));
  // C and D share one layout (and, when accumulating, one buffer).
  HALO_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(
      &lt.c, ltType(plan.gemmOut), p.cRows, p.cCols, p.ldc));

  cublasLtMatmulPreference_t preference = nullptr;
  HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                  cublasStatus_t (*)(cublasLtMatmulPreference_t)>
      owner(preference, cublasLtMatmulPreferenceDestroy);
  uint64_t maxWorkspace = options.workspaceBytes;
  HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &maxWorkspace,
      sizeof(maxWorkspace)));
  // A' is the user's B, B' the user's A (mapToColumnMajor).
  uint32_t alignA = key.alignB, alignB = key.alignA, alignC = key.alignC;
  if (plan.useScratch)
    alignC = 256;
  for (auto [attribute, value] :
       {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignA},
        std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignB},
        std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignC},
        std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignC}})
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        preference, attribute, &value, sizeof(value)));

  cublasLtMatmulHeuristicResult_t results[8] = {};
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle, lt.op, lt.a, lt.b, lt.c, lt.c, preference, 8, results, &found);
  int chosen = -1;
  for (int i = 0; i < found && chosen < 0; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS)
      chosen = i;
  // Outer-vector scales are an optional fast path: any refusal of them
  // falls back to the epilogue path.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED ||
      (status == CUBLAS_STATUS_INVALID_VALUE && outerVector) ||
      (status == CUBLAS_STATUS_SUCCESS && chosen < 0)) {
    *unsupported = true;
    return Status::error(fmt::format(
        "cuBLASLt has no algorithm for {} (cuBLASLt form {}, m={} n={} k={}, "
        "alignment A/B/C {}/{}/{} bytes): {}",
        describe(d), p.form(), p.m, p.n, p.k, key.alignA, key.alignB,
        key.alignC,
        status == CUBLAS_STATUS_SUCCESS ? "no candidate" : ltStatusText(status)));
  }
  HALO_LT_RETURN_IF_ERROR(status);
  lt.algo = results[chosen].algo;
  lt.workspace = results[chosen].workspaceSize;

  auto config = [&](cublasLtMatmulAlgoConfigAttributes_t attribute) {
    uint32_t value = 0;
    size_t written = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&lt.algo, attribute, &value,
                                             sizeof(value), &written) !=
        CUBLAS_STATUS_SUCCESS)
      return -1;
    return int(value);
  };
  plan.info.algoId = config(CUBLASLT_ALGO_CONFIG_ID);
  plan.info.tileId = config(CUBLASLT_ALGO_CONFIG_TILE_ID);
  plan.info.stagesId = config(CUBLASLT_ALGO_CONFIG_STAGES_ID);
  plan.info.workspaceBytes = lt.workspace;
  return Status::success();
}

StatusOr<std::unique_ptr<Plan>>
GemmEngine::Impl::makePlan(const PlanKey &key) {
  const GemmDesc &d = key.desc;
  HALO_RETURN_IF_ERROR(validate(d));
  if (options.checkLayouts)
    HALO_RETURN_IF_ERROR(nativeLayoutError(d, context->info().ccMajor,
                                           context->info().ccMinor));

  auto plan = std::make_unique<Plan>();
  plan->desc = d;
  plan->info.form = mapToColumnMajor(d).form();
  bool noScales =
      d.scaleA == ScaleMode::None && d.scaleB == ScaleMode::None;

  // Candidates in order of preference: (path, outer-vector scales).
  std::vector<std::pair<GemmPath, bool>> candidates;
  switch (d.aType) {
  case GemmType::BF16:
    candidates.push_back({GemmPath::Native, false});
    break;
  case GemmType::INT8:
    candidates.push_back({d.outType == GemmType::INT32 ? GemmPath::Native
                                                       : GemmPath::Epilogue,
                          false});
    break;
  case GemmType::FP8E4M3:
    if (d.scaleA != ScaleMode::PerRow && d.scaleB != ScaleMode::PerRow)
      candidates.push_back({GemmPath::Native, false});
    else if (d.scaleA == ScaleMode::PerRow && d.scaleB == ScaleMode::PerRow &&
             options.outerVectorScales)
      candidates.push_back({GemmPath::Native, true});
    candidates.push_back({GemmPath::Epilogue, false});
    break;
  default:
    break;
  }

  Status last = Status::success();
  for (auto [path, outerVector] : candidates) {
    plan->lt = std::make_unique<LtMatmul>();
    plan->info.path = path;
    if (path == GemmPath::Native) {
      plan->gemmOut = d.outType;
      plan->ltScales = d.aType == GemmType::FP8E4M3 && !noScales;
      plan->useScratch = false;
      plan->info.scaleHandling = noScales      ? "none"
                                 : outerVector ? "outer-vector"
                                               : "scalar";
    } else {
      plan->gemmOut =
          d.aType == GemmType::INT8 ? GemmType::INT32 : GemmType::FP32;
      plan->ltScales = false;
      plan->useScratch = d.outType != GemmType::FP32 || d.accumulate;
      plan->info.scaleHandling = "epilogue";
    }
    // cuBLASLt accumulates (beta = 1) only when it writes the final C.
    bool ltAccumulate = path == GemmPath::Native && d.accumulate;
    plan->alphaF = 1;
    plan->betaF = ltAccumulate ? 1 : 0;
    plan->alphaI = 1;
    plan->betaI = ltAccumulate ? 1 : 0;

    bool unsupported = false;
    last = makeLtMatmul(*plan, key, outerVector, &unsupported);
    if (last.ok())
      break;
    if (!unsupported)
      return last;
  }
  if (!last.ok())
    return last;

  if (plan->info.path == GemmPath::Epilogue) {
    StatusOr<CUfunction> function =
        epilogueFunction(plan->gemmOut, d.outType);
    if (!function.ok())
      return function.status();
    plan->epilogue = *function;
    int64_t groups = d.M * d.N / kEpilogueVector;
    int64_t blocks = (groups + kEpilogueBlock - 1) / kEpilogueBlock;
    int64_t maxBlocks = int64_t(std::max(context->info().smCount, 1)) * 16;
    plan->epilogueGrid = unsigned(std::clamp<int64_t>(blocks, 1, maxBlocks));
    if (plan->useScratch) {
      plan->info.scratchBytes = size_t(d.M) * size_t(d.N) * 4;
      HALO_RETURN_IF_ERROR(ensureScratch(plan->info.scratchBytes));
    }
  }

  plan->info.text = fmt::format(
      "{} {} scales={} algo={} tile={} stages={} workspace={}{}",
      plan->info.path == GemmPath::Native ? "native" : "epilogue",
      plan->info.form, plan->info.scaleHandling, plan->info.algoId,
      plan->info.tileId, plan->info.stagesId, plan->info.workspaceBytes,
      plan->info.scratchBytes
          ? fmt::format(" scratch={}", plan->info.scratchBytes)
          : std::string());
  return plan;
}

StatusOr<Plan *> GemmEngine::Impl::plan(const GemmDesc &desc,
                                        const GemmOperands *operands) {
  PlanKey key;
  key.desc = desc;
  if (operands) {
    key.alignA = pointerAlignment(operands->a);
    key.alignB = pointerAlignment(operands->b);
    key.alignC = pointerAlignment(operands->c);
  }
  auto found = plans.find(key);
  if (found != plans.end())
    return found->second.get();
  HALO_RETURN_IF_ERROR(context->makeCurrent());
  StatusOr<std::unique_ptr<Plan>> made = makePlan(key);
  if (!made.ok())
    return made.status();
  Plan *result = made->get();
  plans.emplace(key, std::move(*made));
  return result;
}

GemmEngine::GemmEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GemmEngine::~GemmEngine() = default;

StatusOr<std::unique_ptr<GemmEngine>>
GemmEngine::create(const CudaContext &context, GemmEngineOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->context = &context;
  impl->driver = &context.driver();
  impl->options = options;
  HALO_RETURN_IF_ERROR(context.makeCurrent());
  HALO_LT_RETURN_IF_ERROR(cublasLtCreate(&impl->handle));
  if (options.workspaceBytes) {
    StatusOr<DeviceBuffer> workspace =
        DeviceBuffer::allocate(*impl->driver, options.workspaceBytes);
    if (!workspace.ok())
      return workspace.status();
    impl->workspace.emplace(std::move(*workspace));
  }
  return std::unique_ptr<GemmEngine>(new GemmEngine(std::move(impl)));
}

Status GemmEngine::prepare(const GemmDesc &desc,
                           const GemmOperands *operands) {
  return impl_->plan(desc, operands).status();
}

StatusOr<GemmPlanInfo> GemmEngine::planInfo(const GemmDesc &desc,
                                            const GemmOperands *operands) {
  StatusOr<Plan *> plan = impl_->plan(desc, operands);
  if (!plan.ok())
    return plan.status();
  return (*plan)->info;
}

size_t GemmEngine::planCount() const { return impl_->plans.size(); }
size_t GemmEngine::scratchBytes() const { return impl_->scratchSize(); }
const CudaContext &GemmEngine::context() const { return *impl_->context; }
size_t GemmEngine::cublasLtVersion() { return cublasLtGetVersion(); }

Status GemmEngine::run(const GemmDesc &desc, const GemmOperands &ops,
                       CUstream stream) {
  // Pointer checks first: they are cheap and make the errors precise.
  auto fail = [&](const std::string &why) {
    return Status::error(fmt::format("GEMM ({}): {}", describe(desc), why));
  };
  if (!ops.a || !ops.b || !ops.c)
    return fail("A, B and C must be device pointers (one is null)");
  bool eightBit =
      desc.aType == GemmType::FP8E4M3 || desc.aType == GemmType::INT8;
  unsigned needed = eightBit ? 16 : unsigned(gemmTypeSize(desc.aType));
  for (auto [name, pointer] :
       {std::pair{"A", ops.a}, std::pair{"B", ops.b}, std::pair{"C", ops.c}})
    if (pointerAlignment(pointer) < needed)
      return fail(fmt::format("{} (0x{:x}) must be {}-byte aligned", name,
                              pointer, needed));
  for (auto [name, mode, pointer] :
       {std::tuple{"scaleA", desc.scaleA, ops.scaleA},
        std::tuple{"scaleB", desc.scaleB, ops.scaleB}}) {
    if ((mode == ScaleMode::None) != (pointer == 0))
      return fail(fmt::format("{} must be {} for scale mode {}", name,
                              mode == ScaleMode::None ? "0" : "a device pointer",
                              scaleModeName(mode, false)));
    if (pointer % 4 != 0)
      return fail(fmt::format("{} (0x{:x}) must be 4-byte aligned", name,
                              pointer));
  }

  StatusOr<Plan *> found = impl_->plan(desc, &ops);
  if (!found.ok())
    return found.status();
  Plan &plan = **found;
  Impl &impl = *impl_;
  HALO_RETURN_IF_ERROR(impl.context->makeCurrent());

  if (plan.ltScales) {
    // cuBLASLt's A is the user's B (mapToColumnMajor).
    const void *ltScaleA = reinterpret_cast<const void *>(ops.scaleB);
    const void *ltScaleB = reinterpret_cast<const void *>(ops.scaleA);
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        plan.lt->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ltScaleA,
        sizeof(ltScaleA)));
    HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
        plan.lt->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &ltScaleB,
        sizeof(ltScaleB)));
  }

  CUdeviceptr d = ops.c;
  if (plan.useScratch)
    d = impl.scratch.back().pointer();
  const void *alpha = &plan.alphaF;
  const void *beta = &plan.betaF;
  if (desc.aType == GemmType::INT8) {
    alpha = &plan.alphaI;
    beta = &plan.betaI;
  }
  void *workspace =
      impl.workspace ? reinterpret_cast<void *>(impl.workspace->pointer())
                     : nullptr;
  HALO_LT_RETURN_IF_ERROR(cublasLtMatmul(
      impl.handle, plan.lt->op, alpha, reinterpret_cast<const void *>(ops.b),
      plan.lt->a, reinterpret_cast<const void *>(ops.a), plan.lt->b, beta,
      reinterpret_cast<const void *>(d), plan.lt->c,
      reinterpret_cast<void *>(d), plan.lt->c, &plan.lt->algo, workspace,
      plan.lt->workspace, stream));

  if (plan.info.path == GemmPath::Epilogue) {
    CUdeviceptr acc = d, out = ops.c, sA = ops.scaleA, sB = ops.scaleB;
    long long M = desc.M, N = desc.N;
    int modeA = epilogueMode(desc.scaleA), modeB = epilogueMode(desc.scaleB);
    int accumulate = desc.accumulate ? 1 : 0;
    void *params[] = {&acc, &out, &sA, &sB, &M, &N, &modeA, &modeB,
                      &accumulate};
    HALO_CU_RETURN_IF_ERROR(
        *impl.driver,
        cuLaunchKernel(plan.epilogue, plan.epilogueGrid, 1, 1, kEpilogueBlock,
                       1, 1, 0, stream, params, nullptr));
  }
  return Status::success();
}

} // namespace halo::cuda
