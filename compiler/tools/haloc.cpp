//===- haloc.cpp - The halo compiler driver -------------------------------===//
//
// haloc <model.json> [--emit=<stage>] [-o <file>] [--level N] [--precision P]
//       [--moment-dtype f32|bf16] [--master-dtype f32|bf16]
//
// Reads a model description, builds the halo forward graph and runs the pass
// pipeline up to the requested stage. Like Toy's toyc it registers the MLIR
// pass-manager options, so --mlir-print-ir-after-all, --mlir-timing and the
// crash reproducer work here exactly as in halo-opt.
//
//===----------------------------------------------------------------------===//
#include "compiler/codegen/CudaEmitter.h"
#include "compiler/export/ProgramExport.h"
#include "compiler/pipeline/Pipeline.h"
#include "frontend/builder/LlamaBuilder.h"
#include "frontend/config/ModelConfig.h"
#include "runtime/cpu/Program.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <tuple>

using namespace halo;
namespace cl = llvm::cl;

static cl::OptionCategory haloCategory("haloc options");

static cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                                      cl::desc("<model.json | HF checkpoint folder>"),
                                      cl::cat(haloCategory));
static cl::opt<std::string> outputPath(
    "o",
    cl::desc("Output file: the program (default <model>.halo in the current directory), or "
             "the IR of an --emit stage ('-', the default there, is stdout)"),
    cl::value_desc("file"), cl::init(""), cl::cat(haloCategory));
static cl::opt<Stage> emitStage(
    "emit", cl::desc("What to produce"), cl::init(Stage::Program),
    cl::values(clEnumValN(Stage::Halo, "halo", "forward graph in the halo dialect"),
               clEnumValN(Stage::Train, "train",
                          "+ train_step: loss, backward and AdamW (halo-autodiff)"),
               clEnumValN(Stage::Placed, "placed",
                          "+ HALO rotations and quantization placed and simplified"),
               clEnumValN(Stage::Exec, "exec",
                          "+ fused exec.kernel regions and the memory plan"),
               clEnumValN(Stage::Cuda, "cuda",
                          "one self-contained .cu file per kernel and kernels.json, into "
                          "the -o directory"),
               clEnumValN(Stage::Program, "program",
                          "the training program halo-run executes (default)")),
    cl::cat(haloCategory));
static cl::opt<bool> returnGrads(
    "return-grads",
    cl::desc("train_step also returns every parameter gradient (for halo-run --dump-step)"),
    cl::init(false), cl::cat(haloCategory));
static cl::opt<int> levelOverride("level", cl::desc("HALO level 0|1|2 (overrides the file)"),
                                  cl::init(-1), cl::cat(haloCategory));
static cl::opt<std::string> precisionOverride(
    "precision", cl::desc("fp8|int8|bf16 (overrides the file)"), cl::init(""),
    cl::cat(haloCategory));
static cl::opt<std::string> momentDtypeOverride(
    "moment-dtype",
    cl::desc("f32|bf16: storage of AdamW's moments (overrides train.moment_dtype)"),
    cl::init(""), cl::cat(haloCategory));
static cl::opt<std::string> masterDtypeOverride(
    "master-dtype",
    cl::desc("f32|bf16: the trained weights as FP32 masters with BF16 compute copies, or in "
             "BF16 updated with stochastic rounding (overrides train.master_dtype)"),
    cl::init(""), cl::cat(haloCategory));

static cl::opt<std::string> fp8FastAccum(
    "fp8-fast-accum",
    cl::desc("FP8 GEMMs whose tensor-core accumulators skip the periodic FP32 promotion: fwd "
             "(default: the forward GEMMs, as Transformer Engine does), all, none"),
    cl::init("fwd"), cl::cat(haloCategory));

static cl::opt<std::string> gpuArch(
    "gpu-arch",
    cl::desc("oldest GPU the CUDA kernels must run on: sm_80, sm_89, sm_90 (default; enables "
             "Hopper-only kernels, and such a program refuses to load on an older GPU)"),
    cl::init("sm_90"), cl::cat(haloCategory));

/// --gpu-arch as compute capability x 10.
static std::optional<int> targetSm() {
  llvm::StringRef a = gpuArch;
  unsigned sm = 0;
  if (!a.consume_front("sm_") || a.getAsInteger(10, sm) || sm < 80 || sm > 200)
    return std::nullopt;
  return static_cast<int>(sm);
}

static int fail(const std::string &message) {
  llvm::WithColor::error(llvm::errs(), "haloc") << message << "\n";
  return 1;
}

/// --emit=cuda: <dir>/<program>.cu per generated kernel and <dir>/kernels.json
/// (each exec.kernel's parts and launches, in order).
static int writeCuda(mlir::ModuleOp module) {
  if (outputPath.empty() || outputPath == "-")
    return fail("--emit=cuda needs an output directory: -o <dir>");
  mlir::FailureOr<std::vector<EmittedKernel>> kernels = emitCudaKernels(module, *targetSm());
  if (mlir::failed(kernels))
    return 1;
  if (std::error_code ec = llvm::sys::fs::create_directories(outputPath))
    return fail("-o " + outputPath + ": " + ec.message());
  nlohmann::json cuda = cudaManifest(*kernels, *targetSm(), fp8FastAccum);
  auto write = [&](const std::string &file, const std::string &text) {
    std::string error;
    auto out = mlir::openOutputFile(outputPath + "/" + file, &error);
    if (!out)
      return fail(error);
    out->os() << text;
    out->keep();
    return 0;
  };
  for (auto &[program, source] : cuda["sources"].items())
    if (int rc = write(program + ".cu", source.get<std::string>()))
      return rc;
  if (int rc = write("kernels.json", cuda["kernels"].dump(1) + "\n"))
    return rc;
  llvm::outs() << "haloc: wrote " << cuda["sources"].size() << " CUDA sources for "
               << kernels->size() << " distinct kernels to " << outputPath << "\n";
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  // --help lists haloc's options and MLIR's (--mlir-*), not the hundreds of
  // LLVM backend flags linked in with libLLVM; --help-hidden shows all.
  for (auto &entry : cl::getRegisteredOptions()) {
    llvm::StringRef name = entry.getKey();
    bool ours = llvm::is_contained(entry.getValue()->Categories, &haloCategory);
    if (!ours && !name.starts_with("mlir-") && name != "help" && name != "version")
      entry.getValue()->setHiddenFlag(cl::Hidden);
  }
  cl::ParseCommandLineOptions(
      argc, argv,
      "haloc: compile a LLaMA model description into a HALO low-precision training "
      "step\n\nExamples:\n  haloc examples/tiny.json -o tiny.halo     # then: halo-run tiny.halo ...\n"
      "  haloc examples/tiny.json --emit=halo\n"
      "  haloc examples/llama-3-8b.json --emit=placed --level 2 --precision int8\n");

  if (!targetSm())
    return fail("--gpu-arch " + gpuArch + ": expected sm_NN with NN >= 80 (e.g. sm_80, sm_89, "
                "sm_90)");
  if (fp8FastAccum != "none" && fp8FastAccum != "fwd" && fp8FastAccum != "all")
    return fail("--fp8-fast-accum " + fp8FastAccum + ": expected none, fwd or all");
  StatusOr<frontend::ModelConfig> config = frontend::parseModelConfigFile(inputPath);
  if (!config.ok())
    return fail(config.status().message());
  std::optional<int> level;
  if (levelOverride != -1)
    level = levelOverride;
  std::optional<frontend::Precision> precision;
  if (!precisionOverride.empty()) {
    precision = frontend::parsePrecision(precisionOverride);
    if (!precision)
      return fail("--precision: unknown precision '" + precisionOverride +
                  "' (expected fp8, int8 or bf16)");
  }
  if (Status s = frontend::applyOverrides(*config, level, precision); !s.ok())
    return fail(s.message());
  for (auto [option, name, field] :
       {std::tuple{&momentDtypeOverride, "--moment-dtype", &config->train.momentDtype},
        std::tuple{&masterDtypeOverride, "--master-dtype", &config->train.masterDtype}}) {
    const std::string &value = *option;
    if (value == "f32" || value == "bf16")
      *field = value == "bf16" ? frontend::StateType::BF16 : frontend::StateType::F32;
    else if (!value.empty())
      return fail(std::string(name) + ": unknown type '" + value + "' (expected f32 or bf16)");
  }

  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *config);
  if (mlir::failed(mlir::verify(*module)))
    return fail("internal error: the frontend built invalid IR (please report)");

  mlir::PassManager pm(&context);
  if (mlir::failed(mlir::applyPassManagerCLOptions(pm)))
    return fail("invalid pass-manager options");
  buildPipeline(pm, emitStage, returnGrads);
  if (mlir::failed(pm.run(*module)))
    return 1; // The failing pass has printed its diagnostic.

  if (emitStage == Stage::Cuda)
    return writeCuda(*module);
  if (emitStage == Stage::Program) {
    mlir::FailureOr<std::vector<EmittedKernel>> kernels = emitCudaKernels(*module, *targetSm());
    if (mlir::failed(kernels))
      return 1;
    mlir::FailureOr<nlohmann::json> manifest =
        exportProgram(*module, cudaManifest(*kernels, *targetSm(), fp8FastAccum));
    if (mlir::failed(manifest))
      return 1;
    std::string path = outputPath;
    if (path.empty() || path == "-")
      path = llvm::sys::path::stem(llvm::sys::path::filename(inputPath)).str() + ".halo";
    if (Status s = cpu::writeProgram(path, manifest->dump()); !s.ok())
      return fail(s.message());
    const auto &fns = (*manifest)["functions"];
    llvm::outs() << "haloc: wrote " << path << " (" << config->describe() << "; train_step "
                 << fns["train_step"]["ops"].size() << " ops";
    if (fns.contains("forward"))
      llvm::outs() << ", forward " << fns["forward"]["ops"].size() << " ops";
    llvm::outs() << ")\n";
    if (auto step = module->lookupSymbol<mlir::func::FuncOp>("train_step"))
      if (auto arena = step->getAttrOfType<mlir::IntegerAttr>("halo.arena_bytes"))
        llvm::outs() << "haloc: train_step activation arena "
                     << llvm::format("%.1f", arena.getInt() / 1048576.0)
                     << " MiB (peak of intermediates by liveness; weights and optimizer "
                        "state not included)\n";
    return 0;
  }

  std::string error;
  auto output = mlir::openOutputFile(outputPath.empty() ? std::string("-") : std::string(outputPath), &error);
  if (!output)
    return fail(error);
  module->print(output->os());
  output->os() << "\n";
  output->keep();
  return 0;
}
