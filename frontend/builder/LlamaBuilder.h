//===- LlamaBuilder.h - Model description -> halo forward graph -*- C++ -*-===//
//
// Emits the forward graph of a LLaMA decoder as `func.func @forward` in the
// halo dialect, with parameters as function arguments named as in HF
// checkpoints. The training and HALO sections travel as module attributes
// (halo.train, halo.placement) so every later pass runs alone in halo-opt.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_FRONTEND_BUILDER_LLAMABUILDER_H
#define HALO_FRONTEND_BUILDER_LLAMABUILDER_H

#include "frontend/config/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace halo::frontend {

/// Builds `module { func.func @forward(%tokens, %targets, params...) -> loss }`.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardModule(mlir::MLIRContext &context,
                                                     const ModelConfig &config);

} // namespace halo::frontend

#endif // HALO_FRONTEND_BUILDER_LLAMABUILDER_H
