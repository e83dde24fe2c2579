//===- Pipeline.cpp - haloc's stages and the passes between them ----------===//
#include "compiler/pipeline/Pipeline.h"

#include "passes/Passes.h"

namespace halo {

void buildPipeline(mlir::PassManager &pm, Stage stopAfter, bool returnGrads) {
  if (stopAfter == Stage::Halo)
    return;
  // Cuda and Program both run the whole pipeline; they differ in the output.
  // Differentiate first: placement must see all three GEMMs of each linear.
  pm.addPass(createHaloAutodiff(HaloAutodiffOptions{returnGrads}));
  if (stopAfter == Stage::Train)
    return;
  // The level and precision come from the module's halo.placement attribute,
  // which haloc fills from the model file and its --level/--precision flags.
  pm.addPass(createHaloPlaceRotations());
  // Merge the forward's rotated 8-bit operands into the backward GEMMs.
  pm.addPass(createHaloSimplify());
  // Summed gradients are un-rotated once (changes rounding, so after the
  // bit-exact simplification and kept out of it).
  pm.addPass(createHaloFactorRotations());
  if (stopAfter == Stage::Placed)
    return;
  // K-major 8-bit GEMM operands, before fusion folds the transposes into
  // the quantize kernels.
  pm.addPass(createHaloLegalizeGemmLayouts());
  // Summed gradients are added by the GEMMs that produce them (before fusion,
  // so no add kernel is formed).
  pm.addPass(createHaloAccumulateGemms());
  // Kernels decide which values reach memory at all.
  pm.addPass(createHaloFuse());
  // Last: the plan must see the final set of values.
  pm.addPass(createHaloPlanMemory());
}

} // namespace halo
