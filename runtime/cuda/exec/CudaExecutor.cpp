//===- CudaExecutor.cpp - Run a compiled program Function on one GPU ------===//
//
// Binding: each launch's signature ("const __nv_bfloat16* __restrict__ x,
// unsigned* ws, ...") is split into parameter names, and each name is looked
// up in a table built from the ops of the schedule step, per kernel kind.
// A name with no binding is an error naming the kernel, so a generator
// change that the executor does not know about fails at load, not silently.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/exec/CudaExecutor.h"

#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/exec/TensorCoreAttention.h"
#include "runtime/numerics/Float8.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

namespace halo::cuda {

using cpu::ElementType;
using cpu::OpKind;

size_t elementBytes(ElementType type) {
  switch (type) {
  case ElementType::BF16:
    return 2;
  case ElementType::F32:
  case ElementType::I32:
    return 4;
  case ElementType::F8E4M3FN:
  case ElementType::I8:
    return 1;
  }
  return 4;
}

namespace {

/// Device allocations are rounded up so vector loads never cross the end.
constexpr size_t kAlign = 256;
size_t roundUp(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

/// Guard counters: skipped steps, first and last bad step, first bad
/// gradient tag (INT_MAX: none), the embeddings' bad-id flag.
constexpr int kGuardInts = 5;
const int kGuardReset[kGuardInts] = {0, 0, 0, INT_MAX, 0};
constexpr size_t kBadTensorSlot = 3 * sizeof(int), kBadIdSlot = 4 * sizeof(int);

/// The overflow guard's bookkeeping, appended to train_step: one thread
/// reads the loss and the global norm the step produced.
constexpr const char *kGuardSource = R"(
extern "C" __global__ void halo_guard(const float* loss, const float* norm,
                                      const int* step, int* g) {
  const float l = *loss, n = norm ? *norm : 0.0f;
  if (!isfinite(l) || !isfinite(n)) {
    g[0] += 1;
    if (g[1] == 0)
      g[1] = *step;
    g[2] = *step;
  }
}
)";

struct Param {
  std::string name;
  bool pointer = true;
};

/// "const float* __restrict__ x, int tag" -> {x, pointer}, {tag, value}.
std::vector<Param> parseSignature(const std::string &signature) {
  std::vector<Param> params;
  size_t start = 0;
  while (start <= signature.size()) {
    size_t end = signature.find(',', start);
    if (end == std::string::npos)
      end = signature.size();
    std::string piece = signature.substr(start, end - start);
    size_t last = piece.find_last_not_of(" \t");
    if (last != std::string::npos) {
      size_t first = last;
      while (first > 0 && (std::isalnum(static_cast<unsigned char>(piece[first - 1])) ||
                           piece[first - 1] == '_'))
        --first;
      params.push_back({piece.substr(first, last - first + 1),
                        piece.find('*') != std::string::npos});
    }
    start = end + 1;
  }
  return params;
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

GemmType gemmType(ElementType type) {
  switch (type) {
  case ElementType::BF16:
    return GemmType::BF16;
  case ElementType::F32:
    return GemmType::FP32;
  case ElementType::F8E4M3FN:
    return GemmType::FP8E4M3;
  case ElementType::I8:
    return GemmType::INT8;
  case ElementType::I32:
    return GemmType::INT32;
  }
  return GemmType::BF16;
}

} // namespace

//===----------------------------------------------------------------------===//
// Modules
//===----------------------------------------------------------------------===//

StatusOr<std::unique_ptr<CudaModules>> CudaModules::load(const CudaContext &context,
                                                         const cpu::Program &program) {
  auto modules = std::make_unique<CudaModules>();
  if (program.cudaSources.empty())
    return Status::error(fmt::format(
        "{}: the program has no CUDA kernels (compiled without halo-fuse?); recompile "
        "with haloc",
        program.path));
  const DeviceInfo &device = context.info();
  if (device.ccMajor * 10 + device.ccMinor < program.cudaTargetSm)
    return Status::error(fmt::format(
        "{}: compiled for sm_{} and newer (haloc --gpu-arch), but {} is sm_{}{}; recompile "
        "with haloc --gpu-arch sm_{}{}",
        program.path, program.cudaTargetSm, device.name, device.ccMajor, device.ccMinor,
        device.ccMajor, device.ccMinor));
  auto start = std::chrono::steady_clock::now();
  CompileOptions options;
  options.arch = device.kernelArch();
  // NVRTC (or the kernel cache) on up to 16 threads: a cold start compiles
  // dozens of independent sources. Modules load in the caller's thread.
  std::vector<const std::pair<const std::string, std::string> *> sources;
  for (const auto &entry : program.cudaSources)
    sources.push_back(&entry);
  std::vector<std::optional<StatusOr<CompiledKernel>>> results(sources.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < sources.size();)
      results[i].emplace(compileKernel({sources[i]->first, sources[i]->second, {}}, options));
  };
  size_t threads = std::min<size_t>(
      sources.size(), std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string &name = sources[i]->first;
    StatusOr<CompiledKernel> &compiled = *results[i];
    if (!compiled.ok())
      return Status::error(
          fmt::format("{}: kernel program {}: {}", program.path, name, compiled.status().message()));
    StatusOr<CudaModule> module = CudaModule::load(context.driver(), compiled->image);
    if (!module.ok())
      return module.status();
    modules->stats_.fromCache += compiled->fromCache;
    modules->modules_.emplace(name, std::move(*module));
  }
  modules->stats_.programs = program.cudaSources.size();
  modules->stats_.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return modules;
}

StatusOr<CUfunction> CudaModules::function(const std::string &name,
                                           const std::string &entry) const {
  auto it = modules_.find(name);
  if (it == modules_.end())
    return Status::error(fmt::format("no kernel program '{}' is loaded", name));
  return it->second.function(entry);
}

//===----------------------------------------------------------------------===//
// Commands
//===----------------------------------------------------------------------===//

struct CudaFunction::Command {
  enum class Kind { Launch, Gemm, Custom } kind = Kind::Launch;
  std::string what; ///< "kernel <name> launch <entry>", for errors.
  // Launch
  CUfunction function = nullptr;
  unsigned grid[3] = {1, 1, 1}, block[3] = {1, 1, 1}, sharedBytes = 0;
  std::vector<uint64_t> args;
  std::vector<void *> argPointers;
  // Gemm
  GemmDesc desc;
  GemmOperands operands;
  // Custom: enqueues its work on the stream (no allocation, no sync).
  std::function<Status(CUstream)> custom;
};

struct CudaFunction::Step {
  std::vector<Command> commands;
};

CudaFunction::CudaFunction(const CudaContext &context, GemmEngine &gemms,
                           const cpu::Function &function)
    : context_(&context), gemms_(&gemms), function_(function),
      pointers_(function.values.size(), 0) {}

CudaFunction::~CudaFunction() {
  const CudaDriver &d = context_->driver();
  if (graphExec_)
    (void)d.cuGraphExecDestroy(graphExec_);
  if (graph_)
    (void)d.cuGraphDestroy(graph_);
}

StatusOr<std::unique_ptr<CudaFunction>>
CudaFunction::create(const CudaContext &context, GemmEngine &gemms, const CudaModules &modules,
                     const cpu::Program &program, const cpu::Function &function) {
  std::unique_ptr<CudaFunction> f(new CudaFunction(context, gemms, function));
  Status status = f->prepare(modules, program);
  if (!status.ok())
    return Status::error(fmt::format("{}: {}: {}", program.path, function.name, status.message()));
  return f;
}

StatusOr<CUdeviceptr> CudaFunction::allocate(size_t bytes, bool zero) {
  bytes = roundUp(std::max<size_t>(bytes, 1));
  StatusOr<DeviceBuffer> buffer = DeviceBuffer::allocate(context_->driver(), bytes);
  if (!buffer.ok())
    return Status::error(fmt::format("allocating {:.1f} MiB on the GPU ({:.1f} MiB so far): {}",
                                     double(bytes) / (1 << 20),
                                     double(deviceBytes_) / (1 << 20),
                                     buffer.status().message()));
  CUdeviceptr p = buffer->pointer();
  if (zero)
    HALO_CU_RETURN_IF_ERROR(context_->driver(), cuMemsetD8(p, 0, bytes));
  deviceBytes_ += bytes;
  buffers_.push_back(std::move(*buffer));
  return p;
}

size_t CudaFunction::valueBytes(int64_t id) const {
  const cpu::ValueInfo &v = function_.values[id];
  return size_t(v.numel) * elementBytes(v.type);
}

CUdeviceptr CudaFunction::valuePointer(int64_t id) const { return pointers_[id]; }

/// Arena values by their planned offset; anything else the kernels need
/// gets a zeroed buffer of its own on first use.
StatusOr<CUdeviceptr> CudaFunction::pointerFor(int64_t id) {
  if (pointers_[id])
    return pointers_[id];
  if (id < int64_t(function_.offsets.size()) && function_.offsets[id] >= 0)
    return pointers_[id] = arena_ + CUdeviceptr(function_.offsets[id]);
  StatusOr<CUdeviceptr> p = allocate(valueBytes(id), true);
  if (p.ok())
    pointers_[id] = *p;
  return p;
}

Status CudaFunction::prepare(const CudaModules &modules, const cpu::Program &program) {
  const CudaDriver &d = context_->driver();
  if (function_.schedule.empty())
    return Status::error("has no kernel schedule (compiled without halo-fuse?); recompile with haloc");

  // Scratch: the largest any kernel part needs. Workspace: a slice per
  // kernel step, since kernels leave theirs ready for their own next run,
  // not necessarily zeroed (cross-entropy keeps its target count there).
  for (const cpu::ScheduleStep &s : function_.schedule)
    if (!s.kernel.empty()) {
      size_t ws = 0;
      for (const cpu::KernelPart &part : program.cudaKernels.at(s.kernel).parts) {
        ws = std::max<size_t>(ws, part.workspaceBytes);
        scratchBytes_ = std::max<size_t>(scratchBytes_, part.scratchBytes);
      }
      workspaceBytes_ += (ws + 15) / 16 * 16;
    }
  StatusOr<CUdeviceptr> p = allocate(size_t(std::max<int64_t>(function_.arenaBytes, 1)), false);
  if (!p.ok())
    return p.status();
  arena_ = *p;
  if (!(p = allocate(workspaceBytes_, true)).ok())
    return p.status();
  workspace_ = *p;
  if (!(p = allocate(scratchBytes_, false)).ok())
    return p.status();
  scratch_ = *p;
  if (!(p = allocate(sizeof(kGuardReset), false)).ok())
    return p.status();
  guard_ = *p;
  HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoD(guard_, kGuardReset, sizeof(kGuardReset)));

  // Inputs own their buffers; AdamW writes its results over its operands.
  for (const cpu::Binding &b : function_.inputs) {
    if (!(p = allocate(valueBytes(b.value), true)).ok())
      return p.status();
    pointers_[b.value] = *p;
  }
  for (const cpu::Op &op : function_.ops)
    if (op.kind == OpKind::AdamW) {
      pointers_[op.results[0]] = pointers_[op.operands[0]];
      pointers_[op.results[1]] = pointers_[op.operands[2]];
      pointers_[op.results[2]] = pointers_[op.operands[3]];
    }
  // The compute copy written by AdamW goes over the step's input copy.
  for (const cpu::Binding &out : function_.outputs)
    if (out.state == "compute")
      if (int64_t in = function_.findParamInput(out.param, "compute"); in >= 0)
        pointers_[out.value] = pointers_[function_.inputs[in].value];

  for (const cpu::ScheduleStep &s : function_.schedule) {
    Step step;
    if (!s.kernel.empty()) {
      HALO_RETURN_IF_ERROR(bindKernel(s, program.cudaKernels.at(s.kernel), modules, step));
    } else {
      for (int64_t i = s.firstOp; i < s.firstOp + s.numOps; ++i) {
        const cpu::Op &op = function_.ops[i];
        if (op.kind == OpKind::Constant) {
          // Filled once; its own buffer, since arena slots are reused.
          const cpu::ValueInfo &info = function_.values[op.results[0]];
          if (!(p = allocate(valueBytes(op.results[0]), false)).ok())
            return p.status();
          pointers_[op.results[0]] = *p;
          std::vector<uint8_t> bytes(valueBytes(op.results[0]));
          for (int64_t k = 0; k < info.numel; ++k) {
            if (info.type == ElementType::F32) {
              float v = float(op.attrs.value);
              std::memcpy(&bytes[k * 4], &v, 4);
            } else if (info.type == ElementType::BF16) {
              uint16_t v = numerics::floatToBF16(float(op.attrs.value));
              std::memcpy(&bytes[k * 2], &v, 2);
            } else if (info.type == ElementType::I32) {
              int32_t v = int32_t(op.attrs.value);
              std::memcpy(&bytes[k * 4], &v, 4);
            } else {
              return Status::error(fmt::format("op #{}: a constant of type {} is not supported on "
                                               "the GPU",
                                               i, cpu::toString(info.type)));
            }
          }
          HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoD(*p, bytes.data(), bytes.size()));
        } else {
          HALO_RETURN_IF_ERROR(bindGemm(op, program.cudaFp8FastAccum, step));
        }
      }
    }
    steps_.push_back(std::move(step));
  }
  for (const cpu::Binding &b : function_.outputs)
    if (!(p = pointerFor(b.value)).ok())
      return p.status();
  if (function_.findOutput("loss") >= 0 && function_.findInput("step") >= 0)
    HALO_RETURN_IF_ERROR(addGuard());
  // Every GEMM plan made now, so that run() can be captured.
  for (const Step &s : steps_)
    for (const Command &c : s.commands)
      if (c.kind == Command::Kind::Gemm) {
        Status prepared = gemms_->prepare(c.desc, &c.operands);
        if (!prepared.ok())
          return Status::error(c.what + ": " + prepared.message());
      }
  return Status::success();
}

Status CudaFunction::addGuard() {
  CompileOptions options;
  options.arch = context_->info().arch();
  StatusOr<CompiledKernel> compiled = compileKernel({"halo_guard", kGuardSource, {}}, options);
  if (!compiled.ok())
    return compiled.status();
  StatusOr<CudaModule> module = CudaModule::load(context_->driver(), compiled->image);
  if (!module.ok())
    return module.status();
  guardModule_ = std::make_unique<CudaModule>(std::move(*module));
  StatusOr<CUfunction> fn = guardModule_->function("halo_guard");
  if (!fn.ok())
    return fn.status();
  Command c;
  c.what = "the overflow guard";
  c.function = *fn;
  int64_t norm = function_.findOutput("grad_norm");
  c.args = {pointers_[function_.outputs[function_.findOutput("loss")].value],
            norm >= 0 ? pointers_[function_.outputs[norm].value] : 0,
            pointers_[function_.inputs[function_.findInput("step")].value], guard_};
  for (uint64_t &a : c.args)
    c.argPointers.push_back(&a);
  Step step;
  step.commands.push_back(std::move(c));
  steps_.push_back(std::move(step));
  return Status::success();
}

Status CudaFunction::bindGemm(const cpu::Op &op, const std::string &fp8FastAccum, Step &out) {
  auto info = [&](int64_t id) -> const cpu::ValueInfo & { return function_.values[id]; };
  const cpu::ValueInfo &a = info(op.operands[0]);
  const cpu::ValueInfo &c = info(op.results[0]);
  Command cmd;
  cmd.kind = Command::Kind::Gemm;
  cmd.what = fmt::format("GEMM '{}' ({}{})", cpu::toString(op.kind), op.attrs.layer,
                         op.attrs.role.empty() ? "" : " " + op.attrs.role);
  GemmDesc &g = cmd.desc;
  g.M = c.shape[0];
  g.N = c.shape[1];
  g.outType = gemmType(c.type);
  StatusOr<CUdeviceptr> pa = pointerFor(op.operands[0]), pc = pointerFor(op.results[0]);
  if (!pa.ok() || !pc.ok())
    return !pa.ok() ? pa.status() : pc.status();
  cmd.operands.a = *pa;
  cmd.operands.c = *pc;
  int64_t bIndex = 1;
  if (op.kind == OpKind::Linear) {
    g.transB = true;
  } else {
    g.transA = op.attrs.transposeA;
    g.transB = op.attrs.transposeB;
  }
  if (op.kind == OpKind::QMatmul) {
    bIndex = 2;
    for (int k : {1, 3}) {
      StatusOr<CUdeviceptr> ps = pointerFor(op.operands[k]);
      if (!ps.ok())
        return ps.status();
      ScaleMode mode = info(op.operands[k]).numel == 1 && info(op.operands[k]).shape.empty()
                           ? ScaleMode::PerTensor
                           : ScaleMode::PerRow;
      (k == 1 ? cmd.operands.scaleA : cmd.operands.scaleB) = *ps;
      (k == 1 ? g.scaleA : g.scaleB) = mode;
    }
  }
  StatusOr<CUdeviceptr> pb = pointerFor(op.operands[bIndex]);
  if (!pb.ok())
    return pb.status();
  cmd.operands.b = *pb;
  g.K = g.transA ? a.shape[0] : a.shape[1];
  g.aType = gemmType(a.type);
  g.bType = gemmType(info(op.operands[bIndex]).type);
  g.fastAccum = g.aType == GemmType::FP8E4M3 &&
                (fp8FastAccum == "all" || (fp8FastAccum == "fwd" && op.attrs.role == "fwd"));
  // The memory plan put the result in the accumulator's buffer: C += product.
  if (std::optional<size_t> acc = cpu::accumulatorOperand(op)) {
    StatusOr<CUdeviceptr> pacc = pointerFor(op.operands[*acc]);
    if (!pacc.ok())
      return pacc.status();
    if (*pacc != *pc)
      return Status::error(fmt::format(
          "{}: the accumulator (value {}) and the result (value {}) must share a buffer; "
          "recompile the program with this haloc",
          cmd.what, op.operands[*acc], op.results[0]));
    g.accumulate = true;
  }
  out.commands.push_back(std::move(cmd));
  return Status::success();
}

Status CudaFunction::bindKernel(const cpu::ScheduleStep &s, const cpu::CudaKernel &kernel,
                                const CudaModules &modules, Step &out) {
  // The ops of the step, by kind (a kernel holds at most a few of each,
  // except the optimizer).
  std::vector<const cpu::Op *> ops;
  for (int64_t i = s.firstOp; i < s.firstOp + s.numOps; ++i)
    ops.push_back(&function_.ops[i]);
  auto find = [&](OpKind k, int nth = 0) -> const cpu::Op * {
    for (const cpu::Op *op : ops)
      if (op->kind == k && nth-- == 0)
        return op;
    return nullptr;
  };
  std::map<std::string, CUdeviceptr> names;
  size_t wsBytes = 0;
  for (const cpu::KernelPart &part : kernel.parts)
    wsBytes = std::max<size_t>(wsBytes, part.workspaceBytes);
  Status failed = Status::success();
  auto bind = [&](const std::string &name, int64_t value) {
    StatusOr<CUdeviceptr> p = pointerFor(value);
    if (!p.ok())
      failed = p.status();
    else
      names[name] = *p;
  };
  // Binds `name` to the input of the right rotation whose result is `dy`:
  // the fused kernel rotates it itself, so dy has no buffer.
  auto bindRotated = [&](const std::string &name, int64_t dy, const char *what) -> Status {
    const cpu::Op *h = find(OpKind::Hadamard);
    if (!h || h->results[0] != dy)
      return Status::error(
          fmt::format("kernel {}: expected a hadamard producing the {}'s dy", s.kernel, what));
    bind(name, h->operands[0]);
    return Status::success();
  };
  names["ws"] = names["acc"] = workspace_ + workspaceUsed_;
  workspaceUsed_ += (wsBytes + 15) / 16 * 16;
  names["absmax"] = names["rstd"] = names["dres"] = names["dloss"] = names["copy"] = 0;
  names["error"] = guard_ + kBadIdSlot;

  const std::string &kind = kernel.kind;
  const cpu::Op *first = ops.front();
  if (kind == "hadamard_quantize" || kind == "quantize") {
    const cpu::Op *q = find(OpKind::Quantize);
    const cpu::Op *t = find(OpKind::Transpose);
    // Both code layouts: codes [rows, cols] and codesT; otherwise codes is
    // the one the kernel yields.
    bool both = false;
    for (const cpu::KernelPart &part : kernel.parts)
      for (const cpu::KernelLaunch &l : part.launches)
        for (const Param &param : parseSignature(l.signature))
          both |= param.name == "codesT";
    if (both && !t)
      return Status::error(fmt::format("kernel {}: writes transposed codes but has no transpose",
                                       s.kernel));
    bind("x", first->operands[0]);
    bind("scale", q->results[1]);
    bind("codes", t && !both ? t->results[0] : q->results[0]);
    if (both)
      bind("codesT", t->results[0]);
    bind("rowScale", q->results[1]);
  } else if (kind == "hadamard_quantize_plain") {
    // Q(H x) and plain Q(x)^T (hadamard, two quantizes, the transpose).
    const cpu::Op *h = find(OpKind::Hadamard), *t = find(OpKind::Transpose);
    const cpu::Op *q = find(OpKind::Quantize), *plain = find(OpKind::Quantize, 1);
    if (!h || !t || !plain)
      return Status::error(fmt::format("kernel {}: expected a hadamard, two quantizes and a "
                                       "transpose",
                                       s.kernel));
    if (q->operands[0] != h->results[0])
      std::swap(q, plain);
    bind("x", h->operands[0]);
    bind("scale", q->results[1]);
    bind("codes", q->results[0]);
    bind("plainScale", plain->results[1]);
    bind("plainCodesT", t->results[0]);
  } else if (kind == "hadamard") {
    bind("x", first->operands[0]);
    bind("y", first->results[0]);
  } else if (kind == "rms_norm") {
    bind("x", first->operands[0]);
    bind("res", first->operands[0]);
    bind("w", first->operands[1]);
    names["h"] = 0;
    bind("y", first->results[0]);
  } else if (kind == "add_rms_norm") {
    const cpu::Op *add = find(OpKind::Add), *norm = find(OpKind::RmsNorm);
    bind("x", add->operands[0]);
    bind("res", add->operands[1]);
    bind("h", add->results[0]);
    bind("w", norm->operands[1]);
    bind("y", norm->results[0]);
  } else if (kind == "rms_norm_grad" || kind == "hadamard_rms_norm_grad") {
    const cpu::Op *g = find(OpKind::RmsNormGrad), *add = find(OpKind::Add);
    bind("h", g->operands[0]);
    bind("w", g->operands[1]);
    if (kind == "rms_norm_grad")
      bind("dy", g->operands[2]);
    else
      HALO_RETURN_IF_ERROR(bindRotated("dyRot", g->operands[2], "RMSNorm"));
    bind("dw", g->results[1]);
    if (add) { // dx + dres in one pass
      bind("dres", add->operands[add->operands[0] == g->results[0] ? 1 : 0]);
      bind("dx", add->results[0]);
    } else {
      bind("dx", g->results[0]);
    }
  } else if (kind == "rope") {
    bind("q", first->operands[0]);
    bind("k", first->operands[0]);
    bind("qOut", first->results[0]);
    bind("kOut", first->results[0]);
  } else if (kind == "attention") {
    for (auto [name, k] : {std::pair{"q", 0}, {"k", 1}, {"v", 2}})
      bind(name, first->operands[k]);
    bind("out", first->results[0]);
    bind("lse", first->results[1]);
  } else if (kind == "attention_grad") {
    int k = 0;
    for (const char *name : {"q", "k", "v", "out", "lse", "dout"})
      bind(name, first->operands[k++]);
    bind("dq", first->results[0]);
    bind("dk", first->results[1]);
    bind("dv", first->results[2]);
  } else if (kind == "swiglu") {
    const cpu::Op *silu = find(OpKind::Silu), *mul = find(OpKind::Mul);
    bind("g", silu->operands[0]);
    bind("u", mul->operands[mul->operands[0] == silu->results[0] ? 1 : 0]);
    bind("y", mul->results[0]);
  } else if (kind == "swiglu_grad" || kind == "hadamard_swiglu_grad") {
    // dsilu = dy * u feeds silu_grad(g, dsilu); du = dy * silu(g).
    const cpu::Op *sg = find(OpKind::SiluGrad);
    const cpu::Op *dsilu = nullptr, *du = nullptr;
    for (int n = 0; const cpu::Op *m = find(OpKind::Mul, n); ++n)
      (m->results[0] == sg->operands[1] ? dsilu : du) = m;
    if (!dsilu || !du)
      return Status::error(fmt::format("kernel {}: unexpected SwiGLU backward body", s.kernel));
    bind("g", sg->operands[0]);
    bind("u", dsilu->operands[1]);
    bind("dg", sg->results[0]);
    bind("du", du->results[0]);
    if (kind == "swiglu_grad")
      bind("dy", dsilu->operands[0]);
    else
      HALO_RETURN_IF_ERROR(bindRotated("x", dsilu->operands[0], "SwiGLU"));
  } else if (kind == "cross_entropy") {
    const cpu::Op *ce = find(OpKind::CrossEntropy), *grad = find(OpKind::CrossEntropyGrad);
    bind("logits", ce->operands[0]);
    bind("targets", ce->operands[1]);
    bind("loss", ce->results[0]);
    if (grad) {
      bind("dlogits", grad->results[0]);
    } else {
      // The evaluation loss only: the fused kernel still writes dlogits.
      StatusOr<CUdeviceptr> p = allocate(valueBytes(ce->operands[0]), false);
      if (!p.ok())
        return p.status();
      names["dlogits"] = *p;
    }
  } else if (kind == "embedding") {
    bind("ids", first->operands[0]);
    bind("table", first->operands[1]);
    bind("out", first->results[0]);
  } else if (kind == "embedding_grad") {
    bind("ids", first->operands[0]);
    bind("dout", first->operands[1]);
    bind("dtable", first->results[0]); // every element written: no memset
  } else if (kind == "transpose") {
    bind("in", first->operands[0]);
    bind("out", first->results[0]);
  } else if (kind == "optimizer") {
    // Bound launch by launch below.
  } else if (ops.size() == 1) {
    // A generated elementwise kernel: in0, in1 -> out.
    for (size_t k = 0; k < first->operands.size(); ++k)
      bind("in" + std::to_string(k), first->operands[k]);
    bind("out", first->results[0]);
  } else {
    return Status::error(fmt::format("kernel {}: the GPU executor has no binding for kind '{}'",
                                     s.kernel, kind));
  }
  HALO_RETURN_IF_ERROR(failed);
  if ((kind == "attention" || kind == "attention_grad") && TensorCoreAttention::enabled()) {
    // BF16 activations and an F32 lse only; anything else keeps the
    // generated kernels.
    bool grad = kind == "attention_grad", bf16 = true;
    auto lse = grad ? first->operands[4] : first->results[1];
    for (const auto *list : {&first->operands, &first->results})
      for (int64_t v : *list)
        bf16 &= function_.values[v].type == (v == lse ? ElementType::F32 : ElementType::BF16);
    if (bf16)
      return bindTensorCoreAttention(*first, names, out);
  }

  // The optimizer's parts run in the emitter's order: per global norm, one
  // _sumsq per tensor then _finish; _lr; one _step per AdamW (which also
  // runs the right hadamard producing its gradient, when the kernel holds one).
  const cpu::Op *norm = find(OpKind::GlobalNorm), *clip = find(OpKind::ClipCoef);
  size_t sumsq = 0, adam = 0;
  for (const cpu::KernelPart &part : kernel.parts) {
    // hadamard_quantize_plain in two parts (no generator writes both there):
    // the second is the plain quantizer.
    if (kind == "hadamard_quantize_plain" && kernel.parts.size() == 2 &&
        &part == &kernel.parts.back()) {
      names["scale"] = names["plainScale"];
      names["codes"] = names["plainCodesT"];
    }
    bool twoPass = false;
    for (const cpu::KernelLaunch &l : part.launches)
      twoPass |= endsWith(l.entry, "_pass1");
    names["tmp"] = names["part"] = names["delta"] = names["rowLoss"] = scratch_;
    if (names.count("x"))
      names["src"] = twoPass ? scratch_ : names["x"];
    for (const cpu::KernelLaunch &l : part.launches) {
      std::map<std::string, uint64_t> local;
      if (kind == "optimizer") {
        if (endsWith(l.entry, "_sumsq")) {
          if (!norm || sumsq >= norm->operands.size())
            return Status::error(fmt::format("kernel {}: more _sumsq launches than tensors",
                                             s.kernel));
          bind("x", norm->operands[sumsq]);
          names["bad"] = guard_ + kBadTensorSlot;
          local["tag"] = sumsq++;
        } else if (endsWith(l.entry, "_finish")) {
          bind("norm", norm->results[0]);
          if (clip)
            bind("clip", clip->results[0]);
          else
            names["clip"] = 0;
        } else if (endsWith(l.entry, "_lr")) {
          const cpu::Op *lr = find(OpKind::LrSchedule);
          bind("step", lr->operands[0]);
          bind("lr", lr->results[0]);
        } else if (endsWith(l.entry, "_step")) {
          const cpu::Op *a = find(OpKind::AdamW, int(adam++));
          if (!a)
            return Status::error(fmt::format("kernel {}: more _step launches than AdamW ops",
                                             s.kernel));
          // A gradient un-rotated inside the kernel (adamwKernel's rotateRows):
          // the step reads the hadamard's input and, if asked, writes its
          // result (which has no buffer otherwise: bind it only then).
          const cpu::Op *rot = nullptr;
          for (const cpu::Op *op : ops)
            if (op->kind == OpKind::Hadamard && op->results[0] == a->operands[1])
              rot = op;
          int k = 0;
          for (const char *name : {"param", "grad", "m", "v", "lr", "step", "gradScale"}) {
            bind(name, k == 1 && rot ? rot->operands[0] : a->operands[k]);
            ++k;
          }
          if (rot && l.signature.find("gradOut") != std::string::npos)
            bind("gradOut", rot->results[0]);
          for (const cpu::Op *op : ops)
            if (op->kind == OpKind::Cast && op->operands[0] == a->results[0])
              bind("copy", op->results[0]);
        }
        HALO_RETURN_IF_ERROR(failed);
      }
      Command c;
      c.what = fmt::format("kernel {} launch {}", s.kernel, l.entry);
      StatusOr<CUfunction> fn = modules.function(part.program, l.entry);
      if (!fn.ok())
        return Status::error(c.what + ": " + fn.status().message());
      c.function = *fn;
      if (l.sharedBytes > 48 * 1024)
        HALO_CU_RETURN_IF_ERROR(context_->driver(),
                                cuFuncSetAttribute(c.function,
                                                   CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                   int(l.sharedBytes)));
      for (int k = 0; k < 3; ++k) {
        c.grid[k] = l.grid[k];
        c.block[k] = l.block[k];
      }
      c.sharedBytes = l.sharedBytes;
      for (const Param &param : parseSignature(l.signature)) {
        if (auto it = local.find(param.name); it != local.end() && !param.pointer) {
          c.args.push_back(it->second);
          continue;
        }
        auto it = names.find(param.name);
        if (it == names.end() || !param.pointer)
          return Status::error(fmt::format("{}: parameter '{}' has no binding (kind '{}')", c.what,
                                           param.name, kind));
        c.args.push_back(it->second);
      }
      for (uint64_t &a : c.args)
        c.argPointers.push_back(&a);
      out.commands.push_back(std::move(c));
    }
  }
  if (kind == "optimizer") {
    if (norm && sumsq != norm->operands.size())
      return Status::error(fmt::format("kernel {}: {} _sumsq launches for {} tensors", s.kernel,
                                       sumsq, norm->operands.size()));
    if (norm)
      for (int64_t g : norm->operands) {
        std::string name;
        // The norm may read the rotated gradient (halo-factor-rotations).
        auto feeds = [&](int64_t grad) {
          if (grad == g)
            return true;
          for (const cpu::Op *h : ops)
            if (h->kind == OpKind::Hadamard && h->results[0] == grad && h->operands[0] == g)
              return true;
          return false;
        };
        for (const cpu::Op *a : ops)
          if (a->kind == OpKind::AdamW && feeds(a->operands[1]))
            for (const cpu::Binding &b : function_.inputs)
              if (b.value == a->operands[0])
                name = b.param;
        normTensors_.push_back(name.empty() ? fmt::format("gradient #{}", normTensors_.size())
                                            : name);
      }
  }
  return Status::success();
}

Status CudaFunction::bindTensorCoreAttention(const cpu::Op &op,
                                             std::map<std::string, CUdeviceptr> &names,
                                             Step &out) {
  const cpu::OpAttrs &a = op.attrs;
  AttentionShape shape{a.batch, a.seqLen, a.numHeads, a.numKvHeads, a.headDim};
  bool grad = op.kind == OpKind::AttentionGrad;
  TensorCoreAttention *engine = nullptr;
  size_t before = 0;
  for (auto &e : attention_)
    if (e->shape() == shape) {
      engine = e.get();
      before = engine->deviceBytes();
    }
  if (!engine) {
    StatusOr<std::unique_ptr<TensorCoreAttention>> created =
        TensorCoreAttention::create(*context_, shape);
    if (!created.ok())
      return created.status();
    engine = created->get();
    attention_.push_back(std::move(*created));
  }
  if (grad)
    HALO_RETURN_IF_ERROR(engine->enableBackward());
  deviceBytes_ += engine->deviceBytes() - before;
  Command c;
  c.kind = Command::Kind::Custom;
  c.what = fmt::format("tensor-core {} ({})", grad ? "attention_grad" : "attention", op.loc);
  if (grad) {
    TensorCoreAttention::BackwardArgs args{names["q"],    names["k"],  names["v"],
                                           names["out"],  names["lse"], names["dout"],
                                           names["dq"],   names["dk"], names["dv"]};
    c.custom = [engine, args](CUstream stream) { return engine->backward(args, stream); };
  } else {
    TensorCoreAttention::ForwardArgs args{names["q"], names["k"], names["v"], names["out"],
                                          names["lse"]};
    c.custom = [engine, args](CUstream stream) { return engine->forward(args, stream); };
  }
  out.commands.push_back(std::move(c));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

Status CudaFunction::runSteps(size_t first, size_t last, CUstream stream) {
  const CudaDriver &d = context_->driver();
  for (size_t i = first; i < last && i < steps_.size(); ++i)
    for (Command &c : steps_[i].commands) {
      CUresult r = CUDA_SUCCESS;
      switch (c.kind) {
      case Command::Kind::Launch:
        r = d.cuLaunchKernel(c.function, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1],
                             c.block[2], c.sharedBytes, stream, c.argPointers.data(), nullptr);
        break;
      case Command::Kind::Custom: {
        Status s = c.custom(stream);
        if (!s.ok())
          return Status::error(c.what + ": " + s.message());
        break;
      }
      case Command::Kind::Gemm: {
        Status s = gemms_->run(c.desc, c.operands, stream);
        if (!s.ok())
          return Status::error(c.what + ": " + s.message());
        break;
      }
      }
      if (r != CUDA_SUCCESS)
        return Status::error(c.what + ": " + d.describe(r));
    }
  return Status::success();
}

Status CudaFunction::run(CUstream stream) { return runSteps(0, steps_.size(), stream); }

Status CudaFunction::captureGraph(CUstream stream) {
  if (graphExec_)
    return Status::success();
  const CudaDriver &d = context_->driver();
  HALO_CU_RETURN_IF_ERROR(d, cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  Status s = run(stream);
  CUgraph graph = nullptr;
  CUresult end = d.cuStreamEndCapture(stream, &graph);
  HALO_RETURN_IF_ERROR(s);
  if (end != CUDA_SUCCESS)
    return d.check(end, "cuStreamEndCapture", __FILE__, __LINE__);
  graph_ = graph;
  HALO_CU_RETURN_IF_ERROR(d, cuGraphInstantiateWithFlags(&graphExec_, graph_, 0));
  return Status::success();
}

Status CudaFunction::launchGraph(CUstream stream) {
  // HALO_CUDA_GRAPH=0 enqueues the commands one by one instead (debugging).
  static const bool useGraphs = [] {
    const char *v = std::getenv("HALO_CUDA_GRAPH");
    return !(v && std::string(v) == "0");
  }();
  if (!useGraphs)
    return run(stream);
  if (!graphExec_)
    HALO_RETURN_IF_ERROR(captureGraph(stream));
  HALO_CU_RETURN_IF_ERROR(context_->driver(), cuGraphLaunch(graphExec_, stream));
  return Status::success();
}

StatusOr<GuardReport> CudaFunction::readGuard(CUstream stream) {
  const CudaDriver &d = context_->driver();
  int g[kGuardInts];
  HALO_CU_RETURN_IF_ERROR(d, cuMemcpyDtoHAsync(g, guard_, sizeof(g), stream));
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  return GuardReport{g[0], g[1], g[2], g[3] == INT_MAX ? -1 : g[3], g[4] != 0};
}

Status CudaFunction::resetGuard(CUstream stream) {
  const CudaDriver &d = context_->driver();
  HALO_CU_RETURN_IF_ERROR(d, cuMemcpyHtoDAsync(guard_, kGuardReset, sizeof(kGuardReset), stream));
  HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
  return Status::success();
}

std::string CudaFunction::gradientName(int index) const {
  if (index >= 0 && index < int(normTensors_.size()))
    return normTensors_[index];
  return "an unknown gradient";
}

StatusOr<std::string> CudaFunction::locateNonFinite(CUstream stream) {
  const CudaDriver &d = context_->driver();
  for (size_t i = 0; i < function_.schedule.size(); ++i) {
    HALO_RETURN_IF_ERROR(runSteps(i, i + 1, stream));
    HALO_CU_RETURN_IF_ERROR(d, cuStreamSynchronize(stream));
    const cpu::ScheduleStep &s = function_.schedule[i];
    for (int64_t k = s.firstOp; k < s.firstOp + s.numOps; ++k) {
      const cpu::Op &op = function_.ops[k];
      for (int64_t r : op.results) {
        const cpu::ValueInfo &info = function_.values[r];
        bool fp8 = info.type == ElementType::F8E4M3FN;
        if (!pointers_[r] || !(cpu::isFloatType(info.type) || fp8))
          continue;
        std::vector<uint8_t> bytes(valueBytes(r));
        HALO_CU_RETURN_IF_ERROR(d, cuMemcpyDtoH(bytes.data(), pointers_[r], bytes.size()));
        for (int64_t e = 0; e < info.numel; ++e) {
          float v;
          if (fp8) {
            v = (bytes[e] & 0x7f) == 0x7f ? NAN : 0.0f; // E4M3FN's only NaN codes
          } else if (info.type == ElementType::F32) {
            std::memcpy(&v, &bytes[4 * e], 4);
          } else {
            uint16_t b;
            std::memcpy(&b, &bytes[2 * e], 2);
            v = numerics::bf16ToFloat(b);
          }
          if (!std::isfinite(v))
            return fmt::format("schedule step {} ({}), op #{} '{}' ({}): value {} {} has {} at "
                               "element {}",
                               i, s.kernel.empty() ? "GEMM" : s.kernel, k, cpu::toString(op.kind),
                               op.loc, r, cpu::formatShape(info.shape), v, e);
        }
      }
    }
  }
  return std::string();
}

size_t CudaFunction::stepCount() const { return steps_.size(); }

size_t CudaFunction::launchCount() const {
  size_t n = 0;
  for (const Step &s : steps_)
    for (const Command &c : s.commands)
      n += c.kind == Command::Kind::Launch;
  return n;
}

size_t CudaFunction::gemmCount() const {
  size_t n = 0;
  for (const Step &s : steps_)
    for (const Command &c : s.commands)
      n += c.kind == Command::Kind::Gemm;
  return n;
}

} // namespace halo::cuda
