//===- ProgramExport.h - halo IR -> program manifest ---------*- C++ -*-===//
//
// Serialises @train_step and @forward into the program file the runtime
// executes (docs/program-format.md). This is the compiler's only contract
// with the runtime, which never links MLIR.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_COMPILER_EXPORT_PROGRAMEXPORT_H
#define HALO_COMPILER_EXPORT_PROGRAMEXPORT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <nlohmann/json.hpp>

namespace halo {

/// The manifest of every exportable function in `module` ("train_step",
/// "forward"), plus the model config from the module's halo.model_config and
/// `cuda` (the emitter's cudaManifest; may be null) as the "cuda" section.
/// Emits a diagnostic and fails on ops or types the runtime cannot run.
mlir::FailureOr<nlohmann::json> exportProgram(mlir::ModuleOp module,
                                              const nlohmann::json &cuda = nullptr);

/// One function's manifest entry ({values, inputs, outputs, ops}, and, after
/// halo-fuse / halo-plan-memory, {schedule, arena_bytes, offsets}).
mlir::FailureOr<nlohmann::json> exportFunction(mlir::func::FuncOp func);

} // namespace halo

#endif // HALO_COMPILER_EXPORT_PROGRAMEXPORT_H
