//===- Pipeline.h - haloc's stages and the passes between them -*- C++ -*-===//
#ifndef HALO_COMPILER_PIPELINE_PIPELINE_H
#define HALO_COMPILER_PIPELINE_PIPELINE_H

#include "mlir/Pass/PassManager.h"

namespace halo {

/// The stages haloc can stop after, in pipeline order.
enum class Stage {
  Halo,   // the frontend's forward graph
  Train,  // + halo-autodiff: @train_step
  Placed, // + halo-place-rotations, halo-simplify
  Exec,    // + halo-legalize-gemm-layouts, halo-fuse (exec.kernel), halo-plan-memory
  Cuda,    // Exec, each kernel emitted as CUDA C++ (compiler/codegen)
  Program  // Exec, exported for the runtime (compiler/export)
};

/// Adds the passes that take the frontend's forward graph to `stopAfter`.
/// `returnGrads` makes train_step also return the parameter gradients.
void buildPipeline(mlir::PassManager &pm, Stage stopAfter, bool returnGrads = false);

} // namespace halo

#endif // HALO_COMPILER_PIPELINE_PIPELINE_H
