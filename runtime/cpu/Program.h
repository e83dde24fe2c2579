//===- Program.h - Program files: read, validate, write --------*- C++ -*-===//
//
// A program file is the "HALOPROG" header plus a JSON manifest of functions
// (docs/program-format.md). readProgram checks everything that does not
// depend on data before anything runs: header, keys, value ids, and every
// op's name, attributes, operand/result counts, element types and shapes. The
// parsed Function is therefore safe to execute: the Interpreter only checks
// token ids at run time. MLIR-free; the compiler writes files with
// writeProgram.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CPU_PROGRAM_H
#define HALO_RUNTIME_CPU_PROGRAM_H

#include "halo/runtime/Status.h"
#include "runtime/cpu/Kernels.h"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace halo::cpu {

inline constexpr char kProgramMagic[8] = {'H', 'A', 'L', 'O',
                                          'P', 'R', 'O', 'G'};
/// 2: adds the "cuda" section and each function's schedule and memory plan.
inline constexpr uint32_t kProgramVersion = 2;
/// Magic, version and manifest length.
inline constexpr uint64_t kProgramHeaderBytes = 20;

enum class ElementType : uint8_t { BF16, F32, F8E4M3FN, I8, I32 };

/// The manifest spelling: "bf16", "f32", "f8E4M3FN", "i8", "i32".
std::string_view toString(ElementType type);
bool isFloatType(ElementType type); ///< bf16 or f32.
bool isQuantType(ElementType type); ///< f8E4M3FN or i8.

struct ValueInfo {
  ElementType type = ElementType::F32;
  std::vector<int64_t> shape; ///< [] is a 0-d scalar.
  int64_t numel = 1;
};

/// A function input or output: a data input/output (`name` set: "tokens",
/// "targets", "step", "loss", "grad_norm", "lr"), a parameter state (`param`
/// set), or neither (a positional value, as in functions exported for tests).
struct Binding {
  int64_t value = 0;
  std::string name;
  std::string param; ///< HF tensor name.
  std::string state; ///< "param", "exp_avg", "exp_avg_sq" or "compute" (BF16 copy).
  std::string init;  ///< "normal", "ones" or empty.
  bool frozen = false;

  bool isParam() const { return !param.empty(); }
};

enum class OpKind {
  Constant,
  Embedding,
  RmsNorm,
  Linear,
  Rope,
  Attention,
  Silu,
  Mul,
  Add,
  Cast,
  CrossEntropy,
  Matmul,
  EmbeddingGrad,
  RmsNormGrad,
  AttentionGrad,
  SiluGrad,
  CrossEntropyGrad,
  GlobalNorm,
  ClipCoef,
  LrSchedule,
  AdamW,
  Hadamard,
  Quantize,
  Dequantize,
  QMatmul,
  Transpose,
};

/// The manifest spelling ("rms_norm", ...).
std::string_view toString(OpKind kind);

enum class HadamardSide { Right, Left };
enum class Granularity { Tensor, Row, Col };

/// Every attribute any op takes; an op reads only its own (absent unit
/// attributes are false).
struct OpAttrs {
  double value = 0;        // constant
  double eps = 0;          // rms_norm(_grad), adamw
  int64_t seqLen = 0;      // rope, attention(_grad)
  int64_t headDim = 0;     // rope, attention(_grad)
  double theta = 0;        // rope
  bool inverse = false;    // rope
  int64_t batch = 0;       // attention(_grad)
  int64_t numHeads = 0;    // attention(_grad)
  int64_t numKvHeads = 0;  // attention(_grad)
  bool transposeA = false; // (q)matmul
  bool transposeB = false; // (q)matmul
  std::string layer;       // linear, (q)matmul: informational
  std::string role;        // (q)matmul: fwd, bwd_input, bwd_weight
  double maxNorm = 0;      // clip_coef
  double peakLr = 0;       // lr_schedule
  int64_t warmupSteps = 0; // lr_schedule
  int64_t totalSteps = 0;  // lr_schedule
  Schedule schedule = Schedule::Constant;
  double beta1 = 0, beta2 = 0, weightDecay = 0;  // adamw
  HadamardSide side = HadamardSide::Right;       // hadamard
  bool transposed = false;                       // hadamard
  Granularity granularity = Granularity::Tensor; // (de)quantize
};

struct Op {
  OpKind kind = OpKind::Constant;
  std::vector<int64_t> operands; ///< Value ids.
  std::vector<int64_t> results;  ///< Value ids.
  OpAttrs attrs;
  std::string loc; ///< The HF module, or empty.
};

/// The operand index of a (q)matmul's accumulator (result = acc + product),
/// or nothing when the GEMM has none.
std::optional<size_t> accumulatorOperand(const Op &op);

/// One step of a function's GPU schedule: a fused kernel (`kernel` set) or
/// an op left outside kernels (a GEMM or a constant). Either way it covers
/// the flattened ops [firstOp, firstOp + numOps).
struct ScheduleStep {
  std::string kernel;
  int64_t firstOp = 0;
  int64_t numOps = 0;
  std::vector<int64_t> inputs;  ///< Kernel inputs (value ids).
  std::vector<int64_t> outputs; ///< Kernel outputs (value ids).
};

struct Function {
  std::string name;
  std::vector<ValueInfo> values;
  std::vector<Binding> inputs;
  std::vector<Binding> outputs;
  std::vector<Op> ops;

  /// Kernel boundaries in execution order; empty for an unfused program.
  std::vector<ScheduleStep> schedule;
  /// The memory plan: arena size and, per value, its byte offset (-1: not
  /// in the arena: inputs, in-place updates, values inside kernels).
  int64_t arenaBytes = 0;
  std::vector<int64_t> offsets;
  /// Index into `inputs` of the data input `name`, or -1.
  int64_t findInput(std::string_view name) const;
  /// Index into `inputs` of the state of `param`, or -1.
  int64_t findParamInput(std::string_view param, std::string_view state) const;
  /// Index into `outputs` of the data output `name`, or -1.
  int64_t findOutput(std::string_view name) const;
};

/// A launch of generated CUDA code (runtime/cuda/kernels' LaunchSpec).
struct KernelLaunch {
  std::string entry;
  std::array<unsigned, 3> grid{1, 1, 1}, block{1, 1, 1};
  unsigned sharedBytes = 0;
  std::string signature;
};
struct KernelPart {
  std::string program; ///< Key into Program::cudaSources.
  std::vector<KernelLaunch> launches;
  uint64_t workspaceBytes = 0, scratchBytes = 0;
};
struct CudaKernel {
  std::string kind;
  std::vector<KernelPart> parts;
};

struct Program {
  /// The file read, or the display name given to parseProgramManifest.
  std::string path;
  /// The manifest's "model" object (canonical model file form), as JSON text.
  std::string modelJson;
  /// "train_step" (always present) and "forward" (optional).
  std::map<std::string, Function> functions;
  /// The "cuda" section: generated sources by program name and the kernels
  /// that the functions' schedules name (empty when compiled without it).
  std::map<std::string, std::string> cudaSources;
  std::map<std::string, CudaKernel> cudaKernels;
  /// The oldest GPU the kernels run on (compute capability x 10; haloc
  /// --gpu-arch); 0 when the file does not say (older files: any).
  int cudaTargetSm = 0;
  /// FP8 GEMMs that skip the FP32 promotion of their accumulators (haloc
  /// --fp8-fast-accum): "none" (also older files), "fwd" or "all".
  std::string cudaFp8FastAccum = "none";

  const Function *find(const std::string &name) const;
};

/// Reads and fully validates the program file at `path`.
StatusOr<Program> readProgram(const std::string &path);

/// Validates manifest JSON text; `displayName` stands for the file in
/// messages.
StatusOr<Program> parseProgramManifest(const std::string &manifestJson,
                                       const std::string &displayName);

/// Validates one Function object given as JSON text (tests build functions
/// by hand). `displayName` prefixes every message.
StatusOr<Function> parseFunction(const std::string &functionJson,
                                 const std::string &name,
                                 const std::string &displayName);

/// Writes header + `manifestJson` to `path` atomically (temp file, fsync,
/// rename). The text is written as given; it is not validated here.
Status writeProgram(const std::string &path, const std::string &manifestJson);

/// "[512, 64]" (and "[]" for a scalar), for messages.
std::string formatShape(const std::vector<int64_t> &shape);

} // namespace halo::cpu

#endif // HALO_RUNTIME_CPU_PROGRAM_H
