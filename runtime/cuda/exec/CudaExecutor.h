//===- CudaExecutor.h - Run a compiled program Function on one GPU -*- C++ -*-===//
//
// The GPU counterpart of cpu::Interpreter. A CudaModules compiles every
// generated source of a program once (NVRTC, disk-cached) and loads it; a
// CudaFunction then turns one Function's schedule into a fixed list of
// commands over fixed device addresses:
//
//   * kernel steps: each launch of the step's generated parts, its
//     parameters bound by name ("x", "scale", "codes", ...) to the values
//     of the ops inside the step (the same ops the CUDA emitter read);
//   * GEMM steps (`qmatmul`, `matmul`, `linear`): GemmEngine calls;
//   * constants: filled once at set-up.
//
// Memory: one arena laid out by halo-plan-memory; a buffer per function
// input (parameters, moments, tokens, targets, step), owned here; AdamW
// updates in place; values a kernel needs but the plan does not place
// (attention's lse in `forward`, the unclipped norm) get small buffers of
// their own. One scratch buffer serves all kernels (one stream, so they
// never overlap); each kernel step has its own slice of one zeroed
// workspace.
//
// After prepare(), run() only enqueues work: no allocation and no host
// synchronisation, so the whole step is captured once as a CUDA graph
// (captureGraph) and replayed (launchGraph).
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_EXEC_CUDAEXECUTOR_H
#define HALO_RUNTIME_CUDA_EXEC_CUDAEXECUTOR_H

#include "runtime/cpu/Program.h"
#include "runtime/cuda/CudaContext.h"
#include "runtime/cuda/blas/GemmEngine.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace halo::cuda {

class TensorCoreAttention;

/// Bytes of one element of `type` on the device.
size_t elementBytes(cpu::ElementType type);

/// The loaded modules of a program's "cuda" section.
class CudaModules {
public:
  struct Stats {
    size_t programs = 0;
    size_t fromCache = 0;
    double seconds = 0;
  };

  /// Compiles (or takes from the kernel cache) and loads every source of
  /// `program` for the context's device.
  static StatusOr<std::unique_ptr<CudaModules>> load(const CudaContext &context,
                                                     const cpu::Program &program);

  /// The entry `entry` of generated program `name`.
  StatusOr<CUfunction> function(const std::string &name, const std::string &entry) const;
  const Stats &stats() const { return stats_; }

private:
  std::map<std::string, CudaModule> modules_;
  Stats stats_;
};

/// What the overflow guard saw since the last reset.
struct GuardReport {
  int skippedSteps = 0;
  int firstBadStep = 0;
  int lastBadStep = 0;
  /// Index into the global norm's tensors of the first non-finite
  /// gradient, or -1.
  int badTensor = -1;
  /// An embedding read a token id outside the vocabulary.
  bool badTokenId = false;
};

class CudaFunction {
public:
  static StatusOr<std::unique_ptr<CudaFunction>> create(const CudaContext &context,
                                                        GemmEngine &gemms,
                                                        const CudaModules &modules,
                                                        const cpu::Program &program,
                                                        const cpu::Function &function);
  ~CudaFunction();

  const cpu::Function &function() const { return function_; }

  /// The device buffer of function input `index` (function().inputs order).
  CUdeviceptr input(size_t index) const { return valuePointer(function_.inputs[index].value); }
  /// The device address of value `id` (inputs, arena values, outputs).
  CUdeviceptr valuePointer(int64_t id) const;
  size_t valueBytes(int64_t id) const;

  /// Enqueues the whole function on `stream`.
  Status run(CUstream stream);
  /// Runs only schedule steps [first, last) (per-kernel checks).
  Status runSteps(size_t first, size_t last, CUstream stream);
  size_t stepCount() const;

  /// Captures run() into a graph once; launchGraph replays it.
  Status captureGraph(CUstream stream);
  Status launchGraph(CUstream stream);

  /// train_step only: the overflow guard's counters (reads them: syncs).
  StatusOr<GuardReport> readGuard(CUstream stream);
  Status resetGuard(CUstream stream);
  /// Runs the function step by step and names the first op whose float
  /// result holds a NaN or infinity ("" if none). Debugging only: it runs
  /// the optimizer too, so the state moves on by one step.
  StatusOr<std::string> locateNonFinite(CUstream stream);
  /// The HF name of the global norm's tensor `index` (for messages).
  std::string gradientName(int index) const;

  /// Device bytes this function allocated (arena, inputs, buffers).
  size_t deviceBytes() const { return deviceBytes_; }
  /// Kernel launches and GEMMs per run.
  size_t launchCount() const;
  size_t gemmCount() const;

  struct Command;
  struct Step;

private:
  CudaFunction(const CudaContext &context, GemmEngine &gemms, const cpu::Function &function);
  Status prepare(const CudaModules &modules, const cpu::Program &program);
  StatusOr<CUdeviceptr> allocate(size_t bytes, bool zero);
  StatusOr<CUdeviceptr> pointerFor(int64_t id);
  Status bindKernel(const cpu::ScheduleStep &step, const cpu::CudaKernel &kernel,
                    const CudaModules &modules, Step &out);
  /// fp8FastAccum: the program's cuda.fp8_fast_accum ("none", "fwd", "all").
  Status bindGemm(const cpu::Op &op, const std::string &fp8FastAccum, Step &out);
  Status addGuard();
  /// One Custom command running attention(_grad) through
  /// TensorCoreAttention instead of the generated kernels (with
  /// HALO_ATTENTION=cublaslt).
  Status bindTensorCoreAttention(const cpu::Op &op, std::map<std::string, CUdeviceptr> &names,
                                 Step &out);

  const CudaContext *context_;
  GemmEngine *gemms_;
  cpu::Function function_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<CUdeviceptr> pointers_; ///< Per value; 0: not placed yet.
  CUdeviceptr arena_ = 0, workspace_ = 0, scratch_ = 0, guard_ = 0;
  size_t workspaceBytes_ = 0, workspaceUsed_ = 0, scratchBytes_ = 0, deviceBytes_ = 0;
  std::vector<Step> steps_;
  std::vector<std::string> normTensors_;
  std::unique_ptr<CudaModule> guardModule_;
  /// Tensor-core attention engines, one per attention shape (shared by the
  /// layers and by forward and backward: one stream, never overlapping).
  std::vector<std::unique_ptr<TensorCoreAttention>> attention_;
  CUgraph graph_ = nullptr;
  CUgraphExec graphExec_ = nullptr;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_EXEC_CUDAEXECUTOR_H
