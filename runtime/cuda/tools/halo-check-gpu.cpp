//===- halo-check-gpu.cpp - The GPU executor against the CPU oracle -------===//
//
// halo-check-gpu <program.halo>: runs a compiled program on the GPU
// (CudaFunction) and on the CPU oracle (cpu::Interpreter) from the same
// initial state and batches, in two parts:
//
//  1. per kernel: each schedule step of train_step (and forward) runs alone;
//     its inputs, downloaded just before it runs, feed the oracle on the
//     step's ops only, so every kernel and GEMM is judged on identical inputs
//     and errors never compound;
//  2. whole steps: N train steps as the replayed CUDA graph against the full
//     oracle: loss and grad norm per step, every gradient at step 1 (programs
//     compiled with --return-grads), every parameter after N steps.
//
// Tolerances are argued here and in docs/validation.md ("GPU vs oracle").
// The exit status is 0 only when every check passes.
//
//===----------------------------------------------------------------------===//
#include "frontend/config/ModelConfig.h"
#include "runtime/cpu/Interpreter.h"
#include "runtime/cpu/Program.h"
#include "runtime/cuda/exec/CudaExecutor.h"
#include "runtime/io/TokenDataset.h"
#include "runtime/numerics/Float8.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>

namespace halo::checkgpu {
namespace {

using cpu::ElementType;
using Tensor = cpu::Tensor<float>;
using Json = nlohmann::ordered_json;

// Per kernel, on identical inputs. bf16 keeps 8 significant bits (rounding
// <= 2^-9 relative); fused kernels skip roundings of intermediates that the
// oracle does and GEMMs sum in another order: a few roundings per element.
constexpr double kBf16Tol = 1e-2;
// f32 results (GEMMs into f32, reductions, embedding_grad's atomics) differ by
// summation order only: ~sqrt(K) 2^-24, far below this.
constexpr double kF32Tol = 1e-4;
// Except FP8 GEMMs: Hopper's FP8 tensor cores keep fewer accumulator bits
// than FP32 between promotions (cuBLASLt without fast accumulation still
// promotes only every few k-blocks; DeepSeek-V3 section 3.3.2 measures ~14
// bits); measured on an H100: 2.7e-4 for FP8 GEMMs into f32.
constexpr double kFp8GemmF32Tol = 1e-3;
// Hadamard+quantize is bit-exact on identical inputs, but a reordered f32 sum
// may still move a value across a rounding midpoint: a few codes, one step.
constexpr double kCodesTol = 1e-3;
// absmax is order-free, so scales move only with such last-bit changes.
constexpr double kScaleTol = 1e-6;
// Whole steps: a value that lands on the other side of an 8-bit rounding
// midpoint changes everything downstream, so the two runs part by more than
// rounding. The oracle in float vs in double (the same semantics, float noise
// only) on examples/tiny.json, HALO-0/1/2 x FP8/INT8 and BF16, 10 steps:
// loss <= 1.3e-4, grad norm <= 3.4e-3, step-1 gradients <= 5.0e-2 (FP8
// HALO-2), parameters <= 8.9e-3 after moving ~0.2 from their init. Each bound
// leaves that floor >= 2x room yet sits far below a broken step's O(1) error.
constexpr double kLossTol = 2e-2, kNormTol = 5e-2, kGradTol = 1e-1, kParamTol = 3e-2;
/// Initialisation and random batches; any fixed seed does, since the GPU and
/// the oracle start from the same host arrays.
constexpr uint64_t kSeed = 0x48414c4f;

constexpr const char *kUsage = R"(halo-check-gpu: check the GPU executor against the CPU oracle

Usage: halo-check-gpu <program.halo> [options]

Runs each schedule step (kernel or GEMM) of train_step and forward alone on the
GPU and on the oracle with the same inputs, then whole training steps (CUDA
graph) against the oracle. Exits 0 only if every check passes.

Options:
  --data <file>    token dataset for the batches (default: random tokens)
  --steps N        whole training steps to compare (default 10)
  --kernels-only   only the per-kernel check
  --steps-only     only the whole-step check
  --report <file>  write every step's numbers as JSON
  --help           show this text

Tolerances (docs/validation.md): per kernel, rel L2 of bf16 outputs <= 1e-2,
f32 <= 1e-4 (FP8 GEMMs 1e-3), scales <= 1e-6, 8-bit codes: <= 1e-3 differ, by one step at most;
whole steps: loss rel <= 2e-2 and grad norm rel <= 5e-2 per step, gradients
rel L2 <= 1e-1 at step 1, parameters rel L2 <= 3e-2 after N steps.
)";

struct Options {
  std::string program, data, report;
  int64_t steps = 10;
  bool kernels = true, wholeSteps = true, help = false;
};

StatusOr<Options> parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (arg == "--kernels-only" || arg == "--steps-only") {
      (arg == "--kernels-only" ? o.wholeSteps : o.kernels) = false;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (!o.program.empty())
        return Status::error(fmt::format("unexpected argument '{}' (the program is '{}')", arg,
                                         o.program));
      o.program = arg;
      continue;
    }
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::error(fmt::format("{} needs a value; see --help", arg));
    }
    if (arg == "--data") {
      o.data = value;
    } else if (arg == "--report") {
      o.report = value;
    } else if (arg == "--steps") {
      char *end = nullptr;
      o.steps = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end || o.steps < 1 || o.steps > 1000000)
        return Status::error(
            fmt::format("--steps: expected an integer in [1, 1000000], got '{}'", value));
    } else {
      return Status::error(fmt::format("unknown option '{}'; see --help", arg));
    }
  }
  if (o.program.empty())
    return Status::error("missing the program file; usage: halo-check-gpu <program.halo> "
                         "[--data tokens.bin] (see --help)");
  if (!o.kernels && !o.wholeSteps)
    return Status::error("--kernels-only and --steps-only exclude each other");
  return o;
}

//===----------------------------------------------------------------------===//
// Host values
//===----------------------------------------------------------------------===//

uint64_t fnv1a64(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ull;
  return h;
}

/// The inputs of `fn`: parameters per their init, seeded by their HF name so
/// that forward and train_step see the same numbers; all else 0.
std::vector<Tensor> initialInputs(const cpu::Function &fn, double stddev) {
  std::vector<Tensor> inputs;
  for (const cpu::Binding &b : fn.inputs) {
    const cpu::ValueInfo &info = fn.values[b.value];
    Tensor t = Tensor::zeros(info.type, info.shape);
    if (b.isParam() && (b.state.empty() || b.state == "param")) {
      std::mt19937_64 rng(kSeed ^ fnv1a64(b.param));
      std::normal_distribution<float> normal(0.0f, float(stddev));
      for (float &x : t.data)
        x = b.init == "ones" ? 1.0f : b.init == "normal" ? normal(rng) : 0.0f;
    }
    inputs.push_back(std::move(t));
  }
  cpu::deriveComputeCopies(fn, inputs);
  return inputs;
}

/// Token batches: drawn from the dataset as halo-run does, or uniform ids.
struct Batches {
  const frontend::ModelConfig &cfg;
  std::optional<io::TokenDataset> data;

  /// Sets fn's tokens, targets and (if any) step inputs for step `step`.
  Status fill(const cpu::Function &fn, std::vector<Tensor> &inputs, int64_t step) const {
    int64_t tok = fn.findInput("tokens"), tgt = fn.findInput("targets"), stp = fn.findInput("step");
    if (tok < 0 || tgt < 0)
      return Status::error(fmt::format("{} has no tokens/targets inputs; recompile with haloc",
                                       fn.name));
    if (stp >= 0)
      inputs[stp].ints[0] = int32_t(step);
    std::vector<int32_t> &tokens = inputs[tok].ints, &targets = inputs[tgt].ints;
    int64_t B = cfg.train.batchSize, S = cfg.train.seqLen;
    if (int64_t(tokens.size()) != B * S)
      return Status::error(fmt::format("{} reads {} tokens but the model says batch {} x seq {}",
                                       fn.name, tokens.size(), B, S));
    if (data)
      return data->fillBatch(B, S, kSeed, uint64_t(step), tokens.data(), targets.data());
    std::mt19937_64 rng(kSeed + uint64_t(step));
    std::uniform_int_distribution<int32_t> id(0, int32_t(cfg.model.vocabSize) - 1);
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = id(rng);
      targets[i] = id(rng);
    }
    return Status::success();
  }
};

/// Host tensor (8-bit types as code values) -> device bytes, and back.
std::vector<uint8_t> toDevice(const Tensor &t) {
  size_t width = cuda::elementBytes(t.type);
  size_t n = t.type == ElementType::I32 ? t.ints.size() : t.data.size();
  std::vector<uint8_t> out(n * width);
  for (size_t i = 0; i < n; ++i) {
    uint8_t *p = &out[i * width];
    if (t.type == ElementType::BF16) {
      uint16_t bits = numerics::floatToBF16(t.data[i]);
      std::memcpy(p, &bits, 2);
    } else if (t.type == ElementType::F32) {
      std::memcpy(p, &t.data[i], 4);
    } else if (t.type == ElementType::I32) {
      std::memcpy(p, &t.ints[i], 4);
    } else {
      *p = t.type == ElementType::I8 ? uint8_t(numerics::floatToInt8(t.data[i]))
                                     : numerics::floatToE4M3(t.data[i]);
    }
  }
  return out;
}

Tensor fromDevice(const std::vector<uint8_t> &bytes, const cpu::ValueInfo &info) {
  Tensor t = Tensor::zeros(info.type, info.shape);
  size_t width = cuda::elementBytes(info.type);
  for (int64_t i = 0; i < info.numel; ++i) {
    const uint8_t *p = &bytes[i * width];
    if (info.type == ElementType::BF16) {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      t.data[i] = numerics::bf16ToFloat(bits);
    } else if (info.type == ElementType::F32) {
      std::memcpy(&t.data[i], p, 4);
    } else if (info.type == ElementType::I32) {
      std::memcpy(&t.ints[i], p, 4);
    } else {
      t.data[i] = info.type == ElementType::I8 ? float(int8_t(*p)) : numerics::e4m3ToFloat(*p);
    }
  }
  return t;
}

//===----------------------------------------------------------------------===//
// The GPU
//===----------------------------------------------------------------------===//

/// Context, stream, GEMM engine and the program's kernels. Every copy goes
/// through the stream and waits for it: a non-blocking stream does not order
/// itself with the synchronous copies of the legacy stream.
struct Gpu {
  explicit Gpu(cuda::CudaContext c) : context(std::move(c)) {}
  ~Gpu() {
    if (stream)
      (void)context.driver().cuStreamDestroy(stream);
  }
  Status sync() {
    HALO_CU_RETURN_IF_ERROR(context.driver(), cuStreamSynchronize(stream));
    return Status::success();
  }
  Status upload(CUdeviceptr to, const Tensor &t) {
    std::vector<uint8_t> bytes = toDevice(t);
    HALO_CU_RETURN_IF_ERROR(context.driver(),
                            cuMemcpyHtoDAsync(to, bytes.data(), bytes.size(), stream));
    return sync(); // `bytes` must outlive the copy
  }
  StatusOr<Tensor> download(const cuda::CudaFunction &f, int64_t value) {
    CUdeviceptr p = f.valuePointer(value);
    if (!p)
      return Status::error(fmt::format("value {} has no device buffer", value));
    std::vector<uint8_t> bytes(f.valueBytes(value));
    HALO_CU_RETURN_IF_ERROR(context.driver(),
                            cuMemcpyDtoHAsync(bytes.data(), p, bytes.size(), stream));
    HALO_RETURN_IF_ERROR(sync());
    return fromDevice(bytes, f.function().values[value]);
  }
  StatusOr<std::unique_ptr<cuda::CudaFunction>>
  load(const cpu::Program &program, const cpu::Function &fn, const std::vector<Tensor> &inputs) {
    StatusOr<std::unique_ptr<cuda::CudaFunction>> f =
        cuda::CudaFunction::create(context, *gemms, *modules, program, fn);
    for (size_t i = 0; f.ok() && i < inputs.size(); ++i)
      HALO_RETURN_IF_ERROR(upload((*f)->input(i), inputs[i]));
    return f;
  }

  cuda::CudaContext context;
  CUstream stream = nullptr;
  std::unique_ptr<cuda::GemmEngine> gemms;
  std::unique_ptr<cuda::CudaModules> modules;
};

StatusOr<std::unique_ptr<Gpu>> openGpu(const cpu::Program &program) {
  StatusOr<const cuda::CudaDriver *> driver = cuda::CudaDriver::load();
  if (!driver.ok()) {
    std::string why = driver.status().message();
    return Status::error(why.substr(0, why.find("; hint:")) + // its hint is --device cpu
                         "; halo-check-gpu compares the GPU with the oracle, so it needs an "
                         "NVIDIA GPU and driver");
  }
  StatusOr<cuda::CudaContext> context = cuda::CudaContext::create(**driver, 0);
  if (!context.ok())
    return context.status();
  auto gpu = std::make_unique<Gpu>(std::move(*context));
  HALO_CU_RETURN_IF_ERROR(**driver, cuStreamCreate(&gpu->stream, CU_STREAM_NON_BLOCKING));
  StatusOr<std::unique_ptr<cuda::GemmEngine>> gemms = cuda::GemmEngine::create(gpu->context);
  if (!gemms.ok())
    return gemms.status();
  gpu->gemms = std::move(*gemms);
  StatusOr<std::unique_ptr<cuda::CudaModules>> modules =
      cuda::CudaModules::load(gpu->context, program);
  if (!modules.ok())
    return modules.status();
  gpu->modules = std::move(*modules);
  return gpu;
}

//===----------------------------------------------------------------------===//
// Comparison
//===----------------------------------------------------------------------===//

enum class Metric { Codes, Scales, Bf16, F32, Ints };
const char *const kMetricNames[] = {"codes", "scales", "bf16", "f32", "i32"};
const double kMetricTols[] = {kCodesTol, kScaleTol, kBf16Tol, kF32Tol, 0};

struct Diff {
  /// Codes and i32: the fraction of elements that differ. Floats: relative
  /// L2 error (absolute when the oracle's tensor is all zero). +inf when a
  /// non-finite value does not match.
  double error = 0;
  /// Largest |gpu - cpu|; for codes, in code steps.
  double maxAbs = 0;
  bool pass = false;
};

/// Signed index of an 8-bit code, so that adjacent codes differ by one.
double codeIndex(float code, ElementType type) {
  if (type == ElementType::I8)
    return code;
  uint8_t b = numerics::floatToE4M3(code);
  return (b & 0x80) ? -double(b & 0x7F) : double(b);
}

Diff compare(const Tensor &gpu, const Tensor &cpu, Metric metric, double tol) {
  Diff d;
  bool ints = metric == Metric::Ints, codes = metric == Metric::Codes, mismatch = false;
  size_t n = ints ? cpu.ints.size() : cpu.data.size(), differing = 0;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double c = ints ? cpu.ints[i] : cpu.data[i], g = ints ? gpu.ints[i] : gpu.data[i];
    if (!std::isfinite(c) || !std::isfinite(g)) {
      mismatch |= !(c == g || (std::isnan(c) && std::isnan(g)));
      continue;
    }
    double delta = codes ? codeIndex(float(g), gpu.type) - codeIndex(float(c), cpu.type) : g - c;
    differing += delta != 0;
    d.maxAbs = std::max(d.maxAbs, std::abs(delta));
    num += delta * delta;
    den += c * c;
  }
  if (codes || ints)
    d.error = n ? double(differing) / double(n) : 0;
  else
    d.error = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (mismatch)
    d.error = INFINITY;
  d.pass = d.error <= tol && (!codes || d.maxAbs <= 1);
  return d;
}

/// The worse of two errors, NaN being the worst of all.
double worse(double a, double b) { return std::isnan(a) || a > b ? a : b; }

//===----------------------------------------------------------------------===//
// Part 1: per kernel
//===----------------------------------------------------------------------===//

struct Report {
  Json json = Json::object();
  bool pass = true;
};

/// What schedule step `s` reads and writes: a kernel's boundary values, or
/// the operands and results of a GEMM/constant step.
Status stepValues(const cpu::Function &fn, const cpu::ScheduleStep &s, std::vector<int64_t> &ins,
                  std::vector<int64_t> &outs) {
  std::set<int64_t> produced;
  ins.clear();
  outs.clear();
  for (int64_t i = s.firstOp; i < s.firstOp + s.numOps; ++i) {
    for (int64_t v : fn.ops[i].operands)
      if (!produced.count(v) && std::find(ins.begin(), ins.end(), v) == ins.end())
        ins.push_back(v);
    produced.insert(fn.ops[i].results.begin(), fn.ops[i].results.end());
    outs.insert(outs.end(), fn.ops[i].results.begin(), fn.ops[i].results.end());
  }
  if (s.kernel.empty())
    return Status::success();
  for (int64_t v : ins) // the oracle needs every operand from outside
    if (std::find(s.inputs.begin(), s.inputs.end(), v) == s.inputs.end())
      return Status::error(fmt::format("kernel {} reads value {}, which its schedule step does "
                                       "not list as an input", s.kernel, v));
  ins = s.inputs;
  outs = s.outputs;
  return Status::success();
}

/// A function of just the step's ops, with positional inputs and outputs.
cpu::Function stepFunction(const cpu::Function &fn, const cpu::ScheduleStep &s,
                           const std::vector<int64_t> &ins, const std::vector<int64_t> &outs) {
  cpu::Function sub;
  sub.name = fmt::format("{} ops [{}, {})", fn.name, s.firstOp, s.firstOp + s.numOps);
  sub.values = fn.values;
  for (auto [values, bindings] : {std::pair{&ins, &sub.inputs}, {&outs, &sub.outputs}})
    for (int64_t v : *values) {
      bindings->emplace_back();
      bindings->back().value = v;
    }
  sub.ops.assign(fn.ops.begin() + s.firstOp, fn.ops.begin() + s.firstOp + s.numOps);
  return sub;
}

/// "hadamard_quantize" for kernels; "qmatmul fwd", "constant" for the rest.
std::string groupOf(const cpu::Program &program, const cpu::Function &fn,
                    const cpu::ScheduleStep &s) {
  if (!s.kernel.empty())
    return program.cudaKernels.at(s.kernel).kind;
  const cpu::Op &op = fn.ops[s.firstOp];
  return std::string(cpu::toString(op.kind)) + (op.attrs.role.empty() ? "" : " " + op.attrs.role);
}

struct Group {
  int steps = 0, failed = 0;
  std::map<Metric, Diff> worst;
};

/// Runs schedule step `i` on the GPU (always: later steps read its outputs)
/// and on the oracle; adds its outputs' numbers to `record` and `group`. A
/// step that cannot be compared fails in `record`; GPU errors end the check.
Status checkStep(Gpu &gpu, cuda::CudaFunction &f, size_t i, const std::set<int64_t> &scales,
                 Json &record, Group &group) {
  const cpu::Function &fn = f.function();
  const cpu::ScheduleStep &s = fn.schedule[i];
  std::vector<int64_t> ins, outs;
  Status valid = stepValues(fn, s, ins, outs);
  for (const std::vector<int64_t> *list : {&ins, &outs})
    for (int64_t v : *list)
      if (valid.ok() && !f.valuePointer(v))
        valid = Status::error(fmt::format("value {} has no device buffer", v));
  std::vector<Tensor> hostIns; // before the step runs: AdamW overwrites its operands
  for (size_t k = 0; valid.ok() && k < ins.size(); ++k) {
    StatusOr<Tensor> t = gpu.download(f, ins[k]);
    if (!t.ok())
      return t.status();
    hostIns.push_back(std::move(*t));
  }
  HALO_RETURN_IF_ERROR(f.runSteps(i, i + 1, gpu.stream));
  HALO_RETURN_IF_ERROR(gpu.sync());
  StatusOr<std::vector<Tensor>> expected = std::vector<Tensor>();
  // A fused Hadamard+quantize kernel keeps the rotated tensor in FP32 (it
  // never goes to memory), where the unfused graph rounds it to BF16; its
  // oracle therefore runs exact (its inputs are already BF16 values), and
  // the codes must then be bit-identical.
  const std::string &kind = record["group"].get_ref<const std::string &>();
  bool fp32Rotation = kind == "hadamard_quantize" || kind == "hadamard_quantize_plain";
  if (valid.ok())
    expected = cpu::Interpreter<float>(stepFunction(fn, s, ins, outs),
                                       cpu::InterpreterOptions{fp32Rotation})
                   .run(hostIns);
  if (!valid.ok() || !expected.ok()) {
    std::string why = valid.ok() ? "the oracle: " + expected.status().message() : valid.message();
    record.update({{"error", why}, {"pass", false}});
    fmt::print("  step {} ({}): error: {}\n", i, record["group"].get<std::string>(), why);
    return Status::success();
  }

  for (size_t k = 0; k < outs.size(); ++k) {
    ElementType type = fn.values[outs[k]].type;
    Metric m = cpu::isQuantType(type)      ? Metric::Codes
               : type == ElementType::I32  ? Metric::Ints
               : scales.count(outs[k])     ? Metric::Scales
               : type == ElementType::BF16 ? Metric::Bf16
                                           : Metric::F32;
    StatusOr<Tensor> got = gpu.download(f, outs[k]);
    if (!got.ok())
      return got.status();
    double tol = kMetricTols[int(m)];
    if (m == Metric::F32 && s.kernel.empty() &&
        fn.ops[s.firstOp].kind == cpu::OpKind::QMatmul &&
        fn.values[fn.ops[s.firstOp].operands[0]].type == ElementType::F8E4M3FN)
      tol = kFp8GemmF32Tol;
    Diff d = compare(*got, (*expected)[k], m, tol);
    Diff &w = group.worst[m];
    w.error = worse(w.error, d.error);
    w.maxAbs = worse(w.maxAbs, d.maxAbs);
    record["pass"] = record["pass"].get<bool>() && d.pass;
    record["outputs"].push_back({{"value", outs[k]}, {"type", cpu::toString(type)},
                                 {"metric", kMetricNames[int(m)]}, {"error", d.error},
                                 {"max_abs", d.maxAbs}, {"tol", tol},
                                 {"pass", d.pass}});
  }
  return Status::success();
}

Status checkKernels(Gpu &gpu, const cpu::Program &program, const cpu::Function &fn,
                    const std::vector<Tensor> &inputs, Report &report) {
  StatusOr<std::unique_ptr<cuda::CudaFunction>> f = gpu.load(program, fn, inputs);
  if (!f.ok())
    return f.status();
  std::set<int64_t> scales;
  for (const cpu::Op &op : fn.ops)
    if (op.kind == cpu::OpKind::Quantize)
      scales.insert(op.results[1]);

  fmt::print("{}: {} schedule steps, each alone on identical inputs\n", fn.name,
             fn.schedule.size());
  std::map<std::string, Group> groups;
  Json steps = Json::array();
  for (size_t i = 0; i < fn.schedule.size(); ++i) {
    std::string key = groupOf(program, fn, fn.schedule[i]);
    Group &group = groups[key];
    Json record = {{"step", i}, {"kernel", fn.schedule[i].kernel}, {"group", key},
                   {"pass", true}, {"outputs", Json::array()}};
    HALO_RETURN_IF_ERROR(checkStep(gpu, **f, i, scales, record, group));
    ++group.steps;
    group.failed += !record["pass"].get<bool>();
    steps.push_back(std::move(record));
  }
  report.json["kernels"][fn.name] = std::move(steps);
  for (const auto &[key, g] : groups) {
    Json &summary = report.json["groups"][fn.name][key];
    summary = {{"steps", g.steps}, {"failed", g.failed}};
    std::string line = fmt::format("  {:<20} {:>3}x", key, g.steps);
    for (const auto &[m, w] : g.worst) {
      summary[kMetricNames[int(m)]] = {{"error", w.error}, {"max_abs", w.maxAbs}};
      line += m == Metric::Codes
                  ? fmt::format("  codes {:.1e} differ (max {} step)", w.error, w.maxAbs)
                  : fmt::format("  {} {:.1e} (max|d| {:.1e})", kMetricNames[int(m)], w.error,
                                w.maxAbs);
    }
    fmt::print("{}  {}\n", line, g.failed ? fmt::format("FAIL ({} steps)", g.failed) : "PASS");
    report.pass &= g.failed == 0;
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Part 2: whole steps
//===----------------------------------------------------------------------===//

/// Per-tensor results: one summary line with the worst tensor.
void summarize(const Json &list, const std::string &what, double tol) {
  size_t worst = 0, failed = 0;
  for (size_t k = 0; k < list.size(); ++k) {
    failed += !list[k]["pass"].get<bool>();
    double e = list[k]["rel_l2"], w = list[worst]["rel_l2"];
    worst = worse(e, w) != w ? k : worst;
  }
  if (!list.empty())
    fmt::print("  {}: {} tensors, worst rel L2 {:.2e} ({}), tol {:.0e}  {}\n", what, list.size(),
               list[worst]["rel_l2"].get<double>(), list[worst]["param"].get<std::string>(), tol,
               failed ? fmt::format("FAIL ({} tensors)", failed) : "PASS");
}

Status checkSteps(Gpu &gpu, const cpu::Program &program, const frontend::ModelConfig &cfg,
                  const Batches &batches, int64_t numSteps, Report &report) {
  const cpu::Function &fn = *program.find("train_step");
  std::vector<Tensor> inputs = initialInputs(fn, cfg.model.initializerRange);
  const std::vector<Tensor> initial = inputs;
  StatusOr<std::unique_ptr<cuda::CudaFunction>> loaded = gpu.load(program, fn, inputs);
  if (!loaded.ok())
    return loaded.status();
  cuda::CudaFunction &f = **loaded;
  HALO_RETURN_IF_ERROR(f.resetGuard(gpu.stream));
  cpu::Interpreter<float> oracle(fn);
  std::vector<int64_t> feedback; // per output, the input it replaces (or -1)
  for (const cpu::Binding &out : fn.outputs)
    feedback.push_back(out.isParam() ? fn.findParamInput(out.param, out.state) : -1);

  fmt::print("train_step: {} steps on the GPU (CUDA graph) and on the oracle\n", numSteps);
  Json steps = Json::array(), grads = Json::array(), params = Json::array();
  bool pass = true;
  for (int64_t s = 1; s <= numSteps; ++s) {
    HALO_RETURN_IF_ERROR(batches.fill(fn, inputs, s));
    std::vector<std::vector<uint8_t>> staged; // the graph reads these inputs' buffers
    for (const char *name : {"tokens", "targets", "step"}) {
      int64_t i = fn.findInput(name);
      staged.push_back(toDevice(inputs[i]));
      HALO_CU_RETURN_IF_ERROR(gpu.context.driver(),
                              cuMemcpyHtoDAsync(f.input(i), staged.back().data(),
                                                staged.back().size(), gpu.stream));
    }
    HALO_RETURN_IF_ERROR(f.launchGraph(gpu.stream));
    HALO_RETURN_IF_ERROR(gpu.sync());
    StatusOr<std::vector<Tensor>> outs = oracle.run(inputs);
    if (!outs.ok())
      return Status::error(fmt::format("the oracle, step {}: {}", s, outs.status().message()));

    Json line = {{"step", s}};
    std::string text = fmt::format("  step {:>3}:", s);
    bool ok = true;
    for (auto [name, tol] : {std::pair{"loss", kLossTol}, {"grad_norm", kNormTol}}) {
      int64_t k = fn.findOutput(name);
      if (k < 0)
        continue;
      StatusOr<Tensor> got = gpu.download(f, fn.outputs[k].value);
      if (!got.ok())
        return got.status();
      double g = got->data[0], c = (*outs)[k].data[0];
      double rel = g == c ? 0 : std::abs(g - c) / std::abs(c);
      ok &= rel <= tol;
      line.update({{fmt::format("{}_gpu", name), g}, {fmt::format("{}_cpu", name), c},
                   {fmt::format("{}_rel", name), rel}});
      text += fmt::format(" {} gpu {:.5f} cpu {:.5f} rel {:.1e} |", name, g, c, rel);
    }
    line["pass"] = ok;
    pass &= ok;
    fmt::print("{} {}\n", text, ok ? "ok" : "FAIL");
    steps.push_back(std::move(line));

    for (size_t k = 0; s == 1 && k < fn.outputs.size(); ++k)
      if (fn.outputs[k].state == "grad") { // in the arena until the next launch
        StatusOr<Tensor> g = gpu.download(f, fn.outputs[k].value);
        if (!g.ok())
          return g.status();
        Diff d = compare(*g, (*outs)[k], Metric::F32, kGradTol);
        pass &= d.pass;
        grads.push_back({{"param", fn.outputs[k].param}, {"rel_l2", d.error},
                         {"max_abs", d.maxAbs}, {"pass", d.pass}});
      }
    for (size_t k = 0; k < feedback.size(); ++k)
      if (feedback[k] >= 0)
        inputs[feedback[k]] = std::move((*outs)[k]);
  }

  // AdamW updates in place: the parameters' input buffers hold step N.
  for (size_t i = 0; i < fn.inputs.size(); ++i) {
    const cpu::Binding &b = fn.inputs[i];
    if (!b.isParam() || b.state != "param")
      continue;
    StatusOr<Tensor> p = gpu.download(f, b.value);
    if (!p.ok())
      return p.status();
    Diff d = compare(*p, inputs[i], Metric::F32, kParamTol);
    // For scale: how far training moved the tensor (rel L2 to its init).
    Diff moved = compare(inputs[i], initial[i], Metric::F32, INFINITY);
    pass &= d.pass;
    params.push_back({{"param", b.param}, {"rel_l2", d.error}, {"max_abs", d.maxAbs},
                      {"moved_rel_l2", moved.error}, {"pass", d.pass}});
  }
  if (grads.empty())
    fmt::print("  gradients: not returned (compile with haloc --return-grads to compare them)\n");
  summarize(grads, "gradients at step 1", kGradTol);
  summarize(params, fmt::format("parameters after {} steps", numSteps), kParamTol);
  StatusOr<cuda::GuardReport> guard = f.readGuard(gpu.stream);
  if (!guard.ok())
    return guard.status();
  if (guard->skippedSteps || guard->badTokenId)
    fmt::print("  note: the GPU's overflow guard skipped {} steps{}\n", guard->skippedSteps,
               guard->badTokenId ? "; an embedding read an id outside the vocabulary" : "");
  report.json["whole_step"] = {{"steps", std::move(steps)},
                               {"gradients", std::move(grads)},
                               {"parameters", std::move(params)},
                               {"gpu_skipped_steps", guard->skippedSteps},
                               {"pass", pass}};
  report.pass &= pass;
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

Status runMain(const Options &o) {
  StatusOr<cpu::Program> program = cpu::readProgram(o.program);
  if (!program.ok())
    return program.status();
  StatusOr<frontend::ModelConfig> cfg =
      frontend::parseModelConfigString(program->modelJson, o.program + " (model)");
  if (!cfg.ok())
    return cfg.status();
  for (const char *input : {"tokens", "targets", "step"})
    if (program->find("train_step")->findInput(input) < 0)
      return Status::error(fmt::format("{}: train_step has no \"{}\" input; recompile with haloc",
                                       o.program, input));
  Batches batches{*cfg, std::nullopt};
  if (!o.data.empty()) {
    StatusOr<io::TokenDataset> data = io::TokenDataset::open(o.data);
    if (!data.ok())
      return data.status();
    HALO_RETURN_IF_ERROR(data->validateVocab(uint32_t(cfg->model.vocabSize)));
    batches.data = std::move(*data);
  }

  StatusOr<std::unique_ptr<Gpu>> gpu = openGpu(*program);
  if (!gpu.ok())
    return gpu.status();
  const cuda::DeviceInfo &device = (*gpu)->context.info();
  const cuda::CudaModules::Stats &stats = (*gpu)->modules->stats();
  fmt::print("halo-check-gpu: {} | {} | {} ({}), {} kernel programs ({} cached, {:.1f} s) | {}\n",
             o.program, cfg->describe(), device.name, device.arch(), stats.programs,
             stats.fromCache, stats.seconds, o.data.empty() ? "random tokens" : o.data);
  Report report;
  report.json.update({{"program", o.program}, {"device", device.name}});
  if (o.kernels)
    for (const char *name : {"train_step", "forward"})
      if (const cpu::Function *fn = program->find(name)) {
        std::vector<Tensor> inputs = initialInputs(*fn, cfg->model.initializerRange);
        HALO_RETURN_IF_ERROR(batches.fill(*fn, inputs, 1));
        HALO_RETURN_IF_ERROR(checkKernels(**gpu, *program, *fn, inputs, report));
      }
  if (o.wholeSteps)
    HALO_RETURN_IF_ERROR(checkSteps(**gpu, *program, *cfg, batches, o.steps, report));
  report.json["pass"] = report.pass;
  if (!o.report.empty()) {
    std::ofstream out(o.report);
    out << report.json.dump(1) << '\n';
    if (!out)
      return Status::error(
          fmt::format("--report {}: cannot write: {}", o.report, std::strerror(errno)));
  }
  fmt::print("{}: {}\n", o.program, report.pass ? "PASS" : "FAIL");
  return report.pass ? Status::success() : Status::error("some checks failed (see above)");
}

} // namespace
} // namespace halo::checkgpu

int main(int argc, char **argv) {
  using namespace halo;
  try {
    StatusOr<checkgpu::Options> options = checkgpu::parseOptions(argc, argv);
    if (options.ok() && options->help) {
      fmt::print("{}", checkgpu::kUsage);
      return 0;
    }
    Status status = options.ok() ? checkgpu::runMain(*options) : options.status();
    if (status.ok())
      return 0;
    fmt::print(stderr, "halo-check-gpu: error: {}\n", status.message());
  } catch (const std::exception &e) {
    fmt::print(stderr, "halo-check-gpu: error: {}\n", e.what());
  }
  return 1;
}
