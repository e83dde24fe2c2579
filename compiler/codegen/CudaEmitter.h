//===- CudaEmitter.h - exec.kernel -> CUDA C++ sources --------*- C++ -*-===//
//
// Read-only over the IR (the prepare-then-print split: halo-fuse did all the
// IR surgery): each distinct exec.kernel becomes one or more self-contained
// CUDA sources from runtime/cuda/kernels' generators, plus the launches.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_COMPILER_CODEGEN_CUDAEMITTER_H
#define HALO_COMPILER_CODEGEN_CUDAEMITTER_H

#include "runtime/cuda/kernels/KernelTemplates.h"

#include "mlir/IR/BuiltinOps.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace halo {

/// The CUDA code of one distinct exec.kernel (by name): its parts run in
/// order (the optimizer kernel, for one, is several launches per tensor).
struct EmittedKernel {
  std::string name;
  std::string kind;
  /// The HF module of the first kernel with this name ("model.layers.0.mlp").
  std::string loc;
  std::vector<cuda::kernels::GeneratedKernel> parts;
};

/// The oldest GPU the kernels must run on, as compute capability x 10 (90 =
/// sm_90). Generators use features of newer GPUs only when the target has
/// them (sm_90: the thread-block-cluster left Hadamard).
constexpr int kDefaultTargetSm = 90;

/// Every distinct exec.kernel of every function, in first-use order. Fails
/// with a diagnostic naming the kernel for a kind without a generator.
mlir::FailureOr<std::vector<EmittedKernel>> emitCudaKernels(mlir::ModuleOp module,
                                                            int targetSm = kDefaultTargetSm);

/// The program file's "cuda" section: {"target_sm": N, "fp8_fast_accum":
/// "none"|"fwd"|"all", "sources": {program: source}, "kernels": {name:
/// {"kind", "parts": [{"program", "launches", ...}]}}}
/// (docs/program-format.md).
nlohmann::json cudaManifest(const std::vector<EmittedKernel> &kernels,
                            int targetSm = kDefaultTargetSm,
                            const std::string &fp8FastAccum = "fwd");

/// A simple elementwise kernel over `elements` values: `expr` reads the
/// float locals a (and b) and yields the float result, stored as `out`.
cuda::kernels::GeneratedKernel elementwiseKernel(const std::string &program, int64_t elements,
                                                 const std::vector<std::string> &inputs,
                                                 const std::string &output,
                                                 const std::string &expr);

/// [rows, cols] 8-bit codes -> [cols, rows], for codes that another kernel
/// also reads untransposed (32 x 32 tiles through shared memory).
cuda::kernels::GeneratedKernel transposeKernel(const std::string &program, int64_t rows,
                                              int64_t cols);

} // namespace halo

#endif // HALO_COMPILER_CODEGEN_CUDAEMITTER_H
