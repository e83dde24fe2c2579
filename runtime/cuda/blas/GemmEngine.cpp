//===- GemmEngine.cpp - halo's GEMMs on cuBLASLt --------------------------===//
//
// libcublasLt is linked normally: its only DT_NEEDED entries are libc, libm,
// libdl, librt, libpthread and libgcc_s (it dlopens libcuda itself, like
// halo), so binaries still start without a driver; the blas linkage test
// checks this. It shares the device's primary context with CudaContext.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/blas/GemmEngine.h"

#include "runtime/cuda/KernelCache.h"
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/blas/Epilogue.h"
#include "runtime/cuda/blas/GemmTuneCache.h"
#include "runtime/cuda/blas/LtCommon.h"

#include <cublasLt.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
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

void warn(const std::string &message) {
  fmt::print(stderr, "halo: warning: {}\n", message);
}

LtAlgoConfig algoConfig(const cublasLtMatmulAlgo_t &algo) {
  // Each attribute is read with its own width (cublasLt.h).
  auto get = [&](cublasLtMatmulAlgoConfigAttributes_t attribute, auto value) {
    size_t written = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, &value,
                                             sizeof(value), &written) !=
        CUBLAS_STATUS_SUCCESS)
      return -1;
    return int(value);
  };
  LtAlgoConfig c;
  c.algoId = get(CUBLASLT_ALGO_CONFIG_ID, int32_t());
  c.tileId = get(CUBLASLT_ALGO_CONFIG_TILE_ID, uint32_t());
  c.stagesId = get(CUBLASLT_ALGO_CONFIG_STAGES_ID, uint32_t());
  c.splitK = get(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, int32_t());
  c.reduction = get(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, uint32_t());
  c.swizzle = get(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, uint32_t());
  c.customOption = get(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, uint32_t());
  c.innerShapeId = get(CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, uint16_t());
  c.clusterShapeId = get(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, uint16_t());
  return c;
}

/// Fills 32-bit words with (hash(i) & mask) | bits: random operands. The
/// data matters: tensor-core GEMMs on low-entropy inputs draw less power and
/// clock higher (zeros, or FP8 with 3 random bits of 8, ran ~8% faster than
/// full-entropy data on the H100), which can reorder the candidates.
constexpr const char *kTuneFillSource = R"(
extern "C" __global__ void halo_gemm_tune_fill(unsigned *p,
                                               unsigned long long words,
                                               unsigned mask, unsigned bits) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x +
                              threadIdx.x;
       i < words; i += (unsigned long long)gridDim.x * blockDim.x) {
    unsigned x = (unsigned)i * 0x9E3779B9u + 0x7F4A7C15u;
    x ^= x >> 16; x *= 0x85EBCA6Bu; x ^= x >> 13; x *= 0xC2B2AE35u;
    x ^= x >> 16;
    p[i] = (x & mask) | bits;
  }
}
)";

/// (mask, bits) for random values of `type`, never NaN or Inf: FP8 any code
/// but the NaNs (S.1111.111; mantissa bit 3 cleared), BF16 +-[0.5, 2) with a
/// random mantissa (as halo-bench-gemm's data), INT8 any code.
std::pair<uint32_t, uint32_t> randomPattern(GemmType type) {
  switch (type) {
  case GemmType::FP8E4M3:
    return {0xF7F7F7F7u, 0u};
  case GemmType::BF16:
    return {0x80FF80FFu, 0x3F003F00u};
  default:
    return {0xFFFFFFFFu, 0u};
  }
}

// Tuning parameters (see GemmEngine.h). Each candidate runs for about
// kTuneWarmMs untimed, then about kTuneTimedMs timed (so that clocks and
// power settle as in a training step, not just boost).
constexpr double kTuneMargin = 0.02;
constexpr double kTuneAbortRatio = 1.5;
constexpr double kTuneWarmMs = 3.0, kTuneTimedMs = 5.0;
constexpr int kTuneMaxWarm = 20;
constexpr int kTuneMinRuns = 5, kTuneMaxRuns = 30;
constexpr double kTuneAnnounceSeconds = 1.0;

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

  // Autotuning (see the file comment of GemmEngine.h).
  GemmAutotune autotune = GemmAutotune::Off;
  /// Where choices persist; nullopt when there is no cache directory.
  std::optional<GemmTuneCache> tuneCache;
  std::optional<CudaModule> tuneModule;
  CUfunction tuneFill = nullptr;
  double tuneSeconds = 0;
  int tunedShapes = 0;
  bool announced = false;
  bool storeWarned = false;

  ~Impl() {
    if (handle)
      cublasLtDestroy(handle);
  }

  size_t scratchSize() const {
    return scratch.empty() ? 0 : scratch.back().size();
  }

  StatusOr<Plan *> plan(const GemmDesc &desc, const GemmOperands *operands,
                        bool tune);
  StatusOr<std::unique_ptr<Plan>> makePlan(const PlanKey &key, bool tune);
  Status makeLtMatmul(Plan &plan, const PlanKey &key, bool outerVector,
                      bool tune, bool *unsupported);
  const void *scalePlaceholder() const;
  int tuneAlgorithm(Plan &plan, const PlanKey &key,
                    const std::vector<cublasLtMatmulHeuristicResult_t> &results,
                    int first);
  StatusOr<std::vector<double>>
  timeCandidates(Plan &plan,
                 const std::vector<cublasLtMatmulHeuristicResult_t> &results,
                 const std::vector<int> &indices);
  Status loadTuneFill();
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

const void *GemmEngine::Impl::scalePlaceholder() const {
  return workspace ? reinterpret_cast<const void *>(workspace->pointer())
                   : reinterpret_cast<const void *>(uintptr_t(256));
}

Status GemmEngine::Impl::loadTuneFill() {
  if (tuneFill)
    return Status::success();
  CompileOptions compile;
  compile.arch = context->info().arch();
  StatusOr<CompiledKernel> compiled =
      compileKernel({"halo_gemm_tune_fill", kTuneFillSource, {}}, compile);
  if (!compiled.ok())
    return compiled.status();
  StatusOr<CudaModule> module = CudaModule::load(*driver, compiled->image);
  if (!module.ok())
    return module.status();
  StatusOr<CUfunction> function = module->function("halo_gemm_tune_fill");
  if (!function.ok())
    return function.status();
  tuneModule.emplace(std::move(*module));
  tuneFill = *function;
  return Status::success();
}

namespace {

/// A private stream and events for timing; waits for the stream before it
/// goes, so the scratch buffers declared before it are idle when freed.
struct TuneStream {
  const CudaDriver &driver;
  CUstream stream = nullptr;
  std::vector<CUevent> events;

  explicit TuneStream(const CudaDriver &d) : driver(d) {}
  ~TuneStream() {
    if (stream) {
      (void)driver.cuStreamSynchronize(stream);
      (void)driver.cuStreamDestroy(stream);
    }
    for (CUevent event : events)
      (void)driver.cuEventDestroy(event);
  }
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

} // namespace

StatusOr<std::vector<double>> GemmEngine::Impl::timeCandidates(
    Plan &plan, const std::vector<cublasLtMatmulHeuristicResult_t> &results,
    const std::vector<int> &indices) {
  const GemmDesc &d = plan.desc;
  HALO_RETURN_IF_ERROR(loadTuneFill());

  // Scratch operands of the real sizes (rounded up to whole words).
  std::vector<DeviceBuffer> buffers;
  auto allocate = [&](int64_t bytes) -> StatusOr<CUdeviceptr> {
    size_t rounded = (size_t(std::max<int64_t>(bytes, 4)) + 3) / 4 * 4;
    StatusOr<DeviceBuffer> buffer = DeviceBuffer::allocate(*driver, rounded);
    if (!buffer.ok())
      return buffer.status();
    buffers.push_back(std::move(*buffer));
    return buffers.back().pointer();
  };
  size_t workspaceBytes = 0;
  for (int i : indices)
    workspaceBytes = std::max(workspaceBytes, results[i].workspaceSize);
  int64_t outBytes = d.M * d.N * gemmTypeSize(plan.gemmOut);
  StatusOr<CUdeviceptr> a = allocate(bytesA(d));
  StatusOr<CUdeviceptr> b = a.ok() ? allocate(bytesB(d)) : a;
  StatusOr<CUdeviceptr> out = b.ok() ? allocate(outBytes) : b;
  StatusOr<CUdeviceptr> scales =
      out.ok() ? allocate(std::max(d.M, d.N) * 4) : out;
  StatusOr<CUdeviceptr> work =
      scales.ok() ? allocate(int64_t(workspaceBytes)) : scales;
  if (!work.ok())
    return work.status();

  TuneStream tune(*driver);
  HALO_CU_RETURN_IF_ERROR(*driver,
                          cuStreamCreate(&tune.stream, CU_STREAM_NON_BLOCKING));
  tune.events.resize(size_t(kTuneMaxRuns) + 2);
  for (CUevent &event : tune.events)
    HALO_CU_RETURN_IF_ERROR(*driver, cuEventCreate(&event, CU_EVENT_DEFAULT));

  auto fill = [&](CUdeviceptr pointer, int64_t bytes, uint32_t mask,
                  uint32_t bits) -> Status {
    unsigned long long words = (std::max<int64_t>(bytes, 4) + 3) / 4;
    unsigned grid = unsigned(std::clamp<unsigned long long>(
        (words + 255) / 256, 1, uint64_t(context->info().smCount) * 16));
    void *params[] = {&pointer, &words, &mask, &bits};
    HALO_CU_RETURN_IF_ERROR(*driver,
                            cuLaunchKernel(tuneFill, grid, 1, 1, 256, 1, 1, 0,
                                           tune.stream, params, nullptr));
    return Status::success();
  };
  auto [maskA, bitsA] = randomPattern(d.aType);
  auto [maskB, bitsB] = randomPattern(d.bType);
  HALO_RETURN_IF_ERROR(fill(*a, bytesA(d), maskA, bitsA));
  HALO_RETURN_IF_ERROR(fill(*b, bytesB(d), maskB, bitsB));
  HALO_RETURN_IF_ERROR(fill(*scales, std::max(d.M, d.N) * 4, 0, 0x3F800000u));
  HALO_CU_RETURN_IF_ERROR(*driver,
                          cuMemsetD8Async(*out, 0, size_t(outBytes),
                                          tune.stream));

  LtMatmul &lt = *plan.lt;
  // Real scales for the timing; run() sets the caller's.
  const void *tuneScales = reinterpret_cast<const void *>(*scales);
  auto setScales = [&](const void *pointer) -> Status {
    for (cublasLtMatmulDescAttributes_t attribute :
         {CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
          CUBLASLT_MATMUL_DESC_B_SCALE_POINTER})
      HALO_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(
          lt.op, attribute, &pointer, sizeof(pointer)));
    return Status::success();
  };
  if (plan.ltScales)
    HALO_RETURN_IF_ERROR(setScales(tuneScales));

  const bool integer = d.aType == GemmType::INT8;
  const void *alpha = integer ? static_cast<const void *>(&plan.alphaI)
                              : static_cast<const void *>(&plan.alphaF);
  const void *beta = integer ? static_cast<const void *>(&plan.betaI)
                             : static_cast<const void *>(&plan.betaF);
  auto launch = [&](const cublasLtMatmulHeuristicResult_t &r) {
    // A' is the user's B, B' the user's A (mapToColumnMajor).
    return cublasLtMatmul(
        handle, lt.op, alpha, reinterpret_cast<const void *>(*b), lt.a,
        reinterpret_cast<const void *>(*a), lt.b, beta,
        reinterpret_cast<const void *>(*out), lt.c,
        reinterpret_cast<void *>(*out), lt.c, &r.algo,
        reinterpret_cast<void *>(*work), r.workspaceSize, tune.stream);
  };
  auto elapsed = [&](size_t from, size_t to) -> StatusOr<double> {
    float ms = 0;
    HALO_CU_RETURN_IF_ERROR(*driver, cuEventElapsedTime(&ms, tune.events[from],
                                                        tune.events[to]));
    return double(ms);
  };

  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> times(indices.size(), inf);
  double best = inf;
  for (size_t j = 0; j < indices.size(); ++j) {
    const cublasLtMatmulHeuristicResult_t &r = results[size_t(indices[j])];
    // The warm-up also loads the kernel; a refusal skips the candidate.
    if (launch(r) != CUBLAS_STATUS_SUCCESS)
      continue;
    HALO_CU_RETURN_IF_ERROR(*driver,
                            cuEventRecord(tune.events[0], tune.stream));
    if (launch(r) != CUBLAS_STATUS_SUCCESS)
      continue;
    HALO_CU_RETURN_IF_ERROR(*driver,
                            cuEventRecord(tune.events[1], tune.stream));
    HALO_CU_RETURN_IF_ERROR(*driver, cuEventSynchronize(tune.events[1]));
    StatusOr<double> first = elapsed(0, 1);
    if (!first.ok())
      return first.status();
    // Clearly slower than the best so far: one run is enough to know.
    if (*first > kTuneAbortRatio * best) {
      times[j] = *first;
      continue;
    }
    double perRun = std::max(*first, 1e-3);
    int warm = std::min(int(kTuneWarmMs / perRun), kTuneMaxWarm);
    int runs = std::clamp(int(kTuneTimedMs / perRun), kTuneMinRuns,
                          kTuneMaxRuns);
    bool failed = false;
    for (int k = 0; k < warm && !failed; ++k)
      failed = launch(r) != CUBLAS_STATUS_SUCCESS;
    HALO_CU_RETURN_IF_ERROR(*driver,
                            cuEventRecord(tune.events[1], tune.stream));
    std::vector<double> samples;
    for (int k = 1; k <= runs && !failed; ++k) {
      failed = launch(r) != CUBLAS_STATUS_SUCCESS;
      HALO_CU_RETURN_IF_ERROR(
          *driver, cuEventRecord(tune.events[size_t(k) + 1], tune.stream));
    }
    HALO_CU_RETURN_IF_ERROR(
        *driver, cuEventSynchronize(tune.events[size_t(runs) + 1]));
    if (failed)
      continue;
    for (int k = 1; k <= runs; ++k) {
      StatusOr<double> ms = elapsed(size_t(k), size_t(k) + 1);
      if (!ms.ok())
        return ms.status();
      samples.push_back(*ms);
    }
    times[j] = median(samples);
    best = std::min(best, times[j]);
  }
  if (plan.ltScales)
    HALO_RETURN_IF_ERROR(setScales(scalePlaceholder()));
  return times;
}

int GemmEngine::Impl::tuneAlgorithm(
    Plan &plan, const PlanKey &key,
    const std::vector<cublasLtMatmulHeuristicResult_t> &results, int first) {
  // Candidates after the heuristic's first, minus those that cannot run in
  // our workspace and split-K variants that sum their parts in a 16-bit D
  // (one rounding per part: worse numerics than the heuristic's choice).
  bool narrowOut = gemmTypeSize(plan.gemmOut) < 4;
  std::vector<int> indices{first};
  for (int i = first + 1; i < int(results.size()); ++i) {
    const cublasLtMatmulHeuristicResult_t &r = results[size_t(i)];
    if (r.state != CUBLAS_STATUS_SUCCESS ||
        r.workspaceSize > options.workspaceBytes)
      continue;
    LtAlgoConfig c = algoConfig(r.algo);
    if (narrowOut && c.splitK > 1 &&
        (c.reduction == CUBLASLT_REDUCTION_SCHEME_INPLACE ||
         c.reduction == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE))
      continue;
    indices.push_back(i);
  }
  if (indices.size() < 2)
    return first;

  GemmTuneKey tuneKey;
  const DeviceInfo &device = context->info();
  tuneKey.deviceName = device.name;
  tuneKey.ccMajor = device.ccMajor;
  tuneKey.ccMinor = device.ccMinor;
  tuneKey.smCount = device.smCount;
  tuneKey.ltVersion = cublasLtGetVersion();
  tuneKey.desc = plan.desc;
  tuneKey.plan = fmt::format("{} {}",
                             plan.info.path == GemmPath::Native ? "native"
                                                                : "epilogue",
                             plan.info.scaleHandling);
  tuneKey.alignA = key.alignA;
  tuneKey.alignB = key.alignB;
  tuneKey.alignC = key.alignC;
  tuneKey.workspaceBytes = options.workspaceBytes;
  std::string keyText = gemmTuneKeyText(tuneKey);

  auto use = [&](const GemmTuneRecord &record, const char *choice) {
    plan.info.choice = choice;
    plan.info.candidate = record.candidate;
    plan.info.candidates = record.candidates;
    plan.info.tunedMs = record.ms;
    plan.info.heuristicMs = record.heuristicMs;
    return record.candidate;
  };
  if (tuneCache) {
    std::string warning;
    if (std::optional<GemmTuneRecord> record =
            tuneCache->lookup(keyText, &warning)) {
      for (int i : indices)
        if (algoConfig(results[size_t(i)].algo) == record->algo) {
          record->candidate = i;
          return use(*record, "cached");
        }
      warning = fmt::format("cuBLASLt no longer offers the GEMM algorithm "
                            "stored in {} ({}); tuning again",
                            tuneCache->entryPath(keyText),
                            record->algo.text());
    }
    if (!warning.empty())
      warn(warning);
  }

  auto start = std::chrono::steady_clock::now();
  StatusOr<std::vector<double>> times = timeCandidates(plan, results, indices);
  tuneSeconds += std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - start)
                     .count();
  ++tunedShapes;
  if (!announced && tuneSeconds > kTuneAnnounceSeconds) {
    announced = true;
    fmt::print(stderr,
               "halo: tuning cuBLASLt algorithms for new GEMM shapes ({} so "
               "far, {:.1f} s); the choices are kept in {} for later starts "
               "(HALO_GEMM_AUTOTUNE=0 skips tuning)\n",
               tunedShapes, tuneSeconds,
               tuneCache ? tuneCache->directory() : std::string("no cache"));
  }
  if (!times.ok() || !std::isfinite((*times)[0])) {
    warn(fmt::format("GEMM autotuning failed for {}; using cuBLASLt's "
                     "heuristic choice: {}",
                     describe(plan.desc),
                     times.ok() ? "its first candidate did not run"
                                : times.status().message()));
    return first;
  }
  size_t best = 0;
  for (size_t j = 1; j < indices.size(); ++j)
    if ((*times)[j] < (*times)[best])
      best = j;
  // Near-ties keep the heuristic's choice: timing noise should not move it.
  if (!((*times)[best] < (*times)[0] * (1 - kTuneMargin)))
    best = 0;

  GemmTuneRecord record;
  record.key = keyText;
  record.algo = algoConfig(results[size_t(indices[best])].algo);
  record.candidate = indices[best];
  record.candidates = int(indices.size());
  record.ms = (*times)[best];
  record.heuristicMs = (*times)[0];
  if (tuneCache) {
    Status stored = tuneCache->store(record);
    if (!stored.ok() && !storeWarned) {
      storeWarned = true;
      warn(fmt::format("GEMM tuning results are not kept (later starts tune "
                       "again): {}",
                       stored.message()));
    }
  }
  return use(record, "tuned");
}

Status GemmEngine::Impl::makeLtMatmul(Plan &plan, const PlanKey &key,
                                      bool outerVector, bool tune,
                                      bool *unsupported) {
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
    const void *placeholder = scalePlaceholder();
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

  std::vector<cublasLtMatmulHeuristicResult_t> results(
      size_t(std::max(tune ? options.tuneCandidates : 8, 1)));
  int found = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle, lt.op, lt.a, lt.b, lt.c, lt.c, preference, int(results.size()),
      results.data(), &found);
  results.resize(size_t(std::max(found, 0)));
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
  if (tune)
    chosen = tuneAlgorithm(plan, key, results, chosen);
  lt.algo = results[size_t(chosen)].algo;
  lt.workspace = results[size_t(chosen)].workspaceSize;

  LtAlgoConfig config = algoConfig(lt.algo);
  plan.info.algoId = config.algoId;
  plan.info.tileId = config.tileId;
  plan.info.stagesId = config.stagesId;
  plan.info.workspaceBytes = lt.workspace;
  return Status::success();
}

StatusOr<std::unique_ptr<Plan>>
GemmEngine::Impl::makePlan(const PlanKey &key, bool tune) {
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
    last = makeLtMatmul(*plan, key, outerVector, tune, &unsupported);
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

  const GemmPlanInfo &i = plan->info;
  plan->info.text = fmt::format(
      "{} {} scales={} algo={} tile={} stages={} workspace={}{} {}",
      i.path == GemmPath::Native ? "native" : "epilogue", i.form,
      i.scaleHandling, i.algoId, i.tileId, i.stagesId, i.workspaceBytes,
      i.scratchBytes ? fmt::format(" scratch={}", i.scratchBytes)
                     : std::string(),
      i.choice == "heuristic"
          ? i.choice
          : fmt::format("{}=#{}/{} ({:.4f} ms, heuristic's first {:.4f} ms)",
                        i.choice, i.candidate, i.candidates, i.tunedMs,
                        i.heuristicMs));
  return plan;
}

StatusOr<Plan *> GemmEngine::Impl::plan(const GemmDesc &desc,
                                        const GemmOperands *operands,
                                        bool tune) {
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
  tune = tune && (autotune == GemmAutotune::All ||
                  (autotune == GemmAutotune::Int8 &&
                   desc.aType == GemmType::INT8));
  StatusOr<std::unique_ptr<Plan>> made = makePlan(key, tune);
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
  StatusOr<GemmAutotune> autotune = parseAutotuneSetting(
      std::getenv("HALO_GEMM_AUTOTUNE"), options.autotune);
  if (!autotune.ok())
    return autotune.status();
  impl->autotune = *autotune;
  if (impl->autotune != GemmAutotune::Off) {
    StatusOr<std::string> directory = defaultKernelCacheDir();
    if (directory.ok())
      impl->tuneCache.emplace(std::move(*directory));
    else
      warn(fmt::format("GEMM tuning results are not kept (every start tunes "
                       "again): {}",
                       directory.status().message()));
  }
  return std::unique_ptr<GemmEngine>(new GemmEngine(std::move(impl)));
}

Status GemmEngine::prepare(const GemmDesc &desc,
                           const GemmOperands *operands) {
  return impl_->plan(desc, operands, true).status();
}

StatusOr<GemmPlanInfo> GemmEngine::planInfo(const GemmDesc &desc,
                                            const GemmOperands *operands) {
  StatusOr<Plan *> plan = impl_->plan(desc, operands, true);
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

  // Not tuned: this may be inside a graph capture.
  StatusOr<Plan *> found = impl_->plan(desc, &ops, false);
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
